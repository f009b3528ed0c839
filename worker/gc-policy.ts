/**
 * The garbage collector's policy for a process that runs agents: external memory (the backing
 * stores of Buffers) counts in V8's global allocation limit, with the JavaScript heap, instead of
 * against a limit of its own.
 *
 * Why: an agent moves volumes through Buffers (chunks read, compressed, sent, received, stored,
 * patched). By default V8 starts a full mark-compact every time external memory has grown by about
 * 64 MB since the last one ("external memory pressure"), whatever the heap's own size. With a
 * 180 MB heap (the downtime benchmark's process, which runs every site; ~75 MB since the cloud SDKs
 * are loaded on demand, adapters/registry-cloud.ts, and the policy has not been weighed again at
 * that size) and a pre-copy round moving hundreds of MB a second, that was a full-heap marking every 200-300 ms
 * across the migration, its pauses and marking steps taking 30-45% of the main thread (V8's own
 * `--trace-gc` mutator utilisation, 0.55-0.69), cut-over windows included. Accounted in the global
 * limit, external memory still triggers collection (memory stays bounded: the limit grows with
 * what survives, as the heap's does), but at the pace of the heap's limit.
 *
 * Measured in docs/workloads.md ("Since 2026-12-04 04:00 UTC: garbage collection"): `npm run bench --
 * downtime --workload kv --volume-mib 64`, with and without this policy.
 *
 * `FEDFLOW_GC_POLICY=v8-default` leaves V8's default (to compare, or to spend less memory). Set
 * when the process starts its agents or control worker (startFederation); V8 reads the flag each
 * time it computes or checks its limits, so Buffers allocated before count from the next GC on.
 *
 * The flag is V8 13's (Node 24). A V8 without it prints "unrecognized flag" on stderr and keeps
 * its default; the policy then does nothing (the unit test, which counts collections, would fail).
 */
import { setFlagsFromString } from 'node:v8';
import { FedflowError } from '../client/federation';

export const GC_POLICY_FLAG = '--external-memory-accounted-in-global-limit';

let applied: boolean | undefined;

/** Applies the policy once per process; returns whether it is in force. */
export function applyAgentGcPolicy(env: NodeJS.ProcessEnv = process.env): boolean {
  if (applied !== undefined) return applied;
  // Empty is unset, as for the other FEDFLOW_ variables (a unit file's `Environment=FEDFLOW_GC_POLICY=`).
  const choice = env.FEDFLOW_GC_POLICY || 'bulk-data';
  if (choice !== 'bulk-data' && choice !== 'v8-default') {
    throw new FedflowError(`FEDFLOW_GC_POLICY is '${choice}'; expected 'bulk-data' (the default: external memory counts in V8's global limit) or 'v8-default'`, 'InvalidEnvironment');
  }
  applied = choice === 'bulk-data';
  if (applied) setFlagsFromString(GC_POLICY_FLAG);
  return applied;
}
