/**
 * Bandwidth prediction for a link profile: the ONNX model when it loads,
 * otherwise the harmonic mean of the last 5 samples. Prediction never throws
 * because the model is missing or broken: a migration must still be able to
 * pick a mode, and the result says which path produced it.
 */
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { FEATURE_NAMES, MIN_SAMPLES, features, reference } from './features';

/** One measurement; the agent's LinkSample (agent/link/telemetry.ts) has this shape. */
export interface PredictorSample {
  /** Wall-clock time of the sample, ms since the epoch. */
  readonly timeMs: number;
  readonly throughputMbps: number;
  /** null when the probe measured no RTT (the public traces have none). */
  readonly rttMs: number | null;
}

export interface PredictorInput {
  /** Oldest first. */
  readonly samples: readonly PredictorSample[];
}

export type PredictionSource = 'onnx' | 'fallback-harmonic-mean';

export interface Prediction {
  /** Predicted mean throughput over the next 5 s. */
  readonly meanMbps: number;
  /** Predicted 10th percentile of that mean (never above meanMbps). */
  readonly lowMbps: number;
  /** Median of the last 5 RTT samples; null when none was measured. Not modelled: see MODEL_CARD.md. */
  readonly rttMs: number | null;
  /** What the prediction was made from, for the decision record. */
  readonly inputs: {
    readonly sampleCount: number;
    readonly lastMbps: number;
    readonly features: Readonly<Record<string, number>> | null;
    readonly modelPath: string;
  };
  readonly source: PredictionSource;
  readonly fallbackReason?: string;
}

export const DEFAULT_MODEL_PATH = path.join(__dirname, 'predictor.onnx');
const FALLBACK_WINDOW = 5;

type Loaded = { ok: true; session: ort.InferenceSession } | { ok: false; reason: string };

export interface PredictorOptions {
  /** Path of the .onnx file; default models/predictor.onnx, or $FEDFLOW_PREDICTOR_MODEL. */
  readonly modelPath?: string;
  /** Where the one-line load failure goes; default console.warn. */
  readonly log?: (line: string) => void;
}

export interface Predictor {
  readonly modelPath: string;
  predict(input: PredictorInput): Promise<Prediction>;
  /** Runs the model on one feature vector; for the latency bench. Rejects if the model did not load. */
  runModel(featureVector: readonly number[]): Promise<[number, number]>;
}

/**
 * A predictor for one model file. The session is created on first use and
 * kept (creating it parses the whole tree ensemble, ~ms; a run is ~µs).
 */
export function createPredictor(options: PredictorOptions = {}): Predictor {
  const modelPath = path.resolve(options.modelPath ?? process.env.FEDFLOW_PREDICTOR_MODEL ?? DEFAULT_MODEL_PATH);
  const log = options.log ?? ((line: string) => console.warn(line));
  let loading: Promise<Loaded> | null = null;

  const load = (): Promise<Loaded> => {
    loading ??= ort.InferenceSession.create(modelPath, {
      // One row per call: extra threads only add hand-off latency.
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      logSeverityLevel: 3,
    }).then(
      (session): Loaded => ({ ok: true, session }),
      (err: unknown): Loaded => {
        const reason = `model ${modelPath} failed to load: ${errorText(err)}`;
        log(`fedflow predictor: ${reason}; using the harmonic mean of the last ${FALLBACK_WINDOW} samples`);
        return { ok: false, reason };
      },
    );
    return loading;
  };

  const run = async (session: ort.InferenceSession, vec: readonly number[]): Promise<[number, number]> => {
    const tensor = new ort.Tensor('float32', Float32Array.from(vec), [1, vec.length]);
    const out = await session.run({ features: tensor });
    const data = out.log_ratios?.data as Float32Array | undefined;
    if (!data || data.length < 2) throw new Error(`model ${modelPath} has no log_ratios[1,2] output`);
    return [data[0]!, data[1]!];
  };

  return {
    modelPath,
    async runModel(vec) {
      const loaded = await load();
      if (!loaded.ok) throw new Error(loaded.reason);
      return run(loaded.session, vec);
    },
    async predict(input) {
      const samples = input.samples;
      if (samples.length === 0) throw new RangeError('cannot predict a link with no samples (probe it first)');
      const times = samples.map((s) => s.timeMs / 1000);
      const values = samples.map((s) => s.throughputMbps);
      const last = reference(values);
      const rttMs = recentRtt(samples);
      const base = { sampleCount: samples.length, lastMbps: last, modelPath };
      if (samples.length < MIN_SAMPLES) {
        return fallback(values, rttMs, base, `only ${samples.length} samples; the model needs ${MIN_SAMPLES}`);
      }
      const loaded = await load();
      if (!loaded.ok) return fallback(values, rttMs, base, loaded.reason);
      const vec = features(times, values);
      const named = Object.fromEntries(FEATURE_NAMES.map((n, i) => [n, vec[i]!]));
      try {
        const [logMean, logLow] = await run(loaded.session, vec);
        const meanMbps = last * Math.exp(logMean);
        const lowMbps = Math.min(last * Math.exp(logLow), meanMbps);
        if (!Number.isFinite(meanMbps) || !Number.isFinite(lowMbps) || meanMbps <= 0) {
          return fallback(values, rttMs, base, `model gave a non-finite or non-positive output (${logMean}, ${logLow})`);
        }
        return { meanMbps, lowMbps, rttMs, inputs: { ...base, features: named }, source: 'onnx' };
      } catch (err) {
        return fallback(values, rttMs, base, `model run failed: ${errorText(err)}`);
      }
    },
  };
}

/**
 * The fallback: harmonic mean of the last 5 samples (it discounts short bursts,
 * which is the safe side for a transfer estimate) and, as the low figure, the
 * smallest of those samples.
 */
function fallback(
  values: readonly number[],
  rttMs: number | null,
  base: Omit<Prediction['inputs'], 'features'>,
  reason: string,
): Prediction {
  const recent = values.slice(-FALLBACK_WINDOW).map((v) => Math.max(v, 1e-3));
  let inv = 0;
  for (const v of recent) inv += 1 / v;
  const meanMbps = recent.length / inv;
  return {
    meanMbps,
    lowMbps: Math.min(...recent),
    rttMs,
    inputs: { ...base, features: null },
    source: 'fallback-harmonic-mean',
    fallbackReason: reason,
  };
}

/** Median of the last 5 measured RTTs: one queueing spike should not move the mode. */
function recentRtt(samples: readonly PredictorSample[]): number | null {
  const rtts: number[] = [];
  for (let i = samples.length - 1; i >= 0 && rtts.length < 5; i--) {
    const r = samples[i]!.rttMs;
    if (r !== null && Number.isFinite(r) && r >= 0) rtts.push(r);
  }
  if (rtts.length === 0) return null;
  rtts.sort((a, b) => a - b);
  const n = rtts.length;
  return n % 2 === 1 ? rtts[(n - 1) / 2]! : (rtts[n / 2 - 1]! + rtts[n / 2]!) / 2;
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}

let shared: Predictor | null = null;

/** The process-wide predictor (model loaded once, lazily). */
export function defaultPredictor(): Predictor {
  shared ??= createPredictor();
  return shared;
}

/** Predict with the process-wide model. */
export function predict(input: PredictorInput): Promise<Prediction> {
  return defaultPredictor().predict(input);
}
