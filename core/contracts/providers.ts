/**
 * Provider names and references that more than one layer must agree on. The config schema
 * (core), the adapters, the agent's federation state and the workflows all carry these, so they
 * live here on the ground floor; the provider interface itself stays in adapters/common/.
 */
export const PROVIDER_KINDS = ['local', 'aws', 'azure', 'gcp'] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

export interface InstanceRef {
  provider: ProviderKind;
  site: string;
  /** Provider's own id: EC2 instance id, Azure VM name, GCP instance name, local instance id. */
  id: string;
}

export interface VolumeRef {
  provider: ProviderKind;
  site: string;
  /** EBS volume id, Azure disk name, GCP disk name, or for `local` the volume id inside the site. */
  id: string;
}
