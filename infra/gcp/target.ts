/**
 * `--target gcp`: for each gcp site, a custom-mode network, a subnetwork, a firewall rule that
 * admits the agent port from the other sites only, and the agent's instance booting the site's
 * user-data, through @google-cloud/compute. Compute Engine has no stack of its own, so each
 * resource is read first and inserted, patched or kept (idempotent); `plan` is the same diff
 * without the writes. Every resource carries the stack: labels where Compute Engine has them
 * (the instance), `fedflow-stack=<stack>` in the description where it has none (network,
 * subnetwork, firewall), and `down` deletes only what carries it. The instance runs as the
 * site's own service account, bound to a custom role of the adapter's calls (./identity.ts).
 *
 * A failure during `up` undoes what that run created, in reverse, so nothing is left half-made;
 * except when the failure is IAM not having propagated the account this run created (after the
 * retries of ./identity.ts): then the identity stays, so the next `up` goes on from it.
 *
 * An existing instance whose service account differs is changed in place (stop, setServiceAccount,
 * start), never replaced: its boot disk holds /var/lib/fedflow (chunks, workloads, the federation
 * log replica), and a replaced instance's autoDelete boot disk would go with it.
 */
import { FirewallsClient, GlobalOperationsClient, InstancesClient, NetworksClient, RegionOperationsClient, SubnetworksClient, ZoneOperationsClient } from '@google-cloud/compute';
import type { FederationConfig, SiteConfig } from '../../core/federation-config';
import { parseCidr } from '../../core/cidr';
import { defaultSubnet, peerIngressCidrs, stackName } from '../../core/infra-config';
import { parseProviderSettings, type GcpSettings } from '../../core/provider-settings';
import { InfraError, type Change, type InfraAction, type InfraResult } from '../plan';
import { siteUserData } from '../userdata';
import { CLOUD_PLATFORM_SCOPE, GcpIdentity, gcpIdentityDesired, NotPropagatedError, type GcpIdentityEndpoints, type GoogleRequester, type PropagationWait, type UndoStep } from './identity';

type ClientOpts = ConstructorParameters<typeof InstancesClient>[0];

export interface GcpTargetOptions {
  temporalAddress?: string;
  temporalNamespace?: string;
  /** An auth client instead of Application Default Credentials (tests: the fake's static token). */
  authClient?: NonNullable<ClientOpts>['authClient'];
  pollMs?: number;
  timeoutMs?: number;
  /** The IAM and Resource Manager endpoints, instead of Google's (tests: the IAM fake). */
  iamEndpoints?: GcpIdentityEndpoints;
  /** How long calls naming a just-created service account wait for IAM to propagate it (tests shorten it). */
  propagation?: PropagationWait;
}

export const GCP_CREDENTIAL_CHAIN =
  'Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS (a key file), the site\'s settings.credentialRef (a key file), gcloud\'s ~/.config/gcloud/application_default_credentials.json (gcloud auth application-default login), the metadata server of a GCE/GKE/Cloud Run host';

const marker = (stack: string) => `fedflow-stack=${stack}`;
const label = (s: string) => s.toLowerCase().replace(/[^a-z0-9_-]/g, '_').slice(0, 63);

interface Clients {
  networks: NetworksClient;
  subnetworks: SubnetworksClient;
  firewalls: FirewallsClient;
  instances: InstancesClient;
  globalOps: GlobalOperationsClient;
  regionOps: RegionOperationsClient;
  zoneOps: ZoneOperationsClient;
}

