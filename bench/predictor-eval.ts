/**
 * `npm run eval -- predictor [--traces DIR]... [--scenarios FILE] [--plot FILE] [--model FILE]`
 *
 * For each trace directory (a dataset), at every sample after warm-up, predict
 * the mean throughput over the next 5 s of trace time from the samples up to
 * now, with the ONNX model and with simple baselines, and print JSON lines:
 * one per (dataset, method), one summary per dataset, one for mode accuracy.
 * Default datasets are those the model never trained on (models/train.py
 * HELD_OUT_DIRS) plus the held-out synthetic traces.
 */
import * as path from 'node:path';
import { MIN_SAMPLES } from '../models/features';
import { createPredictor, type Predictor } from '../models/predictor';
import { predictionPoints, readTraceDir, type Trace } from './predictor-eval-data';
import { modeAccuracy } from './predictor-mode-accuracy';
import { COLORS, writePlot, type Panel } from './predictor-plot';

const REPO = path.resolve(__dirname, '..');
/** Where the shared traces live unless --traces-root or $FEDFLOW_TRACES says otherwise. */
const DEFAULT_TRACES_ROOT = process.env.FEDFLOW_TRACES ?? path.resolve(REPO, '..', 'shared', 'traces');
const HELD_OUT = ['pensieve-fcc-hsdpa/test', 'norway-hsdpa', 'oboe'];
const SYNTHETIC_TEST = path.join(REPO, 'models', 'synthetic', 'test');
const WITHIN = 0.2;
/** History handed to the predictor per point, as the agent's ring buffer would hold. */
const HISTORY = 64;

type Method = 'onnx' | 'last-value' | 'harmonic-mean-5' | 'ewma-0.5' | 'ewma-0.2';
const BASELINES: Method[] = ['last-value', 'harmonic-mean-5', 'ewma-0.5', 'ewma-0.2'];

interface Args {
  traces: string[];
  scenarios: string;
  plot: string;
  model: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    traces: [],
    scenarios: path.join(REPO, 'models', 'mode-scenarios.json'),
    plot: path.join(REPO, 'docs', 'predictor-eval.png'),
    model: undefined,
  };
  let root = DEFAULT_TRACES_ROOT;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--traces') args.traces.push(path.resolve(value()));
    else if (a === '--traces-root') root = path.resolve(value());
    else if (a === '--scenarios') args.scenarios = path.resolve(value());
    else if (a === '--plot') args.plot = path.resolve(value());
    else if (a === '--model') args.model = path.resolve(value());
    else throw new Error(`unknown argument '${a}' (known: --traces DIR, --traces-root DIR, --scenarios FILE, --plot FILE, --model FILE)`);
  }
  if (args.traces.length === 0) args.traces = [...HELD_OUT.map((d) => path.join(root, d)), SYNTHETIC_TEST];
  return args;
}

function baseline(method: Method, values: readonly number[], i: number): number {
  const floor = (v: number) => Math.max(v, 1e-3);
  switch (method) {
    case 'last-value':
      return floor(values[i]!);
    case 'harmonic-mean-5': {
      let inv = 0;
      for (let j = i - MIN_SAMPLES + 1; j <= i; j++) inv += 1 / floor(values[j]!);
      return MIN_SAMPLES / inv;
    }
    case 'ewma-0.5':
    case 'ewma-0.2': {
      const alpha = method === 'ewma-0.5' ? 0.5 : 0.2;
      let e = floor(values[0]!);
      for (let j = 1; j <= i; j++) e = alpha * floor(values[j]!) + (1 - alpha) * e;
      return e;
    }
    default:
      throw new Error(`not a baseline: ${method}`);
  }
}

interface TraceResult {
  actual: number[];
  preds: Record<Method, number[]>;
  low: number[];
  fallbacks: number;
}

