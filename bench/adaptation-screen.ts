/**
 * Screening of the adaptation settings (models/link-adaptation.ts CANDIDATES) on the recorded
 * experts: each dataset is walked once with the real predictor (bench/predictor-eval-walk.ts), which
 * records every expert's prediction at every point, and each candidate's choice between them is
 * then replayed with the same pure functions the predictor calls (scoreExperts, issueMean), each
 * point scored once its 5 s have passed, as the predictor does. That makes hundreds of candidates
 * cost seconds instead of a walk each; the figures the eval reports for the chosen candidate come
 * from a real walk with it, not from the replay.
 *
 * The replay differs from the predictor in one detail: the predictor re-runs the model for a
 * scored point on the history left in its 64-sample ring at scoring time (a few samples shorter
 * than when the point was predicted), the replay reuses the predictions made at the point. The
 * eval prints the replayed and the walked figure of every candidate it walks, so the gap is visible.
 */
import * as path from 'node:path';
import { CLASSICAL } from '../models/classical-estimators';
import { HORIZON_S } from '../models/features';
import { CANDIDATES, PER_LINK_CANDIDATE, initialAdaptation, issueMean, scoreExperts, type AdaptationParams } from '../models/link-adaptation';
import { createPredictor } from '../models/predictor';
import { readTraceDir, type Trace } from './predictor-eval-data';
import { median, walkTrace, type WalkPoint, type WalkResult } from './predictor-eval-walk';
import { looModel } from './predictor-loo';

/** The adaptive prediction of `params` at every point of every trace (traces in order, points in order). */
export function replayMeans(traces: readonly (readonly WalkPoint[])[], params: AdaptationParams): number[] {
  const out: number[] = [];
  for (const points of traces) {
    let state = initialAdaptation(params);
    let next = 0;
    for (let i = 0; i < points.length; i++) {
      const p = points[i]!;
      while (next < i && points[next]!.timeMs + HORIZON_S * 1000 <= p.timeMs) {
        const q = points[next]!;
        if (q.experts.length > 0) state = scoreExperts(state, q.experts, q.actual, params);
        next++;
      }
      out.push(p.experts.length > 0 ? issueMean(state, p.experts, params) : p.adaptive);
    }
  }
  return out;
}

const medianApe = (points: readonly WalkPoint[], pred: readonly number[]) => median(points.map((p, i) => Math.abs(pred[i]! - p.actual) / p.actual));

/** 1 - medianApe(candidate) / medianApe(best classical estimator in hindsight), for every candidate. */
export function screenCandidates(traces: readonly (readonly WalkPoint[])[]): Map<string, number> {
  const points = traces.flat();
  const best = Math.min(...CLASSICAL.map((m) => medianApe(points, points.map((p) => p.baselines[m]))));
  return new Map(Object.entries(CANDIDATES).map(([name, params]) => [name, 1 - medianApe(points, replayMeans(traces, params)) / best]));
}

export interface WalkedDataset {
  readonly dataset: string;
  readonly dir: string;
  readonly modelPath: string;
  readonly trainDirs: string[];
  readonly traces: Trace[];
  /** The walk with PER_LINK_CANDIDATE: its points carry every expert's prediction. */
  readonly walks: WalkResult[];
  /** Replayed improvement of every candidate. */
  readonly screened: Map<string, number>;
}

/** Walks one dataset with the model trained without it, and screens every candidate on it. */
export async function walkAndScreen(root: string, dataset: string): Promise<WalkedDataset> {
  const { modelPath, trainDirs } = looModel(dataset);
  const dir = path.join(root, dataset);
  const traces = readTraceDir(dir);
  const predictor = createPredictor({ modelPath, adaptation: CANDIDATES[PER_LINK_CANDIDATE] });
  const walks: WalkResult[] = [];
  for (const t of traces) walks.push(await walkTrace(t, predictor));
  return { dataset, dir, modelPath, trainDirs, traces, walks, screened: screenCandidates(walks.map((w) => w.points)) };
}

/** The walk of `dataset` with `candidate` (per-link: CANDIDATES): the screening walk when that is its setting. */
export async function walkWith(d: WalkedDataset, candidate: string): Promise<WalkResult[]> {
  if (candidate === PER_LINK_CANDIDATE) return d.walks;
  const predictor = createPredictor({ modelPath: d.modelPath, adaptation: CANDIDATES[candidate] });
  const walks: WalkResult[] = [];
  for (const t of d.traces) walks.push(await walkTrace(t, predictor));
  return walks;
}
