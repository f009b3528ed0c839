/**
 * Session 11 of #17: an agent-level (hierarchical) prior over the experts, learnt online across the
 * links one agent scores. Replayed on the recorded experts of the eval's walks
 * (bench/adaptation-screen.ts), as the 621 per-link settings are screened.
 *
 * The rule. Besides each link's own discounted cumulative expert losses L_i (the shipped
 * follow-the-leader with a default, models/link-adaptation.ts `selected`), the agent keeps A_i, the
 * losses of every expert pooled over every point it has scored so far on any link (earlier links,
 * and the earlier points of this one), and N, how many points that is. A link then follows:
 *   - default: the agent-level leader argmin_i A_i over the setting's experts (the setting's own
 *     default while the agent has scored nothing, and on ties);
 *   - evidence: E_i = L_i + k * A_i / N, the link's own losses plus the agent's mean loss per point
 *     counted as k points of prior evidence (k = 0: the agent-level leader as the default only);
 *   - switch: to the expert with the lowest E_i once it is lower than the default's by more than the
 *     setting's margin, as now.
 * This is an empirical-Bayes prior on which expert a link favours: the population of links the
 * agent has seen sets the prior (Robbins 1956; Morris, "Parametric empirical Bayes inference",
 * JASA 78, 1983), and in the expert setting it is a prior weight (a head start) over the experts of
 * follow-the-leader / exponential weights (Cesa-Bianchi & Lugosi, Prediction, Learning, and Games,
 * 2006, §3.2 and §2.1's non-uniform initial weights); learning that prior from earlier tasks is the
 * "learning to learn" setting of Baxter ("A model of inductive bias learning", JAIR 12, 2000).
 *
 * The evaluation. One dataset's traces are one agent's links, scored one after another: in sorted
 * file-name order (as bench/predictor-eval-data.ts reads them), and in 5 seeded random orders. A
 * link's points are scored 5 s after they were predicted, as the predictor does; the points still
 * unscored when a link ends go into the agent's record before the next link starts (their outcomes
 * are known by then). So every prediction uses only outcomes known before it.
 *
 * The grid (written down in full before any of its figures was seen): each of the 612
 * follow-the-leader settings of CANDIDATES (its experts, its default for an agent with no record,
 * its loss, which A and L both use, margin, per-link discount) x prior {lead (k = 0), k 8, k 32,
 * k 128}: 2448 settings, named `<setting>+lead` or `<setting>+k<k>`. The agent's record is not
 * discounted. The nested rule (bench/adaptation-choice.ts, unchanged) chooses among these 2448 for
 * each dataset on the other three; that is the figure that counts, and the one the shipping
 * condition is judged on. The same rule over the 621 per-link settings (the figures shipped before
 * this session) and over both pools together (3069) is printed beside it, for reading. (The rule
 * met the shipping condition; models/link-adaptation.ts SHIPPED_CANDIDATE is its choice on all
 * four datasets, docs/predictor.md section "Session 11".)
 */
import { CLASSICAL } from '../models/classical-estimators';
import { conformalMargin, conformalUpdate, initialConformal } from '../models/conformal-low';
import { expertLoss } from '../models/expert-weights';
import { HORIZON_S } from '../models/features';
import { CANDIDATES, EXPERTS, type AgentView, type SelectParams } from '../models/link-adaptation';
import { chooseAdaptation } from './adaptation-choice';
import { median, type WalkPoint } from './predictor-eval-walk';
import { seededRandom } from '../agent/link/shaper';

export const PRIOR_WEIGHTS = [0, 8, 32, 128] as const;
/** The seeds of the random orders. */
export const ORDER_SEEDS = [1, 2, 3, 4, 5] as const;

export interface AgentPriorParams {
  /** The per-link follow-the-leader setting it builds on (its default is used while the agent has no record). */
  readonly base: SelectParams;
  readonly baseName: string;
  /** Points of prior evidence the agent's mean loss counts for; 0: the agent-level leader as default only. */
  readonly k: number;
}

/** The 2448 agent-prior settings (see the header). */
export function agentPriorCandidates(): Map<string, AgentPriorParams> {
  const out = new Map<string, AgentPriorParams>();
  for (const [baseName, base] of Object.entries(CANDIDATES)) {
    if (base.kind !== 'select') continue;
    for (const k of PRIOR_WEIGHTS) out.set(`${baseName}+${k === 0 ? 'lead' : `k${k}`}`, { base, baseName, k });
  }
  return out;
}

/** One dataset's walk, laid out for fast replays (per trace, arrays over its points). */
export interface PreparedTrace {
  readonly n: number;
  readonly actual: Float64Array;
  /** n x EXPERTS.length predictions; `ok[j]` 0 on the fallback path (no experts: the walk's own prediction is used). */
  readonly experts: Float64Array;
  readonly ok: Uint8Array;
  readonly fallback: Float64Array;
  /** The model's own p10 ratio (low / mean), for the conformal bound's first points. */
  readonly lowRatio: Float64Array;
  /** How many of the trace's points are scored before point j is predicted (outcome known 5 s later). */
  readonly scoredBefore: Int32Array;
  /** Per loss key: n x EXPERTS.length losses. */
  readonly losses: Map<string, Float64Array>;
}

