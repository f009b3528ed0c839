/**
 * The `azure` provider: one resource group in one location is one site. Calls go through
 * @azure/arm-compute; credentials come from DefaultAzureCredential (environment, workload
 * identity, the managed identity named by credentialRef, Azure CLI), never from fedflow's config.
 */
import type { Agent } from 'node:https';
import { ComputeManagementClient, type VirtualMachine } from '@azure/arm-compute';
import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { toAzureProviderError } from './errors';
import { IDEMPOTENCY_TAG, SITE_TAG, imageReferenceFor, keyHash, osDiskNameFor, snapshotNameFor, vmNameFor } from './names';
import { azureStatus, waitForAzureState, type AzureWaitTarget, type PendingLro } from './wait';
import { ProviderError, ProviderErrorType } from '../common/provider-error';
import type { CloudProvider, InstanceRef, InstanceSpec, InstanceState, SiteCapacity, SnapshotRef, VolumeRef, WaitOptions } from '../common/cloud-provider';

export interface AzureProviderOptions {
  site: string;
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  /** Used when the instance spec has no size, e.g. Standard_B2s. */
  vmSize: string;
  /** Default image (URN or resource id), used when the instance spec's image is empty. */
  image?: string;
  /** Existing NIC to attach; otherwise a NIC is created in subnetId with the VM. */
  networkInterfaceId?: string;
  subnetId?: string;
  adminUsername?: string;
  /** An SSH *public* key for the admin user (Azure requires a key or a password; never a password here). */
  sshPublicKey?: string;
  /** Client id of a user-assigned managed identity for DefaultAzureCredential. */
  credentialRef?: string;
  /** ARM endpoint override (sovereign clouds, or the test fake). */
  endpoint?: string;
  /** Test hook: a credential instead of DefaultAzureCredential. */
  credential?: TokenCredential;
  /** Test hook: an https.Agent, e.g. one that trusts the fake's test CA. */
  agent?: Agent;
  capacityInstances: number;
  maxRetries?: number;
  retryDelayMs?: number;
  requestTimeoutMs?: number;
  /** LRO polling interval when ARM sends no Retry-After. */
  lroPollMs?: number;
}

export class AzureProvider implements CloudProvider, AzureWaitTarget {
  readonly kind = 'azure' as const;
  readonly site: string;
  readonly opts: AzureProviderOptions;
  readonly client: ComputeManagementClient;
  /** LROs started by this process, by VM name, so waitFor can follow them with their poller. */
  readonly pending = new Map<string, PendingLro>();

