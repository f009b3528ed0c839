/**
 * Nested leave-one-out choice of the adaptation setting (models/link-adaptation.ts CANDIDATES):
 * for each dataset, the candidate whose worst improvement over the *other* datasets is highest
 * (then the best mean), so no dataset's reported figure comes from a setting chosen on it. The
 * same rule on all datasets gives the setting that ships.
 */
import { CANDIDATES } from '../models/link-adaptation';

/**
 * `improvements`: dataset -> candidate -> improvementVsBestBaseline. `candidates`: the names to
 * choose from (CANDIDATES's by default; bench/predictor-loo-families.ts passes model x setting pairs).
 */
export function chooseAdaptation(
  improvements: Map<string, Map<string, number>>,
  datasets: string[],
  candidates: readonly string[] = Object.keys(CANDIDATES),
): { perDataset: Map<string, string>; overall: string } {
  const pick = (on: string[]) => {
    const key = (c: string) => {
      const v = on.map((d) => improvements.get(d)!.get(c)!);
      return [Math.min(...v), v.reduce((a, b) => a + b, 0) / v.length] as const;
    };
    return candidates.reduce((a, b) => {
      const [ka, kb] = [key(a), key(b)];
      return kb[0] > ka[0] || (kb[0] === ka[0] && kb[1] > ka[1]) ? b : a;
    });
  };
  return { perDataset: new Map(datasets.map((d) => [d, pick(datasets.filter((o) => o !== d))])), overall: pick(datasets) };
}
