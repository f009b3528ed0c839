/**
 * The classical throughput estimators: the eval's baselines, and the model's fellow experts in the
 * per-link adaptation (models/link-adaptation.ts). Each reads a history of samples, oldest first.
 */
import { FLOOR_MBPS, MIN_SAMPLES } from './features';

export const CLASSICAL = ['last-value', 'harmonic-mean-5', 'ewma-0.5', 'ewma-0.2'] as const;
export type ClassicalEstimator = (typeof CLASSICAL)[number];

const EWMA_ALPHA: Record<'ewma-0.5' | 'ewma-0.2', number> = { 'ewma-0.5': 0.5, 'ewma-0.2': 0.2 };

/**
 * The estimate of `name` from `values[0..end]` (inclusive; default the whole history). Samples are
 * floored at FLOOR_MBPS as the features are, so a zero sample does not make a harmonic mean zero.
 */
export function classicalEstimate(name: ClassicalEstimator, values: readonly number[], end = values.length - 1): number {
  const at = (j: number) => Math.max(values[j]!, FLOOR_MBPS);
  switch (name) {
    case 'last-value':
      return at(end);
    case 'harmonic-mean-5': {
      const from = Math.max(0, end - MIN_SAMPLES + 1);
      let inv = 0;
      for (let j = from; j <= end; j++) inv += 1 / at(j);
      return (end - from + 1) / inv;
    }
    case 'ewma-0.5':
    case 'ewma-0.2': {
      const a = EWMA_ALPHA[name];
      let e = at(0);
      for (let j = 1; j <= end; j++) e = a * at(j) + (1 - a) * e;
      return e;
    }
  }
}