async function evalTrace(trace: Trace, predictor: Predictor): Promise<TraceResult> {
  const res: TraceResult = {
    actual: [],
    preds: { onnx: [], 'last-value': [], 'harmonic-mean-5': [], 'ewma-0.5': [], 'ewma-0.2': [] },
    low: [],
    fallbacks: 0,
  };
  for (const { index, actual } of predictionPoints(trace)) {
    const lo = Math.max(0, index + 1 - HISTORY);
    const samples = [];
    for (let j = lo; j <= index; j++) {
      const r = trace.rttMs[j]!;
      samples.push({ timeMs: trace.times[j]! * 1000, throughputMbps: trace.mbps[j]!, rttMs: Number.isFinite(r) ? r : null });
    }
    const p = await predictor.predict({ samples });
    if (p.source !== 'onnx') res.fallbacks++;
    res.actual.push(actual);
    res.preds.onnx.push(p.meanMbps);
    res.low.push(p.lowMbps);
    for (const m of BASELINES) res.preds[m].push(baseline(m, trace.mbps, index));
  }
  return res;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? Number.NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

const round = (v: number) => Math.round(v * 1e4) / 1e4;

export async function runPredictorEval(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const predictor = createPredictor({ modelPath: args.model });
  const panels: Panel[] = [];
  for (const dir of args.traces) {
    const dataset = path.relative(DEFAULT_TRACES_ROOT, dir).startsWith('..') ? path.relative(REPO, dir) : path.relative(DEFAULT_TRACES_ROOT, dir);
    const traces = readTraceDir(dir);
    const all: TraceResult = {
      actual: [],
      preds: { onnx: [], 'last-value': [], 'harmonic-mean-5': [], 'ewma-0.5': [], 'ewma-0.2': [] },
      low: [],
      fallbacks: 0,
    };
    let plotted = false;
    for (const trace of traces) {
      const r = await evalTrace(trace, predictor);
      all.actual.push(...r.actual);
      all.low.push(...r.low);
      all.fallbacks += r.fallbacks;
      for (const m of Object.keys(r.preds) as Method[]) all.preds[m].push(...r.preds[m]);
      // First trace with enough points makes this dataset's panel.
      if (!plotted && r.actual.length >= 25) {
        const k = Math.min(r.actual.length, 150);
        panels.push({
          series: [
            { color: COLORS.low, values: r.low.slice(0, k) },
            { color: COLORS.last, values: r.preds['last-value'].slice(0, k) },
            { color: COLORS.actual, values: r.actual.slice(0, k) },
            { color: COLORS.model, values: r.preds.onnx.slice(0, k) },
          ],
        });
        plotted = true;
      }
    }
    const stats: Record<string, { medianApe: number; within20: number }> = {};
    for (const m of Object.keys(all.preds) as Method[]) {
      const ape = all.preds[m].map((p, i) => Math.abs(p - all.actual[i]!) / all.actual[i]!);
      stats[m] = { medianApe: median(ape), within20: ape.filter((e) => e <= WITHIN).length / ape.length };
      const extra =
        m === 'onnx'
          ? {
              lowCoverage: round(all.low.filter((l, i) => all.actual[i]! >= l).length / all.low.length),
              fallbacks: all.fallbacks,
            }
          : {};
      console.log(
        JSON.stringify({
          kind: 'predictor-eval',
          dataset,
          method: m,
          traces: traces.length,
          n: ape.length,
          medianApe: round(stats[m]!.medianApe),
          within20: round(stats[m]!.within20),
          ...extra,
        }),
      );
    }
    const best = BASELINES.reduce((a, b) => (stats[b]!.medianApe < stats[a]!.medianApe ? b : a));
    const bestW = BASELINES.reduce((a, b) => (stats[b]!.within20 > stats[a]!.within20 ? b : a));
    console.log(
      JSON.stringify({
        kind: 'predictor-eval-summary',
        dataset,
        n: all.actual.length,
        bestBaseline: best,
        improvementVsBestBaseline: round(1 - stats.onnx!.medianApe / stats[best]!.medianApe),
        within20Model: round(stats.onnx!.within20),
        within20BestBaseline: round(stats[bestW]!.within20),
        within20BestBaselineMethod: bestW,
      }),
    );
  }
  const acc = await modeAccuracy(args.scenarios, predictor);
  console.log(JSON.stringify({ kind: 'mode-accuracy', scenarios: path.relative(REPO, args.scenarios), ...acc, accuracy: round(acc.accuracy) }));
  writePlot(args.plot, panels);
  console.error(`wrote ${path.relative(process.cwd(), args.plot)} (${panels.length} panels, one per dataset)`);
}
