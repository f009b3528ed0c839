/**
 * Builds the cloud provider for a site of the federation config: validates the site's `settings`
 * with core/provider-settings.ts and constructs the adapter. Only non-secret settings flow in;
 * each adapter resolves credentials through its SDK's own chain. `local` sites are built by
 * whoever owns their directories (adapters/local/provider.ts), so they are refused here with that
 * hint.
 */
import { parseProviderSettings } from '../core/provider-settings';
import { AwsProvider, type AwsProviderOptions } from './aws/provider';
import { AzureProvider, type AzureProviderOptions } from './azure/provider';
import { ProviderError, ProviderErrorType } from './common/provider-error';
import { GcpProvider, type GcpProviderOptions } from './gcp/provider';
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

export function createCloudProvider(site: CloudSiteConfig, overrides: CloudProviderOverrides = {}): CloudProvider {
  const capacityInstances = site.capacity.instances;
  try {
    switch (site.provider) {
      case 'aws': {
        const s = parseProviderSettings('aws', site.settings, site.id);
        return new AwsProvider({ site: site.id, capacityInstances, ...s, ...overrides.aws });
      }
      case 'azure': {
        const s = parseProviderSettings('azure', site.settings, site.id);
        return new AzureProvider({ site: site.id, capacityInstances, ...s, ...overrides.azure });
      }
      case 'gcp': {
        const s = parseProviderSettings('gcp', site.settings, site.id);
        return new GcpProvider({ site: site.id, capacityInstances, ...s, ...overrides.gcp });
      }
      case 'local':
        throw new ProviderError(ProviderErrorType.InvalidParameter, `site '${site.id}' uses provider 'local'; build it with LocalProvider from adapters/local/provider.ts (it needs the site's directory), not the cloud registry`, 'local');
    }
  } catch (err) {
    if (err instanceof ProviderError) throw err;
    throw new ProviderError(ProviderErrorType.InvalidParameter, (err as Error).message, site.provider, { cause: err });
  }
}
