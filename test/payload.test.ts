import { describe, expect, it } from 'vitest';
import { decodeResponse, encodeArgs } from '../host/payload.ts';

describe('request payloads from the shell', () => {
  it('encodes typed little-endian arguments in order', () => {
    expect([...encodeArgs(['u32:1', 'u8:2', 'u16:0x0304', 'hex:aabb', 'str:hi', '7'])]).toEqual([
      1, 0, 0, 0, 2, 4, 3, 0xaa, 0xbb, 0x68, 0x69, 7, 0, 0, 0,
    ]);
    expect([...encodeArgs(['u64:0x0102030405060708'])]).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
  });
  it('names the argument that is wrong', () => {
    expect(() => encodeArgs(['u8:256'])).toThrow('argument "u8:256": out of range for u8');
    expect(() => encodeArgs(['u32:ten'])).toThrow('"ten" is not a number');
    expect(() => encodeArgs(['hex:abc'])).toThrow('even number of hex digits');
  });
  it('decodes responses as hex and u32 words', () => {
    expect(decodeResponse(Uint8Array.of(1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 9))).toEqual({
      bytes: 9,
      hex: '01000000ffffffff09',
      u32: [1, 0xffffffff],
    });
  });
});