export interface PreparedDataset {
  readonly traces: PreparedTrace[];
  /** medianApe of the best classical estimator in hindsight (order does not change it). */
  readonly bestBaseline: number;
  readonly points: number;
}

const E = EXPERTS.length;
const lossKey = (p: SelectParams) => `${p.loss.loss}:${p.loss.sigma ?? ''}`;

export function prepareDataset(traces: readonly (readonly WalkPoint[])[]): PreparedDataset {
  const lossParams = new Map<string, SelectParams['loss']>();
  for (const c of Object.values(CANDIDATES)) if (c.kind === 'select') lossParams.set(lossKey(c), c.loss);
  const prepared = traces.map((points): PreparedTrace => {
    const n = points.length;
    const t: PreparedTrace = {
      n,
      actual: Float64Array.from(points, (p) => p.actual),
      experts: new Float64Array(n * E),
      ok: Uint8Array.from(points, (p) => (p.experts.length === E ? 1 : 0)),
      fallback: Float64Array.from(points, (p) => p.adaptive),
      lowRatio: Float64Array.from(points, (p) => (p.onnx > 0 ? p.onnxLow / p.onnx : 1)),
      scoredBefore: new Int32Array(n),
      losses: new Map(),
    };
    points.forEach((p, j) => p.experts.forEach((v, i) => (t.experts[j * E + i] = v)));
    let next = 0;
    for (let j = 0; j < n; j++) {
      while (next < j && points[next]!.timeMs + HORIZON_S * 1000 <= points[j]!.timeMs) next++;
      t.scoredBefore[j] = next;
    }
    for (const [key, loss] of lossParams) {
      const l = new Float64Array(n * E);
      for (let j = 0; j < n; j++) if (t.ok[j]) for (let i = 0; i < E; i++) l[j * E + i] = expertLoss(t.experts[j * E + i]!, t.actual[j]!, loss);
      t.losses.set(key, l);
    }
    return t;
  });
  const all = traces.flat();
  const ape = (f: (p: WalkPoint) => number) => median(all.map((p) => Math.abs(f(p) - p.actual) / p.actual));
  return { traces: prepared, bestBaseline: Math.min(...CLASSICAL.map((m) => ape((p) => p.baselines[m]))), points: all.length };
}

/** The agent's record: every expert's loss summed over every point it has scored, and their number. */
interface AgentRecord {
  readonly sums: Float64Array;
  count: number;
}

/**
 * The expert a link follows (EXPERTS index): `linkLoss` its own discounted cumulative losses, `agent`
 * the agent's record (null: per-link only). The same rule as models/link-adaptation.ts `selected`
 * (a unit test checks they agree) without its allocations, for the 2448 x 6 replays.
 */
export function agentSelected(linkLoss: ArrayLike<number>, agent: AgentView | null, base: SelectParams, k: number, allowed: readonly number[]): number {
  let def = EXPERTS.indexOf(base.default);
  if (agent === null || agent.count === 0) return pick(linkLoss, def, base.margin, allowed, () => 0);
  for (const i of allowed) if (agent.sums[i]! < agent.sums[def]!) def = i;
  return pick(linkLoss, def, base.margin, allowed, (i) => (k * agent.sums[i]!) / agent.count);
}

function pick(linkLoss: ArrayLike<number>, def: number, margin: number, allowed: readonly number[], prior: (i: number) => number): number {
  let best = def;
  let bestLoss = linkLoss[def]! + prior(def) - margin;
  for (const i of allowed) {
    const e = linkLoss[i]! + prior(i);
    if (e < bestLoss) {
      best = i;
      bestLoss = e;
    }
  }
  return best;
}

