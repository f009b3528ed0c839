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
import { STANDBY_TAG, type LocalProvider } from '../adapters/local/provider';
import type { CloudProvider, InstanceRef, VolumeRef } from '../adapters/common/cloud-provider';
import { agentCloudInit } from '../agent/site/cloud-init';
import { forgetVolumeImage } from '../agent/capture/volume-journal';
import type { FrontHooks } from '../agent/front/front-set';

/** Tag on the local stand-in that names the cloud instance it stands for. */
export const CLOUD_INSTANCE_TAG = 'fedflow-cloud-instance';
import { ProviderError } from '../adapters/common/provider-error';
import { kvCall } from '../agent/workload/sample-admin';

export interface SiteDeps {
  site: string;
  /**
   * The site's local side: volumes, and the process that runs the workload. For a cloud site this
   * agent stands for the site, and `cloud` creates and removes the real instance.
   */
  provider: LocalProvider;
  cloud?: CloudProvider;
  /** Put into cloud instances' user-data, so their agent finds Temporal. */
  temporalAddress?: string;
  /** This site's agent endpoint, as other sites reach it. */
  endpointUrl: () => string;
  /** The workload fronts of this process (agent/front/): a thawed source gets its held connections back. */
  front?: FrontHooks;
}

export type { WorkloadDigest } from '../agent/workload/sample-admin';

function providerFailure(err: unknown): never {
  if (err instanceof ProviderError && !err.retryable) throw ApplicationFailure.nonRetryable(err.message, err.type);
  throw err;
}

export function createSiteActivities(deps: SiteDeps) {
  const { provider } = deps;

  return {
    /** This site's agent endpoint, as other sites reach it (for link probes). */
    async agentEndpoint(): Promise<string> {
      return deps.endpointUrl();
    },

    /** Compensation: the source takes writes again. */
    async thawWorkload(args: { instance: InstanceRef }): Promise<void> {
      const st = await provider.describeInstance(args.instance).catch(providerFailure);
      if (st.status === 'running' && st.address) {
        await kvCall(st.address, 'POST', '/admin/thaw');
        deps.front?.thawed(st.address);
      }
    },

    /**
     * Creates (idempotently) and boots the target instance. With `standby` it boots without reading
     * its volume, so it can come up while the volume is still being synced; the cut-over
     * (cutoverTarget in ./sync.ts) then loads the final volume.
     */
    async startInstance(args: { name: string; image: string; volumeId: string; idempotencyKey: string; standby?: boolean }): Promise<{ instance: InstanceRef; address: string }> {
      const volume: VolumeRef = { provider: 'local', site: deps.site, id: args.volumeId };
      const tags: Record<string, string> = { 'fedflow-workload': args.name, ...(args.standby ? { [STANDBY_TAG]: 'true' } : {}) };
      if (deps.cloud) {
        // The real instance first: created idempotently from the workflow's key, booted with the
        // agent's cloud-init, and waited for with the SDK's own waiter while this activity heartbeats.
        const cloudRef = await deps.cloud
          .createInstance(
            { name: args.name, image: '', tags: { 'fedflow-workload': args.name }, userData: agentCloudInit({ siteId: deps.site, workloadId: args.name, temporalAddress: deps.temporalAddress }) },
            args.idempotencyKey,
          )
          .catch(providerFailure);
        await deps.cloud
          .waitFor(cloudRef, 'running', { timeoutMs: 10 * 60_000, pollMs: 1000, onPoll: () => heartbeat(), signal: Context.current().cancellationSignal })
          .catch(providerFailure);
        tags[CLOUD_INSTANCE_TAG] = cloudRef.id;
      }
      const instance = await provider
        .createInstance({ name: args.name, image: args.image, volume, tags }, args.idempotencyKey)
        .catch(providerFailure);
      const st = await provider
        .waitFor(instance, 'running', { timeoutMs: 30_000, onPoll: () => heartbeat(), signal: Context.current().cancellationSignal })
        .catch(providerFailure);
      return { instance, address: st.address! };
    },

    /** Compensation on the target: remove the instance and the copied volume. */
    async removeTargetCopy(args: { name: string; idempotencyKey: string; volumeId: string }): Promise<void> {
      if (deps.cloud) {
        const cloudRef = await deps.cloud.findInstance(args.name, args.idempotencyKey).catch(providerFailure);
        if (cloudRef) await deps.cloud.terminateInstance(cloudRef).catch(providerFailure);
      }
      const instance = await provider.findInstance(args.name, args.idempotencyKey);
      if (instance) await provider.terminateInstance(instance).catch(providerFailure);
      // The volume goes; its chunks stay in the store as baseline for a later attempt.
      provider.deleteVolume(args.volumeId);
      rmSync(`${provider.volumePath(args.volumeId)}.staging`, { recursive: true, force: true });
      forgetVolumeImage(provider.volumePath(args.volumeId));
    },

    /** After the switch: stop and remove the source instance and its volume. Returns when it finished (ms). */
    async decommission(args: { instance: InstanceRef; volumeId: string }): Promise<number> {
      const cloudId = deps.cloud ? (await provider.describeInstance(args.instance).catch(() => undefined))?.tags[CLOUD_INSTANCE_TAG] : undefined;
      if (deps.cloud && cloudId) await deps.cloud.terminateInstance({ provider: deps.cloud.kind, site: deps.site, id: cloudId }).catch(providerFailure);
      await provider.terminateInstance(args.instance).catch(providerFailure);
      provider.deleteVolume(args.volumeId);
      forgetVolumeImage(provider.volumePath(args.volumeId));
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

