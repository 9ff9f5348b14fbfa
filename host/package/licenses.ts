// Open-source licences a driver may carry without tainting the host, as the kernel does for
// proprietary modules. The licence is an SPDX expression, parsed by spdx-expression-parse (a licence
// string that is not one is first corrected by spdx-correct: "GPLv2" -> "GPL-2.0-only"). A licence is
// open when the SPDX licence list marks it OSI-approved (spdx-license-list; deprecated ids such as
// GPL-2.0 included), or is a public-domain dedication (CC0-1.0). "A OR B" is open when either is (the
// user may pick), "A AND B" when both are; "A WITH exception" is judged by A. LicenseRef-* is never open.
// Imported (not required at run time) so that a bundle of the host carries them.
import parseSpdx from 'spdx-expression-parse';
import correct from 'spdx-correct';
import list from 'spdx-license-list';

type Node =
  | { license: string; plus?: boolean; exception?: string }
  | { left: Node; conjunction: 'and' | 'or'; right: Node };
const parse = parseSpdx as (s: string) => Node;

/** Dedications to the public domain: not OSI licences, but nothing in them is closed. */
const PUBLIC_DOMAIN = new Set(['CC0-1.0']);

function open(n: Node): boolean {
  if ('conjunction' in n) return n.conjunction === 'or' ? open(n.left) || open(n.right) : open(n.left) && open(n.right);
  return !!list[n.license]?.osiApproved || PUBLIC_DOMAIN.has(n.license);
}

/** The parsed expression, or undefined when the string is not (and cannot be corrected to) SPDX. */
function expression(license: string): Node | undefined {
  if (!license.trim()) return undefined;
  try {
    return parse(license.trim());
  } catch {
    const fixed = correct(license);
    if (!fixed) return undefined;
    try {
      return parse(fixed);
    } catch {
      return undefined;
    }
  }
}

export function isOpenSource(license: string): boolean {
  const e = expression(license);
  return e !== undefined && open(e);
}
