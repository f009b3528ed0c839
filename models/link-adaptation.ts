/**
 * Per-link adaptation state and its steps: which estimator to trust on this link (fixed-share
 * expert weights, models/expert-weights.ts) and how wide its lower bound must be (adaptive
 * conformal inference, models/conformal-low.ts). Pure: the predictor (models/predictor.ts) runs
 * the estimators and calls these; the agent persists the state beside the link's samples
 * (agent/link/telemetry.ts), as an opaque JSON value that `parseAdaptation` checks on the way back.
 *
 * A point is scored once its 5 s window has passed: the outcome of a prediction is known only
 * HORIZON_S later. So the state remembers up to which sample time it has scored, and every call
 * scores the points of the history that have become complete since (the agent predicts once per
 * migration round, not at every sample, so the points are replayed from the ring of samples).
 */
import { z } from 'zod';
import { CLASSICAL } from './classical-estimators';
import { conformalMargin, conformalUpdate, initialConformal, type ConformalParams, type ConformalState } from './conformal-low';
import { expertLoss, fixedShareUpdate, mixture, type FixedShareParams } from './expert-weights';
import { HORIZON_S, MIN_SAMPLES } from './features';

/** The experts, in the order of every weight and prediction array. */
export const EXPERTS = ['onnx', ...CLASSICAL] as const;
export type ExpertName = (typeof EXPERTS)[number];

export interface AdaptationParams {
  /** Prior weights (EXPERTS order): where a new link starts, and where the share step returns to. */
  readonly prior: readonly number[];
  readonly weights: FixedShareParams;
  /**
   * How the weights make the point prediction: `mix`, the weighted geometric mean (the
   * exponentially weighted average forecaster); `leader`, the prediction of the expert with the
   * largest weight (it never blends in an expert that is wrong on this link).
   */
  readonly combine: 'mix' | 'leader';
  readonly conformal: ConformalParams;
}

/** p10; gamma 0.01 (Gibbs & Candès used 0.005 on longer series); 100 scores (~100 s of samples at 1 s). */
const CONFORMAL: ConformalParams = { alpha: 0.1, gamma: 0.01, window: 100, minScores: 10 };

/**
 * The candidate settings. The first was fixed before any leave-one-dataset-out figure was seen
 * (prior: half on the model, because it was the best single estimator on the training data's
 * validation traces, models/training-summary.json; eta 5: ten points that favour one expert by
 * 0.02 in absolute log error move it by e^1). It lost to the best baseline on three of the four
 * datasets (docs/predictor.md), so the others were added after seeing those figures (a stronger
 * prior on the model, faster learning, following the leader instead of mixing, and the model's own
 * training loss as the experts' loss); `npm run eval -- predictor` picks between them for each
 * dataset on the *other* datasets only (nested leave-one-out).
 */
export const CANDIDATES: Readonly<Record<string, AdaptationParams>> = {
  'mix-p50-eta5': { prior: [0.5, 0.125, 0.125, 0.125, 0.125], weights: { eta: 5, share: 0.02 }, combine: 'mix', conformal: CONFORMAL },
  'mix-p80-eta5': { prior: [0.8, 0.05, 0.05, 0.05, 0.05], weights: { eta: 5, share: 0.02 }, combine: 'mix', conformal: CONFORMAL },
  'mix-p80-eta20': { prior: [0.8, 0.05, 0.05, 0.05, 0.05], weights: { eta: 20, share: 0.02 }, combine: 'mix', conformal: CONFORMAL },
  'leader-p80-eta5': { prior: [0.8, 0.05, 0.05, 0.05, 0.05], weights: { eta: 5, share: 0.02 }, combine: 'leader', conformal: CONFORMAL },
  'leader-p80-eta20': { prior: [0.8, 0.05, 0.05, 0.05, 0.05], weights: { eta: 20, share: 0.02 }, combine: 'leader', conformal: CONFORMAL },
  'mix-p95-eta20': { prior: [0.95, 0.0125, 0.0125, 0.0125, 0.0125], weights: { eta: 20, share: 0.02 }, combine: 'mix', conformal: CONFORMAL },
  'welsch-mix-p50-eta5': { prior: [0.5, 0.125, 0.125, 0.125, 0.125], weights: { eta: 5, share: 0.02, loss: 'welsch' }, combine: 'mix', conformal: CONFORMAL },
  'welsch-mix-p80-eta5': { prior: [0.8, 0.05, 0.05, 0.05, 0.05], weights: { eta: 5, share: 0.02, loss: 'welsch' }, combine: 'mix', conformal: CONFORMAL },
  'welsch-leader-p80-eta5': { prior: [0.8, 0.05, 0.05, 0.05, 0.05], weights: { eta: 5, share: 0.02, loss: 'welsch' }, combine: 'leader', conformal: CONFORMAL },
};

