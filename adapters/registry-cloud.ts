/**
 * Builds the cloud provider for a site of the federation config: validates the site's `settings`
 * with core/provider-settings.ts and constructs the adapter. Only non-secret settings flow in;
 * each adapter resolves credentials through its SDK's own chain. `local` sites are built by
 * whoever owns their directories (adapters/local/provider.ts), so they are refused here with that
 * hint.
 *
 * Each cloud's adapter, and with it its SDK, is loaded when the first site of that cloud is built:
 * a process whose sites are all local loads none. Loaded eagerly, the three SDKs were ~130 of the
 * ~165 MB of heap that importing worker/federation-runtime.ts kept, and ~2 s of the import
 * (`npm run bench -- agent-footprint`); every full collection of an agent marks its heap
 * (docs/workloads.md, "Since 2026-12-04 04:00 UTC: garbage collection").
 */
import { parseProviderSettings } from '../core/provider-settings';
import type { AwsProviderOptions } from './aws/provider';
import type { AzureProviderOptions } from './azure/provider';
import { ProviderError, ProviderErrorType } from './common/provider-error';
import type { GcpProviderOptions } from './gcp/provider';
import type { CloudProvider, ProviderKind } from './common/cloud-provider';

export interface CloudSiteConfig {
  id: string;
  provider: ProviderKind;
  capacity: { instances: number };
  settings?: Record<string, unknown>;
}

/** Non-config knobs a caller may set (test hooks such as a credential or agent stay here, never in YAML). */
export interface CloudProviderOverrides {
  aws?: Partial<AwsProviderOptions>;
  azure?: Partial<AzureProviderOptions>;
  gcp?: Partial<GcpProviderOptions>;
}

export async function createCloudProvider(site: CloudSiteConfig, overrides: CloudProviderOverrides = {}): Promise<CloudProvider> {
  const capacityInstances = site.capacity.instances;
  try {
    switch (site.provider) {
      case 'aws': {
        const s = parseProviderSettings('aws', site.settings, site.id);
        const { AwsProvider } = await import('./aws/provider');
        return new AwsProvider({ site: site.id, capacityInstances, ...s, ...overrides.aws });
      }
      case 'azure': {
        const s = parseProviderSettings('azure', site.settings, site.id);
        const { AzureProvider } = await import('./azure/provider');
        return new AzureProvider({ site: site.id, capacityInstances, ...s, ...overrides.azure });
      }
      case 'gcp': {
        const s = parseProviderSettings('gcp', site.settings, site.id);
        const { GcpProvider } = await import('./gcp/provider');
        return new GcpProvider({ site: site.id, capacityInstances, ...s, ...overrides.gcp });
      }
      case 'local':
        throw new ProviderError(ProviderErrorType.InvalidParameter, `site '${site.id}' uses provider 'local'; build it with LocalProvider from adapters/local/provider.ts (it needs the site's directory), not the cloud registry`, 'local');
    }
  } catch (err) {
    if (err instanceof ProviderError) throw err;
    // An adapter or SDK that cannot be loaded is the installation's fault, not the site's settings'.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') throw err;
    throw new ProviderError(ProviderErrorType.InvalidParameter, (err as Error).message, site.provider, { cause: err });
  }
}
