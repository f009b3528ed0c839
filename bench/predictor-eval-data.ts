/**
 * Trace reading and the walk "at every sample after warm-up, predict the mean
 * of the next 5 s": shared by bench/eval.ts and the predictor tests.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { HORIZON_S, MIN_SAMPLES, targetMean } from '../models/features';

export interface Trace {
  readonly name: string;
  /** Seconds. */
  readonly times: number[];
  readonly mbps: number[];
  /** ms, NaN where the file has no third column. */
  readonly rttMs: number[];
}

/** `seconds<TAB>Mbit/s[<TAB>rtt_ms]`; same rules as read_trace in models/dataset.py. */
export function readTrace(file: string): Trace {
  const times: number[] = [];
  const mbps: number[] = [];
  const rttMs: number[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length < 2) continue;
    const t = Number(parts[0]);
    const v = Number(parts[1]);
    if (!Number.isFinite(t) || !Number.isFinite(v) || v < 0) continue;
    if (times.length > 0 && t <= times[times.length - 1]!) continue;
    times.push(t);
    mbps.push(v);
    rttMs.push(parts.length > 2 ? Number(parts[2]) : Number.NaN);
  }
  return { name: path.basename(file), times, mbps, rttMs };
}

export function readTraceDir(dir: string): Trace[] {
  return readdirSync(dir)
    .filter((f) => !f.startsWith('.') && statSync(path.join(dir, f)).isFile())
    .sort()
    .map((f) => readTrace(path.join(dir, f)));
}

export interface PredictionPoint {
  readonly index: number;
  readonly actual: number;
}

/** Indexes with at least MIN_SAMPLES of history and a complete next-HORIZON_S window. */
export function predictionPoints(trace: Trace): PredictionPoint[] {
  const out: PredictionPoint[] = [];
  for (let i = MIN_SAMPLES - 1; i < trace.times.length; i++) {
    const actual = targetMean(trace.times, trace.mbps, i);
    if (actual !== null) out.push({ index: i, actual });
  }
  return out;
}

export { HORIZON_S };