/** What one site should have: each resource as Compute Engine's JSON, in creation order. */
export function gcpDesired(config: FederationConfig, site: SiteConfig, o: GcpTargetOptions = {}) {
  const s = parseProviderSettings('gcp', site.settings, site.id);
  const stack = `${stackName(config.federation, config.infra)}-${label(site.id.slice(site.id.indexOf(':') + 1))}`.slice(0, 50).replace(/-+$/, '');
  const cidr = site.infra?.cidr;
  if (!cidr) throw new InfraError(`site '${site.id}' has no infra.cidr`, 'InvalidInfraConfig');
  const region = s.zone.replace(/-[a-z]$/, '');
  const port = config.infra?.agentPort ?? 7443;
  const net = `projects/${s.project}/global/networks/${stack}-net`;
  const subnet = `projects/${s.project}/regions/${region}/subnetworks/${stack}-subnet`;
  const tag = `${stack}-agent`;
  const identity = gcpIdentityDesired(s.project, stack, site.id);
  return {
    settings: s,
    region,
    stack,
    identity,
    network: { name: `${stack}-net`, description: `${marker(stack)} fedflow network of ${site.id}`, autoCreateSubnetworks: false, routingConfig: { routingMode: 'REGIONAL' } },
    subnetwork: { name: `${stack}-subnet`, description: `${marker(stack)} fedflow subnetwork of ${site.id}`, network: net, ipCidrRange: site.infra?.subnetCidr ?? defaultSubnet(parseCidr(cidr)!), region },
    firewall: {
      name: `${stack}-agent-port`,
      description: `${marker(stack)} fedflow agent port of ${site.id}, from the other sites only`,
      network: net,
      direction: 'INGRESS',
      priority: 1000,
      allowed: [{ IPProtocol: 'tcp', ports: [String(port)] }],
      sourceRanges: peerIngressCidrs(site.id, config.sites),
      targetTags: [tag],
    },
    instance: {
      name: `${stack}-agent`,
      description: `${marker(stack)} fedflow agent of ${site.id}`,
      machineType: `zones/${s.zone}/machineTypes/${s.machineType}`,
      labels: { 'fedflow-stack': label(stack), 'fedflow-site': label(site.id) },
      tags: { items: [tag] },
      disks: [{ boot: true, autoDelete: true, initializeParams: { sourceImage: s.image, diskName: `${stack}-agent-boot` } }],
      networkInterfaces: [{ network: net, subnetwork: subnet, ...(site.infra?.internetGateway === false ? {} : { accessConfigs: [{ name: 'external-nat', type: 'ONE_TO_ONE_NAT' }] }) }],
      metadata: { items: [{ key: 'user-data', value: siteUserData(site.id, o.temporalAddress, o.temporalNamespace, config.infra?.release) }] },
      serviceAccounts: [{ email: identity.email, scopes: [CLOUD_PLATFORM_SCOPE] }],
    },
  };
}

/**
 * The clients of one site. Credentials are resolved once, up front, through the first client's
 * GoogleAuth (Application Default Credentials, or the key file of settings.credentialRef), and
 * that auth client is shared: a missing credential is then one clear error before any call.
 */
async function clientsFor(s: GcpSettings, o: GcpTargetOptions, site: string): Promise<Clients> {
  const opts: NonNullable<ClientOpts> = { fallback: true };
  if (s.endpoint) {
    const u = new URL(s.endpoint);
    Object.assign(opts, { apiEndpoint: u.hostname, port: Number(u.port || (u.protocol === 'http:' ? 80 : 443)), protocol: u.protocol.replace(':', '') });
  }
  if (o.authClient) opts.authClient = o.authClient;
  else {
    if (s.credentialRef) opts.keyFilename = s.credentialRef;
    const probe = new NetworksClient(opts);
    try {
      opts.authClient = (await probe.auth.getClient()) as NonNullable<ClientOpts>['authClient'];
    } catch (err) {
      throw gcpError(err, 'credentials', site);
    }
  }
  return {
    networks: new NetworksClient(opts),
    subnetworks: new SubnetworksClient(opts),
    firewalls: new FirewallsClient(opts),
    instances: new InstancesClient(opts),
    globalOps: new GlobalOperationsClient(opts),
    regionOps: new RegionOperationsClient(opts),
    zoneOps: new ZoneOperationsClient(opts),
  };
}

const httpStatus = (err: unknown): number | undefined => {
  const e = err as { code?: number; status?: number };
  // REST fallback errors carry the HTTP status in `code` (404) or a gRPC code (5 = NOT_FOUND).
  if (e.code === 404 || e.code === 5) return 404;
  return e.code ?? e.status;
};

export function gcpError(err: unknown, what: string, site: string): InfraError {
  const m = (err as Error).message ?? String(err);
  if (/Could not load the default credentials|Unable to detect a Project Id|invalid_grant|Could not refresh access token/i.test(m)) {
    return new InfraError(`gcp ${what} for site '${site}': no Google credentials found; the chain tried: ${GCP_CREDENTIAL_CHAIN}. Run gcloud auth application-default login, or set GOOGLE_APPLICATION_CREDENTIALS`, 'MissingCredentials', undefined, { cause: err });
  }
  return new InfraError(`gcp ${what} for site '${site}' failed: ${m}`, 'ProviderError', undefined, { cause: err });
}

