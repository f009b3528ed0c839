/**
 * Talking to the sample workload's admin API (workload/kv-server.js): freeze, thaw, activate and
 * digest. The site and sync activities call it; the workload room keeps everything the sample
 * needs of the agent in one folder (agent/workload/).
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../core/contracts/failures';
import type { WorkloadDigest } from '../../core/migration';

export type { WorkloadDigest } from '../../core/migration';

/** One call of the sample's API, bounded (10 s by default; `signal` stops it sooner). */
export async function kvCall(address: string, method: string, path: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<unknown> {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 10_000);
  const res = await fetch(`${address}${path}`, { method, signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout });
  if (!res.ok) throw new Error(`${method} ${address}${path} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  return res.json();
}

/** Activates a standby instance (a no-op for one already serving) and checks it serves `expected`. */
export async function activateAndCheck(address: string, expected: WorkloadDigest): Promise<WorkloadDigest> {
  const got = (await kvCall(address, 'POST', '/admin/activate')) as WorkloadDigest;
  if (got.keys !== expected.keys || got.sha256 !== expected.sha256) {
    throw ApplicationFailure.nonRetryable(
      `target at ${address} serves ${got.keys} keys (sha256 ${got.sha256.slice(0, 12)}), expected ${expected.keys} keys (sha256 ${expected.sha256.slice(0, 12)}) as frozen on the source`,
      FailureType.DataMismatch,
    );
  }
  return got;
}
