/**
 * Deploys the sample workload on a site of the local federation and fills it with keys, then
 * enters it in the federation log, placed at once with its instance, volume and address. If the
 * log already places it, makes sure its instance is running there (and, if the instance came back
 * on another address, says so to the log). The log is the one record: nothing else is written.
 */
import type { Client } from '@temporalio/client';
import { LocalProvider } from '../adapters/local/provider';
import { siteDir, fedflowHome } from '../agent/site/home';
import { SAMPLE_IMAGE, SAMPLE_WORKLOAD_ID, sampleKeyCount, seedSample } from '../agent/workload/sample';
import { FedflowError, FederationLog } from '../client/federation';
import { FailureType } from '../core/contracts/failures';
import type { FederationConfig } from '../core/federation-config';
import type { WorkloadRecord } from '../core/consensus/entries';
import { ensureFederationWorkflow } from './federation-workflow';

export interface SampleOptions {
  config: FederationConfig;
  client: Client;
  home?: string;
  workloadId?: string;
  site?: string;
  /** Number of keys to write on first deploy. */
  keys?: number;
  /** Bytes per value. */
  valueBytes?: number;
}

export interface DeployedSample {
  workloadId: string;
  site: string;
  address: string;
  created: boolean;
  keys: number;
}

function providerFor(config: FederationConfig, siteId: string, home: string): LocalProvider {
  const site = config.sites.find((s) => s.id === siteId);
  if (!site) throw new Error(`site '${siteId}' is not in the federation (known: ${config.sites.map((s) => s.id).join(', ')})`);
  // A cloud site's agent runs the workload's local stand-in in the same layout, so this serves every site.
  return new LocalProvider({ site: site.id, dir: siteDir(site.id, home), capacityInstances: site.capacity.instances });
}

export async function deploySampleWorkload(opts: SampleOptions): Promise<DeployedSample> {
  const home = opts.home ?? fedflowHome();
  const workloadId = opts.workloadId ?? SAMPLE_WORKLOAD_ID;
  const log = new FederationLog(opts.client, await ensureFederationWorkflow({ client: opts.client, config: opts.config, home }));
  const { committed } = await log.view();
  const at = committed.placements[workloadId];
  const existing = committed.workloads?.[workloadId];
  if (at !== undefined && existing) {
    const provider = providerFor(opts.config, at, home);
    await provider.startInstance(existing.instance);
    const st = await provider.waitFor(existing.instance, 'running', { timeoutMs: 15_000 });
    if (st.address !== existing.address) {
      // Placing it where it runs takes no capacity; it only tells the log the new address.
      await log.propose([{ kind: 'placement', workload: workloadId, site: at, record: { ...existing, address: st.address! } }]);
    }
    return { workloadId, site: at, address: st.address!, created: false, keys: await sampleKeyCount(st.address!) };
  }
  if (at !== undefined) throw new Error(`the federation log places '${workloadId}' on ${at} but holds no record of what it runs on (placed before the log kept records); run \`fedflow up\` with the state file of that version still in place, so it is imported`);
  const siteId = opts.site ?? opts.config.sites.find((s) => s.provider === 'local' && s.trust === 'trusted')?.id;
  if (!siteId) throw new Error('the federation has no trusted local site to deploy the sample workload on');
  const provider = providerFor(opts.config, siteId, home);
  const volume = provider.createVolume(`${workloadId}-data`);
  const instance = await provider.createInstance({ name: workloadId, image: SAMPLE_IMAGE, volume, tags: { 'fedflow-workload': workloadId } }, `deploy/${workloadId}/${siteId}`);
  const st = await provider.waitFor(instance, 'running', { timeoutMs: 15_000 });
  const address = st.address!;
  const keys = opts.keys ?? 500;
  await seedSample(address, keys, opts.valueBytes ?? 256);
  const record: WorkloadRecord = { image: SAMPLE_IMAGE, instance, volume, address };
  try {
    await log.addWorkload(workloadId, siteId, record, `deploy/${workloadId}/${siteId}/${instance.id}`);
  } catch (err) {
    // The log refused it (the site is full, say): leave nothing running that it does not place.
    // Any other failure (a timeout after the update was accepted, say) may still have placed it.
    if (err instanceof FedflowError && err.type === FailureType.FederationChangeRejected) await provider.terminateInstance(instance).catch(() => undefined);
    throw err;
  }
  return { workloadId, site: siteId, address, created: true, keys };
}
