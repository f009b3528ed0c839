/**
 * Activities that act at one site (task queue `fedflow-site-<siteId>`): freeze and snapshot a
 * workload, pull a snapshot from another site's agent, start, verify and remove instances.
 * Each worker binds them to its own site's provider, so the same activity type runs wherever the
 * workflow routes it.
 */
import { Context, heartbeat } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tar from 'tar';
import type { LocalProvider } from '../adapters/local';
import type { InstanceRef, VolumeRef } from '../adapters/types';
import { ProviderError } from '../adapters/errors';
import { pullSnapshot, SnapshotVerifyError } from '../agent/pull-snapshot';
import { badRequest, FailureType } from './failures';

export interface SiteDeps {
  site: string;
  provider: LocalProvider;
  /** This site's agent endpoint, as other sites reach it. */
  endpointUrl: () => string;
}

export interface WorkloadDigest {
  keys: number;
  sha256: string;
}

export interface FrozenSnapshot {
  snapshotId: string;
  sizeBytes: number;
  sha256: string;
  digest: WorkloadDigest;
  frozenAtMs: number;
  endpoint: string;
}

/** Heartbeat details of a copy: the resume cursor, plus figures for progress displays. */
export interface CopyHeartbeat {
  cursor: number;
  total: number;
}

function providerFailure(err: unknown): never {
  if (err instanceof ProviderError && !err.retryable) throw ApplicationFailure.nonRetryable(err.message, err.type);
  throw err;
}

