/**
 * The workloads of one site as a migration's cut-over sees them: boot the target in standby,
 * freeze the source and take its digest, thaw it back, activate the target and check it serves
 * what the source froze, and remove either end. Two kinds of workload sit behind the same calls:
 *
 * - the sample deployed by `fedflow up` (image `fedflow/kv`): an instance of the local provider,
 *   driven through its admin API (agent/workload/sample-admin.ts), booted in standby without reading its volume;
 * - a workload added from a spec (image `spec:<id>`, instance `w-<id>`): driven through the site's
 *   workload runner (agent/workload/runner.ts) with the spec's own hooks. Its standby is "installed, not
 *   running" (a real service cannot boot without its data), so activation is a start and a health
 *   check on the synced volume. Its digest is the sha256 of what its verification printed (keys
 *   are the sample's notion and stay unset); the source's is taken right after the freeze, on the
 *   frozen data (a freeze that stops the service verifies on a private boot, agent/workload/runner.ts verify).
 *
 * Failures of a spec workload's hooks are WorkloadErrors; the activities map them to
 * non-retryable ApplicationFailures (a hook is not retried by Temporal: the workflow compensates).
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import { STANDBY_TAG, type LocalProvider } from '../adapters/local/provider';
import type { InstanceRef } from '../adapters/common/cloud-provider';
import { FailureType } from '../core/contracts/failures';
import type { RoundSummary } from '../core/migration';
import { WORKLOAD_ID_PATTERN, type WorkloadSpec } from '../core/workload-spec';
import { activateAndCheck, kvCall, type WorkloadDigest } from '../agent/workload/sample-admin';
import { WorkloadError, type WorkloadRunner } from '../agent/workload/runner';

/** The instance id a spec workload has at every site: one instance per workload id and site. */
export function specInstanceId(workloadId: string): string {
  return `w-${workloadId}`;
}

/** The workload id of a spec workload's instance, or undefined for a provider instance (the sample). */
export function specWorkloadOf(instance: InstanceRef): string | undefined {
  return instance.id.startsWith('w-') ? instance.id.slice(2) : undefined;
}

/** What a spec workload's verification printed, as a digest: equal output, equal sha256. */
export function printedDigest(printed: string): WorkloadDigest {
  return { sha256: createHash('sha256').update(printed).digest('hex') };
}

export interface InstanceView {
  running: boolean;
  /** What the provider or runner calls its state (running, stopped, frozen, terminated). */
  status: string;
  address?: string;
}

export interface StandbyArgs {
  name: string;
  image: string;
  volumeId: string;
  idempotencyKey: string;
  /** The workload's spec (from its record in the log), for a workload added from one. */
  spec?: WorkloadSpec;
  tags: Record<string, string>;
}

/** After a flush hook failed (or timed out) on a volume, its pre-copy captures go without it this long. */
export const FLUSH_RETRY_AFTER_MS = 10 * 60_000;

/** How long a pre-copy round waits at most for a standby to catch up (settleStandby). */
const STANDBY_SETTLE_MAX_MS = 60_000;
/** ... and for its next step of progress. */
const STANDBY_STALL_MS = 10_000;
const STANDBY_POLL_MS = 100;
/** One health call at most (the pull's heartbeat timeout is 15 s; a heartbeat goes before each call). */
const STANDBY_CALL_MS = 5_000;

export class SiteWorkloads {
  /** Volumes whose flush hook failed last, and when (flushVolume skips them for FLUSH_RETRY_AFTER_MS). */
  private readonly flushFailed = new Map<string, { atMs: number; error: string }>();
  constructor(
    readonly site: string,
    private readonly provider: LocalProvider,
    private readonly runner: WorkloadRunner,
  ) {}

