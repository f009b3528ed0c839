/**
 * The provider interface of DESIGN.md: every provider action of a migration goes through it,
 * whichever cloud (or local directory) the site lives in.
 *
 * Each method may throw a `ProviderError` (see ./provider-error.ts); whether Temporal retries is
 * decided by its `retryable` flag, never by the caller guessing from a message.
 */

import type { InstanceRef, ProviderKind, VolumeRef } from '../../core/contracts/providers';
// The references are defined in core because workflows and the agent carry them too; they are
// re-exported so a caller of this interface finds every type of its signature in one module.
export type { InstanceRef, ProviderKind, VolumeRef } from '../../core/contracts/providers';

export interface SiteCapacity {
  /** How many instances the site may run at once. */
  instances: { limit: number; used: number };
  /** Optional resource figures, where the provider reports them. */
  vcpus?: { limit: number; used: number };
  source: 'provider' | 'config';
}

export interface InstanceSpec {
  /** fedflow's name for the instance: usually the workload id. */
  name: string;
  /** Image to boot (AMI id, Azure image reference URN, GCP image self-link, or for `local` the workload kind). */
  image: string;
  /** Instance size: EC2 instance type, Azure VM size, GCP machine type; ignored by `local`. */
  size?: string;
  tags?: Record<string, string>;
  /** Cloud-init / user-data that starts the fedflow agent on first boot. */
  userData?: string;
  /** Volume the instance mounts (local: a directory path inside the site). */
  volume?: VolumeRef;
  /** Provider specific extras that are not secrets (ports, env for a local process). */
  extra?: Record<string, string>;
}

export type InstanceStatus = 'pending' | 'running' | 'stopping' | 'stopped' | 'terminated' | 'unknown';

export interface InstanceState {
  ref: InstanceRef;
  status: InstanceStatus;
  /** Where the instance serves, when known (local: http://127.0.0.1:port). */
  address?: string;
  tags: Record<string, string>;
  /** The instance's disks, where the provider reports them (so a caller can snapshot them). */
  volumes?: VolumeRef[];
}

export interface SnapshotRef {
  provider: ProviderKind;
  site: string;
  id: string;
  /** Size in bytes, when the provider reports it. */
  sizeBytes?: number;
}

export interface WaitOptions {
  /** Give up after this long (ms). */
  timeoutMs: number;
  /** Poll interval for providers without push notifications (ms). */
  pollMs?: number;
  /** Called on every poll, so an activity can heartbeat while it waits. */
  onPoll?: (state: InstanceState) => void;
  /** Aborts the wait, e.g. when the activity is cancelled. */
  signal?: AbortSignal;
}

export interface CloudProvider {
  readonly kind: ProviderKind;
  /** The site this provider instance acts for. */
  readonly site: string;
  describeSite(): Promise<SiteCapacity>;
  /** Idempotent: two calls with the same key give one instance. */
  createInstance(spec: InstanceSpec, idempotencyKey: string): Promise<InstanceRef>;
  /**
   * The live (not terminated) instance a create with this spec name and key made, if any.
   * Compensations use it, so a create that succeeded just before a crash is still cleaned up.
   */
  findInstance(name: string, idempotencyKey: string): Promise<InstanceRef | undefined>;
  describeInstance(ref: InstanceRef): Promise<InstanceState>;
  waitFor(ref: InstanceRef, state: 'running' | 'stopped' | 'terminated', opts: WaitOptions): Promise<InstanceState>;
  startInstance(ref: InstanceRef): Promise<void>;
  stopInstance(ref: InstanceRef): Promise<void>;
  terminateInstance(ref: InstanceRef): Promise<void>;
  snapshotVolume(ref: VolumeRef, idempotencyKey: string): Promise<SnapshotRef>;
  tag(ref: InstanceRef | VolumeRef, tags: Record<string, string>): Promise<void>;
}
