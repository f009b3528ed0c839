/**
 * `--target aws`: one CloudFormation stack per aws site of the federation, named
 * `<infra.stack>-<region>`, in the site's region, with the site's settings (profile, endpoint).
 */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import type { FederationConfig, SiteConfig } from '../../core/federation-config';
import { defaultSubnet, peerIngressCidrs, stackName } from '../../core/infra-config';
import { parseCidr } from '../../core/cidr';
import { parseProviderSettings } from '../../core/provider-settings';
import { InfraError, type InfraAction, type InfraResult } from '../plan';
import { siteUserData } from '../userdata';
import { AwsStack } from './stack';
import { awsSiteTemplate } from './template';

export interface AwsTargetOptions {
  temporalAddress?: string;
  temporalNamespace?: string;
  pollMs?: number;
  timeoutMs?: number;
}

export function awsStackName(config: FederationConfig, site: SiteConfig): string {
  return `${stackName(config.federation, config.infra)}-${site.id.slice(site.id.indexOf(':') + 1)}`;
}

/** The template of one aws site, as `up` would submit it. */
export function awsTemplateFor(config: FederationConfig, site: SiteConfig, o: AwsTargetOptions = {}): object {
  const s = parseProviderSettings('aws', site.settings, site.id);
  const cidr = site.infra?.cidr;
  if (!cidr) throw new InfraError(`site '${site.id}' has no infra.cidr`, 'InvalidInfraConfig');
  const cw = config.infra?.controlWorker;
  const namespace = o.temporalNamespace;
  return awsSiteTemplate({
    stack: awsStackName(config, site),
    siteId: site.id,
    cidr,
    subnetCidr: site.infra?.subnetCidr ?? defaultSubnet(parseCidr(cidr)!),
    agentPort: config.infra?.agentPort ?? 7443,
    peerCidrs: peerIngressCidrs(site.id, config.sites),
    imageId: s.imageId,
    instanceType: s.instanceType,
    internetGateway: site.infra?.internetGateway ?? true,
    userData: siteUserData(site.id, o.temporalAddress, namespace, config.infra?.release),
    controlWorker:
      cw && cw.site === site.id
        ? {
            codeBucket: cw.codeBucket,
            codeKey: cw.codeKey,
            memoryMb: cw.memoryMb,
            timeoutSeconds: cw.timeoutSeconds,
            environment: { ...(o.temporalAddress ? { TEMPORAL_ADDRESS: o.temporalAddress } : {}), ...(namespace ? { TEMPORAL_NAMESPACE: namespace } : {}) },
            invoker: cw.invoker,
          }
        : undefined,
  });
}

export async function awsTarget(action: InfraAction, config: FederationConfig, o: AwsTargetOptions = {}): Promise<InfraResult> {
  const sites = config.sites.filter((s) => s.provider === 'aws');
  if (!config.infra) throw new InfraError('the federation config has no infra section: add one (README, "Deploy to your clouds")', 'InvalidInfraConfig');
  if (!sites.length) throw new InfraError(`the federation has no aws site (sites: ${config.sites.map((s) => s.id).join(', ')})`, 'InvalidInfraConfig');
  const result: InfraResult = { target: 'aws', action, changes: [], outputs: {} };
  // Every template is built before any call: a site whose input is wrong stops the run with nothing created.
  const planned = sites.map((site) => ({ site, template: awsTemplateFor(config, site, o) }));
  for (const { site, template } of planned) {
    const s = parseProviderSettings('aws', site.settings, site.id);
    const client = new CloudFormationClient({ region: s.region, ...(s.profile ? { profile: s.profile } : {}), ...(s.endpoint ? { endpoint: s.endpoint } : {}), maxAttempts: 4 });
    try {
      const name = awsStackName(config, site);
      const r = await new AwsStack({ client, stackName: name, template, site: site.id, pollMs: o.pollMs, timeoutMs: o.timeoutMs }).run(action);
      result.changes.push(...r.changes.map((c) => ({ ...c, name: c.name === name ? name : `${name}/${c.name}` })));
      for (const [k, v] of Object.entries(r.outputs ?? {})) result.outputs![`${site.id}.${k}`] = v;
    } finally {
      client.destroy();
    }
  }
  return result;
}
