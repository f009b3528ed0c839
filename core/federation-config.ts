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

/** A host name or an IPv4/IPv6 address, as `listen.host` takes it. */
const HOST_PATTERN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)$/;

const listenSchema = z
  .object({
    host: z.string().regex(HOST_PATTERN, 'listen.host must be an IP address or a host name, e.g. 0.0.0.0, 10.0.0.2 or ::'),
    port: z.number().int('listen.port must be an integer in 0..65535 (0: any free port)').min(0, 'listen.port must be in 0..65535').max(65535, 'listen.port must be in 0..65535'),
  })
  .strict();

const pemPath = (what: string) => z.string().min(1, `${what} must be the path of a PEM file`);

const siteTlsSchema = z
  .object({
    /** Relative paths are taken from FEDFLOW_HOME. */
    cert: pemPath('tls.cert'),
    /** Mode 0600 or stricter: the agent refuses a key others can read. */
    key: pemPath('tls.key'),
  })
  .strict();

/** Agent-to-agent transport: TLS 1.3 with mutual authentication, or plain HTTP (one machine, tests, benchmarks). */
export const TRANSPORT_MODES = ['mutual-tls', 'plain'] as const;
export type TransportMode = (typeof TRANSPORT_MODES)[number];

const federationTlsSchema = z
  .object({
    mode: z.enum(TRANSPORT_MODES).default('mutual-tls'),
    /** The federation CA's certificate. Absent: `<FEDFLOW_HOME>/tls/ca.pem`. */
    ca: pemPath('tls.ca').optional(),
  })
  .strict();

export const siteSchema = z
  .object({
    id: z.string().regex(SITE_ID_PATTERN, 'site id must look like <kind>:<name>, e.g. dc:paris or aws:us-east-1'),
    provider: z.enum(PROVIDER_KINDS),
    trust: z.enum(TRUST_LEVELS),
    capacity: capacitySchema,
    labels: z.record(z.string(), z.string()).default({}),
    /**
     * The advertised base URL of the site's agent chunk endpoint: what the other sites' agents
     * connect to (`https://<host>:<port>` with TLS, the default). Absent: the address it listens
     * on, which is right on one machine only.
     */
    agentUrl: z.string().url('agentUrl must be a URL such as https://10.0.0.2:7443').optional(),
    /** Where the agent's chunk endpoint listens. Absent: 127.0.0.1 on a free port (one machine). */
    listen: listenSchema.optional(),
    /** The site's key and certificate (PEM files). Absent: `<FEDFLOW_HOME>/tls/sites/<site dir>/{key,cert}.pem`. */
    tls: siteTlsSchema.optional(),
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
    /** How agents talk to each other (default: mutual TLS with the federation's CA). */
    tls: federationTlsSchema.default({ mode: 'mutual-tls' }),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.sites.forEach((s, i) => {
      if (seen.has(s.id)) ctx.addIssue({ code: 'custom', path: ['sites', i, 'id'], message: `duplicate site id '${s.id}'` });
      seen.add(s.id);
      for (const problem of agentUrlProblems(s.agentUrl, cfg.tls.mode)) ctx.addIssue({ code: 'custom', path: ['sites', i, 'agentUrl'], message: problem });
      if (s.listen && /^(0\.0\.0\.0|::|\[::\])$/.test(s.listen.host) && !s.agentUrl) {
        ctx.addIssue({ code: 'custom', path: ['sites', i, 'agentUrl'], message: `required when listen.host is the wildcard '${s.listen.host}': the URL other sites reach this agent at, e.g. ${cfg.tls.mode === 'mutual-tls' ? 'https' : 'http'}://10.0.0.2:${s.listen.port || 7443}` });
      }
      if (cfg.tls.mode === 'plain' && s.tls) ctx.addIssue({ code: 'custom', path: ['sites', i, 'tls'], message: "a key and certificate are given but tls.mode is 'plain': set tls.mode to 'mutual-tls' or drop the site's tls" });
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

/** What is wrong with an advertised agent URL for this transport mode (none when right). */
function agentUrlProblems(agentUrl: string | undefined, mode: TransportMode): string[] {
  if (agentUrl === undefined) return [];
  let url: URL;
  try {
    url = new URL(agentUrl);
  } catch {
    return []; // the schema's own message says it is not a URL
  }
  const want = mode === 'mutual-tls' ? 'https:' : 'http:';
  const problems: string[] = [];
  if (url.protocol !== want) problems.push(`'${agentUrl}' must start with ${want}// (tls.mode is '${mode}')`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || url.username || url.password) {
    problems.push(`'${agentUrl}' must be a base URL with no path, query or credentials, e.g. ${want}//10.0.0.2:7443`);
  }
  return problems;
}

/** The agent URL other sites use: without a trailing slash, so routes append as `${url}/chunks/...`. */
export function advertisedAgentUrl(site: SiteConfig): string | undefined {
  return site.agentUrl?.replace(/\/+$/, '');
}

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
