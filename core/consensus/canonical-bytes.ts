/**
 * The canonical byte encoding of what a site signs. Deterministic and unambiguous: a domain tag,
 * then each field as a type byte and a fixed-width length or value, so no two different field
 * lists encode to the same bytes (no "ab"+"c" = "a"+"bc" confusion) and a signature made for
 * one purpose can never be replayed as another (the domain differs).
 */
import { utf8Bytes } from './utf8';

export type CanonicalField = string | number;

const TAG_STRING = 0x01;
const TAG_UINT = 0x02;

export function canonicalBytes(domain: string, fields: readonly CanonicalField[]): Uint8Array {
  const parts: number[] = [];
  pushString(parts, domain);
  fields.forEach((f, i) => {
    if (typeof f === 'string') pushString(parts, f);
    else {
      if (!Number.isSafeInteger(f) || f < 0) throw new Error(`field ${i} of '${domain}' must be a whole number from 0 to 2^53-1; got ${f}`);
      parts.push(TAG_UINT);
      // 8 bytes big-endian; the high 32 bits via division because bit operators are 32-bit.
      pushU32(parts, Math.floor(f / 2 ** 32));
      pushU32(parts, f >>> 0);
    }
  });
  return Uint8Array.from(parts);
}

function pushString(parts: number[], s: string): void {
  const b = utf8Bytes(s);
  parts.push(TAG_STRING);
  pushU32(parts, b.length);
  for (const x of b) parts.push(x);
}

function pushU32(parts: number[], v: number): void {
  parts.push((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
}
