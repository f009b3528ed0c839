/**
 * The `infra` sections of the federation config: what `fedflow infra plan|up|down` needs beyond
 * the adapters' settings. A top-level `infra` names the stack, the agent port and the Temporal
 * namespace; each cloud site's `infra` gives its network's address range. Pure (zod only).
 *
 *   infra:
 *     stack: fedflow-multicloud      # prefix of every resource name, and the stack label
 *     agentPort: 7443                 # the chunk endpoint's port, admitted from the other sites only
 *     temporal: { namespace: fedflow, retentionDays: 7 }
 *     release:                        # what each site's instance installs at boot (npm run release)
 *       url: https://my-bucket.s3.amazonaws.com/fedflow-0.1.0-linux-x64.tar.gz
 *       sha256: 3f1c...                # from dist/fedflow-0.1.0-linux-x64.tar.gz.sha256
 *   sites:
 *     - id: aws:us-east-1
 *       infra: { cidr: 10.10.0.0/16, subnetCidr: 10.10.1.0/24 }
 *     - id: dc:paris                  # a datacenter: where its agent's traffic comes from
 *       infra: { egressCidrs: [198.51.100.0/28] }
 */
import { z } from 'zod';
import { cidrContains, cidrsOverlap, parseCidr, type Cidr } from './cidr';

const cidr = () => z.string().refine((s) => parseCidr(s) !== undefined, 'must be an IPv4 CIDR block with its host bits zero, such as 10.10.0.0/16');

export const siteInfraSchema = z
  .object({
    /** The VPC / VNet / network range of a cloud site. */
    cidr: cidr().optional(),
    /** The subnet the agent's instance lives in; inside `cidr`. Default: the first /24 of `cidr`. */
    subnetCidr: cidr().optional(),
    /**
     * Where this site's agent traffic comes from, as the other sites' firewalls see it: public
     * egress addresses, or `cidr` when the sites are joined by VPN or peering (the default).
     */
    egressCidrs: z.array(cidr()).min(1, 'when given, must list at least one block').optional(),
    /**
     * A cloud site reaches Temporal and its peers through an internet gateway and public
     * addresses (default), or, with false, only through the VPN or peering that joins the sites.
     */
    internetGateway: z.boolean().default(true),
  })
  .strict();
export type SiteInfra = z.infer<typeof siteInfraSchema>;

