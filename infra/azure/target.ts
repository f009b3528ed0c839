/**
 * `--target azure`: one ARM deployment per azure site (named after the stack, in the site's
 * resource group) through @azure/arm-resourcesdeployments, as `az deployment group create` does.
 * `plan` is what-if; `up` runs what-if first and deploys only when it shows a change, so a
 * second `up` changes nothing; `down` deletes the resources the deployment made (dependents
 * first: the VM through @azure/arm-compute, the rest by id through the same client's pipeline),
 * then the deployment record. ARM does not undo a failed first deployment, so `up` deletes what
 * it made and names the resource that failed with ARM's reason.
 */
import type { Agent } from 'node:https';
import { ComputeManagementClient } from '@azure/arm-compute';
import { DeploymentsClient } from '@azure/arm-resourcesdeployments';
import { createDefaultHttpClient, createPipelineRequest } from '@azure/core-rest-pipeline';
import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import type { FederationConfig, SiteConfig } from '../../core/federation-config';
import { parseCidr } from '../../core/cidr';
import { defaultSubnet, peerIngressCidrs, stackName } from '../../core/infra-config';
import { parseProviderSettings, type AzureSettings } from '../../core/provider-settings';
import { InfraError, type Change, type InfraAction, type InfraResult } from '../plan';
import { siteUserData } from '../userdata';
import { AZURE_API_VERSIONS, AZURE_DELETE_ORDER, azureSiteTemplate } from './template';

export interface AzureTargetOptions {
  temporalAddress?: string;
  temporalNamespace?: string;
  /** A credential instead of DefaultAzureCredential (tests: the fake's static token). */
  credential?: TokenCredential;
  /** TLS agent trusting the fake's CA (tests). */
  agent?: Agent;
}

export const AZURE_CREDENTIAL_CHAIN =
  'DefaultAzureCredential: environment (AZURE_TENANT_ID with AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH), workload identity (AZURE_FEDERATED_TOKEN_FILE), managed identity (the site\'s settings.credentialRef as its client id), Azure CLI (az login), Azure PowerShell, Azure Developer CLI (azd auth login)';

export function azureStackName(config: FederationConfig, site: SiteConfig): string {
  return `${stackName(config.federation, config.infra)}-${site.id.slice(site.id.indexOf(':') + 1)}`.slice(0, 50).replace(/-+$/, '');
}

export function azureTemplateFor(config: FederationConfig, site: SiteConfig, o: AzureTargetOptions = {}): { settings: AzureSettings; stack: string; template: object } {
  const s = parseProviderSettings('azure', site.settings, site.id);
  const problems: string[] = [];
  if (!s.adminUsername) problems.push(`sites.${site.id}.settings.adminUsername: is required for infra (the agent VM's Linux user), e.g. fedflow`);
  if (!s.sshPublicKey) problems.push(`sites.${site.id}.settings.sshPublicKey: is required for infra (Azure Linux VMs take a key, not a password), e.g. ssh-ed25519 AAAA...`);
  if (!site.infra?.cidr) problems.push(`sites.${site.id}.infra.cidr: is required`);
  if (problems.length) throw new InfraError(`azure site '${site.id}' cannot be deployed:\n${problems.map((p) => `  - ${p}`).join('\n')}`, 'InvalidInfraConfig', problems);
  const stack = azureStackName(config, site);
  const template = azureSiteTemplate({
    stack,
    siteId: site.id,
    location: s.location,
    cidr: site.infra!.cidr!,
    subnetCidr: site.infra?.subnetCidr ?? defaultSubnet(parseCidr(site.infra!.cidr!)!),
    agentPort: config.infra?.agentPort ?? 7443,
    peerCidrs: peerIngressCidrs(site.id, config.sites),
    image: s.image,
    vmSize: s.vmSize,
    adminUsername: s.adminUsername!,
    sshPublicKey: s.sshPublicKey!,
    userData: siteUserData(site.id, o.temporalAddress, o.temporalNamespace, config.infra?.release),
    publicIp: site.infra?.internetGateway ?? true,
  });
  return { settings: s, stack, template };
}

const statusOf = (err: unknown) => (err as { statusCode?: number }).statusCode;

