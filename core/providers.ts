/** Provider kinds, shared by the config schema (core) and the adapters. */
export const PROVIDER_KINDS = ['local', 'aws', 'azure', 'gcp'] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];
