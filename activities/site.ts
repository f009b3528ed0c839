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
import type { LocalProvider } from '../adapters/local';
import type { InstanceRef, VolumeRef } from '../adapters/types';
import { ProviderError } from '../adapters/errors';
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

  return {
    /** Compensation: the source takes writes again. */
    async thawWorkload(args: { instance: InstanceRef }): Promise<void> {
      const st = await provider.describeInstance(args.instance).catch(providerFailure);
      if (st.status === 'running' && st.address) await kvCall(st.address, 'POST', '/admin/thaw');
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
