/**
 * The `aws` provider: one EC2 region is one site. Calls go through @aws-sdk/client-ec2; credentials
 * come only from the SDK's default chain (env, shared profile named in the settings, instance role).
 */
import {
  CreateSnapshotCommand,
  CreateTagsCommand,
  DescribeAccountAttributesCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type AccountAttributeName,
  type _InstanceType,
  type Instance,
  type Tag,
} from '@aws-sdk/client-ec2';
import { toAwsProviderError } from './errors';
import { IDEMPOTENCY_TAG, SITE_TAG, ec2ClientToken } from './tokens';
import { waitForEc2State, type Ec2WaitTarget } from './wait';
import { ProviderError, ProviderErrorType } from '../common/provider-error';
import type { CloudProvider, InstanceRef, InstanceSpec, InstanceState, InstanceStatus, SiteCapacity, SnapshotRef, VolumeRef, WaitOptions } from '../common/cloud-provider';

export interface AwsProviderOptions {
  site: string;
  region: string;
  /** Shared-config profile name; the secret stays in ~/.aws, never in fedflow's config. */
  profile?: string;
  /** Endpoint override (tests point this at moto on 127.0.0.1). */
  endpoint?: string;
  /** Default AMI, used when the instance spec's image is empty. */
  imageId?: string;
  /** Used when the instance spec has no size. */
  instanceType: string;
  subnetId?: string;
  securityGroupIds?: string[];
  /** Configured capacity, used when EC2 does not report a max-instances limit. */
  capacityInstances: number;
  /** SDK attempts per call, including the first (the SDK retries throttling, 5xx and timeouts). */
  maxAttempts?: number;
  /** Per-request socket timeout (ms). */
  requestTimeoutMs?: number;
}

/** States EC2 still counts against the running-instances limit. */
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped'];

export function ec2Status(name: string | undefined): InstanceStatus {
  switch (name) {
    case 'pending':
      return 'pending';
    case 'running':
      return 'running';
    case 'stopping':
    case 'shutting-down':
      return 'stopping';
    case 'stopped':
      return 'stopped';
    case 'terminated':
      return 'terminated';
    default:
      return 'unknown';
  }
}

