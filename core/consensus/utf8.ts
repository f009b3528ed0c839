/**
 * UTF-8 encoding written out by hand: the core must not depend on host globals (TextEncoder)
 * whose presence differs between Node, the Temporal workflow sandbox and browsers, and signed
 * bytes must be identical everywhere.
 */

export function utf8Bytes(s: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const lo = s.charCodeAt(i + 1);
      if (!(lo >= 0xdc00 && lo <= 0xdfff)) throw new Error(`string has a lone high surrogate at position ${i}; signed text must be valid Unicode`);
      c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      throw new Error(`string has a lone low surrogate at position ${i}; signed text must be valid Unicode`);
    }
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Uint8Array.from(out);
}
