/**
 * Which Zstd level a transfer over a link of a given speed should use. Pure data and arithmetic:
 * the mode policy (workflow code) plans with it, and the agent's codec chooser uses the same table.
 *
 * A transfer is a pipeline: compression makes wire bytes at the codec's speed, the link carries
 * them. On a slow link the link binds, and a higher level's better ratio is pure gain as long as
 * the compressor stays well ahead of the wire; past that point the compressor binds. So the rule
 * is: the highest level whose one-core speed outruns the link by ZSTD_HEADROOM.
 */

/** The levels the plan picks from (the table below has a row for each). */
export const ZSTD_PLAN_LEVELS = [1, 3, 5, 7, 9, 12, 15, 19] as const;

/**
 * Zstd compression speed per level on one core, MB/s (10^6 bytes), of fedflow's per-chunk
 * compression on the semi-compressible corpus in datacenter-preset chunks. From
 *     npm run bench -- delta-micro --only=levels --reps=3
 * on this project's 2-core build machine (2026-12-01, with a model training beside it): the best
 * wall-clock run of three, rounded down (the CPU-second figures were 5-25 % higher). Only the order
 * of magnitude matters to the rule. Compression ratios on that corpus: 2.81 at level 1, 2.92 at 9,
 * 2.96 at 12 and 2.94 at 19 (real volumes gain more from the high levels than this corpus does).
 */
export const ZSTD_SPEED_MBPS: readonly { readonly level: number; readonly mbps: number }[] = [
  { level: 1, mbps: 700 },
  { level: 3, mbps: 550 },
  { level: 5, mbps: 250 },
  { level: 7, mbps: 140 },
  { level: 9, mbps: 100 },
  { level: 12, mbps: 45 },
  { level: 15, mbps: 11 },
  { level: 19, mbps: 5 },
];

/**
 * The compressor must run this many times faster than the link: it shares the cores with hashing,
 * TLS and the other streams, and the speed table comes from another machine's mood.
 */
export const ZSTD_HEADROOM = 4;

/** The highest level whose speed on `cores` cores is ZSTD_HEADROOM times the link's; level 1 at least. */
export function chooseZstdLevel(linkMbps: number, cores = 1, table: readonly { readonly level: number; readonly mbps: number }[] = ZSTD_SPEED_MBPS): number {
  if (!(linkMbps > 0)) throw new RangeError(`link speed is ${linkMbps} Mbit/s; expected a positive number`);
  if (!(cores >= 1)) throw new RangeError(`cores is ${cores}; expected at least 1`);
  const linkMBps = linkMbps / 8;
  let level = table[0]!.level;
  for (const row of table) if (row.mbps * cores >= ZSTD_HEADROOM * linkMBps) level = Math.max(level, row.level);
  return level;
}
