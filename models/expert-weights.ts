/**
 * Weights over a fixed set of estimators ("experts"), learnt online from each one's error on one
 * link: the fixed-share exponentially weighted forecaster of Herbster & Warmuth, "Tracking the best
 * expert" (Machine Learning 32, 1998), as presented by Cesa-Bianchi & Lugosi, "Prediction, Learning,
 * and Games" (2006), section 5.2. Pure arithmetic, no I/O.
 *
 * Why this method: the best estimator differs from link to link (a smoother on a noisy link, the
 * last value on a random-walk one, the model where its training data looks like the link) and can
 * change on one link; fixed share follows the best one with a regret bound against the best
 * *sequence* of experts, and its state is one weight per expert.
 *
 * The mixture is taken in log space (a weighted geometric mean) and the loss is the absolute log
 * error, which is convex in the log prediction, so the mixture is never worse than the weighted
 * average of the experts' losses (Jensen). The share step mixes back towards the prior rather than
 * towards uniform weights, so a link that stops favouring anything returns to the prior favourite.
 */

/**
 * Loss of a prediction `p` of `actual`, from r = log(p / actual):
 *   - `abs-log`: |r|, capped so one outage does not erase an expert;
 *   - `welsch`: 1 - exp(-r^2 / 2 sigma^2), the loss the model's point output was trained with
 *     (models/train.py): it counts how often an expert is close, not how far off it is when it is
 *     not, which is what a *median* error rewards; an absolute loss is dominated by the spikes.
 * Both are bounded, which is what the exponential weights' regret bound needs; only abs-log is
 * convex in log p, so only with it is the mixture's loss bounded by the weighted average loss.
 */
export function expertLoss(p: number, actual: number, params: Pick<FixedShareParams, 'loss' | 'sigma'> = { loss: 'abs-log' }): number {
  const r = Math.log(Math.max(p, 1e-9) / Math.max(actual, 1e-9));
  if (params.loss === 'welsch') return 1 - Math.exp(-(r * r) / (2 * (params.sigma ?? WELSCH_SIGMA) ** 2));
  return Math.min(Math.abs(r), LOSS_CAP);
}

/** The Welsch width of the model's training (models/training-summary.json welschSigma). */
export const WELSCH_SIGMA = 0.06;

/** An absolute log error of 1 is a factor e: past that the size of the miss says nothing more. */
export const LOSS_CAP = 1;

export interface FixedShareParams {
  /** Learning rate: a cumulative loss difference of 1/eta moves two weights apart by a factor e. */
  readonly eta: number;
  /** Share: the weight redistributed to the prior after every update (expected rate of switches). */
  readonly share: number;
  /** Default abs-log. */
  readonly loss?: 'abs-log' | 'welsch';
  /** Welsch width; default WELSCH_SIGMA. */
  readonly sigma?: number;
}

/** Weighted geometric mean of positive predictions. */
export function mixture(weights: readonly number[], predictions: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < weights.length; i++) s += weights[i]! * Math.log(Math.max(predictions[i]!, 1e-9));
  return Math.exp(s);
}

/**
 * One fixed-share step: w_i <- w_i exp(-eta loss_i), normalised, then
 * w <- (1 - share) w + share prior. Returns new weights (sum 1).
 */
export function fixedShareUpdate(
  weights: readonly number[],
  losses: readonly number[],
  prior: readonly number[],
  params: FixedShareParams,
): number[] {
  const v = weights.map((w, i) => w * Math.exp(-params.eta * losses[i]!));
  const total = v.reduce((a, b) => a + b, 0);
  // All weights underflowed (cannot happen with share > 0 and capped losses, but stay total).
  if (!(total > 0) || !Number.isFinite(total)) return [...prior];
  return v.map((x, i) => (1 - params.share) * (x / total) + params.share * prior[i]!);
}