  async view(instance: InstanceRef): Promise<InstanceView> {
    const id = specWorkloadOf(instance);
    if (id === undefined) {
      const st = await this.provider.describeInstance(instance);
      return { running: st.status === 'running', status: st.status, address: st.address };
    }
    if (!this.runner.installed(id)) return { running: false, status: 'terminated' };
    const info = this.runner.info(id);
    // A freeze begun and the service gone (a stop hook, the agent crashed while it waited): frozen.
    const frozen = info.status === 'frozen' || info.status === 'freezing';
    return { running: info.running, status: info.running ? info.status : frozen ? 'frozen' : 'stopped', address: info.address };
  }

  /**
   * Freezes the workload for the cut-over. Returns the digest of the frozen data, or, when the
   * freeze stopped the service (its verification then needs a private boot), how to take it: the
   * caller captures the volume first and verifies after, beside the target's work, so the boot is
   * not added to the downtime. The sample answers its freeze with its digest.
   */
  async freeze(instance: InstanceRef, address: string): Promise<{ digest: WorkloadDigest } | { verify: () => Promise<WorkloadDigest> }> {
    const id = specWorkloadOf(instance);
    if (id === undefined) return { digest: (await kvCall(address, 'POST', '/admin/freeze')) as WorkloadDigest };
    // An attempt retried after a crash finds it frozen by the first: the hook does not run twice.
    // But a private boot the first left (its agent died in the verification) may still run on the
    // volume, writing to it: stopped before the capture reads it. (Once captured with it running,
    // the image carried its postmaster.pid, and the target's PostgreSQL refused to start.)
    if (this.runner.info(id).status !== 'frozen') await this.runner.freeze(id);
    else await this.runner.stopStrays(id);
    const verify = async () => printedDigest((await this.runner.verify(id)).digest);
    return this.runner.info(id).running ? { digest: await verify() } : { verify };
  }

  /**
   * The compensation of a freeze: the workload takes writes again. Returns the address it serves
   * on, or undefined when there was nothing to thaw (a sample instance that is not running).
   * A spec workload's thaw hook runs whatever state it was left in (a freeze that failed halfway
   * may have frozen it); a thaw that starts the instance finds a running one running.
   */
  async thaw(instance: InstanceRef): Promise<string | undefined> {
    const id = specWorkloadOf(instance);
    if (id === undefined) {
      const st = await this.provider.describeInstance(instance);
      if (st.status !== 'running' || !st.address) return undefined;
      await kvCall(st.address, 'POST', '/admin/thaw');
      return st.address;
    }
    if (!this.runner.installed(id)) return undefined;
    await this.runner.thaw(id);
    return this.runner.info(id).address;
  }

  /**
   * After a pre-copy round laid its image into volume `volumeId`: if a standby that prepares
   * itself from its volume runs on it (the sample, reading its log ahead; it says how far behind
   * it is as `readAheadPending` in its health), waits until it has caught up, so that the
   * cut-over's activation replays only what the final round brings. Like a switchover that waits
   * for its replica's lag to drop first. Bounded: gives up after STANDBY_SETTLE_MAX_MS, or
   * STANDBY_STALL_MS without progress, or when the standby does not answer within STANDBY_CALL_MS; the activation then
   * replays the rest (slower, never wrong). Undefined when there is no such standby.
   */
  async settleStandby(volumeId: string, onPoll: () => void, signal: AbortSignal): Promise<RoundSummary['standby']> {
    const standby = this.provider.standbyOn(volumeId);
    if (!standby) return undefined;
    const pendingNow = async (): Promise<number | undefined> => {
      // Heartbeat before each call; each call bounded (and stopped with the activity).
      onPoll();
      try {
        const h = (await kvCall(standby.address, 'GET', '/health', { timeoutMs: STANDBY_CALL_MS, signal })) as { readAheadPending?: unknown };
        return typeof h.readAheadPending === 'number' ? h.readAheadPending : undefined;
      } catch {
        if (signal.aborted) throw signal.reason;
        return undefined;
      }
    };
    const t0 = Date.now();
    const pendingBefore = await pendingNow();
    if (pendingBefore === undefined) return undefined;
    let pending = pendingBefore;
    let progressAt = t0;
    let gaveUp: string | undefined;
    while (pending > 0) {
      if (signal.aborted) throw signal.reason;
      if (Date.now() - t0 > STANDBY_SETTLE_MAX_MS) gaveUp = `still ${pending} behind after ${STANDBY_SETTLE_MAX_MS} ms`;
      else if (Date.now() - progressAt > STANDBY_STALL_MS) gaveUp = `no progress for ${STANDBY_STALL_MS} ms (${pending} behind)`;
      if (gaveUp) break;
      await sleep(STANDBY_POLL_MS, undefined, { signal });
      const now = await pendingNow();
      if (now === undefined) {
        gaveUp = 'the standby did not answer its health check';
        break;
      }
      if (now < pending) progressAt = Date.now();
      pending = now;
    }
    return { waitedMs: Date.now() - t0, pendingBefore, pendingAfter: pending, ...(gaveUp ? { gaveUp } : {}) };
  }

