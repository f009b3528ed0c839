/**
 * The agent-level record behind the per-link adaptation's prior (#17, session 11): every expert's
 * loss summed over every point the agent has scored on any of its links, and how many points that
 * is. A new or short link starts from the expert that leads this record (models/link-adaptation.ts
 * `selected`), and switches on its own evidence. An agent sees many links over time, mostly of one
 * network kind, so the record says which estimator that kind of link rewards; a link has ~30 scored
 * points, too few to say it alone. This is an empirical-Bayes prior (Robbins 1956; Morris,
 * "Parametric empirical Bayes inference", JASA 78, 1983): the population of links sets the prior
 * of each new one. Pure arithmetic, no I/O; the agent persists the record beside its links'
 * telemetry (agent/link/telemetry.ts), as an opaque JSON value `parseAgentPrior` checks.
 */
import { z } from 'zod';

export interface AgentPriorState {
  readonly version: 1;
  /** The experts, in the order of `sums` (models/link-adaptation.ts EXPERTS). */
  readonly experts: readonly string[];
  /** The loss the sums are in (e.g. `welsch-0.12`): a record in another loss means nothing to this one. */
  readonly loss: string;
  /** Each expert's loss summed over every point scored by the agent (not discounted). */
  readonly sums: readonly number[];
  /** Points scored by the agent, over all its links. */
  readonly count: number;
}

export function initialAgentPrior(experts: readonly string[], loss: string): AgentPriorState {
  return { version: 1, experts: [...experts], loss, sums: experts.map(() => 0), count: 0 };
}

/** The record after one more scored point whose experts' losses are `losses` (experts order). */
export function recordAgentLosses(state: AgentPriorState, losses: readonly number[]): AgentPriorState {
  return { ...state, sums: state.sums.map((s, i) => s + losses[i]!), count: state.count + 1 };
}

const schema = z.object({
  version: z.literal(1),
  experts: z.array(z.string()),
  loss: z.string(),
  sums: z.array(z.number().finite().nonnegative()),
  count: z.number().int().nonnegative(),
});

/**
 * A persisted record, or null (start afresh) when there is none or it was kept for other experts or
 * another loss; `problem` says why a present value was not usable.
 */
export function parseAgentPrior(value: unknown, experts: readonly string[], loss: string): { state: AgentPriorState | null; problem?: string } {
  if (value === undefined || value === null) return { state: null };
  const parsed = schema.safeParse(value);
  if (!parsed.success) return { state: null, problem: `not an agent-level record: ${parsed.error.message}` };
  const s = parsed.data;
  if (s.experts.join(',') !== experts.join(',') || s.sums.length !== experts.length) {
    return { state: null, problem: `kept for experts [${s.experts.join(', ')}], expected [${experts.join(', ')}]` };
  }
  if (s.loss !== loss) return { state: null, problem: `kept in loss '${s.loss}', expected '${loss}'` };
  return { state: s };
}

/**
 * The record to store after a call that read `before` and returned `after`, when `current` is what
 * the store holds now: `current` plus what the call learnt (after − before). Two calls on different
 * links of one agent can overlap (each awaits the model); storing `after` alone would drop the
 * points the other call stored meanwhile. `current` null or kept for other experts or another loss:
 * `after` alone.
 */
export function mergeAgentPrior(current: AgentPriorState | null, before: AgentPriorState | null, after: AgentPriorState): AgentPriorState {
  if (current === null || current.loss !== after.loss || current.experts.join(',') !== after.experts.join(',')) return after;
  const from = before !== null && before.loss === after.loss && before.experts.join(',') === after.experts.join(',') ? before : null;
  return {
    ...current,
    sums: current.sums.map((s, i) => s + after.sums[i]! - (from?.sums[i] ?? 0)),
    count: current.count + after.count - (from?.count ?? 0),
  };
}