/**
 * The shipped setting: the candidate the same rule picks on all four datasets (`npm run eval --
 * predictor` prints it as `onAllDatasets`, and whether this constant still matches). Chosen on
 * every dataset, so its own figures there are not held-out figures; the nested ones are.
 */
export const SHIPPED_CANDIDATE = 'welsch-leader-p80-eta5';
export const ADAPTATION: AdaptationParams = CANDIDATES[SHIPPED_CANDIDATE]!;

export interface AdaptationState {
  readonly version: 1;
  readonly experts: readonly string[];
  readonly weights: readonly number[];
  readonly conformal: ConformalState;
  /** timeMs of the newest history point scored; null before the first. */
  readonly scoredUpToMs: number | null;
  /** Points scored on this link so far. */
  readonly scored: number;
}

export function initialAdaptation(params: AdaptationParams = ADAPTATION): AdaptationState {
  return {
    version: 1,
    experts: [...EXPERTS],
    weights: [...params.prior],
    conformal: initialConformal(params.conformal),
    scoredUpToMs: null,
    scored: 0,
  };
}

const stateSchema = z.object({
  version: z.literal(1),
  experts: z.array(z.string()),
  weights: z.array(z.number().finite().nonnegative()),
  conformal: z.object({ alphaT: z.number().finite(), scores: z.array(z.number().finite()) }),
  scoredUpToMs: z.number().finite().nullable(),
  scored: z.number().int().nonnegative(),
});

/**
 * A persisted state, or null (start afresh) when there is none or it was made for another set of
 * experts; `problem` says why a present value was not usable.
 */
export function parseAdaptation(value: unknown): { state: AdaptationState | null; problem?: string } {
  if (value === undefined || value === null) return { state: null };
  const parsed = stateSchema.safeParse(value);
  if (!parsed.success) return { state: null, problem: `not an adaptation state: ${parsed.error.message}` };
  const s = parsed.data;
  if (s.experts.join(',') !== EXPERTS.join(',') || s.weights.length !== EXPERTS.length) {
    return { state: null, problem: `made for experts [${s.experts.join(', ')}], expected [${EXPERTS.join(', ')}]` };
  }
  return { state: s };
}

/**
 * Indexes of `timesMs` whose prediction can now be scored: at least MIN_SAMPLES of history, newer
 * than the last scored point, and a complete HORIZON_S window after them in the history.
 */
export function pointsToScore(timesMs: readonly number[], state: AdaptationState): number[] {
  const out: number[] = [];
  const newest = timesMs[timesMs.length - 1]!;
  for (let i = MIN_SAMPLES - 1; i < timesMs.length; i++) {
    if (state.scoredUpToMs !== null && timesMs[i]! <= state.scoredUpToMs) continue;
    if (timesMs[i]! + HORIZON_S * 1000 > newest) break;
    out.push(i);
  }
  return out;
}

export interface Issued {
  readonly meanMbps: number;
  readonly lowMbps: number;
  /** 'conformal' once the link has enough scored points, else the model's own p10 ratio. */
  readonly lowFrom: 'conformal' | 'model';
}

/** The prediction the state gives for one point from the experts' predictions (EXPERTS order). */
export function issue(state: AdaptationState, predictions: readonly number[], modelLowRatio: number, params: AdaptationParams = ADAPTATION): Issued {
  const leader = state.weights.reduce((best, w, i) => (w > state.weights[best]! ? i : best), 0);
  const meanMbps = params.combine === 'leader' ? predictions[leader]! : mixture(state.weights, predictions);
  const q = conformalMargin(state.conformal, params.conformal);
  const low = q === null ? meanMbps * Math.min(modelLowRatio, 1) : meanMbps * Math.exp(-q);
  return { meanMbps, lowMbps: Math.min(low, meanMbps), lowFrom: q === null ? 'model' : 'conformal' };
}

/**
 * Scores one point: `actual` is the mean of its next HORIZON_S (null when that window held only
 * zeros, which no percentage error can score; the point is then only marked as seen).
 */
export function scorePoint(
  state: AdaptationState,
  point: { timeMs: number; predictions: readonly number[]; modelLowRatio: number; actual: number | null },
  params: AdaptationParams = ADAPTATION,
): AdaptationState {
  if (point.actual === null) return { ...state, scoredUpToMs: point.timeMs };
  const given = issue(state, point.predictions, point.modelLowRatio, params);
  const losses = point.predictions.map((p) => expertLoss(p, point.actual!, params.weights));
  return {
    ...state,
    weights: fixedShareUpdate(state.weights, losses, params.prior, params.weights),
    conformal: conformalUpdate(state.conformal, params.conformal, { mean: given.meanMbps, low: given.lowMbps, actual: point.actual }),
    scoredUpToMs: point.timeMs,
    scored: state.scored + 1,
  };
}
