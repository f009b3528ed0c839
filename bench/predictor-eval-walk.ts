/**
 * The walk every predictor evaluation shares: along each trace, at every point after warm-up,
 * predict from the last 64 samples as the agent's ring would hold them, carrying the link's
 * adaptation state from one point to the next as the agent persists it, and collect what each
 * method predicted. A trace is one link: its state starts fresh. The agent-level record (models/
 * agent-prior.ts) is carried from one trace to the next by the caller: a directory's traces are one
 * agent's links, scored one after another.
 */
import type { AgentPriorState } from '../models/agent-prior';
import { CLASSICAL, classicalEstimate, type ClassicalEstimator } from '../models/classical-estimators';
import { EXPERTS, type AdaptationState } from '../models/link-adaptation';
import type { Predictor, PredictorSample } from '../models/predictor';
import { predictionPoints, type Trace } from './predictor-eval-data';

/** History handed to the predictor per point, as the agent's ring buffer would hold. */
export const HISTORY = 64;

export interface WalkPoint {
  /** Index of the point's last sample in the trace. */
  readonly index: number;
  /** Trace time of that sample, ms. */
  readonly timeMs: number;
  /** Mean of the next 5 s. */
  readonly actual: number;
  /** The shipped path: model and classical estimators mixed by this link's weights. */
  readonly adaptive: number;
  /** Its calibrated p10. */
  readonly adaptiveLow: number;
  /** The model alone, and its own p10. */
  readonly onnx: number;
  readonly onnxLow: number;
  readonly baselines: Readonly<Record<ClassicalEstimator, number>>;
  readonly lowFrom: 'conformal' | 'model' | 'fallback';
  /** Every expert's prediction (models/link-adaptation.ts EXPERTS order); empty on the fallback path. */
  readonly experts: readonly number[];
}

export interface WalkResult {
  readonly points: WalkPoint[];
  readonly fallbacks: number;
  /** The agent's record after this link (null: the setting keeps none). */
  readonly agent: AgentPriorState | null;
}

export async function walkTrace(trace: Trace, predictor: Predictor, agentBefore: AgentPriorState | null = null): Promise<WalkResult> {
  const points: WalkPoint[] = [];
  let fallbacks = 0;
  let state: AdaptationState | null = null;
  let agentState = agentBefore;
  for (const { index, actual } of predictionPoints(trace)) {
    const samples: PredictorSample[] = [];
    for (let j = Math.max(0, index + 1 - HISTORY); j <= index; j++) {
      const r = trace.rttMs[j]!;
      samples.push({ timeMs: trace.times[j]! * 1000, throughputMbps: trace.mbps[j]!, rttMs: Number.isFinite(r) ? r : null });
    }
    const { prediction: p, adaptation, agent } = await predictor.predictAdaptive({ samples, adaptation: state, agent: agentState });
    state = adaptation;
    agentState = agent;
    const a = p.inputs.adaptation;
    if (p.source !== 'onnx' || a === null) fallbacks++;
    const baselines = Object.fromEntries(CLASSICAL.map((m) => [m, classicalEstimate(m, trace.mbps, index)])) as Record<ClassicalEstimator, number>;
    points.push({
      index,
      timeMs: trace.times[index]! * 1000,
      experts: a === null ? [] : EXPERTS.map((n) => a.experts[n].mbps),
      actual,
      adaptive: p.meanMbps,
      adaptiveLow: p.lowMbps,
      onnx: a?.experts.onnx.mbps ?? p.meanMbps,
      onnxLow: a?.modelLowMbps ?? p.lowMbps,
      baselines,
      lowFrom: a?.lowFrom ?? 'fallback',
    });
  }
  return { points, fallbacks, agent: agentState };
}

/** One agent's links, walked one after another in the given order: the agent-level record goes from each to the next. */
export async function walkLinks(traces: readonly Trace[], predictor: Predictor): Promise<WalkResult[]> {
  const walks: WalkResult[] = [];
  for (const trace of traces) walks.push(await walkTrace(trace, predictor, walks[walks.length - 1]?.agent ?? null));
  return walks;
}

export function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? Number.NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** The p-quantile (0..1) by the nearest-rank rule. */
export function quantile(v: readonly number[], p: number): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

export const round4 = (v: number) => Math.round(v * 1e4) / 1e4;
