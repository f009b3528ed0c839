/**
 * The garbage collector's policy for a process that runs agents: external memory (the backing
 * stores of Buffers) counts in V8's global allocation limit, with the JavaScript heap, instead of
 * against a limit of its own.
 *
 * Why: an agent moves volumes through Buffers (chunks read, compressed, sent, received, stored,
 * patched). By default V8 starts a full mark-compact every time external memory has grown by about
 * 64 MB since the last one ("external memory pressure"), whatever the heap's own size. With a
 * 180 MB heap (a process running the Temporal SDK, the cloud SDKs and several sites' agents) and
 * a pre-copy round moving hundreds of MB a second, that was a full-heap marking every 200-300 ms
 * across the migration, its pauses and marking steps taking 30-45% of the main thread (V8's own
 * `--trace-gc` mutator utilisation, 0.55-0.69), cut-over windows included. Accounted in the global
 * limit, external memory still triggers collection (memory stays bounded: the limit grows with
 * what survives, as the heap's does), but at the pace of the heap's limit.
 *
 * Measured in `docs/workloads.md` ("Garbage collection"): `npm run bench -- downtime --workload kv
 * --volume-mib 64`, alternated with and without this policy.
 *
 * `FEDFLOW_GC_POLICY=v8-default` leaves V8's default (to compare, or should a Node release drop the
 * flag). Set before the first agent starts; V8 reads the flag as it computes its limits.
 */
import { setFlagsFromString } from 'node:v8';

export const GC_POLICY_FLAG = '--external-memory-accounted-in-global-limit';

let applied: boolean | undefined;

/** Applies the policy once per process; returns whether it is in force. */
export function applyAgentGcPolicy(env: NodeJS.ProcessEnv = process.env): boolean {
  if (applied !== undefined) return applied;
  const choice = env.FEDFLOW_GC_POLICY ?? 'bulk-data';
  if (choice !== 'bulk-data' && choice !== 'v8-default') {
    throw new Error(`FEDFLOW_GC_POLICY is '${choice}'; expected 'bulk-data' (the default: external memory counts in V8's global limit) or 'v8-default'`);
  }
  applied = choice === 'bulk-data';
  if (applied) setFlagsFromString(GC_POLICY_FLAG);
  return applied;
}
