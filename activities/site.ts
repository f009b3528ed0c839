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
import type { CloudProvider, InstanceRef } from '../adapters/common/cloud-provider';
import type { SiteWorkloads } from './site-workloads';
import type { WorkloadSpec } from '../core/workload-spec';
import { asActivityFailure } from './workload';
import { agentCloudInit } from '../agent/site/cloud-init';
import { forgetVolumeImage } from '../agent/capture/volume-journal';
import type { FrontHooks } from '../agent/front/front-set';
import type { SourceImages } from '../agent/capture/source-images';

/** Tag on the local stand-in that names the cloud instance it stands for. */
export const CLOUD_INSTANCE_TAG = 'fedflow-cloud-instance';
import { ProviderError } from '../adapters/common/provider-error';

export interface SiteDeps {
  site: string;
  /**
   * The site's local side: volumes, and the process that runs the workload. For a cloud site this
   * agent stands for the site, and `cloud` creates and removes the real instance.
   */
  provider: LocalProvider;
  /** The site's workloads as the cut-over drives them: the sample, or any added from a spec. */
  workloads: SiteWorkloads;
  cloud?: CloudProvider;
  /** Put into cloud instances' user-data, so their agent finds Temporal. */
  temporalAddress?: string;
  /** This site's agent endpoint, as other sites reach it. */
  endpointUrl: () => string;
  /** The workload fronts of this process (agent/front/): a thawed source gets its held connections back. */
  front?: FrontHooks;
  /** The source side's captures: a volume that leaves the site takes its reuse record and files with it. */
  images?: Pick<SourceImages, 'forgetVolume'>;
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
      const address = await deps.workloads.thaw(args.instance).catch(providerFailure).catch(asActivityFailure);
      if (address) deps.front?.thawed(address);
    },

    /**
     * Creates (idempotently) and boots the target instance. With `standby` it boots without reading
     * its volume, so it can come up while the volume is still being synced; the cut-over
     * (cutoverTarget in ./sync.ts) then loads the final volume. A workload added from a spec
     * (`spec` from its record in the log) is installed and given its address, and starts at the
     * cut-over on its synced volume (activities/site-workloads.ts).
     */
    async startInstance(args: { name: string; image: string; volumeId: string; idempotencyKey: string; standby?: boolean; spec?: WorkloadSpec }): Promise<{ instance: InstanceRef; address: string }> {
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
      return deps.workloads
        .startStandby({ name: args.name, image: args.image, volumeId: args.volumeId, idempotencyKey: args.idempotencyKey, spec: args.spec, tags }, () => heartbeat(), Context.current().cancellationSignal)
        .catch(providerFailure)
        .catch(asActivityFailure);
    },

    /** Compensation on the target: remove the instance and the copied volume. */
    async removeTargetCopy(args: { name: string; idempotencyKey: string; volumeId: string }): Promise<void> {
      if (deps.cloud) {
        const cloudRef = await deps.cloud.findInstance(args.name, args.idempotencyKey).catch(providerFailure);
        if (cloudRef) await deps.cloud.terminateInstance(cloudRef).catch(providerFailure);
      }
      // The instance and the volume go; the volume's chunks stay in the store as baseline for a later attempt.
      await deps.workloads.removeCopy(args.name, args.idempotencyKey, args.volumeId).catch(providerFailure).catch(asActivityFailure);
      rmSync(`${provider.volumePath(args.volumeId)}.staging`, { recursive: true, force: true });
      forgetVolumeImage(provider.volumePath(args.volumeId));
      await deps.images?.forgetVolume(args.volumeId);
    },

    /** After the switch: stop and remove the source instance and its volume. Returns when it finished (ms). */
    async decommission(args: { instance: InstanceRef; volumeId: string }): Promise<number> {
      const cloudId = deps.cloud ? (await deps.workloads.tags(args.instance))[CLOUD_INSTANCE_TAG] : undefined;
      if (deps.cloud && cloudId) await deps.cloud.terminateInstance({ provider: deps.cloud.kind, site: deps.site, id: cloudId }).catch(providerFailure);
      await deps.workloads.decommission(args.instance, args.volumeId).catch(providerFailure).catch(asActivityFailure);
      forgetVolumeImage(provider.volumePath(args.volumeId));
      // The pre-copy's capture files (kept for the next capture's reuse) are not needed any more.
      await deps.images?.forgetVolume(args.volumeId);
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