export const infraSchema = z
  .object({
    stack: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/, 'must be 2-32 lowercase letters, digits and dashes, starting with a letter (it prefixes every resource name: GCP and Azure names allow no more)')
      .optional(),
    agentPort: z.number().int('must be a whole number').min(1024, 'must be 1024-65535').max(65535, 'must be 1024-65535').default(7443),
    temporal: z
      .object({
        namespace: z.string().regex(/^[a-zA-Z][a-zA-Z0-9._-]{1,254}$/, 'must be 2-255 letters, digits, . _ - starting with a letter'),
        retentionDays: z.number().int().min(1, 'must be 1-90').max(90, 'must be 1-90').default(7),
      })
      .strict()
      .optional(),
    /**
     * The release artifact (scripts/release.ts) each site's instance fetches, checks and installs
     * at boot (agent/site/cloud-init.ts). Absent: the instance image already carries fedflow.
     */
    release: z
      .object({
        url: z
          .string()
          .regex(/^https?:\/\/[^\s/]+\/\S*$/, 'must be the http(s) URL the instances fetch the artifact from, e.g. https://my-bucket.s3.amazonaws.com/fedflow-0.1.0-linux-x64.tar.gz (a presigned S3 URL, a Blob SAS URL or a GCS signed URL for a private object)'),
        sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be the artifact\'s sha256 as 64 lowercase hex digits (dist/<artifact>.sha256)'),
      })
      .strict()
      .optional(),
    /** The serverless control worker (AWS Lambda), deployed with the AWS stack when present. */
    controlWorker: z
      .object({
        /** The site whose AWS stack carries the function. */
        site: z.string(),
        /** S3 location of the function's zip (built by `npm run infra:package`). */
        codeBucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name'),
        codeKey: z.string().min(1, 'must name the zip in the bucket'),
        memoryMb: z.number().int().min(128).max(10240).default(1024),
        timeoutSeconds: z.number().int().min(10).max(900).default(300),
        /**
         * Temporal's identity that invokes the function when tasks arrive (Serverless Workers:
         * Temporal Cloud, or a self-hosted server >= 1.31 with its worker controller enabled), and
         * the external id it presents. With them the stack adds the role Temporal assumes.
         */
        invoker: z
          .object({
            principalArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:(role|user|root)/, 'must be the ARN of the IAM role or user Temporal runs as, e.g. arn:aws:iam::123456789012:role/temporal'),
            externalId: z.string().regex(/^[a-zA-Z0-9_+=,.@-]{5,45}$/, 'must be 5-45 letters, digits or _+=,.@-'),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type InfraConfig = z.infer<typeof infraSchema>;

interface SiteLike {
  id: string;
  provider: string;
  infra?: SiteInfra;
}

export interface InfraProblem {
  path: (string | number)[];
  message: string;
}

/** The first /24 of a block (or the block itself when it is smaller). */
export function defaultSubnet(c: Cidr): string {
  if (c.prefix >= 24) return c.text;
  const b = c.base;
  return `${[b >>> 24, (b >>> 16) & 255, (b >>> 8) & 255, b & 255].join('.')}/24`;
}

/** What cross-field checks find once the shapes are right: one problem each. */
export function infraProblems(federation: string, infra: InfraConfig | undefined, sites: SiteLike[]): InfraProblem[] {
  const problems: InfraProblem[] = [];
  const ranges: { i: number; id: string; c: Cidr }[] = [];
  sites.forEach((s, i) => {
    const si = s.infra;
    const cloud = s.provider !== 'local';
    if (!si) {
      if (infra) problems.push({ path: ['sites', i, 'infra'], message: cloud ? `site '${s.id}' needs infra.cidr (its network range, e.g. 10.${10 + i}.0.0/16) when the federation has an infra section` : `site '${s.id}' needs infra.egressCidrs (the addresses its agent connects from, e.g. 198.51.100.0/28) so the cloud sites' firewalls can admit it` });
      return;
    }
    if (!infra) problems.push({ path: ['sites', i, 'infra'], message: `site '${s.id}' has an infra section but the federation has none: add a top-level infra (at least {} ) or remove it` });
    if (!cloud && (si.cidr || si.subnetCidr)) problems.push({ path: ['sites', i, 'infra'], message: `site '${s.id}' is a local site: infra makes no network there, so give only infra.egressCidrs` });
    if (cloud && !si.cidr) problems.push({ path: ['sites', i, 'infra', 'cidr'], message: `is required for a ${s.provider} site: its network range, e.g. 10.${10 + i}.0.0/16` });
    if (!cloud && !si.egressCidrs) problems.push({ path: ['sites', i, 'infra', 'egressCidrs'], message: `is required for a local site: the addresses its agent connects from` });
    const c = si.cidr ? parseCidr(si.cidr) : undefined;
    const sub = si.subnetCidr ? parseCidr(si.subnetCidr) : undefined;
    if (c && sub && !cidrContains(c, sub)) problems.push({ path: ['sites', i, 'infra', 'subnetCidr'], message: `${si.subnetCidr} is not inside infra.cidr ${si.cidr}` });
    if (c && c.prefix > 28) problems.push({ path: ['sites', i, 'infra', 'cidr'], message: `${si.cidr} is too small: give a /28 or larger (AWS and Azure refuse smaller networks)` });
    if (c && c.prefix < 16 && s.provider !== 'gcp') problems.push({ path: ['sites', i, 'infra', 'cidr'], message: `${si.cidr} is too large: AWS VPCs take /16 to /28` });
    if (c) {
      for (const r of ranges) {
        if (cidrsOverlap(r.c, c)) problems.push({ path: ['sites', i, 'infra', 'cidr'], message: `${si.cidr} overlaps ${r.c.text} of site '${r.id}': sites' networks must not overlap, so their agents can reach each other` });
      }
      ranges.push({ i, id: s.id, c });
    }
  });
  if (infra?.controlWorker) {
    const site = sites.find((s) => s.id === infra.controlWorker?.site);
    if (!site || site.provider !== 'aws') {
      const aws = sites.filter((s) => s.provider === 'aws').map((s) => s.id);
      problems.push({ path: ['infra', 'controlWorker', 'site'], message: `'${infra.controlWorker.site}' is not an aws site of this federation (aws sites: ${aws.join(', ') || 'none'})` });
    }
  }
  const stack = infra?.stack ?? `fedflow-${federation}`;
  if (infra && !infra.stack && !/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/.test(stack)) {
    problems.push({ path: ['infra', 'stack'], message: `the default stack name '${stack}' is too long: give infra.stack, 2-32 lowercase letters, digits and dashes` });
  }
  return problems;
}

/** The stack name: infra.stack, or fedflow-<federation>. */
export function stackName(federation: string, infra: InfraConfig | undefined): string {
  return infra?.stack ?? `fedflow-${federation}`;
}

/** The addresses the agent port admits at `siteId`: every other site's egress (default: its cidr). */
export function peerIngressCidrs(siteId: string, sites: SiteLike[]): string[] {
  const out = sites.filter((s) => s.id !== siteId).flatMap((s) => s.infra?.egressCidrs ?? (s.infra?.cidr ? [s.infra.cidr] : []));
  return [...new Set(out)];
}
