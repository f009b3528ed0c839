/**
 * `npm run bench -- predictor [--iterations N] [--warmup N] [--model FILE]`
 *
 * In-process latency of one prediction with onnxruntime-node, after warm-up:
 *   - `model-run`: the ONNX session run on a ready feature vector;
 *   - `predict-adaptive`: the call the activity makes on a link it has seen, one sample after the
 *     last call: features from 64 samples, the points whose 5 s have passed since scored (their
 *     features too, one batched model run), weights and bound updated, the result;
 *   - `predict-cold`: the first call on a link with 64 samples and no state (scores them all).
 * Prints one JSON line per measurement. Target: p50 <= 0.2 ms, adaptation included.
 */
import * as path from 'node:path';
import type { AgentPriorState } from '../models/agent-prior';
import { features } from '../models/features';
import type { AdaptationState } from '../models/link-adaptation';
import { createPredictor, type PredictorSample } from '../models/predictor';
import { readTrace } from './predictor-eval-data';

const TRACES_ROOT = process.env.FEDFLOW_TRACES ?? path.resolve(__dirname, '..', '..', 'shared', 'traces');

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function time(label: string, iterations: number, warmup: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const ms: number[] = new Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    ms[i] = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  ms.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      bench: 'predictor',
      case: label,
      iterations,
      p50Ms: +quantile(ms, 0.5).toFixed(4),
      p99Ms: +quantile(ms, 0.99).toFixed(4),
      meanMs: +(ms.reduce((a, b) => a + b, 0) / iterations).toFixed(4),
      targetP50Ms: 0.2,
    }),
  );
}

export async function run(args: string[]): Promise<void> {
  let iterations = 20_000;
  let warmup = 2_000;
  let model: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const v = args[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--iterations') iterations = Number(v);
    else if (a === '--warmup') warmup = Number(v);
    else if (a === '--model') model = path.resolve(v);
    else throw new Error(`unknown argument '${a}' (known: --iterations N, --warmup N, --model FILE)`);
  }
  const predictor = createPredictor({ modelPath: model });
  // Real histories, so the trees are walked along realistic paths.
  const trace = readTrace(path.join(TRACES_ROOT, 'norway-hsdpa', 'norway_bus_1'));
  const histories: PredictorSample[][] = [];
  for (let end = 64; end <= trace.times.length && histories.length < 256; end += 1) {
    const s: PredictorSample[] = [];
    for (let j = end - 64; j < end; j++) s.push({ timeMs: trace.times[j]! * 1000, throughputMbps: trace.mbps[j]!, rttMs: null });
    histories.push(s);
  }
  const vectors = histories.map((h) => features(h.map((s) => s.timeMs / 1000), h.map((s) => s.throughputMbps)));
  const probe = await predictor.predict({ samples: histories[0]! });
  if (probe.source !== 'onnx') throw new Error(`model did not load, nothing to time: ${probe.fallbackReason}`);
  await time('model-run', iterations, warmup, (i) => predictor.runModel(vectors[i % vectors.length]!));
  // The state (and the agent's record) each history's call would find: those left by the call one sample earlier.
  const states: (AdaptationState | null)[] = [null];
  const agents: (AgentPriorState | null)[] = [null];
  for (const h of histories) {
    const r = await predictor.predictAdaptive({ samples: h, adaptation: states[states.length - 1], agent: agents[agents.length - 1] });
    states.push(r.adaptation);
    agents.push(r.agent);
  }
  await time('predict-adaptive', iterations, warmup, (i) => {
    const k = 1 + (i % (histories.length - 1));
    return predictor.predictAdaptive({ samples: histories[k]!, adaptation: states[k]!, agent: agents[k]! });
  });
  await time('predict-cold', Math.ceil(iterations / 10), Math.ceil(warmup / 10), (i) => predictor.predict({ samples: histories[i % histories.length]! }));
}

if (require.main === module) {
  run(process.argv.slice(2)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
