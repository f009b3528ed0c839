/**
 * Leave-one-dataset-out: the datasets of the shared traces directory and, for each, the model
 * trained without it (models/loo/<dataset>/, written by `bash models/train-loo.sh`). A model whose
 * training summary lists the dataset it would be scored on is refused: that would score it on
 * data it has seen.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';

const LOO_DIR = path.resolve(__dirname, '..', 'models', 'loo');
const NOT_TRACES = new Set(['README.md', 'LICENSE']);

/** Every directory under `root` that holds trace files (the leaves: pensieve-fcc-hsdpa/train, ..., oboe). */
export function findDatasets(root: string, rel = ''): string[] {
  const dir = path.join(root, rel);
  const entries = readdirSync(dir).filter((e) => !e.startsWith('.')).sort();
  const subdirs = entries.filter((e) => statSync(path.join(dir, e)).isDirectory());
  const files = entries.filter((e) => !NOT_TRACES.has(e) && statSync(path.join(dir, e)).isFile());
  return [...(files.length > 0 && rel !== '' ? [rel] : []), ...subdirs.flatMap((d) => findDatasets(root, rel ? `${rel}/${d}` : d))];
}

const summarySchema = z.object({ trainDirs: z.array(z.string()), heldOutDirs: z.array(z.string()) });

/** The model trained without `dataset` (in `looDir`, models/loo/ by default), checked against its summary. */
export function looModel(dataset: string, looDir = LOO_DIR): { modelPath: string; trainDirs: string[] } {
  const dir = path.join(looDir, dataset.replaceAll('/', '-'));
  const modelPath = path.join(dir, 'predictor.onnx');
  const summaryPath = path.join(dir, 'training-summary.json');
  if (!existsSync(modelPath) || !existsSync(summaryPath)) {
    throw new Error(`no leave-out model for dataset '${dataset}' (${path.relative(process.cwd(), dir)} is missing); run: bash models/train-loo.sh`);
  }
  const summary = summarySchema.parse(JSON.parse(readFileSync(summaryPath, 'utf8')));
  if (summary.trainDirs.includes(dataset) || !summary.heldOutDirs.includes(dataset)) {
    throw new Error(`${summaryPath} was trained on [${summary.trainDirs.join(', ')}], which must not include '${dataset}'`);
  }
  return { modelPath, trainDirs: summary.trainDirs };
}
