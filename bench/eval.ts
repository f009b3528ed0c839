/**
 * `npm run eval -- <name> [args]`: offline evaluations that print JSON lines.
 * Each evaluation lives in its own module; this file only dispatches.
 */
import { runPlanRegret } from './plan-regret';
import { runPredictorEval } from './predictor-eval';

const EVALS: Record<string, (argv: string[]) => Promise<void>> = {
  predictor: runPredictorEval,
  'plan-regret': runPlanRegret,
};

async function run(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  const evaluate = name === undefined ? undefined : EVALS[name];
  if (!evaluate) {
    throw new Error(`unknown evaluation '${name ?? ''}' (known: ${Object.keys(EVALS).join(', ')}); usage: npm run eval -- predictor [--traces DIR]... | plan-regret [--traces DIR]...`);
  }
  await evaluate(rest);
}

run(process.argv.slice(2)).catch((err) => {
  console.error(err);
  process.exit(1);
});
