/**
 * Schemas for the provider `settings` section of a site in the federation config. Pure (zod only)
 * so the CLI, the worker and tests share it. Settings name where a site lives and what it boots;
 * they never hold a secret: credentials come from each SDK's chain, and the settings at most name
 * a profile (aws) or a credential reference (azure managed identity client id, gcp key file path).
 */
import { z } from 'zod';
import type { ProviderKind } from './contracts/providers';

const url = (what: string) => z.string().url(`${what} must be a URL such as https://127.0.0.1:8443`);

export const awsSettingsSchema = z
  .object({
    region: z.string().regex(/^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$/, 'region must be an AWS region such as us-east-1'),
    profile: z.string().min(1).optional(),
    endpoint: url('endpoint').optional(),
    imageId: z.string().regex(/^ami-([0-9a-f]{8}|[0-9a-f]{17})$/, 'imageId must be an AMI id: ami- followed by 8 or 17 hex digits, e.g. ami-0abcdef1234567890'),
    instanceType: z.string().regex(/^[a-z0-9-]+\.[a-z0-9-]+$/, 'instanceType must look like family.size, e.g. t3.micro'),
    subnetId: z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'subnetId must look like subnet-0abc1234').optional(),
    securityGroupIds: z.array(z.string().regex(/^sg-[0-9a-f]{8,17}$/, 'each security group id must look like sg-0abc1234')).optional(),
  })
  .strict();

const AZURE_URN = /^[^:\s]+:[^:\s]+:[^:\s]+:[^:\s]+$/;
const AZURE_ID = /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/.+/i;

export const azureSettingsSchema = z
  .object({
    subscriptionId: z.string().uuid('subscriptionId must be a subscription GUID such as 00000000-0000-0000-0000-000000000000'),
    resourceGroup: z.string().regex(/^[-\w.()]{1,89}[-\w()]$/, 'resourceGroup must be 1-90 letters, digits, - _ . ( ) and not end with a dot'),
    location: z.string().regex(/^[a-z0-9]+$/, 'location must be an Azure region name such as westeurope'),
    image: z.string().refine((s) => AZURE_URN.test(s) || AZURE_ID.test(s), 'image must be a URN publisher:offer:sku:version (e.g. Canonical:ubuntu-24_04-lts:server:latest) or an image resource id'),
    vmSize: z.string().regex(/^(Standard|Basic)_[A-Za-z0-9_-]+$/, 'vmSize must be an Azure VM size such as Standard_B2s'),
    networkInterfaceId: z.string().regex(AZURE_ID, 'networkInterfaceId must be a NIC resource id (/subscriptions/.../networkInterfaces/name)').optional(),
    subnetId: z.string().regex(AZURE_ID, 'subnetId must be a subnet resource id (/subscriptions/.../virtualNetworks/vnet/subnets/name)').optional(),
    adminUsername: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'adminUsername must be a Linux user name').optional(),
    sshPublicKey: z.string().regex(/^(ssh-(rsa|ed25519)|ecdsa-sha2-nistp\d+) /, 'sshPublicKey must be an OpenSSH public key line (ssh-ed25519 AAAA...)').optional(),
    credentialRef: z.string().min(1).optional(),
    endpoint: url('endpoint').optional(),
  })
  .strict()
  .refine((s) => !!s.networkInterfaceId !== !!s.subnetId, {
    message: 'give exactly one of networkInterfaceId (attach an existing NIC) or subnetId (create a NIC with the VM)',
    path: ['networkInterfaceId'],
  });

