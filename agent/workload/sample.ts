/**
 * The sample workload (the key-value service in workload/kv-server.js): its name, its image, the
 * values it is seeded with, and the seeding itself. Deploying it (an instance through the
 * provider, its entry in the federation log) is worker/deploy-sample.ts's job.
 */

export const SAMPLE_WORKLOAD_ID = 'kv-demo';
export const SAMPLE_IMAGE = 'fedflow/kv';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * A deterministic value, so a test can recompute what every key must hold. Pseudo-random text
 * (xorshift32 over a base64 alphabet), so it compresses about as much as real data does, not 100:1.
 */
export function sampleValue(i: number, bytes: number): string {
  const base = `value-${i}-`;
  let x = (i * 2654435761 + 1) >>> 0 || 1;
  let out = base;
  while (out.length < bytes) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out += ALPHABET[x & 63];
  }
  return out;
}

/** Fills a fresh sample instance with `keys` keys of `valueBytes` each (see sampleValue). */
export async function seedSample(address: string, keys: number, valueBytes: number): Promise<void> {
  // A few writers at a time: fast enough for thousands of keys, gentle on a 2-core machine.
  const writers = 8;
  let next = 0;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      for (let i = next++; i < keys; i = next++) {
        const res = await fetch(`${address}/kv/key-${String(i).padStart(6, '0')}`, { method: 'PUT', body: sampleValue(i, valueBytes) });
        if (!res.ok) throw new Error(`seeding key ${i} on ${address} failed: ${res.status}`);
      }
    }),
  );
}

/** How many keys a running sample holds. */
export async function sampleKeyCount(address: string): Promise<number> {
  const health = (await (await fetch(`${address}/health`)).json()) as { keys: number };
  return health.keys;
}