  constructor(opts: AzureProviderOptions) {
    this.opts = opts;
    this.site = opts.site;
    const credential = opts.credential ?? new DefaultAzureCredential(opts.credentialRef ? { managedIdentityClientId: opts.credentialRef } : {});
    const timeout = opts.requestTimeoutMs ?? 30_000;
    this.client = new ComputeManagementClient(credential, opts.subscriptionId, {
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      ...(opts.agent ? { agent: opts.agent } : {}),
      retryOptions: { maxRetries: opts.maxRetries ?? 3, retryDelayInMs: opts.retryDelayMs ?? 800, maxRetryDelayInMs: 30_000 },
      // A per-request deadline for every call, LRO polls included, so a hung ARM call cannot
      // outlive the activity's heartbeat timeout.
      additionalPolicies: [
        {
          position: 'perRetry',
          policy: {
            name: 'fedflowRequestTimeout',
            sendRequest: (req, next) => {
              req.timeout = timeout;
              return next(req);
            },
          },
        },
      ],
    });
  }

  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toAzureProviderError(err, this.site, what);
    }
  }

  private get rg(): string {
    return this.opts.resourceGroup;
  }

  private checkRef(ref: { provider: string; site: string; id: string }, kind: string): void {
    if (ref.provider !== 'azure' || ref.site !== this.site) {
      throw new ProviderError(
        ProviderErrorType.InvalidParameter,
        `${kind} ref ${ref.provider}:${ref.site}/${ref.id} was given to the azure provider of site '${this.site}' (expected provider 'azure', site '${this.site}')`,
        'azure',
      );
    }
  }

  private ref(id: string): InstanceRef {
    return { provider: 'azure', site: this.site, id };
  }

  private diskId(name: string): string {
    return `/subscriptions/${this.opts.subscriptionId}/resourceGroups/${this.rg}/providers/Microsoft.Compute/disks/${name}`;
  }

  async describeSite(): Promise<SiteCapacity> {
    let vms: { limit: number; used: number } | undefined;
    let cores: { limit: number; used: number } | undefined;
    await this.call(`usage.list(${this.opts.location})`, async () => {
      for await (const u of this.client.usage.list(this.opts.location)) {
        if (u.name.value === 'virtualMachines') vms = { limit: u.limit, used: u.currentValue };
        if (u.name.value === 'cores') cores = { limit: u.limit, used: u.currentValue };
      }
    });
    const vcpus = cores ? { vcpus: cores } : {};
    if (vms) return { instances: vms, ...vcpus, source: 'provider' };
    // No VM-count quota reported: the configured capacity is the limit, this site's VMs the usage.
    let used = 0;
    await this.call(`virtualMachines.list(${this.rg})`, async () => {
      for await (const _vm of this.client.virtualMachines.list(this.rg)) used += 1;
    });
    return { instances: { limit: this.opts.capacityInstances, used }, ...vcpus, source: 'config' };
  }

  async getVm(name: string): Promise<VirtualMachine | undefined> {
    try {
      return await this.call(`virtualMachines.get(${name})`, () => this.client.virtualMachines.get(this.rg, name, { expand: 'instanceView' }));
    } catch (err) {
      if (err instanceof ProviderError && err.type === ProviderErrorType.NotFound) return undefined;
      throw err;
    }
  }

  private networkProfile(vmName: string): VirtualMachine['networkProfile'] {
    if (this.opts.networkInterfaceId) return { networkInterfaces: [{ id: this.opts.networkInterfaceId, primary: true }] };
    if (this.opts.subnetId) {
      return {
        networkApiVersion: '2020-11-01',
        networkInterfaceConfigurations: [
          { name: `${vmName}-nic`, primary: true, deleteOption: 'Delete', ipConfigurations: [{ name: 'ipconfig1', subnet: { id: this.opts.subnetId } }] },
        ],
      };
    }
    throw new ProviderError(
      ProviderErrorType.InvalidParameter,
      `azure site '${this.site}' has neither networkInterfaceId nor subnetId in its settings; a VM needs one of them`,
      'azure',
    );
  }

  async findInstance(name: string, idempotencyKey: string): Promise<InstanceRef | undefined> {
    const vmName = vmNameFor(name, idempotencyKey);
    const vm = await this.getVm(vmName);
    return vm && vm.tags?.[IDEMPOTENCY_TAG] === keyHash(idempotencyKey) ? this.ref(vmName) : undefined;
  }

  async createInstance(spec: InstanceSpec, idempotencyKey: string): Promise<InstanceRef> {
    const hash = keyHash(idempotencyKey);
    const name = vmNameFor(spec.name, idempotencyKey);
    const existing = await this.getVm(name);
    if (existing) {
      if (existing.tags?.[IDEMPOTENCY_TAG] === hash) return this.ref(name);
      throw new ProviderError(ProviderErrorType.Conflict, `azure VM '${name}' exists in resource group '${this.rg}' but was not created for this idempotency key; delete it or use another spec name`, 'azure');
    }
    let imageReference;
    try {
      imageReference = imageReferenceFor(spec.image || this.opts.image || '');
    } catch (err) {
      throw new ProviderError(ProviderErrorType.InvalidParameter, (err as Error).message, 'azure');
    }
    const admin = this.opts.adminUsername ?? 'fedflow';
    const vm: VirtualMachine = {
      location: this.opts.location,
      tags: { ...spec.tags, [IDEMPOTENCY_TAG]: hash, [SITE_TAG]: this.site },
      hardwareProfile: { vmSize: spec.size ?? this.opts.vmSize },
      storageProfile: {
        imageReference,
        osDisk: { name: osDiskNameFor(name), createOption: 'FromImage', deleteOption: 'Delete', managedDisk: { storageAccountType: 'StandardSSD_LRS' } },
      },
      osProfile: {
        computerName: name,
        adminUsername: admin,
        // Azure requires customData base64 encoded; cloud-init decodes it on first boot.
        ...(spec.userData ? { customData: Buffer.from(spec.userData, 'utf8').toString('base64') } : {}),
        linuxConfiguration: {
          disablePasswordAuthentication: true,
          ...(this.opts.sshPublicKey ? { ssh: { publicKeys: [{ path: `/home/${admin}/.ssh/authorized_keys`, keyData: this.opts.sshPublicKey }] } } : {}),
        },
      },
      networkProfile: this.networkProfile(name),
    };
    // PUT by deterministic name: a retried activity re-sends the same PUT and ARM keeps one VM.
    const poller = this.client.virtualMachines.createOrUpdate(this.rg, name, vm, { updateIntervalInMs: this.opts.lroPollMs ?? 5_000 });
    await this.call(`virtualMachines.createOrUpdate(${name})`, () => poller.submitted());
    this.pending.set(name, { verb: 'create', poller });
    return this.ref(name);
  }

  toState(vm: VirtualMachine): InstanceState {
    const disk = vm.storageProfile?.osDisk?.name;
    return {
      ref: this.ref(vm.name ?? ''),
      status: azureStatus(vm),
      tags: { ...(vm.tags ?? {}) },
      volumes: disk ? [{ provider: 'azure', site: this.site, id: disk }] : [],
    };
  }

  async describeInstance(ref: InstanceRef): Promise<InstanceState> {
    this.checkRef(ref, 'instance');
    const vm = await this.call(`virtualMachines.get(${ref.id})`, () => this.client.virtualMachines.get(this.rg, ref.id, { expand: 'instanceView' }));
    return this.toState(vm);
  }

  async waitFor(ref: InstanceRef, state: 'running' | 'stopped' | 'terminated', opts: WaitOptions): Promise<InstanceState> {
    this.checkRef(ref, 'instance');
    return waitForAzureState(this, ref, state, opts);
  }

  async startInstance(ref: InstanceRef): Promise<void> {
    this.checkRef(ref, 'instance');
    const poller = this.client.virtualMachines.start(this.rg, ref.id, { updateIntervalInMs: this.opts.lroPollMs ?? 5_000 });
    await this.call(`virtualMachines.start(${ref.id})`, () => poller.submitted());
    this.pending.set(ref.id, { verb: 'start', poller });
  }

  /** Deallocate, not powerOff: like an EC2 or GCE stop, it releases the compute and keeps the disks. */
  async stopInstance(ref: InstanceRef): Promise<void> {
    this.checkRef(ref, 'instance');
    const poller = this.client.virtualMachines.deallocate(this.rg, ref.id, { updateIntervalInMs: this.opts.lroPollMs ?? 5_000 });
    await this.call(`virtualMachines.deallocate(${ref.id})`, () => poller.submitted());
    this.pending.set(ref.id, { verb: 'deallocate', poller });
  }

  async terminateInstance(ref: InstanceRef): Promise<void> {
    this.checkRef(ref, 'instance');
    const poller = this.client.virtualMachines.delete(this.rg, ref.id, { updateIntervalInMs: this.opts.lroPollMs ?? 5_000 });
    await this.call(`virtualMachines.delete(${ref.id})`, () => poller.submitted());
    this.pending.set(ref.id, { verb: 'delete', poller });
  }

  async snapshotVolume(ref: VolumeRef, idempotencyKey: string): Promise<SnapshotRef> {
    this.checkRef(ref, 'volume');
    const name = snapshotNameFor(ref.id, idempotencyKey);
    const found = await this.call(`snapshots.get(${name})`, () => this.client.snapshots.get(this.rg, name)).catch((err: unknown) => {
      if (err instanceof ProviderError && err.type === ProviderErrorType.NotFound) return undefined;
      throw err;
    });
    const snap =
      found ??
      (await this.call(`snapshots.createOrUpdate(${name} from ${ref.id})`, () =>
        this.client.snapshots
          .createOrUpdate(
            this.rg,
            name,
            {
              location: this.opts.location,
              tags: { [IDEMPOTENCY_TAG]: keyHash(idempotencyKey), [SITE_TAG]: this.site },
              creationData: { createOption: 'Copy', sourceResourceId: this.diskId(ref.id) },
              incremental: true,
            },
            { updateIntervalInMs: this.opts.lroPollMs ?? 5_000 },
          )
          .pollUntilDone({ abortSignal: AbortSignal.timeout(this.opts.requestTimeoutMs ?? 30_000) }),
      ));
    return { provider: 'azure', site: this.site, id: name, ...(snap.diskSizeBytes != null ? { sizeBytes: snap.diskSizeBytes } : {}) };
  }

  /** ARM's PATCH replaces the whole tag set, so read, merge, write. */
  async tag(ref: InstanceRef | VolumeRef, tags: Record<string, string>): Promise<void> {
    this.checkRef(ref, 'resource');
    const opts = { updateIntervalInMs: this.opts.lroPollMs ?? 5_000 };
    const vm = await this.getVm(ref.id);
    if (vm) {
      await this.call(`virtualMachines.update(${ref.id}, tags)`, () =>
        this.client.virtualMachines.update(this.rg, ref.id, { tags: { ...(vm.tags ?? {}), ...tags } }, opts).pollUntilDone(),
      );
      return;
    }
    const disk = await this.call(`disks.get(${ref.id})`, () => this.client.disks.get(this.rg, ref.id));
    await this.call(`disks.update(${ref.id}, tags)`, () => this.client.disks.update(this.rg, ref.id, { tags: { ...(disk.tags ?? {}), ...tags } }, opts).pollUntilDone());
  }
}
