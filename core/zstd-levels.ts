/**
 * Which Zstd level a transfer over a link of a given speed should use. Pure data and arithmetic,
 * for the mode policy's transfer plan (workflow code). Hybrid mode measures its codec on the
 * volume's own chunks instead (agent/transfer/codec-chooser.ts).
 *
 * A transfer is a pipeline: the compressor turns raw bytes into wire bytes, the link carries them.
 * To keep a link of L wire MB/s busy, the compressor must take in L × ratio raw MB/s. On a slow
 * link the link binds, and a higher level's better ratio is pure gain as long as the compressor
 * stays ahead; past that point the compressor binds. So the rule is: the highest level whose
 * one-core speed is ZSTD_HEADROOM times the raw rate the link can absorb at that level's ratio.
 */

/** The levels the plan picks from (the table below has a row for each). */
export const ZSTD_PLAN_LEVELS = [1, 3, 5, 7, 9, 12, 15, 19] as const;

/**
 * Zstd compression speed per level on one core, raw MB/s (10^6 bytes), and the ratio, of fedflow's
 * per-chunk compression on the bench's semi-compressible corpus in internet-preset chunks. From
 *     npm run bench -- delta-micro --only=levels --reps=3 --codec-chunks=internet
 * on this project's 2-core build machine, quiet (2026-12-01): the slowest of the three runs, rounded
 * down. With a model training beside it, the same bench on datacenter-preset chunks measured
 * 0.47-0.72 of these (slowest runs); ZSTD_HEADROOM covers that. Only the order of magnitude matters.
 */
export const ZSTD_SPEED_MBPS: readonly { readonly level: number; readonly mbps: number; readonly ratio: number }[] = [
  { level: 1, mbps: 630, ratio: 2.86 },
  { level: 3, mbps: 620, ratio: 2.84 },
  { level: 5, mbps: 290, ratio: 2.85 },
  { level: 7, mbps: 170, ratio: 2.94 },
  { level: 9, mbps: 130, ratio: 2.95 },
  { level: 12, mbps: 75, ratio: 2.96 },
  { level: 15, mbps: 19, ratio: 2.88 },
  { level: 19, mbps: 7, ratio: 2.88 },
];

/**
 * The compressor must be this many times faster than the link needs: it shares the cores with
 * hashing, TLS and the other streams, and a busy machine runs it at half speed.
 */
export const ZSTD_HEADROOM = 3;

/** The highest level whose speed on `cores` cores keeps ZSTD_HEADROOM ahead of the link; level 1 at least. */
export function chooseZstdLevel(
  linkMbps: number,
  cores = 1,
  table: readonly { readonly level: number; readonly mbps: number; readonly ratio: number }[] = ZSTD_SPEED_MBPS,
): number {
  if (!(linkMbps > 0)) throw new RangeError(`link speed is ${linkMbps} Mbit/s; expected a positive number`);
  if (!(cores >= 1)) throw new RangeError(`cores is ${cores}; expected at least 1`);
  const linkMBps = linkMbps / 8;
  let level = table[0]!.level;
  for (const row of table) if (row.mbps * cores >= ZSTD_HEADROOM * row.ratio * linkMBps) level = Math.max(level, row.level);
  return level;
}
