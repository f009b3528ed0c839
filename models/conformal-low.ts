/**
 * A lower bound for the next 5 s that covers what it claims on this link: adaptive conformal
 * inference (Gibbs & Candès, "Adaptive Conformal Inference Under Distribution Shift", NeurIPS 2021).
 * Pure arithmetic, no I/O.
 *
 * The score of a scored point is s = log(mean / actual): how far the actual fell below the point
 * prediction (negative when it came out above). The bound is mean * exp(-q), where q is the
 * (1 - alpha_t) empirical quantile of the link's recent scores, and alpha_t follows the link's own
 * misses: alpha_{t+1} = alpha_t + gamma (alpha - miss_t). A link whose bound was missed more than
 * alpha of the time gets a wider bound, whatever the noise or the drift, which a bound learnt
 * offline on other links (the model's own p10) cannot do.
 */

export interface ConformalState {
  /** The current working miscoverage level alpha_t. */
  readonly alphaT: number;
  /** The most recent scores, oldest first, at most ConformalParams.window. */
  readonly scores: readonly number[];
}

export interface ConformalParams {
  /** Target miscoverage: 0.1 for a p10. */
  readonly alpha: number;
  /** Step of the alpha_t update. */
  readonly gamma: number;
  /** Scores kept. */
  readonly window: number;
  /** Below this many scores the empirical quantile is meaningless; the caller's prior bound is used. */
  readonly minScores: number;
}

/** alpha_t is kept in this range: below 1/(window+1) every bound is the largest score anyway. */
const ALPHA_T_RANGE = [0.001, 0.5] as const;

export function initialConformal(params: ConformalParams): ConformalState {
  return { alphaT: params.alpha, scores: [] };
}

/**
 * The log factor q with bound = mean * exp(-q), or null while there are too few scores. With m
 * scores the split-conformal quantile is the ceil((m + 1)(1 - alpha_t))-th smallest; past the
 * largest, the largest (the method's bound would be infinite; a link's worst recent shortfall is
 * the honest finite stand-in).
 */
export function conformalMargin(state: ConformalState, params: ConformalParams): number | null {
  const m = state.scores.length;
  if (m < params.minScores) return null;
  const sorted = [...state.scores].sort((a, b) => a - b);
  const k = Math.ceil((m + 1) * (1 - state.alphaT));
  return sorted[Math.min(Math.max(k, 1), m) - 1]!;
}

/** After a point is scored: `low` is the bound that was given for it, `mean` the point prediction. */
export function conformalUpdate(
  state: ConformalState,
  params: ConformalParams,
  point: { mean: number; low: number; actual: number },
): ConformalState {
  const miss = point.actual < point.low ? 1 : 0;
  const alphaT = Math.min(ALPHA_T_RANGE[1], Math.max(ALPHA_T_RANGE[0], state.alphaT + params.gamma * (params.alpha - miss)));
  const score = Math.log(Math.max(point.mean, 1e-9) / Math.max(point.actual, 1e-9));
  return { alphaT, scores: [...state.scores, score].slice(-params.window) };
}
