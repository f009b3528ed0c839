/**
 * Bandwidth prediction for a link profile: the ONNX model mixed with the classical estimators by
 * weights learnt on this link, with a lower bound calibrated on this link's own misses
 * (models/link-adaptation.ts) when it loads; otherwise the harmonic mean of the last 5 samples.
 * Prediction never throws because the model is missing or broken: a migration must still be able
 * to pick a mode, and the result says which path produced it.
 */
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { AgentPriorState } from './agent-prior';
import { CLASSICAL, classicalEstimate } from './classical-estimators';
import { FEATURE_NAMES, MIN_SAMPLES, features, reference, targetMean } from './features';
import {
  ADAPTATION,
  EXPERTS,
  expertPredictions,
  initialAdaptation,
  initialAgentRecord,
  issue,
  pointsToScore,
  scoreLinkAndAgent,
  selected,
  type AdaptationParams,
  type AdaptationState,
  type ExpertName,
} from './link-adaptation';

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
  /** This link's adaptation state from the last prediction (persisted with its samples); none = a new link. */
  readonly adaptation?: AdaptationState | null;
  /**
   * The agent's record over all its links (models/agent-prior.ts; persisted beside the telemetry);
   * none = an agent that has scored nothing yet. Ignored when the setting has no agent-level prior,
   * or when it was kept for other experts or another loss (the record then starts afresh).
   */
  readonly agent?: AgentPriorState | null;
}

/** What the per-link adaptation did for one prediction, for the decision record. */
export interface AdaptationRecord {
  /** Each expert's prediction (Mbit/s) and its weight on this link. */
  readonly experts: Readonly<Record<ExpertName, { readonly mbps: number; readonly weight: number }>>;
  /** Points of this link scored so far. */
  readonly scored: number;
  /** The model's own p10 (learnt offline on other links), kept to compare with the calibrated one. */
  readonly modelLowMbps: number;
  /** Where lowMbps came from: the link's conformal bound, or the model's p10 while too few points are scored. */
  readonly lowFrom: 'conformal' | 'model';
  /** The conformal bound's current miscoverage level (target 0.1). */
  readonly alphaT: number;
  /** Points the agent has scored over all its links (its record sets the link's default); null without an agent-level prior. */
  readonly agentScored: number | null;
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
    /** null on the fallback path. */
    readonly adaptation: AdaptationRecord | null;
  };
  readonly source: PredictionSource;
  readonly fallbackReason?: string;
}

export const DEFAULT_MODEL_PATH = path.join(__dirname, 'predictor.onnx');
const FALLBACK_WINDOW = 5;
/** Samples of history per point, as the agent's ring holds (agent/link/telemetry.ts DEFAULT_CAPACITY). */
const HISTORY = 64;
/** At most this many points are scored per call (a ring's worth). */
const MAX_REPLAY = 64;

type Loaded = { ok: true; session: ort.InferenceSession } | { ok: false; reason: string };

export interface PredictorOptions {
  /** Path of the .onnx file; default models/predictor.onnx, or $FEDFLOW_PREDICTOR_MODEL. */
  readonly modelPath?: string;
  /** Where the one-line load failure goes; default console.warn. */
  readonly log?: (line: string) => void;
  /** Adaptation settings; default the shipped ones (models/link-adaptation.ts ADAPTATION). */
  readonly adaptation?: AdaptationParams;
}

export interface Predictor {
  readonly modelPath: string;
  /** The prediction alone (the adaptation state it leads to is dropped). */
  predict(input: PredictorInput): Promise<Prediction>;
  /**
   * The prediction and the link's next adaptation state, to keep for the next call. On the
   * fallback path the state comes back unchanged (the model's expert cannot be scored).
   */
  predictAdaptive(input: PredictorInput): Promise<{ prediction: Prediction; adaptation: AdaptationState | null; agent: AgentPriorState | null }>;
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
  const params = options.adaptation ?? ADAPTATION;
  let loading: Promise<Loaded> | null = null;

  const load = (): Promise<Loaded> => {
    loading ??= ort.InferenceSession.create(modelPath, {
      // One row per call: extra threads only add hand-off latency.
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      logSeverityLevel: 3,
    })
      .then(checkWidth)
      .then(
        (session): Loaded => ({ ok: true, session }),
        (err: unknown): Loaded => {
          const reason = `model ${modelPath} failed to load: ${errorText(err)}`;
          log(`fedflow predictor: ${reason}; using the harmonic mean of the last ${FALLBACK_WINDOW} samples`);
          return { ok: false, reason };
        },
      );
    return loading;
  };

  /** One session run over rows of features: [log(mean/last), log(p10/last)] per row. */
  const run = async (session: ort.InferenceSession, rows: readonly (readonly number[])[]): Promise<Float32Array> => {
    const width = rows[0]!.length;
    const flat = new Float32Array(rows.length * width);
    rows.forEach((r, i) => flat.set(r, i * width));
    const out = await session.run({ features: new ort.Tensor('float32', flat, [rows.length, width]) });
    const data = out.log_ratios?.data as Float32Array | undefined;
    if (!data || data.length < 2 * rows.length) throw new Error(`model ${modelPath} has no log_ratios[N,2] output`);
    return data;
  };