class GcpSite {
  constructor(
    private readonly c: Clients,
    private readonly d: ReturnType<typeof gcpDesired>,
    private readonly site: string,
    private readonly o: GcpTargetOptions,
    private readonly identity: GcpIdentity,
  ) {}

  private get project() {
    return this.d.settings.project;
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw gcpError(err, what, this.site);
    }
  }

  /** The resource, or undefined on 404. */
  private async get<T>(what: string, fn: () => Promise<[T, ...unknown[]]>): Promise<T | undefined> {
    try {
      return (await fn())[0];
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw gcpError(err, what, this.site);
    }
  }

  /** Waits for an operation to be DONE; its error, if any, names the resource and Compute Engine's reason. */
  private async wait(what: string, first: unknown, poll: (name: string) => Promise<unknown>): Promise<void> {
    const lro = first as { latestResponse?: { name?: string; status?: string | number; error?: unknown } };
    let op = lro.latestResponse ?? (first as { name?: string; status?: string; error?: unknown });
    const deadline = Date.now() + (this.o.timeoutMs ?? 600_000);
    while (op.status !== 'DONE' && op.status !== 3) {
      if (Date.now() > deadline) throw new InfraError(`gcp ${what} for site '${this.site}': operation ${op.name} not done after the timeout`, 'ProviderError');
      await new Promise((r) => setTimeout(r, this.o.pollMs ?? 1_000));
      const name = op.name!;
      op = (await this.call(`${what}: operations.get`, () => poll(name)) as [typeof op])[0];
    }
    const errors = (op.error as { errors?: { code?: string; message?: string }[] } | undefined)?.errors;
    if (errors?.length) throw new InfraError(`gcp ${what} for site '${this.site}' failed: ${errors.map((e) => `${e.code}: ${e.message}`).join('; ')}`, 'StackFailed');
  }

  private gop = (name: string) => this.c.globalOps.get({ project: this.project, operation: name });
  private rop = (name: string) => this.c.regionOps.get({ project: this.project, region: this.d.region, operation: name });
  private zop = (name: string) => this.c.zoneOps.get({ project: this.project, zone: this.d.settings.zone, operation: name });

  async run(action: InfraAction): Promise<Change[]> {
    if (action === 'down') return this.down();
    const { network, subnetwork, firewall, instance } = this.d;
    const p = this.project;
    const zone = this.d.settings.zone;
    const changes: Change[] = [];
    /** Undo steps for what this run created, pushed after each create succeeds. */
    const undo: UndoStep[] = [];
    try {
      const net = await this.get(`networks.get(${network.name})`, () => this.c.networks.get({ project: p, network: network.name }));
      if (net && !String(net.description ?? '').includes(marker(this.d.stack))) throw new InfraError(`gcp network ${network.name} exists but was not made by stack ${this.d.stack} (its description lacks ${marker(this.d.stack)}); choose another infra.stack`, 'InvalidInfraConfig');
      changes.push({ action: net ? 'keep' : 'create', kind: 'compute#network', name: network.name });
      if (!net && action === 'up') {
        const [op] = await this.call(`networks.insert(${network.name})`, () => this.c.networks.insert({ project: p, networkResource: network }));
        await this.wait(`networks.insert(${network.name})`, op, this.gop);
        undo.push({ what: `network ${network.name}`, run: () => this.deleteNetwork() });
      }

      const sub = net ? await this.get(`subnetworks.get(${subnetwork.name})`, () => this.c.subnetworks.get({ project: p, region: this.d.region, subnetwork: subnetwork.name })) : undefined;
      if (sub && sub.ipCidrRange !== subnetwork.ipCidrRange) {
        throw new InfraError(`gcp subnetwork ${subnetwork.name} has range ${sub.ipCidrRange}, the config asks for ${subnetwork.ipCidrRange}: a range cannot be changed in place; run down, then up`, 'InvalidInfraConfig');
      }
      changes.push({ action: sub ? 'keep' : 'create', kind: 'compute#subnetwork', name: subnetwork.name, detail: subnetwork.ipCidrRange });
      if (!sub && action === 'up') {
        const [op] = await this.call(`subnetworks.insert(${subnetwork.name})`, () => this.c.subnetworks.insert({ project: p, region: this.d.region, subnetworkResource: subnetwork }));
        await this.wait(`subnetworks.insert(${subnetwork.name})`, op, this.rop);
        undo.push({ what: `subnetwork ${subnetwork.name}`, run: () => this.deleteSubnetwork() });
      }

      const fw = net ? await this.get(`firewalls.get(${firewall.name})`, () => this.c.firewalls.get({ project: p, firewall: firewall.name })) : undefined;
      const fwDiff = fw ? firewallDiff(fw, firewall) : [];
      changes.push({ action: !fw ? 'create' : fwDiff.length ? 'update' : 'keep', kind: 'compute#firewall', name: firewall.name, detail: fwDiff.length ? fwDiff.join(', ') : `tcp:${firewall.allowed[0]!.ports[0]} from ${firewall.sourceRanges.join(', ')}` });
      if (action === 'up' && !fw) {
        const [op] = await this.call(`firewalls.insert(${firewall.name})`, () => this.c.firewalls.insert({ project: p, firewallResource: firewall }));
        await this.wait(`firewalls.insert(${firewall.name})`, op, this.gop);
        undo.push({ what: `firewall ${firewall.name}`, run: () => this.deleteFirewall() });
      } else if (action === 'up' && fwDiff.length) {
        const [op] = await this.call(`firewalls.patch(${firewall.name})`, () => this.c.firewalls.patch({ project: p, firewall: firewall.name, firewallResource: { allowed: firewall.allowed, sourceRanges: firewall.sourceRanges, targetTags: firewall.targetTags } }));
        await this.wait(`firewalls.patch(${firewall.name})`, op, this.gop);
      }

      await this.identity.up(action, changes, undo);

      const inst = net ? await this.get(`instances.get(${instance.name})`, () => this.c.instances.get({ project: p, zone, instance: instance.name })) : undefined;
      const wantMt = instance.machineType.split('/').pop();
      const replace = inst && String(inst.machineType ?? '').split('/').pop() !== wantMt;
      const haveSa = inst?.serviceAccounts?.[0]?.email ?? 'none';
      const wantSa = instance.serviceAccounts[0]!;
      const saChange = inst && !replace && haveSa !== wantSa.email;
      const userData = instance.metadata.items[0]!.value;
      const currentUd = inst?.metadata?.items?.find((i) => i.key === 'user-data')?.value;
      const metaChange = inst && !replace && currentUd !== userData;
      const wasStopped = inst?.status === 'TERMINATED';
      const detail = [
        replace ? `machine type ${String(inst?.machineType).split('/').pop()} -> ${wantMt}: replaced` : '',
        saChange ? `service account ${haveSa} -> ${wantSa.email}: in place (instances.stop, setServiceAccount${wasStopped ? '' : ', start'}; the boot disk is kept)` : '',
        metaChange ? 'user-data' : '',
      ].filter(Boolean).join('; ');
      changes.push({ action: !inst ? 'create' : replace || saChange || metaChange ? 'update' : 'keep', kind: 'compute#instance', name: instance.name, detail: detail || undefined });
      if (action === 'up') {
        if (replace) await this.deleteInstance();
        if (!inst || replace) {
          await this.identity.usingAccount(async () => {
            const [op] = await this.call(`instances.insert(${instance.name})`, () => this.c.instances.insert({ project: p, zone, instanceResource: instance }));
            await this.wait(`instances.insert(${instance.name})`, op, this.zop);
          });
        }
        if (saChange) await this.setServiceAccount(wantSa, wasStopped);
        if (metaChange) {
          const [op] = await this.call(`instances.setMetadata(${instance.name})`, () => this.c.instances.setMetadata({ project: p, zone, instance: instance.name, metadataResource: { fingerprint: inst.metadata?.fingerprint, items: instance.metadata.items } }));
          await this.wait(`instances.setMetadata(${instance.name})`, op, this.zop);
        }
      }
      return changes;
    } catch (err) {
      if (!undo.length) throw err;
      // A new account IAM had not propagated in time: deleting it would make the next up create it
      // again and race again, so the identity (marked with the stack; down removes it) is kept.
      const keep = err instanceof NotPropagatedError ? undo.filter((u) => u.identity) : [];
      // Undo this run's other creates, newest first; a failing undo is reported beside the cause.
      const leftovers: string[] = [];
      for (const step of undo.filter((u) => !keep.includes(u)).reverse()) await step.run().catch((e: unknown) => leftovers.push((e as Error).message));
      const cause = err as Error;
      const kept = keep.length ? `, kept ${keep.map((u) => u.what).join(', ')} for the next up to go on from (down removes them)` : '';
      throw new InfraError(
        `${cause.message}; rolled back what this run created${kept}${leftovers.length ? `, except: ${leftovers.join('; ')} (run down to finish)` : keep.length ? '' : ', nothing is left'}`,
        cause instanceof InfraError ? cause.type : 'StackFailed',
        undefined,
        { cause: err },
      );
    }
  }

  /**
   * Changes the instance's service account in place, as Compute Engine allows it only while the
   * instance is stopped: stop, setServiceAccount, then start again (unless it was stopped before).
   * The instance keeps its id and its boot disk. If setServiceAccount fails, the instance is started
   * again with its old account before the error is reported.
   */
  private async setServiceAccount(sa: { email: string; scopes: string[] }, wasStopped: boolean): Promise<void> {
    const { name } = this.d.instance;
    const req = { project: this.project, zone: this.d.settings.zone, instance: name };
    const start = async () => {
      const [op] = await this.call(`instances.start(${name})`, () => this.c.instances.start(req));
      await this.wait(`instances.start(${name})`, op, this.zop);
    };
    const [stopOp] = await this.call(`instances.stop(${name})`, () => this.c.instances.stop(req));
    await this.wait(`instances.stop(${name})`, stopOp, this.zop);
    try {
      await this.identity.usingAccount(async () => {
        const [op] = await this.call(`instances.setServiceAccount(${name})`, () => this.c.instances.setServiceAccount({ ...req, instancesSetServiceAccountRequestResource: { email: sa.email, scopes: sa.scopes } }));
        await this.wait(`instances.setServiceAccount(${name})`, op, this.zop);
      });
    } catch (err) {
      if (!wasStopped) await start().catch(() => undefined);
      throw err;
    }
    if (!wasStopped) await start();
  }

  /** Deletes a resource; 404 (gone already, e.g. an interrupted down) is success. Returns whether it existed. */
  private async del(what: string, fn: () => Promise<[unknown, ...unknown[]]>, poll: (n: string) => Promise<unknown>): Promise<boolean> {
    let op: unknown;
    try {
      [op] = await fn();
    } catch (err) {
      if (httpStatus(err) === 404) return false;
      throw gcpError(err, what, this.site);
    }
    await this.wait(what, op, poll);
    return true;
  }

  private deleteInstance = () => this.del(`instances.delete(${this.d.instance.name})`, () => this.c.instances.delete({ project: this.project, zone: this.d.settings.zone, instance: this.d.instance.name }), this.zop).then(() => undefined);
  private deleteFirewall = () => this.del(`firewalls.delete(${this.d.firewall.name})`, () => this.c.firewalls.delete({ project: this.project, firewall: this.d.firewall.name }), this.gop).then(() => undefined);
  private deleteSubnetwork = () => this.del(`subnetworks.delete(${this.d.subnetwork.name})`, () => this.c.subnetworks.delete({ project: this.project, region: this.d.region, subnetwork: this.d.subnetwork.name }), this.rop).then(() => undefined);
  private deleteNetwork = () => this.del(`networks.delete(${this.d.network.name})`, () => this.c.networks.delete({ project: this.project, network: this.d.network.name }), this.gop).then(() => undefined);

  /** Deletes, in reverse order of creation, each resource that carries this stack; others are left alone. */
  private async down(): Promise<Change[]> {
    const { network, subnetwork, firewall, instance } = this.d;
    const p = this.project;
    const mine = (desc: string | null | undefined) => String(desc ?? '').includes(marker(this.d.stack));
    const changes: Change[] = [];
    const inst = await this.get(`instances.get(${instance.name})`, () => this.c.instances.get({ project: p, zone: this.d.settings.zone, instance: instance.name }));
    const instMine = inst && inst.labels?.['fedflow-stack'] === instance.labels['fedflow-stack'];
    if (instMine) await this.deleteInstance();
    changes.push({ action: instMine ? 'delete' : 'keep', kind: 'compute#instance', name: instance.name, detail: inst && !instMine ? 'not labelled with this stack' : inst ? undefined : 'not there' });
    const steps: [string, string, () => Promise<{ description?: string | null } | undefined>, () => Promise<void>][] = [
      ['compute#firewall', firewall.name, () => this.get('firewalls.get', () => this.c.firewalls.get({ project: p, firewall: firewall.name })), this.deleteFirewall],
      ['compute#subnetwork', subnetwork.name, () => this.get('subnetworks.get', () => this.c.subnetworks.get({ project: p, region: this.d.region, subnetwork: subnetwork.name })), this.deleteSubnetwork],
      ['compute#network', network.name, () => this.get('networks.get', () => this.c.networks.get({ project: p, network: network.name })), this.deleteNetwork],
    ];
    for (const [kind, name, get, del] of steps) {
      const r = await get();
      const ours = r && mine(r.description);
      if (ours) await del();
      changes.push({ action: ours ? 'delete' : 'keep', kind, name, detail: r && !ours ? `not made by stack ${this.d.stack}` : r ? undefined : 'not there' });
    }
    await this.identity.down(changes);
    return changes;
  }
}