async function kvCall(address: string, method: string, path: string): Promise<unknown> {
  const res = await fetch(`${address}${path}`, { method, signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`${method} ${address}${path} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  return res.json();
}

export function createSiteActivities(deps: SiteDeps) {
  const { provider } = deps;

  async function instanceAddress(ref: InstanceRef): Promise<string> {
    const st = await provider.describeInstance(ref).catch(providerFailure);
    if (st.status !== 'running' || !st.address) {
      throw new Error(`instance '${ref.id}' on '${deps.site}' is ${st.status}, not running`);
    }
    return st.address;
  }

  return {
    /** Stops the workload taking writes, flushes it and snapshots its volume. */
    async freezeAndSnapshot(args: { instance: InstanceRef; volume: VolumeRef; idempotencyKey: string }): Promise<FrozenSnapshot> {
      const address = await instanceAddress(args.instance);
      const frozen = (await kvCall(address, 'POST', '/admin/freeze')) as WorkloadDigest;
      const frozenAtMs = Date.now();
      const snap = await provider.snapshotVolume(args.volume, args.idempotencyKey).catch(providerFailure);
      return {
        snapshotId: snap.id,
        sizeBytes: snap.sizeBytes,
        sha256: snap.sha256,
        digest: { keys: frozen.keys, sha256: frozen.sha256 },
        frozenAtMs,
        endpoint: deps.endpointUrl(),
      };
    },

    /** Compensation: the source takes writes again. */
    async thawWorkload(args: { instance: InstanceRef }): Promise<void> {
      const st = await provider.describeInstance(args.instance).catch(providerFailure);
      if (st.status === 'running' && st.address) await kvCall(st.address, 'POST', '/admin/thaw');
    },

    /**
     * Pulls the snapshot from the source agent and unpacks it as the target's volume.
     * Heartbeats the resume cursor; a retry after a crash continues from it.
     */
    async copyVolume(args: { endpoint: string; snapshotId: string; sizeBytes: number; sha256: string; volumeId: string }): Promise<{ bytesTransferred: number; resumedFrom: number }> {
      const ctx = Context.current();
      const prior = ctx.info.heartbeatDetails as CopyHeartbeat | undefined;
      const incoming = join(provider.dir, 'incoming');
      mkdirSync(incoming, { recursive: true });
      const dest = join(incoming, `${args.snapshotId}.tar`);
      let result = { bytesTransferred: 0, resumedFrom: prior?.cursor ?? 0 };
      if (!existsSync(dest)) {
        try {
          result = await pullSnapshot({
            url: `${args.endpoint}/snapshots/${args.snapshotId}?to=${encodeURIComponent(deps.site)}`,
            sha256: args.sha256,
            sizeBytes: args.sizeBytes,
            dest,
            resumeFrom: prior?.cursor,
            cursorEvery: 4 << 20,
            onCursor: (cursor) => heartbeat({ cursor, total: args.sizeBytes } satisfies CopyHeartbeat),
            signal: ctx.cancellationSignal,
          });
        } catch (err) {
          if (err instanceof SnapshotVerifyError) throw ApplicationFailure.retryable(err.message, 'SnapshotVerifyFailed');
          throw err;
        }
      }
      // Unpack beside the volume and rename, so a crash never leaves a half-written volume in place.
      const vol = provider.volumePath(args.volumeId);
      const staging = `${vol}.staging`;
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging, { recursive: true });
      await tar.x({ cwd: staging, file: dest, strict: true });
      rmSync(vol, { recursive: true, force: true });
      renameSync(staging, vol);
      rmSync(dest, { force: true });
      heartbeat({ cursor: args.sizeBytes, total: args.sizeBytes } satisfies CopyHeartbeat);
      return result;
    },

    /** Creates (idempotently) and starts the target instance on the copied volume. */
    async startInstance(args: { name: string; image: string; volumeId: string; idempotencyKey: string }): Promise<{ instance: InstanceRef; address: string }> {
      const volume: VolumeRef = { provider: 'local', site: deps.site, id: args.volumeId };
      const instance = await provider
        .createInstance({ name: args.name, image: args.image, volume, tags: { 'fedflow-workload': args.name } }, args.idempotencyKey)
        .catch(providerFailure);
      const st = await provider
        .waitFor(instance, 'running', { timeoutMs: 30_000, onPoll: () => heartbeat(), signal: Context.current().cancellationSignal })
        .catch(providerFailure);
      return { instance, address: st.address! };
    },

    /** The target must serve exactly the keys and values the source held when it froze. */
    async verifyWorkload(args: { address: string; expected: WorkloadDigest }): Promise<WorkloadDigest> {
      const got = (await kvCall(args.address, 'GET', '/admin/digest')) as WorkloadDigest;
      if (got.keys !== args.expected.keys || got.sha256 !== args.expected.sha256) {
        throw ApplicationFailure.nonRetryable(
          `target at ${args.address} serves ${got.keys} keys (sha256 ${got.sha256.slice(0, 12)}), expected ${args.expected.keys} keys (sha256 ${args.expected.sha256.slice(0, 12)}) as frozen on the source`,
          FailureType.DataMismatch,
        );
      }
      return got;
    },

    /** Compensation on the target: remove the instance and the copied volume. */
    async removeTargetCopy(args: { idempotencyKey: string; volumeId: string; snapshotId?: string }): Promise<void> {
      const instance = provider.findByIdempotencyKey(args.idempotencyKey);
      if (instance) await provider.terminateInstance(instance).catch(providerFailure);
      provider.deleteVolume(args.volumeId);
      rmSync(`${provider.volumePath(args.volumeId)}.staging`, { recursive: true, force: true });
      if (args.snapshotId) {
        rmSync(join(provider.dir, 'incoming', `${args.snapshotId}.tar`), { force: true });
        rmSync(join(provider.dir, 'incoming', `${args.snapshotId}.tar.part`), { force: true });
      }
    },

    /** After the switch: stop and remove the source instance, its volume and the snapshot. */
    async decommission(args: { instance: InstanceRef; volumeId: string; snapshotId: string }): Promise<number> {
      await provider.terminateInstance(args.instance).catch(providerFailure);
      provider.deleteVolume(args.volumeId);
      provider.deleteSnapshot(args.snapshotId);
      return Date.now();
    },

    /** Compensation on the source when a snapshot was taken but the migration rolled back. */
    async deleteSnapshot(args: { snapshotId: string }): Promise<void> {
      provider.deleteSnapshot(args.snapshotId);
    },
  };
}

export type SiteActivities = ReturnType<typeof createSiteActivities>;

/** Reads a site agent's advertised endpoint (local federation: agents share one machine). */
export function readAgentUrl(siteDirPath: string): string | undefined {
  const p = join(siteDirPath, 'agent.json');
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as { url: string }).url : undefined;
}

export { badRequest };