export function azureError(err: unknown, what: string, site: string): InfraError {
  const e = err as { name?: string; message?: string; code?: string };
  if (e.name === 'CredentialUnavailableError' || e.name === 'AggregateAuthenticationError' || /CredentialUnavailable|DefaultAzureCredential/.test(e.message ?? '')) {
    return new InfraError(`azure ${what} for site '${site}': no Azure credentials found; the chain tried: ${AZURE_CREDENTIAL_CHAIN}. Run az login, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET`, 'MissingCredentials', undefined, { cause: err });
  }
  return new InfraError(`azure ${what} for site '${site}' failed: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`, 'ProviderError', undefined, { cause: err });
}

class AzureSite {
  private readonly deployments: DeploymentsClient;
  private readonly compute: ComputeManagementClient;

  constructor(
    private readonly s: AzureSettings,
    private readonly stack: string,
    private readonly template: object,
    private readonly site: string,
    o: AzureTargetOptions,
  ) {
    const credential = o.credential ?? new DefaultAzureCredential(s.credentialRef ? { managedIdentityClientId: s.credentialRef } : {});
    const common = { ...(s.endpoint ? { endpoint: s.endpoint } : {}), ...(o.agent ? { agent: o.agent } : {}), retryOptions: { maxRetries: 3, retryDelayInMs: 500 } };
    this.deployments = new DeploymentsClient(credential, s.subscriptionId, common);
    this.compute = new ComputeManagementClient(credential, s.subscriptionId, common);
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw azureError(err, what, this.site);
    }
  }

  private async whatIf(): Promise<Change[]> {
    const r = await this.call(`deployments.whatIf(${this.stack})`, () =>
      this.deployments.deployments.whatIf(this.s.resourceGroup, this.stack, { properties: { mode: 'Incremental', template: this.template } }).pollUntilDone(),
    );
    if (r.error) throw new InfraError(`azure what-if of ${this.stack} (site '${this.site}') failed: ${r.error.code}: ${r.error.message}`, 'StackFailed');
    const action = (t: string | undefined): Change['action'] => (t === 'Create' ? 'create' : t === 'Delete' ? 'delete' : t === 'Modify' || t === 'Deploy' ? 'update' : 'keep');
    return (r.changes ?? []).map((c) => {
      const parts = (c.resourceId ?? '').split('/providers/')[1]?.split('/') ?? [];
      return { action: action(c.changeType), kind: `${parts[0]}/${parts[1]}`, name: parts[2] ?? c.resourceId ?? '?' };
    });
  }

  async run(action: InfraAction): Promise<Change[]> {
    if (action === 'down') return this.down();
    const changes = await this.whatIf();
    if (action === 'plan' || changes.every((c) => c.action === 'keep')) return changes;
    const existedBefore = await this.deploymentExists();
    let failed: { state?: string; error?: { code?: string; message?: string; details?: { code?: string; message?: string }[] } } | undefined;
    try {
      const d = await this.deployments.deployments.createOrUpdate(this.s.resourceGroup, this.stack, { properties: { mode: 'Incremental', template: this.template } }).pollUntilDone();
      if (d.properties?.provisioningState !== 'Succeeded') failed = { state: d.properties?.provisioningState, error: d.properties?.error };
    } catch (err) {
      const e = err as { message?: string; code?: string };
      if (e.code === undefined && statusOf(err) === undefined && !/DeploymentFailed|failed/i.test(e.message ?? '')) throw azureError(err, `deployments.createOrUpdate(${this.stack})`, this.site);
      failed = { state: 'Failed', error: { code: e.code, message: e.message } };
    }
    if (!failed) return changes;
    const cause = await this.failedOperation();
    let after = '';
    if (!existedBefore) {
      // A first deployment has no earlier one to return to: delete what it made, so nothing is left.
      await this.down();
      after = '; what it created was deleted, nothing is left';
    } else {
      after = '; the resources of the earlier deployment are as they were before this run or updated in place (ARM has no rollback of an incremental deployment)';
    }
    throw new InfraError(`azure deployment ${this.stack} (site '${this.site}') failed: ${cause ?? `${failed.error?.code}: ${failed.error?.message}`}${after}`, 'StackFailed');
  }

  private async deploymentExists(): Promise<boolean> {
    try {
      await this.deployments.deployments.get(this.s.resourceGroup, this.stack);
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw azureError(err, `deployments.get(${this.stack})`, this.site);
    }
  }

  /** The first failed operation: the resource and ARM's reason. */
  private async failedOperation(): Promise<string | undefined> {
    for await (const op of this.deployments.deploymentOperations.list(this.s.resourceGroup, this.stack)) {
      const p = op.properties;
      if (p?.provisioningState === 'Failed') {
        const err = (p.statusMessage as { error?: { code?: string; message?: string } } | undefined)?.error;
        return `resource ${p.targetResource?.resourceName} (${p.targetResource?.resourceType}) failed: ${err?.code}: ${err?.message}`;
      }
    }
    return undefined;
  }

  /** Deletes the deployment's resources, dependents first, then its record; 404s are fine (a rerun). */
  private async down(): Promise<Change[]> {
    let ids: string[];
    try {
      const d = await this.deployments.deployments.get(this.s.resourceGroup, this.stack);
      ids = (d.properties?.outputResources ?? []).map((r) => r.id!).filter(Boolean);
    } catch (err) {
      if (statusOf(err) === 404) return [{ action: 'keep', kind: 'Microsoft.Resources/deployments', name: this.stack, detail: 'not there' }];
      throw azureError(err, `deployments.get(${this.stack})`, this.site);
    }
    const typeOf = (id: string) => {
      const parts = id.split('/providers/')[1]!.split('/');
      return `${parts[0]}/${parts[1]}`;
    };
    const rank = (id: string) => {
      const i = AZURE_DELETE_ORDER.findIndex((t) => t.toLowerCase() === typeOf(id).toLowerCase());
      return i < 0 ? AZURE_DELETE_ORDER.length : i;
    };
    const changes: Change[] = [];
    for (const id of [...ids].sort((a, b) => rank(a) - rank(b))) {
      const type = typeOf(id);
      const name = id.split('/').pop()!;
      if (type.toLowerCase() === 'microsoft.compute/virtualmachines') {
        await this.call(`virtualMachines.delete(${name})`, () => this.compute.virtualMachines.beginDeleteAndWait(this.s.resourceGroup, name));
      } else {
        const version = Object.entries(AZURE_API_VERSIONS).find(([t]) => t.toLowerCase() === type.toLowerCase())?.[1];
        if (!version) throw new InfraError(`azure down of ${this.stack}: no api-version known for ${type} (${id})`, 'ProviderError');
        const base = this.s.endpoint ?? 'https://management.azure.com';
        const res = await this.call(`DELETE ${id}`, () => this.deployments.pipeline.sendRequest(createDefaultHttpClient(), createPipelineRequest({ url: `${base}${id}?api-version=${version}`, method: 'DELETE' })));
        if (res.status >= 400 && res.status !== 404) throw new InfraError(`azure DELETE ${id} for site '${this.site}' failed: HTTP ${res.status}: ${res.bodyAsText ?? ''}; run down again once the cause is fixed`, 'ProviderError');
      }
      changes.push({ action: 'delete', kind: type, name });
    }
    await this.call(`deployments.delete(${this.stack})`, () => this.deployments.deployments.delete(this.s.resourceGroup, this.stack).pollUntilDone());
    changes.push({ action: 'delete', kind: 'Microsoft.Resources/deployments', name: this.stack });
    return changes;
  }
}

export async function azureTarget(action: InfraAction, config: FederationConfig, o: AzureTargetOptions = {}): Promise<InfraResult> {
  if (!config.infra) throw new InfraError('the federation config has no infra section: add one (README, "Deploy to your clouds")', 'InvalidInfraConfig');
  const sites = config.sites.filter((s) => s.provider === 'azure');
  if (!sites.length) throw new InfraError(`the federation has no azure site (sites: ${config.sites.map((s) => s.id).join(', ')})`, 'InvalidInfraConfig');
  const planned = sites.map((site) => ({ site, ...azureTemplateFor(config, site, o) }));
  const result: InfraResult = { target: 'azure', action, changes: [] };
  for (const p of planned) result.changes.push(...(await new AzureSite(p.settings, p.stack, p.template, p.site.id, o).run(action)));
  return result;
}
