/**
 * Seeded, semi-compressible benchmark data, meant to look like a VM volume or data directory:
 * ~60% text (log lines and JSON records with repeating keys and varying values), ~25% random bytes
 * (already-compressed media, encrypted blobs), ~15% zero runs (sparse files, free blocks),
 * interleaved in blocks of 4-64 KiB. Deterministic for a given seed (xorshift32).
 */
/** xorshift32 (Marsaglia 2003): a tiny seeded generator, so benchmark data is the same every run. */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

export function semiCompressibleBytes(length: number, seed = 0x2545f491): Uint8Array {
  const out = new Uint8Array(length);
  const rnd = xorshift32(seed);
  const enc = new TextEncoder();
  const levels = ['INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'];
  const paths = ['/api/v1/kv', '/api/v1/kv/batch', '/health', '/metrics', '/api/v1/migrate', '/api/v1/sites'];
  const users = Array.from({ length: 200 }, (_, k) => `user-${(k * 7919) % 10007}`);
  let at = 0;
  let t = 1_700_000_000_000;
  while (at < length) {
    const block = Math.min(length - at, 4096 + (rnd() % 61440));
    const kind = rnd() % 100;
    const end = at + block;
    if (kind < 60) {
      while (at < end) {
        t += rnd() % 5000;
        const line =
          rnd() % 3 === 0
            ? `{"ts":${t},"site":"dc:paris","user":"${users[rnd() % users.length]}","op":"put","key":"k${rnd() % 100000}","size":${rnd() % 65536},"ok":true}\n`
            : `${new Date(t).toISOString()} ${levels[rnd() % levels.length]} path=${paths[rnd() % paths.length]} user=${users[rnd() % users.length]} latency_ms=${rnd() % 900} status=${rnd() % 10 === 0 ? 500 : 200}\n`;
        const bytes = enc.encode(line);
        const n = Math.min(bytes.length, end - at);
        out.set(bytes.subarray(0, n), at);
        at += n;
      }
    } else if (kind < 85) {
      for (; at + 4 <= end; at += 4) {
        const r = rnd();
        out[at] = r;
        out[at + 1] = r >>> 8;
        out[at + 2] = r >>> 16;
        out[at + 3] = r >>> 24;
      }
      at = end;
    } else {
      at = end; // zeros: the array starts zero-filled
    }
  }
  return out;
}
