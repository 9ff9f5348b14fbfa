// Request payloads from the shell: "u32:10", "u64:5", "u8:1", "hex:deadbeef", "str:hello", or a bare
// number (u32). Little-endian, concatenated in order.

export function encodeArgs(args: string[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const a of args) {
    const m = /^(u8|u16|u32|u64|hex|str):(.*)$/s.exec(a);
    const [type, value] = m ? [m[1], m[2]] : ['u32', a];
    if (type === 'hex') {
      if (!/^([0-9a-fA-F]{2})*$/.test(value))
        throw new Error(`argument "${a}": hex needs an even number of hex digits`);
      parts.push(Uint8Array.from(value.match(/../g) ?? [], (h) => parseInt(h, 16)));
      continue;
    }
    if (type === 'str') {
      parts.push(new TextEncoder().encode(value));
      continue;
    }
    let n: bigint;
    try {
      n = BigInt(value);
    } catch {
      throw new Error(`argument "${a}": "${value}" is not a number`);
    }
    const bytes = { u8: 1, u16: 2, u32: 4, u64: 8 }[type as 'u8']!;
    if (n < 0n || n >= 1n << BigInt(bytes * 8)) throw new Error(`argument "${a}": out of range for ${type}`);
    const out = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
    parts.push(out);
  }
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A response as hex plus its little-endian u32 words (the common case for drivers' answers). */
export function decodeResponse(data: Uint8Array): { bytes: number; hex: string; u32: number[] } {
  const u32: number[] = [];
  for (let i = 0; i + 4 <= data.length; i += 4)
    u32.push((data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)) >>> 0);
  return { bytes: data.length, hex: Buffer.from(data).toString('hex'), u32 };
}
