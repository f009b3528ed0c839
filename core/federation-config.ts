/**
 * The federation config: which sites exist, where they run and how far they trust each other.
 * Pure schema (zod) so it can be shared by the CLI, the worker and tests; reading the file is
 * done by agent/site/config-file.ts.
 */
import { z } from 'zod';
import { PROVIDER_KINDS } from './contracts/providers';
import { infraProblems, infraSchema, siteInfraSchema } from './infra-config';
import { validateProviderSettings } from './provider-settings';

/** `<kind>:<name>`, as DESIGN.md spells sites: `aws:us-east-1`, `dc:paris`. */
export const SITE_ID_PATTERN = /^[a-z][a-z0-9-]*:[a-z0-9][a-z0-9-]*$/;

export const TRUST_LEVELS = ['trusted', 'untrusted'] as const;
export type Trust = (typeof TRUST_LEVELS)[number];

const capacitySchema = z
  .object({
    instances: z.number().int().min(0, 'capacity.instances must be 0 or more'),
    vcpus: z.number().int().min(0).optional(),
  })
  .strict();

/** Shape of one ordered pair's emulated link (used by the in-process link shaper). */
export const linkShapeSchema = z
  .object({
    from: z.string().regex(SITE_ID_PATTERN),
    to: z.string().regex(SITE_ID_PATTERN),
    /** Token-bucket rate in Mbit/s; absent means unshaped. */
    rateMbps: z.number().positive().optional(),
    delayMs: z.number().min(0).default(0),
    jitterMs: z.number().min(0).default(0),
    /** Probability in [0, 1) that a request is dropped and must be retried. */
    loss: z.number().min(0).lt(1).default(0),
  })
  .strict();
export type LinkShape = z.infer<typeof linkShapeSchema>;

export const siteSchema = z
  .object({
    id: z.string().regex(SITE_ID_PATTERN, 'site id must look like <kind>:<name>, e.g. dc:paris or aws:us-east-1'),
    provider: z.enum(PROVIDER_KINDS),
    trust: z.enum(TRUST_LEVELS),
    capacity: capacitySchema,
    labels: z.record(z.string(), z.string()).default({}),
    /** Base URL of the site's agent chunk endpoint, when the agent runs elsewhere. */
    agentUrl: z.string().url().optional(),
    /** Ed25519 public key (base64 SPKI DER) of the site, once it has one. */
    publicKey: z.string().optional(),
    /** Provider section: non-secret settings and a credential *reference* (never a secret). */
    settings: z.record(z.string(), z.unknown()).default({}),
    /** What `fedflow infra` builds for the site (core/infra-config.ts). */
    infra: siteInfraSchema.optional(),
  })
  .strict();
export type SiteConfig = z.infer<typeof siteSchema>;

export const federationConfigSchema = z
  .object({
    federation: z.string().min(1).regex(/^[a-z0-9][a-z0-9-]*$/, 'federation name must be lowercase letters, digits and dashes'),
    sites: z.array(siteSchema).min(1, 'a federation needs at least one site'),
    links: z.array(linkShapeSchema).default([]),
    /** What `fedflow infra plan|up|down` deploys (core/infra-config.ts). */
    infra: infraSchema.optional(),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.sites.forEach((s, i) => {
      if (seen.has(s.id)) ctx.addIssue({ code: 'custom', path: ['sites', i, 'id'], message: `duplicate site id '${s.id}'` });
      seen.add(s.id);
      for (const problem of validateProviderSettings(s.provider, s.settings)) {
        // Problems already start with 'settings.<field>:'.
        ctx.addIssue({ code: 'custom', path: ['sites', i], message: problem });
      }
    });
    for (const p of infraProblems(cfg.federation, cfg.infra, cfg.sites)) ctx.addIssue({ code: 'custom', path: p.path, message: p.message });
    cfg.links.forEach((l, i) => {
      for (const end of ['from', 'to'] as const) {
        if (!seen.has(l[end])) {
          ctx.addIssue({
            code: 'custom',
            path: ['links', i, end],
            message: `link ${end} '${l[end]}' is not a site of this federation (known: ${[...seen].join(', ')})`,
          });
        }
      }
    });
  });
export type FederationConfig = z.infer<typeof federationConfigSchema>;

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid federation config ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Validates parsed YAML/JSON; throws a ConfigError listing one line per problem. */
export function parseFederationConfig(raw: unknown, source = '<inline>'): FederationConfig {
  const res = federationConfigSchema.safeParse(raw);
  if (res.success) return res.data;
  const problems = res.error.issues.map((iss) => {
    const where = iss.path.length ? iss.path.join('.') : '(top level)';
    return `${where}: ${iss.message}`;
  });
  throw new ConfigError(source, problems);
}
