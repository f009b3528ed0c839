/**
 * `node --import tsx bench/predictor-static-blends.ts [--traces-root DIR]`
 *
 * What was looked at before the second round's grid of adaptation settings was written
 * (docs/predictor.md, "How the setting was chosen"): on every dataset, each expert used alone and
 * a few fixed geometric blends of two experts, as improvement over the best classical estimator in
 * hindsight. No adaptation, no choice: each dataset scored with the model trained without it
 * (models/loo/). One JSON line per dataset.
 */
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { CLASSICAL, classicalEstimate } from '../models/classical-estimators';
import { features, reference } from '../models/features';
import { readTraceDir, predictionPoints } from './predictor-eval-data';
import { DEFAULT_TRACES_ROOT } from './predictor-eval';
import { median, round4 } from './predictor-eval-walk';
import { findDatasets, looModel } from './predictor-loo';
import { HISTORY } from './predictor-eval-walk';

async function main(argv: string[]): Promise<void> {
  const i = argv.indexOf('--traces-root');
  const root = i >= 0 && argv[i + 1] ? path.resolve(argv[i + 1]!) : DEFAULT_TRACES_ROOT;
  for (const dataset of findDatasets(root)) {
    const session = await ort.InferenceSession.create(looModel(dataset).modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    // Per point: [actual, onnx, ...CLASSICAL].
    const rows: number[][] = [];
    for (const tr of readTraceDir(path.join(root, dataset))) {
      const pts = predictionPoints(tr);
      if (pts.length === 0) continue;
      const hist = pts.map(({ index }) => ({ t: tr.times.slice(Math.max(0, index + 1 - HISTORY), index + 1), v: tr.mbps.slice(Math.max(0, index + 1 - HISTORY), index + 1) }));
      const feats = hist.map((h) => features(h.t, h.v));
      const flat = new Float32Array(feats.length * feats[0]!.length);
      feats.forEach((f, k) => flat.set(f, k * f.length));
      const out = (await session.run({ features: new ort.Tensor('float32', flat, [feats.length, feats[0]!.length]) })).log_ratios!.data as Float32Array;
      pts.forEach(({ actual }, k) => rows.push([actual, reference(hist[k]!.v) * Math.exp(out[2 * k]!), ...CLASSICAL.map((c) => classicalEstimate(c, hist[k]!.v))]));
    }
    const ape = (f: (r: number[]) => number) => median(rows.map((r) => Math.abs(f(r) - r[0]!) / r[0]!));
    const col = (name: string) => (name === 'onnx' ? 1 : 2 + CLASSICAL.indexOf(name as (typeof CLASSICAL)[number]));
    const best = Math.min(...CLASSICAL.map((c) => ape((r) => r[col(c)]!)));
    const alone = Object.fromEntries(['onnx', ...CLASSICAL].map((e) => [e, round4(1 - ape((r) => r[col(e)]!) / best)]));
    const blends: Record<string, number> = {};
    for (const [a, b] of [['onnx', 'last-value'], ['onnx', 'ewma-0.5'], ['last-value', 'ewma-0.5'], ['onnx', 'ewma-0.2']] as const) {
      for (const w of [0.25, 0.5, 0.75]) blends[`${a}^${w}*${b}^${1 - w}`] = round4(1 - ape((r) => Math.exp(w * Math.log(r[col(a)]!) + (1 - w) * Math.log(r[col(b)]!))) / best);
    }
    console.log(JSON.stringify({ kind: 'predictor-static-blends', dataset, n: rows.length, improvementVsBestBaseline: { alone, blends } }));
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err);
  process.exit(1);
});