  /**
   * Creates (idempotently) the target's instance in standby: the sample boots without reading its
   * volume; a spec workload is installed (its spec written, no volume created or initialised: the
   * sync lays the image down) and given its port, so its address is known before it runs.
   */
  async startStandby(args: StandbyArgs, onPoll: () => void, signal: AbortSignal): Promise<{ instance: InstanceRef; address: string }> {
    if (args.image.startsWith('spec:')) {
      const spec = args.spec;
      const id = args.image.slice('spec:'.length);
      if (!spec || spec.id !== id) {
        throw ApplicationFailure.nonRetryable(
          `workload '${args.name}' runs image '${args.image}', but its record in the federation log carries ${spec ? `the spec of '${spec.id}'` : 'no spec'}; add it again with \`fedflow workloads add -f <spec>\``,
          FailureType.InvalidWorkloadSpec,
        );
      }
      // Installed here already (an earlier migration away from this site whose decommission never
      // ran): the log does not place it here, so whatever still runs is stopped before the sync
      // writes its volume.
      if (this.runner.installed(id)) await this.runner.stop(id);
      await this.runner.install(spec, { initVolumes: false, createVolumes: false });
      const { address } = await this.runner.prepare(id);
      const { [STANDBY_TAG]: _standby, ...tags } = args.tags;
      if (Object.keys(tags).length) await this.runner.tag(id, tags);
      return { instance: { provider: 'local', site: this.site, id: specInstanceId(id) }, address };
    }
    const instance = await this.provider.createInstance({ name: args.name, image: args.image, volume: { provider: 'local', site: this.site, id: args.volumeId }, tags: args.tags }, args.idempotencyKey);
    const st = await this.provider.waitFor(instance, 'running', { timeoutMs: 30_000, onPoll, signal });
    return { instance, address: st.address! };
  }