/** A random permutation of 0..n-1 (Fisher-Yates with mulberry32(seed)): reproducible orders of an agent's links. */
export function seededOrder(n: number, seed: number): number[] {
  const rand = seededRandom(seed);
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export const sortedOrder = (n: number) => Array.from({ length: n }, (_, i) => i);

export interface ReplayOptions {
  /** null: per-link only (the agent's record is not read). */
  readonly k: number | null;
  /** Also replay the conformal bound (slower): the low figure of every point. */
  readonly withLow?: boolean;
}

/**
 * Replays one dataset as one agent's links in `order`: the issued mean (and low) of every point, in
 * the order replayed.
 */
export function replayAgent(d: PreparedDataset, order: readonly number[], base: SelectParams, opts: ReplayOptions): { mean: Float64Array; low: Float64Array | null; actual: Float64Array } {
  const mean = new Float64Array(d.points);
  const low = opts.withLow ? new Float64Array(d.points) : null;
  const actual = new Float64Array(d.points);
  const allowed = base.experts.map((n) => EXPERTS.indexOf(n));
  const key = lossKey(base);
  const agent: AgentRecord = { sums: new Float64Array(E), count: 0 };
  const agentView = opts.k === null ? null : agent;
  const k = opts.k ?? 0;
  let at = 0;
  const linkLoss = new Float64Array(E);
  for (const ti of order) {
    const t = d.traces[ti]!;
    const losses = t.losses.get(key)!;
    linkLoss.fill(0);
    let conformal = opts.withLow ? initialConformal(base.conformal) : null;
    let scored = 0;
    const score = (q: number) => {
      if (!t.ok[q]) return;
      if (conformal !== null) {
        // As scorePoint: the bound given at scoring time, from the state before this point's update.
        const m = t.experts[q * E + agentSelected(linkLoss, agentView, base, k, allowed)]!;
        conformal = conformalUpdate(conformal, base.conformal, { mean: m, low: lowOf(conformal, m, t.lowRatio[q]!), actual: t.actual[q]! });
      }
      for (let i = 0; i < E; i++) {
        const l = losses[q * E + i]!;
        linkLoss[i] = base.discount * linkLoss[i]! + l;
        agent.sums[i] = agent.sums[i]! + l;
      }
      agent.count++;
    };
    const lowOf = (c: NonNullable<typeof conformal>, m: number, ratio: number) => {
      const q = conformalMargin(c, base.conformal);
      return Math.min(q === null ? m * Math.min(ratio, 1) : m * Math.exp(-q), m);
    };
    for (let j = 0; j < t.n; j++) {
      while (scored < t.scoredBefore[j]!) score(scored++);
      const m = t.ok[j] ? t.experts[j * E + agentSelected(linkLoss, agentView, base, k, allowed)]! : t.fallback[j]!;
      mean[at] = m;
      if (low !== null) low[at] = t.ok[j] && conformal !== null ? lowOf(conformal, m, t.lowRatio[j]!) : m * Math.min(t.lowRatio[j]!, 1);
      actual[at] = t.actual[j]!;
      at++;
    }
    // The link has ended: its last points' outcomes are known before the agent's next link starts.
    while (scored < t.n) score(scored++);
  }
  return { mean, low, actual };
}

/** Median APE of `mean` against `actual` (quickselect on a scratch copy). */
export function medianApe(mean: Float64Array, actual: Float64Array): number {
  const ape = new Float64Array(mean.length);
  for (let i = 0; i < mean.length; i++) ape[i] = Math.abs(mean[i]! - actual[i]!) / actual[i]!;
  ape.sort();
  const n = ape.length;
  return n % 2 ? ape[(n - 1) / 2]! : (ape[n / 2 - 1]! + ape[n / 2]!) / 2;
}

/** improvementVsBestBaseline of every agent-prior setting on one dataset in one order. */
export function screenAgentPrior(d: PreparedDataset, order: readonly number[], candidates: Map<string, AgentPriorParams>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, c] of candidates) {
    const r = replayAgent(d, order, c.base, { k: c.k });
    out.set(name, 1 - medianApe(r.mean, r.actual) / d.bestBaseline);
  }
  return out;
}

/** Everything the eval reports for one chosen setting in one order. */
export function scoreAgentPrior(d: PreparedDataset, order: readonly number[], base: SelectParams, k: number | null): { improvement: number; within20: number; p10Coverage: number } {
  const r = replayAgent(d, order, base, { k, withLow: true });
  let within = 0;
  let covered = 0;
  for (let i = 0; i < r.mean.length; i++) {
    if (Math.abs(r.mean[i]! - r.actual[i]!) / r.actual[i]! <= 0.2) within++;
    if (r.actual[i]! >= r.low![i]!) covered++;
  }
  return { improvement: 1 - medianApe(r.mean, r.actual) / d.bestBaseline, within20: within / r.mean.length, p10Coverage: covered / r.mean.length };
}

/**
 * The nested rule (bench/adaptation-choice.ts) among the agent-prior settings, each dataset's traces
 * one agent's links in the order `orderOf` gives: every setting screened on every dataset, then for
 * each dataset the setting chosen on the other datasets only, and the choice on all of them (what
 * ships). `npm run eval -- predictor` and `npm run eval -- plan-regret` both report this choice.
 */
export function nestedAgentPrior(
  prepared: ReadonlyMap<string, PreparedDataset>,
  datasets: readonly string[],
  orderOf: (n: number) => number[] = sortedOrder,
  candidates: Map<string, AgentPriorParams> = agentPriorCandidates(),
): { improvements: Map<string, Map<string, number>>; perDataset: Map<string, string>; overall: string } {
  const improvements = new Map<string, Map<string, number>>();
  for (const dataset of datasets) {
    const d = prepared.get(dataset)!;
    improvements.set(dataset, screenAgentPrior(d, orderOf(d.traces.length), candidates));
  }
  return { improvements, ...chooseAdaptation(improvements, [...datasets], [...candidates.keys()]) };
}