function firewallDiff(have: { sourceRanges?: string[] | null; allowed?: { IPProtocol?: string | null; ports?: string[] | null }[] | null; targetTags?: string[] | null }, want: { sourceRanges: string[]; allowed: { IPProtocol: string; ports: string[] }[]; targetTags: string[] }): string[] {
  const norm = (a: readonly string[] | null | undefined) => [...(a ?? [])].sort().join(',');
  const out: string[] = [];
  if (norm(have.sourceRanges) !== norm(want.sourceRanges)) out.push(`source ranges ${norm(have.sourceRanges)} -> ${norm(want.sourceRanges)}`);
  const allowed = (x: { IPProtocol?: string | null; ports?: string[] | null }[] | null | undefined) => (x ?? []).map((a) => `${a.IPProtocol}:${norm(a.ports)}`).sort().join(' ');
  if (allowed(have.allowed) !== allowed(want.allowed)) out.push(`allowed ${allowed(have.allowed)} -> ${allowed(want.allowed)}`);
  if (norm(have.targetTags) !== norm(want.targetTags)) out.push('target tags');
  return out;
}

export async function gcpTarget(action: InfraAction, config: FederationConfig, o: GcpTargetOptions = {}): Promise<InfraResult> {
  if (!config.infra) throw new InfraError('the federation config has no infra section: add one (README, "Deploy to your clouds")', 'InvalidInfraConfig');
  const sites = config.sites.filter((s) => s.provider === 'gcp');
  if (!sites.length) throw new InfraError(`the federation has no gcp site (sites: ${config.sites.map((s) => s.id).join(', ')})`, 'InvalidInfraConfig');
  const planned = sites.map((site) => ({ site, desired: gcpDesired(config, site, o) }));
  const result: InfraResult = { target: 'gcp', action, changes: [] };
  for (const { site, desired } of planned) {
    const clients = await clientsFor(desired.settings, o, site.id);
    try {
      // The compute clients' auth client (resolved once in clientsFor) also signs the IAM calls.
      // (the SDK keeps a given auth client as `auth` itself, or a GoogleAuth that hands it out).
      const a = clients.networks.auth as unknown as GoogleRequester | { getClient(): Promise<GoogleRequester> };
      const auth = 'getClient' in a ? await a.getClient() : a;
      const identity = new GcpIdentity(auth, desired.identity, site.id, o.iamEndpoints, o.propagation);
      result.changes.push(...(await new GcpSite(clients, desired, site.id, o, identity).run(action)));
    } finally {
      // A client whose auth failed rejects close() with the same error: already reported.
      await Promise.all(Object.values(clients).map((c: { close(): Promise<void> }) => c.close().catch(() => undefined)));
    }
  }
  return result;
}