  /**
   * Activates the standby target on its synced volume and checks it serves `expected`, the
   * digest the source froze: the sample loads its volume; a spec workload starts, passes its
   * health check, and its verification must print what the source's printed. From then on a
   * restart boots it straight onto its volume.
   */
  async activate(instance: InstanceRef, address: string, expectedSoon: WorkloadDigest | Promise<WorkloadDigest>, mark?: (step: string) => void): Promise<WorkloadDigest> {
    const id = specWorkloadOf(instance);
    if (id === undefined) {
      const served = await activateAndCheck(address, await expectedSoon);
      await this.provider.tag(instance, { [STANDBY_TAG]: 'false' });
      return served;
    }
    // The source's digest may still be on its way (its private boot runs beside this start).
    const expectedAlso = Promise.resolve(expectedSoon);
    expectedAlso.catch(() => undefined);
    // On the port the placement will name (chosen at the standby), or not at all.
    await this.runner.start(id, { samePort: true });
    mark?.('started');
    try {
      const served = printedDigest((await this.runner.verify(id)).digest);
      mark?.('verified');
      const expected = await expectedAlso;
      mark?.('sourceDigest');
      if (served.sha256 !== expected.sha256) {
        throw new WorkloadError(
          `workload '${id}' on ${this.site} verifies to digest ${served.sha256.slice(0, 12)} after activation, but the source's verification at the freeze gave ${expected.sha256.slice(0, 12)}: the data differs`,
          FailureType.DataMismatch,
        );
      }
      return served;
    } catch (err) {
      // Not checked, not served: stopped, so that nothing writes to it and a retry of the
      // cut-over writes its volume under no running service.
      await this.runner.stop(id).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Before a pre-copy capture of `volumeId` at this site: the flush hook of the workload whose
   * volume it is (a spec workload's volume is named after it), when its spec has one and it runs
   * here. Undefined when there is nothing to flush. Never throws: a hook that fails or times out is
   * returned as `{ error }` for the caller to log, and the capture goes on (the freeze writes what
   * the flush did not).
   */
  async flushVolume(volumeId: string): Promise<{ ms: number } | { error: string } | undefined> {
    if (!WORKLOAD_ID_PATTERN.test(volumeId) || !this.runner.installed(volumeId)) return undefined;
    if (resolve(this.runner.volumeRoot(volumeId)) !== resolve(this.provider.volumePath(volumeId))) return undefined;
    // A flush that failed is not tried again for a while: one that hangs would cost every round its timeout.
    const failed = this.flushFailed.get(volumeId);
    if (failed && Date.now() - failed.atMs < FLUSH_RETRY_AFTER_MS) {
      return { error: `skipped: the flush failed ${Math.round((Date.now() - failed.atMs) / 1000)} s ago (${failed.error}); tried again ${FLUSH_RETRY_AFTER_MS / 60_000} min after that` };
    }
    try {
      const r = await this.runner.flush(volumeId);
      this.flushFailed.delete(volumeId);
      return r;
    } catch (err) {
      const error = (err as Error).message;
      this.flushFailed.set(volumeId, { atMs: Date.now(), error });
      return { error };
    }
  }

  /**
   * Before the target's volume is written at the cut-over: a spec workload running there (started
   * by an earlier attempt of the same cut-over, which then failed or was lost) is stopped, so the
   * volume is never patched under a running service.
   */
  async quiesce(instance: InstanceRef): Promise<void> {
    const id = specWorkloadOf(instance);
    if (id === undefined || !this.runner.installed(id)) return;
    // Also any other process of the workload here: a start or a private boot an agent crashed in,
    // which no record names (the runner's strays).
    if (this.runner.info(id).running || this.runner.strays(id).length) await this.runner.stop(id);
  }

  /** Tags of the instance (a cloud site's stand-in names its cloud instance in one). */
  async tags(instance: InstanceRef): Promise<Record<string, string>> {
    const id = specWorkloadOf(instance);
    if (id === undefined) return (await this.provider.describeInstance(instance).catch(() => undefined))?.tags ?? {};
    return this.runner.installed(id) ? this.runner.tags(id) : {};
  }

  /** The target's copy goes (compensation): its instance if one was created, and its volume. */
  async removeCopy(name: string, idempotencyKey: string, volumeId: string): Promise<void> {
    if (this.runner.installed(name)) {
      await this.runner.remove(name, { deleteVolumes: true });
    } else {
      const instance = await this.provider.findInstance(name, idempotencyKey);
      if (instance) await this.provider.terminateInstance(instance);
    }
    await this.provider.deleteVolume(volumeId);
  }

  /** The source goes, after the switch: its instance stopped and forgotten, its volume deleted. */
  async decommission(instance: InstanceRef, volumeId: string): Promise<void> {
    const id = specWorkloadOf(instance);
    if (id === undefined) await this.provider.terminateInstance(instance);
    else await this.runner.remove(id, { deleteVolumes: true });
    await this.provider.deleteVolume(volumeId);
  }
}
