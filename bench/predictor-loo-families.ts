/**
 * Nested leave-one-dataset-out over model recipes as well as adaptation settings (session 10):
 *
 *     node --import tsx bench/predictor-loo-families.ts models/loo [models/loo-welsch0.03 ...]
 *
 * Each argument is a directory of leave-out models laid out as models/loo/ (<dataset>/predictor.onnx
 * and training-summary.json, refused if trained on the dataset it is scored on). For each, every
 * dataset is walked once with its leave-out model and every setting of CANDIDATES is replayed on the
 * recorded experts (bench/adaptation-screen.ts, as `npm run eval -- predictor` screens them). Then
 * the eval's nested rule (bench/adaptation-choice.ts) picks, for each dataset on the other datasets
 * only, among each directory's (directory, setting) pairs and then among all of them together.
 * Prints, for each pool, one JSON line per dataset and one for the rule on all datasets. Replayed figures: the eval walks the chosen setting for real, and for
 * models/loo alone this reproduces its figures to 4 decimals (docs/predictor.md).
 */
import * as path from 'node:path';
import { CANDIDATES, PER_LINK_CANDIDATE } from '../models/link-adaptation';
import { createPredictor } from '../models/predictor';
import { chooseAdaptation } from './adaptation-choice';
import { screenCandidates } from './adaptation-screen';
import { DEFAULT_TRACES_ROOT } from './predictor-eval';
import { readTraceDir } from './predictor-eval-data';
import { round4, walkTrace, type WalkResult } from './predictor-eval-walk';
import { findDatasets, looModel } from './predictor-loo';

async function run(dirs: string[]): Promise<void> {
  if (dirs.length === 0) throw new Error('usage: bench/predictor-loo-families.ts LOO_DIR [LOO_DIR ...] (e.g. models/loo)');
  const datasets = findDatasets(DEFAULT_TRACES_ROOT);
  const improvements = new Map(datasets.map((d) => [d, new Map<string, number>()]));
  const names = dirs.map((dir) => path.relative(process.cwd(), path.resolve(dir)));
  for (const family of names) {
    for (const dataset of datasets) {
      const { modelPath } = looModel(dataset, path.resolve(family));
      const predictor = createPredictor({ modelPath, adaptation: CANDIDATES[PER_LINK_CANDIDATE] });
      const walks: WalkResult[] = [];
      for (const t of readTraceDir(path.join(DEFAULT_TRACES_ROOT, dataset))) walks.push(await walkTrace(t, predictor));
      for (const [c, v] of screenCandidates(walks.map((w) => w.points))) improvements.get(dataset)!.set(`${family}:${c}`, v);
    }
  }
  const all = [...improvements.get(datasets[0]!)!.keys()];
  // Each directory's settings alone, then (with several directories) all of them together.
  const pools: [string[], string[]][] = names.map((f) => [[f], all.filter((c) => c.startsWith(`${f}:`))]);
  if (names.length > 1) pools.push([names, all]);
  for (const [families, candidates] of pools) {
    const { perDataset, overall } = chooseAdaptation(improvements, datasets, candidates);
    for (const dataset of datasets) {
      const c = perDataset.get(dataset)!;
      const others = Object.fromEntries(datasets.filter((d) => d !== dataset).map((d) => [d, round4(improvements.get(d)!.get(c)!)]));
      console.log(JSON.stringify({ kind: 'loo-families', families, dataset, chosenOnOthers: c, improvementVsBestBaseline: round4(improvements.get(dataset)!.get(c)!), onOthers: others, replayed: true }));
    }
    console.log(JSON.stringify({ kind: 'loo-families-all', families, onAllDatasets: overall, improvements: Object.fromEntries(datasets.map((d) => [d, round4(improvements.get(d)!.get(overall)!)])) }));
  }
}

run(process.argv.slice(2)).catch((err) => {
  console.error(err);
  process.exit(1);
});