  const predictAdaptive: Predictor['predictAdaptive'] = async (input) => {
    const samples = input.samples;
    if (samples.length === 0) throw new RangeError('cannot predict a link with no samples (probe it first)');
    const given = input.adaptation ?? null;
    const givenAgent = input.agent ?? null;
    const fresh = initialAgentRecord(params);
    // A record kept in another loss or for other experts means nothing to this setting.
    const usable = fresh !== null && givenAgent !== null && givenAgent.loss === fresh.loss && givenAgent.experts.join(',') === fresh.experts.join(',');
    let agent = fresh === null ? null : usable ? givenAgent : fresh;
    const times = samples.map((s) => s.timeMs / 1000);
    const values = samples.map((s) => s.throughputMbps);
    const last = reference(values);
    const rttMs = recentRtt(samples);
    const base = { sampleCount: samples.length, lastMbps: last, modelPath };
    const fellBack = (reason: string) => ({ prediction: fallback(values, rttMs, base, reason), adaptation: given, agent: givenAgent });
    if (samples.length < MIN_SAMPLES) return fellBack(`only ${samples.length} samples; the model needs ${MIN_SAMPLES}`);
    const loaded = await load();
    if (!loaded.ok) return fellBack(loaded.reason);
    let state = given ?? initialAdaptation(params);
    // Points whose 5 s have passed since the last call, then the point to predict: one model run.
    const toScore = pointsToScore(samples.map((s) => s.timeMs), state).slice(-MAX_REPLAY);
    const ends = [...toScore, samples.length - 1];
    const histories = ends.map((i) => {
      const from = Math.max(0, i + 1 - HISTORY);
      return { t: times.slice(from, i + 1), v: values.slice(from, i + 1) };
    });
    const rows = histories.map((h) => features(h.t, h.v));
    let out: Float32Array;
    try {
      out = await run(loaded.session, rows);
    } catch (err) {
      return fellBack(`model run failed: ${errorText(err)}`);
    }
    const experts = (k: number) => {
      const ref = reference(histories[k]!.v);
      const logMean = out[2 * k]!;
      const logLow = out[2 * k + 1]!;
      return {
        ok: Number.isFinite(logMean) && Number.isFinite(logLow),
        predictions: expertPredictions(ref * Math.exp(logMean), CLASSICAL.map((c) => classicalEstimate(c, histories[k]!.v))),
        modelLowRatio: Math.exp(logLow - logMean),
        logMean,
        logLow,
      };
    };
    toScore.forEach((i, k) => {
      const e = experts(k);
      const actual = e.ok ? targetMean(times, values, i) : null;
      ({ state, agent } = scoreLinkAndAgent(state, agent, { timeMs: samples[i]!.timeMs, predictions: e.predictions, modelLowRatio: e.modelLowRatio, actual }, params));
    });
    const now = experts(ends.length - 1);
    const out0 = now.predictions[0]!;
    if (!now.ok || !Number.isFinite(out0) || out0 <= 0) {
      return { ...fellBack(`model gave a non-finite or non-positive output (${now.logMean}, ${now.logLow})`), adaptation: state, agent };
    }
    const issued = issue(state, now.predictions, now.modelLowRatio, params, agent);
    // Follow the leader: 1 on the expert followed now (the agent's record moves the default too).
    const followed = params.kind === 'select' ? selected(state.losses, params, agent) : -1;
    const weights = params.kind === 'select' ? EXPERTS.map((_, i) => (i === followed ? 1 : 0)) : state.weights;
    const named = Object.fromEntries(FEATURE_NAMES.map((n, i) => [n, rows[rows.length - 1]![i]!]));
    const adaptation: AdaptationRecord = {
      experts: Object.fromEntries(EXPERTS.map((n, i) => [n, { mbps: now.predictions[i]!, weight: weights[i]! }])) as AdaptationRecord['experts'],
      modelLowMbps: Math.min(out0 * now.modelLowRatio, out0),
      scored: state.scored,
      lowFrom: issued.lowFrom,
      alphaT: state.conformal.alphaT,
      agentScored: agent?.count ?? null,
    };
    return {
      prediction: {
        meanMbps: issued.meanMbps,
        lowMbps: issued.lowMbps,
        rttMs,
        inputs: { ...base, features: named, adaptation },
        source: 'onnx',
      },
      adaptation: state,
      agent,
    };
  };

  return {
    modelPath,
    async runModel(vec) {
      const loaded = await load();
      if (!loaded.ok) throw new Error(loaded.reason);
      const out = await run(loaded.session, [vec]);
      return [out[0]!, out[1]!];
    },
    predictAdaptive,
    async predict(input) {
      return (await predictAdaptive(input)).prediction;
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
  base: Omit<Prediction['inputs'], 'features' | 'adaptation'>,
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
    inputs: { ...base, features: null, adaptation: null },
    source: 'fallback-harmonic-mean',
    fallbackReason: reason,
  };
}

/**
 * A model trained on another feature set (23 features before session 9) would run on these rows
 * and give numbers that mean nothing: onnxruntime does not refuse a row wider than the model's
 * input. Such a model is refused as if it had failed to load.
 */
function checkWidth(session: ort.InferenceSession): ort.InferenceSession {
  const input = session.inputMetadata.find((m) => m.name === 'features');
  const width = input?.isTensor ? input.shape[1] : undefined;
  if (width !== FEATURE_NAMES.length) {
    throw new Error(
      `its input 'features' is [N, ${String(width)}], but models/features.ts computes ${FEATURE_NAMES.length} features; retrain it (bash models/train.sh)`,
    );
  }
  return session;
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
