/**
 * Mode accuracy: the model predicts on each labelled synthetic scenario
 * (models/mode-scenarios.json, written by models/train.py from the seeded
 * generator in models/synthetic.py), the policy picks a mode from a fresh
 * state, and we count how often it is the scenario's expected mode.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { INITIAL_POLICY_STATE, MODES, decideMode } from '../core/mode-policy';
import type { Predictor } from '../models/predictor';

const scenarioFile = z.object({
  scenarios: z.array(
    z.object({
      name: z.string(),
      kind: z.string(),
      trust: z.tuple([z.enum(['trusted', 'untrusted']), z.enum(['trusted', 'untrusted'])]),
      expectedMode: z.enum(MODES as [string, ...string[]]),
      samples: z.array(z.object({ t: z.number(), mbps: z.number(), rttMs: z.number() })),
    }),
  ),
});

export interface ModeAccuracy {
  readonly n: number;
  readonly correct: number;
  readonly accuracy: number;
  readonly byKind: Record<string, { n: number; correct: number }>;
  readonly sources: Record<string, number>;
  readonly misses: { name: string; expected: string; got: string; reason: string }[];
}

export async function modeAccuracy(file: string, predictor: Predictor): Promise<ModeAccuracy> {
  const { scenarios } = scenarioFile.parse(JSON.parse(readFileSync(file, 'utf8')));
  const byKind: Record<string, { n: number; correct: number }> = {};
  const sources: Record<string, number> = {};
  const misses: ModeAccuracy['misses'] = [];
  let correct = 0;
  for (const s of scenarios) {
    const prediction = await predictor.predict({
      samples: s.samples.map((x) => ({ timeMs: x.t * 1000, throughputMbps: x.mbps, rttMs: x.rttMs })),
    });
    sources[prediction.source] = (sources[prediction.source] ?? 0) + 1;
    const decision = decideMode({
      prediction: { ...prediction, source: prediction.source },
      source: { id: 'site-a', trust: s.trust[0] },
      target: { id: 'site-b', trust: s.trust[1] },
      bytes: 10 * 2 ** 30,
      state: INITIAL_POLICY_STATE,
    });
    const key = `${s.kind}/${s.trust.join('-')}`;
    const k = (byKind[key] ??= { n: 0, correct: 0 });
    k.n++;
    if (decision.mode === s.expectedMode) {
      k.correct++;
      correct++;
    } else {
      misses.push({ name: s.name, expected: s.expectedMode, got: decision.mode, reason: decision.reason });
    }
  }
  return { n: scenarios.length, correct, accuracy: correct / scenarios.length, byKind, sources, misses };
}
