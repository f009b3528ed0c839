/**
 * The volumes of the delta benchmark: an old version, and per scenario a new one derived from it.
 * All bytes are semi-compressible (bench/delta-data.ts) and seeded, so every run compares the two
 * tools on the same files.
 *   scattered  1% of the 4 KiB blocks rewritten, at seeded random block positions
 *   insert     1 MiB inserted at the middle; everything after it shifts by 1 MiB
 *   unrelated  a fresh volume from another seed: shares nothing with the old one by design (only
 *              incidental equal blocks, such as all-zero runs, which either tool may reuse)
 */
import { writeFileSync } from 'node:fs';
import { semiCompressibleBytes, xorshift32 } from './delta-data';

export const SCENARIOS = ['scattered', 'insert', 'unrelated'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export const BLOCK = 4096;
const OLD_SEED = 0x2545f491;
const NEW_SEED = 0x9e3779b9;

/** Positions come from their own seeded stream, independent of the data generator's. */
const rng = xorshift32;

export function oldVersion(bytes: number): Uint8Array {
  return semiCompressibleBytes(bytes, OLD_SEED);
}

export interface NewVersion {
  data: Uint8Array;
  /** What changed, for the output line. */
  note: string;
}

export function newVersion(old: Uint8Array, scenario: Scenario): NewVersion {
  if (scenario === 'unrelated') return { data: semiCompressibleBytes(old.length, NEW_SEED), note: 'fresh data, other seed' };
  // Fresh semi-compressible material to write: new log lines / blobs, not copies of old blocks.
  const fresh = semiCompressibleBytes(Math.max(1 << 20, 8 << 20), NEW_SEED);
  if (scenario === 'insert') {
    const mid = Math.floor(old.length / 2 / BLOCK) * BLOCK;
    const ins = fresh.subarray(0, 1 << 20);
    const out = new Uint8Array(old.length + ins.length);
    out.set(old.subarray(0, mid), 0);
    out.set(ins, mid);
    out.set(old.subarray(mid), mid + ins.length);
    return { data: out, note: `1 MiB inserted at offset ${mid}` };
  }
  const out = Uint8Array.from(old);
  const blocks = Math.floor(old.length / BLOCK);
  const target = Math.max(1, Math.round(blocks / 100));
  const picked = new Set<number>();
  const r = rng(0xc0ffee);
  while (picked.size < target) picked.add(r() % blocks);
  const freshBlocks = Math.floor(fresh.length / BLOCK);
  for (const b of picked) {
    const src = (r() % freshBlocks) * BLOCK;
    out.set(fresh.subarray(src, src + BLOCK), b * BLOCK);
  }
  return { data: out, note: `${picked.size} of ${blocks} 4 KiB blocks rewritten` };
}

export function writeVersion(path: string, data: Uint8Array): void {
  writeFileSync(path, data);
}