export const gcpSettingsSchema = z
  .object({
    project: z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'project must be a project id: 6-30 lowercase letters, digits and dashes'),
    zone: z.string().regex(/^[a-z]+-[a-z]+\d+-[a-z]$/, 'zone must be a Compute Engine zone such as europe-west1-b'),
    image: z.string().regex(/^(https:\/\/www\.googleapis\.com\/compute\/v1\/)?projects\/[^/]+\/global\/images\/(family\/)?[a-z0-9-]+$/, 'image must be projects/P/global/images/NAME or projects/P/global/images/family/FAMILY'),
    machineType: z.string().regex(/^[a-z0-9]+(-[a-z0-9]+)+$/, 'machineType must be a machine type name such as e2-small'),
    network: z.string().min(1).optional(),
    credentialRef: z.string().min(1).optional(),
    endpoint: url('endpoint').optional(),
  })
  .strict();

export const localSettingsSchema = z.object({}).strict();

// `satisfies` makes the compiler insist on one schema per ProviderKind, so the kinds listed below
// cannot drift from core/contracts/providers.ts, which the adapters implement.
export const PROVIDER_SETTINGS_SCHEMAS = {
  local: localSettingsSchema,
  aws: awsSettingsSchema,
  azure: azureSettingsSchema,
  gcp: gcpSettingsSchema,
} as const satisfies Record<ProviderKind, z.ZodObject>;
const KINDS = Object.keys(PROVIDER_SETTINGS_SCHEMAS) as ProviderKind[];

export type AwsSettings = z.infer<typeof awsSettingsSchema>;
export type AzureSettings = z.infer<typeof azureSettingsSchema>;
export type GcpSettings = z.infer<typeof gcpSettingsSchema>;
export type LocalSettings = z.infer<typeof localSettingsSchema>;
export interface ProviderSettingsByKind {
  aws: AwsSettings;
  azure: AzureSettings;
  gcp: GcpSettings;
  local: LocalSettings;
}

/** Key names that would put a secret in the config. `sshPublicKey` is a public key, not a secret. */
const SECRET_KEY = /secret|password|passwd|token|credentials?$|private|accesskey|apikey|^key$|clientcert/i;

function secretProblems(settings: unknown): string[] {
  if (!settings || typeof settings !== 'object') return [];
  return Object.keys(settings)
    .filter((k) => SECRET_KEY.test(k))
    .map((k) => `settings.${k}: looks like a secret; secrets never go in the federation config — name a profile or credentialRef and let the SDK's credential chain find it`);
}

/** One message per problem, each naming the field, what was wrong and what would be right. */
export function validateProviderSettings(provider: ProviderKind | string, settings: unknown): string[] {
  if (!(KINDS as string[]).includes(provider)) {
    return [`provider '${provider}' is unknown (known: ${KINDS.join(', ')})`];
  }
  const secrets = secretProblems(settings);
  const schema = PROVIDER_SETTINGS_SCHEMAS[provider as ProviderKind];
  const res = schema.safeParse(settings ?? {});
  if (res.success) return secrets;
  const secretKeys = new Set(secrets.map((s) => s.slice('settings.'.length, s.indexOf(':'))));
  const problems = res.error.issues.flatMap((iss) => {
    if (iss.code === 'unrecognized_keys') {
      return iss.keys
        .filter((k) => !secretKeys.has(k))
        .map((k) => `settings.${k}: is not a ${provider} setting (known: ${Object.keys(schema.shape).join(', ') || 'none: local sites take no settings'})`);
    }
    const where = iss.path.length ? `settings.${iss.path.join('.')}` : 'settings';
    const msg = iss.code === 'invalid_type' && iss.input === undefined ? `is required for provider ${provider}` : iss.message;
    return [`${where}: ${msg}`];
  });
  return [...secrets, ...problems];
}

/** Parses settings for a provider kind, or throws one Error listing every problem. */
export function parseProviderSettings<K extends ProviderKind>(provider: K, settings: unknown, site = '<site>'): ProviderSettingsByKind[K] {
  const problems = validateProviderSettings(provider, settings);
  if (problems.length) throw new Error(`invalid ${provider} settings for site '${site}':\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  return PROVIDER_SETTINGS_SCHEMAS[provider].parse(settings ?? {}) as ProviderSettingsByKind[K];
}
