/**
 * Deploys the sample workload (the key-value service) on a site of the local federation and
 * fills it with keys, or, if it is already deployed, makes sure its instance is running.
 */
import type { FederationConfig } from '../../core/federation-config';
import { LocalProvider } from '../../adapters/local/provider';
import { FederationStateStore } from '../federation/state';
import { fedflowHome, siteDir } from '../site/home';

export interface SampleOptions {
  config: FederationConfig;
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

export const SAMPLE_WORKLOAD_ID = 'kv-demo';
export const SAMPLE_IMAGE = 'fedflow/kv';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * A deterministic value, so a test can recompute what every key must hold. Pseudo-random text
 * (xorshift32 over a base64 alphabet), so it compresses about as much as real data does, not 100:1.
 */
export function sampleValue(i: number, bytes: number): string {
  const base = `value-${i}-`;
  let x = (i * 2654435761 + 1) >>> 0 || 1;
  let out = base;
  while (out.length < bytes) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out += ALPHABET[x & 63];
  }
  return out;
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
  const state = new FederationStateStore(home);
  const existing = state.read().workloads[workloadId];
  if (existing) {
    const provider = providerFor(opts.config, existing.site, home);
    await provider.startInstance(existing.instance);
    const st = await provider.waitFor(existing.instance, 'running', { timeoutMs: 15_000 });
    await state.update((s) => {
      s.routes[workloadId] = { ...(s.routes[workloadId] ?? { since: new Date().toISOString() }), site: existing.site, address: st.address! };
    });
    const health = (await (await fetch(`${st.address}/health`)).json()) as { keys: number };
    return { workloadId, site: existing.site, address: st.address!, created: false, keys: health.keys };
  }
  const siteId = opts.site ?? opts.config.sites.find((s) => s.provider === 'local' && s.trust === 'trusted')?.id;
  if (!siteId) throw new Error('the federation has no trusted local site to deploy the sample workload on');
  const provider = providerFor(opts.config, siteId, home);
  const volume = provider.createVolume(`${workloadId}-data`);
  const instance = await provider.createInstance({ name: workloadId, image: SAMPLE_IMAGE, volume, tags: { 'fedflow-workload': workloadId } }, `deploy/${workloadId}/${siteId}`);
  const st = await provider.waitFor(instance, 'running', { timeoutMs: 15_000 });
  const address = st.address!;
  const keys = opts.keys ?? 500;
  const valueBytes = opts.valueBytes ?? 256;
  // A few writers at a time: fast enough for thousands of keys, gentle on a 2-core machine.
  const writers = 8;
  let next = 0;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      for (let i = next++; i < keys; i = next++) {
        const res = await fetch(`${address}/kv/key-${String(i).padStart(6, '0')}`, { method: 'PUT', body: sampleValue(i, valueBytes) });
        if (!res.ok) throw new Error(`seeding key ${i} on ${address} failed: ${res.status}`);
      }
    }),
  );
  await state.update((s) => {
    s.workloads[workloadId] = { id: workloadId, site: siteId, image: SAMPLE_IMAGE, instance, volume };
    s.routes[workloadId] = { site: siteId, address, since: new Date().toISOString() };
  });
  return { workloadId, site: siteId, address, created: true, keys };
}
