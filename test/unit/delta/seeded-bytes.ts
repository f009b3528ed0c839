/**
 * Seeded test data. xorshift32 (Marsaglia, "Xorshift RNGs", JSS 2003, shifts 13/17/5), one 32-bit
 * word per 4 bytes, little-endian. Golden vectors depend on this exact generator: do not change it.
 */
export function seededBytes(length: number, seed: number): Uint8Array {
  if (seed === 0) throw new Error('xorshift32 seed must be non-zero (zero is its fixed point)');
  const out = new Uint8Array(length);
  let s = seed >>> 0;
  for (let i = 0; i < length; i += 4) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
    if (i + 1 < length) out[i + 1] = (s >>> 8) & 0xff;
    if (i + 2 < length) out[i + 2] = (s >>> 16) & 0xff;
    if (i + 3 < length) out[i + 3] = s >>> 24;
  }
  return out;
}

/** Random data with long runs of zeros and of a repeated phrase: exercises the maxSize clamp. */
export function mixedBytes(length: number, seed: number): Uint8Array {
  const out = seededBytes(length, seed);
  const phrase = new TextEncoder().encode('fedflow moves workloads between sites. ');
  for (let at = 0; at + 300_000 <= length; at += 1_000_000) {
    out.fill(0, at + 100_000, at + 200_000);
    for (let k = at + 200_000; k < at + 300_000; k++) out[k] = phrase[k % phrase.length]!;
  }
  return out;
}
