/**
 * Activities that act at one site (task queue `fedflow-site-<siteId>`): start, verify and remove
 * instances and volumes. The volume sync itself is in ./sync.ts.
 * Each worker binds them to its own site's provider, so the same activity type runs wherever the
 * workflow routes it.
 */
import { Context, heartbeat } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { STANDBY_TAG, type LocalProvider } from '../adapters/local';
import type { InstanceRef, VolumeRef } from '../adapters/types';
import { ProviderError } from '../adapters/errors';
import { badRequest } from './failures';
import { kvCall } from './kv-workload';

export interface SiteDeps {
  site: string;
  provider: LocalProvider;
  /** This site's agent endpoint, as other sites reach it. */
  endpointUrl: () => string;
}

export type { WorkloadDigest } from './kv-workload';

function providerFailure(err: unknown): never {
  if (err instanceof ProviderError && !err.retryable) throw ApplicationFailure.nonRetryable(err.message, err.type);
  throw err;
}

export function createSiteActivities(deps: SiteDeps) {
  const { provider } = deps;

  return {
    /** Compensation: the source takes writes again. */
    async thawWorkload(args: { instance: InstanceRef }): Promise<void> {
      const st = await provider.describeInstance(args.instance).catch(providerFailure);
      if (st.status === 'running' && st.address) await kvCall(st.address, 'POST', '/admin/thaw');
    },

    /**
     * Creates (idempotently) and boots the target instance. With `standby` it boots without reading
     * its volume, so it can come up while the volume is still being synced; the cut-over
     * (cutoverTarget in ./sync.ts) then loads the final volume.
     */
    async startInstance(args: { name: string; image: string; volumeId: string; idempotencyKey: string; standby?: boolean }): Promise<{ instance: InstanceRef; address: string }> {
      const volume: VolumeRef = { provider: 'local', site: deps.site, id: args.volumeId };
      const tags: Record<string, string> = { 'fedflow-workload': args.name, ...(args.standby ? { [STANDBY_TAG]: 'true' } : {}) };
      const instance = await provider
        .createInstance({ name: args.name, image: args.image, volume, tags }, args.idempotencyKey)
        .catch(providerFailure);
      const st = await provider
        .waitFor(instance, 'running', { timeoutMs: 30_000, onPoll: () => heartbeat(), signal: Context.current().cancellationSignal })
        .catch(providerFailure);
      return { instance, address: st.address! };
    },

    /** Compensation on the target: remove the instance and the copied volume. */
    async removeTargetCopy(args: { idempotencyKey: string; volumeId: string }): Promise<void> {
      const instance = provider.findByIdempotencyKey(args.idempotencyKey);
      if (instance) await provider.terminateInstance(instance).catch(providerFailure);
      // The volume goes; its chunks stay in the store as baseline for a later attempt.
      provider.deleteVolume(args.volumeId);
      rmSync(`${provider.volumePath(args.volumeId)}.staging`, { recursive: true, force: true });
    },

    /** After the switch: stop and remove the source instance and its volume. Returns when it finished (ms). */
    async decommission(args: { instance: InstanceRef; volumeId: string }): Promise<number> {
      await provider.terminateInstance(args.instance).catch(providerFailure);
      provider.deleteVolume(args.volumeId);
      return Date.now();
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
