/**
 * `npm run eval -- plan-regret [--traces DIR]... [--traces-root DIR] [--model FILE] [--every N]`
 *
 * Decisions, not only errors. At every Nth prediction point of each trace (default every point),
 * the mode policy (core/mode-policy.ts, both sites trusted, fresh state) makes a transfer plan for
 * the bytes the link's last sample would move in HORIZON_S, three times:
 *   - from the adaptive prediction (mean and calibrated p10), as fedflow does;
 *   - from the best classical estimator of the dataset, chosen in hindsight by median APE (it gives
 *     no quantile, so its mean is its p10);
 *   - from an oracle: the mean throughput that actually followed (the next HORIZON_S).
 * Each plan is timed on the throughput that actually followed (bench/plan-time.ts). Time regret =
 * time(plan) / time(oracle plan) - 1. The ETA error compares the plan's estimatedSeconds (raw bytes
 * at the predicted mean, as the plan defines it) with the time the raw bytes took on the trace.
 * One JSON line per dataset; datasets, models and the nested choice of the adaptation setting as
 * in `npm run eval -- predictor`'s agent-prior lines (session 11, what ships): each dataset is
 * scored with the model trained without it (models/loo/), its traces one agent's links in sorted
 * file-name order, the agent-level record carried from each to the next, and the setting the nested
 * rule chooses among the agent-prior settings on the other datasets only (bench/agent-prior.ts
 * `nestedAgentPrior`, screened by replay in sorted order), walked for real. With --traces, each
 * directory is one agent's links in sorted order, with the shipped model and SHIPPED_CANDIDATE.
 */
import * as path from 'node:path';
import { decideMode, type LinkPrediction } from '../core/mode-policy';
import { CLASSICAL, type ClassicalEstimator } from '../models/classical-estimators';
import { HORIZON_S } from '../models/features';
import { SHIPPED_CANDIDATE } from '../models/link-adaptation';
import { createPredictor, DEFAULT_MODEL_PATH } from '../models/predictor';
import { walkAndScreen, type WalkedDataset } from './adaptation-screen';
import { agentPriorCandidates, nestedAgentPrior, prepareDataset } from './agent-prior';
import { walkAgentPrior } from './agent-prior-eval';
import { type Trace } from './predictor-eval-data';
import { DEFAULT_TRACES_ROOT, walkDir } from './predictor-eval';
import { median, quantile, round4, type WalkPoint, type WalkResult } from './predictor-eval-walk';
import { findDatasets } from './predictor-loo';
import { planSeconds, secondsToMove } from './plan-time';

const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const REPO = path.resolve(__dirname, '..');
const SYNTHETIC_TEST = path.join(REPO, 'models', 'synthetic', 'test');
const SITES = { source: { id: 'site-a', trust: 'trusted' }, target: { id: 'site-b', trust: 'trusted' } } as const;

interface Job {
  dataset: string;
  traces: Trace[];
  /** One walk per trace, same order. */
  walks: WalkResult[];
  candidate: string;
}

function parseArgs(argv: string[]) {
  const a = { traces: [] as string[], root: DEFAULT_TRACES_ROOT, model: undefined as string | undefined, every: 1 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[++i];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === '--traces') a.traces.push(path.resolve(v));
    else if (k === '--traces-root') a.root = path.resolve(v);
    else if (k === '--model') a.model = path.resolve(v);
    else if (k === '--every') a.every = Math.max(1, Number(v));
    else throw new Error(`unknown argument '${k}' (known: --traces DIR, --traces-root DIR, --model FILE, --every N)`);
  }
  return a;
}

interface Scored {
  trace: Trace;
  point: WalkPoint;
}

function rttAt(trace: Trace, index: number): number | null {
  const r = trace.rttMs[index]!;
  return Number.isFinite(r) ? r : null;
}

