// Open-source licenses (SPDX ids) a driver may carry without tainting the host, as the kernel does
// for proprietary modules. An expression like "MIT OR Apache-2.0" is open when every term is.
const OPEN = new Set([
  '0BSD', 'Apache-2.0', 'BSD-2-Clause', 'BSD-3-Clause', 'BSL-1.0', 'CC0-1.0', 'EPL-2.0', 'GPL-2.0-only', 'GPL-2.0-or-later',
  'GPL-3.0-only', 'GPL-3.0-or-later', 'ISC', 'LGPL-2.1-only', 'LGPL-2.1-or-later', 'LGPL-3.0-only', 'LGPL-3.0-or-later',
  'MIT', 'MPL-2.0', 'Unlicense', 'Zlib',
]);

export function isOpenSource(license: string): boolean {
  const terms = license.replace(/[()]/g, ' ').split(/\s+(?:OR|AND)\s+|\s+WITH\s+\S+/).map((t) => t.trim()).filter(Boolean);
  return terms.length > 0 && terms.every((t) => OPEN.has(t));
}
