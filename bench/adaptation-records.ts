/**
 * `node --import tsx bench/adaptation-records.ts OUT.jsonl [--traces-root DIR]`
 *
 * Walks every dataset of the traces root once with the model trained without it (models/loo/) and
 * the shipped adaptation setting, and writes one JSON line per trace: its samples and, at every
 * prediction point, every expert's prediction (models/link-adaptation.ts EXPERTS order), the
 * classical baselines and the actual mean of the next 5 s. bench/adaptation-explore.ts replays
 * rules on these records, so trying a family of settings costs seconds instead of a walk.
 */
import { createWriteStream, existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { CANDIDATES, PER_LINK_CANDIDATE } from '../models/link-adaptation';
import { createPredictor } from '../models/predictor';
import { DEFAULT_TRACES_ROOT } from './predictor-eval';
import { readTraceDir } from './predictor-eval-data';
import { walkTrace } from './predictor-eval-walk';
import { findDatasets, looModel } from './predictor-loo';

async function main(argv: string[]): Promise<void> {
  const out = argv[0];
  if (out === undefined || out.startsWith('--')) throw new Error('usage: adaptation-records.ts OUT.jsonl [--traces-root DIR]');
  const rootAt = argv.indexOf('--traces-root');
  const root = rootAt >= 0 ? path.resolve(argv[rootAt + 1] ?? '') : DEFAULT_TRACES_ROOT;
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`traces root '${root}' is not a directory (expected e.g. ../shared/traces)`);
  const file = createWriteStream(out);
  for (const dataset of findDatasets(root)) {
    const { modelPath } = looModel(dataset);
    const predictor = createPredictor({ modelPath, adaptation: CANDIDATES[PER_LINK_CANDIDATE] });
    const started = Date.now();
    for (const trace of readTraceDir(path.join(root, dataset))) {
      const { points } = await walkTrace(trace, predictor);
      const rec = {
        dataset,
        trace: trace.name,
        times: trace.times,
        mbps: trace.mbps,
        points: points.map((p) => ({ index: p.index, timeMs: p.timeMs, actual: p.actual, experts: p.experts, baselines: p.baselines })),
      };
      file.write(`${JSON.stringify(rec)}\n`);
    }
    console.error(`${dataset}: ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  await new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