/** The dataset's regret line, and the adaptive prediction's improvement (for the nested choice). */
function regretFor(job: Job, every: number): { line: Record<string, unknown>; improvement: number } {
  const scored: Scored[] = [];
  for (const [t, trace] of job.traces.entries()) {
    job.walks[t]!.points.forEach((point, k) => {
      if (k % every === 0) scored.push({ trace, point });
    });
  }
  // The best classical estimator in hindsight, by median APE over the dataset's points.
  const ape = (m: ClassicalEstimator) => median(scored.map(({ point: p }) => Math.abs(p.baselines[m] - p.actual) / p.actual));
  const best = CLASSICAL.reduce((a, b) => (ape(b) < ape(a) ? b : a));
  const improvement = 1 - median(scored.map(({ point: p }) => Math.abs(p.adaptive - p.actual) / p.actual)) / ape(best);
  const regret: number[] = [];
  const baseRegret: number[] = [];
  const etaApe: number[] = [];
  const changed = { mode: 0, level: 0, streams: 0 };
  for (const { trace, point } of scored) {
    const rttMs = rttAt(trace, point.index);
    const bytes = (trace.mbps[point.index]! * 1e6 * HORIZON_S) / 8;
    if (!(bytes > 0)) continue;
    const plan = (p: Omit<LinkPrediction, 'rttMs'>) => decideMode({ prediction: { ...p, rttMs }, ...SITES, bytes });
    const ours = plan({ meanMbps: point.adaptive, lowMbps: point.adaptiveLow });
    const base = plan({ meanMbps: point.baselines[best], lowMbps: point.baselines[best] });
    const oracle = plan({ meanMbps: point.actual, lowMbps: point.actual });
    const tOracle = planSeconds(oracle.plan, trace, point.index, bytes, rttMs);
    const tOurs = planSeconds(ours.plan, trace, point.index, bytes, rttMs);
    const tBase = planSeconds(base.plan, trace, point.index, bytes, rttMs);
    const raw = secondsToMove(trace, point.index, bytes * 8);
    if (tOracle === null || tOurs === null || tBase === null || raw === null || !(tOracle > 0)) continue;
    regret.push(tOurs / tOracle - 1);
    baseRegret.push(tBase / tOracle - 1);
    const rawActual = raw + (2 * (rttMs ?? 0)) / 1000;
    etaApe.push(Math.abs(ours.plan.estimatedSeconds - rawActual) / rawActual);
    if (ours.mode !== oracle.mode) changed.mode++;
    if (ours.plan.level !== oracle.plan.level || ours.plan.codec !== oracle.plan.codec) changed.level++;
    if (ours.plan.streams !== oracle.plan.streams) changed.streams++;
  }
  const n = regret.length;
  const line = {
      kind: 'plan-regret',
      dataset: job.dataset,
      adaptation: job.candidate,
      n,
      medianRegret: round4(median(regret)),
      p90Regret: round4(quantile(regret, 0.9)),
      baselineMedianRegret: round4(median(baseRegret)),
      baselineP90Regret: round4(quantile(baseRegret, 0.9)),
      baseline: best,
      // The medians are 0 wherever most plans equal the oracle's; the means show the tail too.
      meanRegret: round4(mean(regret)),
      baselineMeanRegret: round4(mean(baseRegret)),
      etaMedianApe: round4(median(etaApe)),
      // How often the plan differs from the oracle's at all: regret is zero wherever it does not.
      differsFromOracle: { mode: round4(changed.mode / n), codecOrLevel: round4(changed.level / n), streams: round4(changed.streams / n) },
  };
  return { line, improvement };
}

export async function runPlanRegret(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const shipped = createPredictor({ modelPath: args.model ?? DEFAULT_MODEL_PATH });
  if (args.traces.length > 0) {
    for (const dir of args.traces) {
      const { line } = regretFor({ dataset: path.relative(REPO, dir), ...(await walkDir(dir, shipped)), candidate: SHIPPED_CANDIDATE }, args.every);
      console.log(JSON.stringify(line));
    }
    return;
  }
  // The setting for each dataset: chosen among the agent-prior settings on the other datasets by
  // the predictor eval's rule, on the replayed improvements in sorted order (bench/agent-prior.ts).
  const datasets = findDatasets(args.root);
  const walked = new Map<string, WalkedDataset>();
  for (const dataset of datasets) walked.set(dataset, await walkAndScreen(args.root, dataset));
  const { perDataset, overall } = nestedAgentPrior(new Map([...walked].map(([d, w]) => [d, prepareDataset(w.walks.map((r) => r.points))])), datasets);
  const candidates = agentPriorCandidates();
  for (const dataset of datasets) {
    const d = walked.get(dataset)!;
    const candidate = perDataset.get(dataset)!;
    const { line } = regretFor({ dataset, traces: d.traces, walks: await walkAgentPrior(d, candidates.get(candidate)!), candidate }, args.every);
    console.log(JSON.stringify({ ...line, chosenOnOthers: true, model: path.relative(REPO, d.modelPath) }));
  }
  console.log(JSON.stringify({ kind: 'plan-regret-choice', perDataset: Object.fromEntries(perDataset), onAllDatasets: overall, shipped: SHIPPED_CANDIDATE, shippedIsTheChoice: overall === SHIPPED_CANDIDATE }));
  const synthetic = path.relative(REPO, SYNTHETIC_TEST);
  const { line } = regretFor({ dataset: synthetic, ...(await walkDir(SYNTHETIC_TEST, shipped)), candidate: SHIPPED_CANDIDATE }, args.every);
  console.log(JSON.stringify(line));
}
