/**
 * How long a transfer plan takes on the throughput that actually followed: the time model of
 * `npm run eval -- plan-regret`. A transfer is a pipeline (core/zstd-levels.ts): the compressor
 * turns raw bytes into wire bytes on one core, the link carries them, at most `streams` windows
 * in flight per round trip. The plan's time is the slower stage, plus the request's round trips.
 */
import { STREAM_WINDOW_BYTES, type TransferPlan } from '../core/mode-policy';
import { ZSTD_SPEED_MBPS } from '../core/zstd-levels';
import type { Trace } from './predictor-eval-data';

/**
 * LZ4 on one core: fedflow's codec bench on datacenter-preset chunks, docs/delta-sync.md
 * (`"codec":"lz4"`, fedflow mbps 964.4, ratio 2.452), rounded down.
 */
const LZ4 = { mbps: 960, ratio: 2.45 } as const;

function codecOf(plan: Pick<TransferPlan, 'codec' | 'level'>): { mbps: number; ratio: number } {
  if (plan.codec === 'lz4') return LZ4;
  const row = ZSTD_SPEED_MBPS.find((r) => r.level === plan.level);
  if (!row) throw new Error(`no measured speed for zstd level ${plan.level} (known: ${ZSTD_SPEED_MBPS.map((r) => r.level).join(', ')})`);
  return row;
}

/**
 * Seconds from the trace's sample `index` until `bits` have crossed the link, reading sample j as
 * the rate over (t_{j-1}, t_j] and capping it at `capMbps`; null if the trace ends first.
 */
export function secondsToMove(trace: Trace, index: number, bits: number, capMbps = Number.POSITIVE_INFINITY): number | null {
  let left = bits;
  let t = trace.times[index]!;
  for (let j = index + 1; j < trace.times.length; j++) {
    const rate = Math.min(trace.mbps[j]!, capMbps) * 1e6;
    const span = trace.times[j]! - t;
    if (rate > 0 && rate * span >= left) return t + left / rate - trace.times[index]!;
    left -= rate * span;
    t = trace.times[j]!;
  }
  return null;
}

/** The plan's time for `bytes` from sample `index`, with the link's RTT (null: no window cap, no round trips). */
export function planSeconds(plan: TransferPlan, trace: Trace, index: number, bytes: number, rttMs: number | null): number | null {
  const codec = codecOf(plan);
  const capMbps = rttMs === null || rttMs <= 0 ? Number.POSITIVE_INFINITY : (plan.streams * STREAM_WINDOW_BYTES * 8) / (rttMs * 1000);
  const wire = secondsToMove(trace, index, (bytes / codec.ratio) * 8, capMbps);
  if (wire === null) return null;
  const compress = bytes / (codec.mbps * 1e6);
  return Math.max(wire, compress) + (2 * (rttMs ?? 0)) / 1000;
}
