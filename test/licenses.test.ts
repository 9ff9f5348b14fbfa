// Licence judgement through the SPDX parser and licence list, not a hand list.
import { describe, expect, it } from 'vitest';
import { isOpenSource } from '../host/package/licenses.ts';

describe('isOpenSource', () => {
  it("GPL-2.0 (the kernel stub's own licence) and GPL-2.0-only are open source", () => {
    expect(isOpenSource('GPL-2.0')).toBe(true);
    expect(isOpenSource('GPL-2.0-only')).toBe(true);
    expect(isOpenSource('GPL-2.0+')).toBe(true);
  });
  it('judges expressions: OR open when either side is, AND only when both are, WITH by the licence', () => {
    expect(isOpenSource('MIT OR Apache-2.0')).toBe(true);
    expect(isOpenSource('(MIT AND BSD-3-Clause) OR LicenseRef-Proprietary')).toBe(true);
    expect(isOpenSource('MIT AND LicenseRef-Proprietary')).toBe(false);
    expect(isOpenSource('GPL-2.0-only WITH Linux-syscall-note')).toBe(true);
    expect(isOpenSource('CC0-1.0')).toBe(true);
  });
  it('is closed for LicenseRef-*, non-OSI and unparseable licences; corrects common misspellings', () => {
    expect(isOpenSource('LicenseRef-Proprietary')).toBe(false);
    expect(isOpenSource('CC-BY-NC-4.0')).toBe(false);
    expect(isOpenSource('all rights reserved')).toBe(false);
    expect(isOpenSource('')).toBe(false);
    expect(isOpenSource('Apache 2.0')).toBe(true);
  });
});