function tagsToRecord(tags: Tag[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? '';
  return out;
}

function recordToTags(tags: Record<string, string>): Tag[] {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

export class AwsProvider implements CloudProvider, Ec2WaitTarget {
  readonly kind = 'aws' as const;
  readonly site: string;
  readonly client: EC2Client;
  private readonly opts: AwsProviderOptions;

  constructor(opts: AwsProviderOptions) {
    this.opts = opts;
    this.site = opts.site;
    this.client = new EC2Client({
      region: opts.region,
      ...(opts.profile ? { profile: opts.profile } : {}),
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      maxAttempts: opts.maxAttempts ?? 4,
      // throwOnRequestTimeout: without it the handler only logs a warning and keeps waiting.
      requestHandler: { requestTimeout: opts.requestTimeoutMs ?? 30_000, connectionTimeout: 5_000, throwOnRequestTimeout: true },
    });
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toAwsProviderError(err, this.site, what);
    }
  }

  private checkRef(ref: { provider: string; site: string; id: string }, kind: string): void {
    if (ref.provider !== 'aws' || ref.site !== this.site) {
      throw new ProviderError(
        ProviderErrorType.InvalidParameter,
        `${kind} ref ${ref.provider}:${ref.site}/${ref.id} was given to the aws provider of site '${this.site}' (expected provider 'aws', site '${this.site}')`,
        'aws',
      );
    }
  }

  async describeSite(): Promise<SiteCapacity> {
    const attrs = await this.call('DescribeAccountAttributes(max-instances)', () =>
      // The SDK's AccountAttributeName enum lists only default-vpc and supported-platforms, but the
      // API documents and answers max-instances too.
      this.client.send(new DescribeAccountAttributesCommand({ AttributeNames: ['max-instances' as AccountAttributeName] })),
    );
    const raw = attrs.AccountAttributes?.find((a) => a.AttributeName === 'max-instances')?.AttributeValues?.[0]?.AttributeValue;
    const limit = raw !== undefined ? Number.parseInt(raw, 10) : Number.NaN;
    let used = 0;
    let token: string | undefined;
    do {
      const page = await this.call('DescribeInstances(count)', () =>
        this.client.send(
          new DescribeInstancesCommand({
            Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running'] }],
            MaxResults: 1000,
            NextToken: token,
          }),
        ),
      );
      for (const r of page.Reservations ?? []) used += r.Instances?.length ?? 0;
      token = page.NextToken;
    } while (token);
    if (Number.isFinite(limit)) return { instances: { limit, used }, source: 'provider' };
    return { instances: { limit: this.opts.capacityInstances, used }, source: 'config' };
  }

  private ref(id: string): InstanceRef {
    return { provider: 'aws', site: this.site, id };
  }

  private async findByToken(token: string): Promise<Instance | undefined> {
    const res = await this.call(`DescribeInstances(tag:${IDEMPOTENCY_TAG})`, () =>
      this.client.send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: `tag:${IDEMPOTENCY_TAG}`, Values: [token] },
            { Name: 'instance-state-name', Values: LIVE_STATES },
          ],
        }),
      ),
    );
    return res.Reservations?.flatMap((r) => r.Instances ?? [])[0];
  }

  async findInstance(_name: string, idempotencyKey: string): Promise<InstanceRef | undefined> {
    const inst = await this.findByToken(ec2ClientToken(idempotencyKey));
    return inst?.InstanceId ? this.ref(inst.InstanceId) : undefined;
  }

  async createInstance(spec: InstanceSpec, idempotencyKey: string): Promise<InstanceRef> {
    const token = ec2ClientToken(idempotencyKey);
    const image = spec.image || this.opts.imageId;
    if (!image) throw new ProviderError(ProviderErrorType.InvalidParameter, `aws site '${this.site}': the instance spec has no image and the site settings no imageId; give one (an AMI id such as ami-0abcdef1234567890)`, 'aws');
    // EC2 deduplicates by ClientToken, but emulators (moto) ignore it; the tag lookup makes a
    // retried activity find its first instance either way.
    const existing = await this.findByToken(token);
    if (existing?.InstanceId) return this.ref(existing.InstanceId);

    const tags = { ...spec.tags, Name: spec.name, [IDEMPOTENCY_TAG]: token, [SITE_TAG]: this.site };
    const res = await this.call(`RunInstances(image ${image})`, () =>
      this.client.send(
        new RunInstancesCommand({
          ImageId: image,
          // The SDK types sizes as a closed enum; new sizes appear before the SDK learns them.
          InstanceType: (spec.size ?? this.opts.instanceType) as _InstanceType,
          MinCount: 1,
          MaxCount: 1,
          ClientToken: token,
          // EC2 wants user-data base64 encoded; cloud-init decodes it on first boot.
          ...(spec.userData ? { UserData: Buffer.from(spec.userData, 'utf8').toString('base64') } : {}),
          ...(this.opts.subnetId ? { SubnetId: this.opts.subnetId } : {}),
          ...(this.opts.securityGroupIds?.length ? { SecurityGroupIds: this.opts.securityGroupIds } : {}),
          TagSpecifications: [
            { ResourceType: 'instance', Tags: recordToTags(tags) },
            { ResourceType: 'volume', Tags: recordToTags({ ...spec.tags, Name: spec.name, [SITE_TAG]: this.site }) },
          ],
        }),
      ),
    );
    const id = res.Instances?.[0]?.InstanceId;
    if (!id) throw new ProviderError(ProviderErrorType.Unavailable, `aws RunInstances on site '${this.site}' returned no instance id; retry the create`, 'aws');
    return this.ref(id);
  }

  toState(inst: Instance): InstanceState {
    const volumes = (inst.BlockDeviceMappings ?? [])
      .map((m) => m.Ebs?.VolumeId)
      .filter((v): v is string => !!v)
      .map((id) => ({ provider: 'aws' as const, site: this.site, id }));
    const address = inst.PublicIpAddress ?? inst.PrivateIpAddress;
    return {
      ref: this.ref(inst.InstanceId ?? ''),
      status: ec2Status(inst.State?.Name),
      ...(address ? { address } : {}),
      tags: tagsToRecord(inst.Tags),
      volumes,
    };
  }

  async describeInstance(ref: InstanceRef): Promise<InstanceState> {
    this.checkRef(ref, 'instance');
    const res = await this.call(`DescribeInstances(${ref.id})`, () => this.client.send(new DescribeInstancesCommand({ InstanceIds: [ref.id] })));
    const inst = res.Reservations?.flatMap((r) => r.Instances ?? [])[0];
    if (!inst) throw new ProviderError(ProviderErrorType.NotFound, `aws instance '${ref.id}' does not exist on site '${this.site}'`, 'aws');
    return this.toState(inst);
  }

  async waitFor(ref: InstanceRef, state: 'running' | 'stopped' | 'terminated', opts: WaitOptions): Promise<InstanceState> {
    this.checkRef(ref, 'instance');
    return waitForEc2State(this, ref, state, opts);
  }

  async startInstance(ref: InstanceRef): Promise<void> {
    this.checkRef(ref, 'instance');
    await this.call(`StartInstances(${ref.id})`, () => this.client.send(new StartInstancesCommand({ InstanceIds: [ref.id] })));
  }

  async stopInstance(ref: InstanceRef): Promise<void> {
    this.checkRef(ref, 'instance');
    await this.call(`StopInstances(${ref.id})`, () => this.client.send(new StopInstancesCommand({ InstanceIds: [ref.id] })));
  }

  async terminateInstance(ref: InstanceRef): Promise<void> {
    this.checkRef(ref, 'instance');
    await this.call(`TerminateInstances(${ref.id})`, () => this.client.send(new TerminateInstancesCommand({ InstanceIds: [ref.id] })));
  }

  async snapshotVolume(ref: VolumeRef, idempotencyKey: string): Promise<SnapshotRef> {
    this.checkRef(ref, 'volume');
    const token = ec2ClientToken(idempotencyKey);
    // CreateSnapshot has no ClientToken, so the idempotency tag is the only way to find a
    // snapshot an earlier attempt of the same activity already started.
    const found = await this.call(`DescribeSnapshots(tag:${IDEMPOTENCY_TAG})`, () =>
      this.client.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: `tag:${IDEMPOTENCY_TAG}`, Values: [token] }] })),
    );
    const prior = found.Snapshots?.find((s) => s.VolumeId === ref.id);
    const snap =
      prior ??
      (await this.call(`CreateSnapshot(${ref.id})`, () =>
        this.client.send(
          new CreateSnapshotCommand({
            VolumeId: ref.id,
            Description: `fedflow snapshot of ${ref.id}`,
            TagSpecifications: [{ ResourceType: 'snapshot', Tags: recordToTags({ [IDEMPOTENCY_TAG]: token, [SITE_TAG]: this.site }) }],
          }),
        ),
      ));
    if (!snap.SnapshotId) throw new ProviderError(ProviderErrorType.Unavailable, `aws CreateSnapshot(${ref.id}) on site '${this.site}' returned no snapshot id; retry`, 'aws');
    return {
      provider: 'aws',
      site: this.site,
      id: snap.SnapshotId,
      ...(snap.VolumeSize !== undefined ? { sizeBytes: snap.VolumeSize * 1024 ** 3 } : {}),
    };
  }

  async tag(ref: InstanceRef | VolumeRef, tags: Record<string, string>): Promise<void> {
    this.checkRef(ref, 'resource');
    await this.call(`CreateTags(${ref.id})`, () => this.client.send(new CreateTagsCommand({ Resources: [ref.id], Tags: recordToTags(tags) })));
  }
}
