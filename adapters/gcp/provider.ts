/**
 * The `gcp` provider: one Compute Engine zone is one site. Calls go through @google-cloud/compute
 * over its REST transport; credentials come from Application Default Credentials (or a key file
 * named by credentialRef), never from fedflow's config.
 */
import { DisksClient, InstancesClient, RegionsClient, SnapshotsClient, ZoneOperationsClient, protos } from '@google-cloud/compute';
import { ProviderError, ProviderErrorType } from '../common/provider-error';
import { toGcpProviderError } from './errors';
import { IDEMPOTENCY_LABEL, SITE_LABEL, gceSafe, instanceNameFor, keyHash, requestIdFor } from './ids';
import { gceStatus, waitForGceState, waitForOperation, type GceWaitTarget, type PendingOperation } from './wait';
import type { CloudProvider, InstanceRef, InstanceSpec, InstanceState, SiteCapacity, SnapshotRef, VolumeRef, WaitOptions } from '../common/cloud-provider';

type IInstance = protos.google.cloud.compute.v1.IInstance;
type ClientOpts = ConstructorParameters<typeof InstancesClient>[0];

export interface GcpProviderOptions {
  site: string;
  project: string;
  zone: string;
  /** Used when the instance spec has no size: a machine type name such as e2-small. */
  machineType: string;
  /** Default image, used when the instance spec's image is empty. */
  image?: string;
  /** Network self-link or name; the project's default network when absent. */
  network?: string;
  /** Path of a credentials file at the worker (ADC is used when absent). Not a secret itself. */
  credentialRef?: string;
  /** Endpoint override, e.g. http://127.0.0.1:8089 for the test fake. */
  endpoint?: string;
  /** Test hook: an auth client to use instead of ADC (the fakes accept a static token). */
  authClient?: NonNullable<ClientOpts>['authClient'];
  capacityInstances: number;
  /** Attempts per call for retryable errors (gax does not retry 429 on its own). */
  maxAttempts?: number;
  retryBaseMs?: number;
  requestTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class GcpProvider implements CloudProvider, GceWaitTarget {
  readonly kind = 'gcp' as const;
  readonly site: string;
  readonly opts: GcpProviderOptions;
  readonly instances: InstancesClient;
  readonly operations: ZoneOperationsClient;
  private readonly disks: DisksClient;
  private readonly snapshots: SnapshotsClient;
  private readonly regions: RegionsClient;
  /** Operation started by the last start/stop/insert/delete of each instance, for waitFor. */
  readonly pendingOps = new Map<string, PendingOperation>();

  constructor(opts: GcpProviderOptions) {
    this.opts = opts;
    this.site = opts.site;
    const clientOpts: ClientOpts = { fallback: true };
    if (opts.endpoint) {
      const u = new URL(opts.endpoint);
      Object.assign(clientOpts, { apiEndpoint: u.hostname, port: Number(u.port || (u.protocol === 'http:' ? 80 : 443)), protocol: u.protocol.replace(':', '') });
    }
    if (opts.authClient) clientOpts.authClient = opts.authClient;
    else if (opts.credentialRef) clientOpts.keyFilename = opts.credentialRef;
    this.instances = new InstancesClient(clientOpts);
    this.operations = new ZoneOperationsClient(clientOpts);
    this.disks = new DisksClient(clientOpts);
    this.snapshots = new SnapshotsClient(clientOpts);
    this.regions = new RegionsClient(clientOpts);
  }

  async close(): Promise<void> {
    await Promise.all([this.instances, this.operations, this.disks, this.snapshots, this.regions].map((c) => c.close()));
  }

  /**
   * Runs one API call with a per-request timeout and retries retryable failures. Retrying
   * mutations is safe because each carries a requestId the server deduplicates by.
   */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const attempts = this.opts.maxAttempts ?? 4;
    const timeoutMs = this.opts.requestTimeoutMs ?? 30_000;
    for (let attempt = 1; ; attempt++) {
      let timer: NodeJS.Timeout | undefined;
      try {
        // gax's REST transport does not enforce `timeout` on unary calls, so the deadline is ours.
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new ProviderError(ProviderErrorType.Timeout, `gcp ${what} on site '${this.site}' got no answer within ${timeoutMs} ms; the call is retried`, 'gcp')), timeoutMs);
        });
        return await Promise.race([fn(), deadline]);
      } catch (err) {
        const pe = toGcpProviderError(err, this.site, what);
        if (!pe.retryable || attempt >= attempts) throw pe;
        const base = this.opts.retryBaseMs ?? 500;
        await sleep(base * 2 ** (attempt - 1) * (0.5 + Math.random() / 2));
      } finally {
        clearTimeout(timer);
      }
    }
  }

  private get region(): string {
    return this.opts.zone.replace(/-[a-z]$/, '');
  }

  private checkRef(ref: { provider: string; site: string; id: string }, kind: string): void {
    if (ref.provider !== 'gcp' || ref.site !== this.site) {
      throw new ProviderError(
        ProviderErrorType.InvalidParameter,
        `${kind} ref ${ref.provider}:${ref.site}/${ref.id} was given to the gcp provider of site '${this.site}' (expected provider 'gcp', site '${this.site}')`,
        'gcp',
      );
    }
  }

  private ref(id: string): InstanceRef {
    return { provider: 'gcp', site: this.site, id };
  }

  async describeSite(): Promise<SiteCapacity> {
    const [region] = await this.call(`regions.get(${this.region})`, () => this.regions.get({ project: this.opts.project, region: this.region }));
    const q = (metric: string) => region.quotas?.find((x) => x.metric === metric);
    const inst = q('INSTANCES');
    const cpus = q('CPUS');
    const vcpus = cpus?.limit != null ? { vcpus: { limit: Number(cpus.limit), used: Number(cpus.usage ?? 0) } } : {};
    if (inst?.limit != null) return { instances: { limit: Number(inst.limit), used: Number(inst.usage ?? 0) }, ...vcpus, source: 'provider' };
    // Regions report CPUS but usually no INSTANCES quota: count live instances in the zone.
    const [list] = await this.call('instances.list', () => this.instances.list({ project: this.opts.project, zone: this.opts.zone }, { autoPaginate: true }));
    const used = list.filter((i) => i.status !== 'TERMINATED').length;
    return { instances: { limit: this.opts.capacityInstances, used }, ...vcpus, source: 'config' };
  }

  private async findByKey(hash: string): Promise<IInstance | undefined> {
    const [list] = await this.call(`instances.list(labels.${IDEMPOTENCY_LABEL})`, () =>
      this.instances.list({ project: this.opts.project, zone: this.opts.zone, filter: `labels.${IDEMPOTENCY_LABEL} = "${hash}"` }, { autoPaginate: true }),
    );
    return list[0];
  }

  private resourcePath(kind: 'machineTypes' | 'disks', name: string): string {
    return name.includes('/') ? name : `zones/${this.opts.zone}/${kind}/${name}`;
  }

  async findInstance(_name: string, idempotencyKey: string): Promise<InstanceRef | undefined> {
    const inst = await this.findByKey(keyHash(idempotencyKey));
    return inst?.name && inst.status !== 'TERMINATED' ? this.ref(inst.name) : undefined;
  }

  async createInstance(spec: InstanceSpec, idempotencyKey: string): Promise<InstanceRef> {
    const hash = keyHash(idempotencyKey);
    const name = instanceNameFor(spec.name, idempotencyKey);
    // requestId dedupes retries for a limited time and emulators may ignore it: look first.
    const image = spec.image || this.opts.image;
    if (!image) throw new ProviderError(ProviderErrorType.InvalidParameter, `gcp site '${this.site}': the instance spec has no image and the site settings no image; give one such as projects/debian-cloud/global/images/family/debian-12`, 'gcp');
    const existing = await this.findByKey(hash);
    if (existing?.name) return this.ref(existing.name);

    const labels: Record<string, string> = { ...spec.tags, [IDEMPOTENCY_LABEL]: hash, [SITE_LABEL]: gceSafe(this.site) };
    const resource: IInstance = {
      name,
      machineType: this.resourcePath('machineTypes', spec.size ?? this.opts.machineType),
      labels,
      // The boot disk gets its own name: instances and disks share ids in InstanceRef/VolumeRef, and
      // tag() tells them apart by trying the instance first.
      disks: [{ boot: true, autoDelete: true, deviceName: 'boot', initializeParams: { sourceImage: image, diskName: `${name}-boot` } }],
      networkInterfaces: [{ network: this.opts.network ?? 'global/networks/default' }],
      // GCE passes metadata as plain text; cloud-init reads the `user-data` key.
      ...(spec.userData ? { metadata: { items: [{ key: 'user-data', value: spec.userData }] } } : {}),
    };
    try {
      const [op] = await this.call(`instances.insert(${name})`, () =>
        this.instances.insert({ project: this.opts.project, zone: this.opts.zone, requestId: requestIdFor(idempotencyKey, 'insert'), instanceResource: resource }),
      );
      const opName = op.latestResponse?.name;
      if (opName) this.pendingOps.set(name, { name: opName, verb: 'insert' });
    } catch (err) {
      // The deterministic name exists already: an earlier attempt created it.
      if (!(err instanceof ProviderError && err.type === ProviderErrorType.Conflict)) throw err;
    }
    return this.ref(name);
  }

  toState(inst: IInstance): InstanceState {
    const nic = inst.networkInterfaces?.[0];
    const address = nic?.accessConfigs?.[0]?.natIP ?? nic?.networkIP ?? undefined;
    const volumes = (inst.disks ?? [])
      .map((d) => d.source?.split('/').pop())
      .filter((n): n is string => !!n)
      .map((id) => ({ provider: 'gcp' as const, site: this.site, id }));
    return {
      ref: this.ref(inst.name ?? ''),
      status: gceStatus(inst.status),
      ...(address ? { address } : {}),
      tags: { ...(inst.labels ?? {}) },
      volumes,
    };
  }

  async describeInstance(ref: InstanceRef): Promise<InstanceState> {
    this.checkRef(ref, 'instance');
    const [inst] = await this.call(`instances.get(${ref.id})`, () => this.instances.get({ project: this.opts.project, zone: this.opts.zone, instance: ref.id }));
    return this.toState(inst);
  }

  async waitFor(ref: InstanceRef, state: 'running' | 'stopped' | 'terminated', opts: WaitOptions): Promise<InstanceState> {
    this.checkRef(ref, 'instance');
    return waitForGceState(this, ref, state, opts);
  }

  private async instanceOp(ref: InstanceRef, verb: 'start' | 'stop' | 'delete'): Promise<void> {
    this.checkRef(ref, 'instance');
    // One requestId per call, reused by call()'s retries; start/stop/delete are idempotent anyway,
    // so a later activity attempt may use a new one.
    const req = { project: this.opts.project, zone: this.opts.zone, instance: ref.id, requestId: requestIdFor(`${ref.id}:${Date.now()}:${Math.random()}`, verb) };
    const [op] = await this.call(`instances.${verb}(${ref.id})`, () =>
      verb === 'start' ? this.instances.start(req) : verb === 'stop' ? this.instances.stop(req) : this.instances.delete(req),
    );
    const opName = op.latestResponse?.name;
    if (opName) this.pendingOps.set(ref.id, { name: opName, verb });
  }

  startInstance(ref: InstanceRef): Promise<void> {
    return this.instanceOp(ref, 'start');
  }
  stopInstance(ref: InstanceRef): Promise<void> {
    return this.instanceOp(ref, 'stop');
  }
  terminateInstance(ref: InstanceRef): Promise<void> {
    return this.instanceOp(ref, 'delete');
  }

  async snapshotVolume(ref: VolumeRef, idempotencyKey: string): Promise<SnapshotRef> {
    this.checkRef(ref, 'volume');
    const name = instanceNameFor(`${ref.id}-snap`.slice(-40), idempotencyKey);
    const found = await this.getSnapshot(name);
    if (!found) {
      const [op] = await this.call(`disks.createSnapshot(${ref.id})`, () =>
        this.disks.createSnapshot({
          project: this.opts.project,
          zone: this.opts.zone,
          disk: ref.id,
          requestId: requestIdFor(idempotencyKey, 'snapshot'),
          snapshotResource: { name, labels: { [IDEMPOTENCY_LABEL]: keyHash(idempotencyKey), [SITE_LABEL]: gceSafe(this.site) } },
        }),
      );
      // The operation is short-lived on the fake and usually seconds on GCE; its error (e.g. the
      // disk vanished) would otherwise be lost, so wait for it within the request timeout.
      if (op.latestResponse?.name) await waitForOperation(this, op.latestResponse.name, { timeoutMs: this.opts.requestTimeoutMs ?? 30_000 });
    }
    const snap = found ?? (await this.getSnapshot(name));
    return {
      provider: 'gcp',
      site: this.site,
      id: name,
      ...(snap?.storageBytes != null ? { sizeBytes: Number(snap.storageBytes) } : snap?.diskSizeGb != null ? { sizeBytes: Number(snap.diskSizeGb) * 1024 ** 3 } : {}),
    };
  }

  private async getSnapshot(name: string) {
    try {
      const [snap] = await this.call(`snapshots.get(${name})`, () => this.snapshots.get({ project: this.opts.project, snapshot: name }));
      return snap;
    } catch (err) {
      if (err instanceof ProviderError && err.type === ProviderErrorType.NotFound) return undefined;
      throw err;
    }
  }

  /** setLabels replaces the whole set and needs the current fingerprint, so read, merge, write. */
  async tag(ref: InstanceRef | VolumeRef, tags: Record<string, string>): Promise<void> {
    this.checkRef(ref, 'resource');
    const base = { project: this.opts.project, zone: this.opts.zone };
    const [inst] = await this.call(`instances.get(${ref.id})`, () => this.instances.get({ ...base, instance: ref.id })).then(
      (r) => r,
      (err: unknown) => {
        if (err instanceof ProviderError && err.type === ProviderErrorType.NotFound) return [undefined] as const;
        throw err;
      },
    );
    if (inst) {
      const [op] = await this.call(`instances.setLabels(${ref.id})`, () =>
        this.instances.setLabels({
          ...base,
          instance: ref.id,
          requestId: requestIdFor(`${ref.id}:${inst.labelFingerprint}:${JSON.stringify(tags)}`, 'setLabels'),
          instancesSetLabelsRequestResource: { labels: { ...(inst.labels ?? {}), ...tags }, labelFingerprint: inst.labelFingerprint ?? null },
        }),
      );
      if (op.latestResponse?.name) await waitForOperation(this, op.latestResponse.name, { timeoutMs: this.opts.requestTimeoutMs ?? 30_000 });
      return;
    }
    const [disk] = await this.call(`disks.get(${ref.id})`, () => this.disks.get({ ...base, disk: ref.id }));
    const [op] = await this.call(`disks.setLabels(${ref.id})`, () =>
      this.disks.setLabels({
        ...base,
        resource: ref.id,
        requestId: requestIdFor(`${ref.id}:${disk.labelFingerprint}:${JSON.stringify(tags)}`, 'setLabels'),
        zoneSetLabelsRequestResource: { labels: { ...(disk.labels ?? {}), ...tags }, labelFingerprint: disk.labelFingerprint ?? null },
      }),
    );
    if (op.latestResponse?.name) await waitForOperation(this, op.latestResponse.name, { timeoutMs: this.opts.requestTimeoutMs ?? 30_000 });
  }
}
