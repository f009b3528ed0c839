/**
 * What the federation log records, and the committed state it adds up to. applyEntries is a pure
 * fold: every site applies the same committed entries in the same order and gets the same state.
 * An entry that cannot apply (over capacity, unknown site) is still committed — the log is a
 * record of decisions — but changes nothing and is listed in `rejected` with the reason, the same
 * way at every site.
 */
import type { ProviderKind } from '../contracts/providers';
import type { SiteId } from './types';
import type { WorkloadSpec } from '../workload-spec';

/** A provider's handle on an instance or a volume (the adapters' InstanceRef and VolumeRef). */
export interface ProviderRef {
  provider: ProviderKind;
  site: SiteId;
  id: string;
}

/**
 * What a site holds for a workload: its instance, its volume and the address it serves on. The
 * log keeps it beside the placement, so "where does W run, on what" has one answer, and nothing
 * else (no state file, no route table) is asked for a decision.
 */
export interface WorkloadRecord {
  image: string;
  instance: ProviderRef;
  volume: ProviderRef;
  address: string;
  /**
   * The workload's spec (core/workload-spec.ts), for a workload added from one: how any site runs,
   * checks, freezes, thaws and verifies it. Small (at most MAX_SPEC_BYTES), so it travels with the
   * placement and every site holds it. Absent for the sample deployed by `fedflow up` and for
   * records committed before specs existed.
   */
  spec?: WorkloadSpec;
}

export type FederationEntry =
  /**
   * Workload W now runs on site S (the cut-over commit), on what `record` names. Entries
   * committed before records existed carry none; the workload's record then stays as it was.
   */
  | { kind: 'placement'; workload: string; site: SiteId; record?: WorkloadRecord }
  /** Workload W enters the federation, placed at once on site S, or leaves it (freeing its instance). */
  | { kind: 'workload'; op: 'add'; workload: string; site: SiteId; record: WorkloadRecord }
  | { kind: 'workload'; op: 'remove'; workload: string; site: SiteId }
  /** Hold (or give back) `instances` of site S's capacity for workload W before it moves there. */
  | { kind: 'reservation'; op: 'reserve'; workload: string; site: SiteId; instances: number }
  | { kind: 'reservation'; op: 'release'; workload: string; site: SiteId }
  /** A site joins with its Ed25519 public key (base64 SPKI DER) and capacity, or leaves. */
  | { kind: 'membership'; op: 'join'; site: SiteId; publicKey: string; capacity: number }
  | { kind: 'membership'; op: 'leave'; site: SiteId };

export interface Member {
  publicKey: string;
  /** Instances the site can run. */
  capacity: number;
}

export interface CommittedState {
  /** Entries folded in so far, valid or not; `rejected[].ordinal` counts from 1 on this. */
  applied: number;
  members: Record<SiteId, Member>;
  /** workload → the site it runs on. */
  placements: Record<string, SiteId>;
  /**
   * workload → its instance, volume and address at that site. Absent in states carried from runs
   * before workloads were registered through the log (continue-as-new input): read it as empty.
   */
  workloads?: Record<string, WorkloadRecord>;
  /** `${workload}@${site}` → instances held. */
  reservations: Record<string, { workload: string; site: SiteId; instances: number }>;
  /** Instances in use per site: one per placed workload plus every reservation. */
  used: Record<SiteId, number>;
  rejected: { ordinal: number; reason: string }[];
}

export function emptyCommittedState(): CommittedState {
  return { applied: 0, members: {}, placements: {}, workloads: {}, reservations: {}, used: {}, rejected: [] };
}

export function applyEntries(state: CommittedState, entries: readonly FederationEntry[]): CommittedState {
  const s: CommittedState = structuredCopy(state);
  for (const e of entries) {
    s.applied++;
    const reason = applyOne(s, e);
    if (reason) s.rejected.push({ ordinal: s.applied, reason });
  }
  return s;
}

/** Applies one entry in place; returns why it was rejected, or null. */
function applyOne(s: CommittedState, e: FederationEntry): string | null {
  switch (e.kind) {
    case 'membership': {
      if (e.op === 'join') {
        if (s.members[e.site]) return `site ${e.site} joined already; a site leaves before it joins again`;
        if (!Number.isSafeInteger(e.capacity) || e.capacity < 0) return `site ${e.site} joins with capacity ${e.capacity}; capacity is a whole number of instances ≥ 0`;
        s.members[e.site] = { publicKey: e.publicKey, capacity: e.capacity };
        s.used[e.site] = 0;
        return null;
      }
      if (!s.members[e.site]) return `site ${e.site} leaves but is not a member (members: ${memberList(s)})`;
      const held = Object.entries(s.placements).filter(([, site]) => site === e.site).map(([w]) => w);
      const reserved = Object.values(s.reservations).filter((r) => r.site === e.site).map((r) => r.workload);
      if (held.length || reserved.length) return `site ${e.site} still runs or reserves workloads (${[...held, ...reserved].sort().join(', ')}); move or release them before it leaves`;
      delete s.members[e.site];
      delete s.used[e.site];
      return null;
    }
    case 'reservation': {
      const key = `${e.workload}@${e.site}`;
      if (e.op === 'release') {
        const r = s.reservations[key];
        if (!r) return `no reservation of ${e.workload} on ${e.site} to release`;
        delete s.reservations[key];
        s.used[e.site] = (s.used[e.site] ?? 0) - r.instances;
        return null;
      }
      const member = s.members[e.site];
      if (!member) return `cannot reserve on ${e.site}: not a member (members: ${memberList(s)})`;
      if (!Number.isSafeInteger(e.instances) || e.instances < 1) return `reservation of ${e.workload} on ${e.site} asks for ${e.instances} instances; ask for a whole number ≥ 1`;
      if (s.reservations[key]) return `${e.workload} already holds a reservation on ${e.site}; release it first`;
      const used = s.used[e.site] ?? 0;
      if (used + e.instances > member.capacity) return `site ${e.site} has ${member.capacity - used} of ${member.capacity} instances free; ${e.workload} asks for ${e.instances}`;
      s.reservations[key] = { workload: e.workload, site: e.site, instances: e.instances };
      s.used[e.site] = used + e.instances;
      return null;
    }
    case 'workload': {
      const workloads = (s.workloads ??= {});
      if (e.op === 'remove') {
        const site = s.placements[e.workload];
        if (site === undefined) return `workload ${e.workload} is not in the federation`;
        if (site !== e.site) return `workload ${e.workload} runs on ${site}, not on ${e.site}`;
        const reserved = Object.values(s.reservations).filter((r) => r.workload === e.workload).map((r) => r.site);
        if (reserved.length) return `workload ${e.workload} holds a reservation on ${reserved.sort().join(', ')} (a migration is under way); let it finish or cancel it first`;
        delete s.placements[e.workload];
        delete workloads[e.workload];
        if (s.used[site] !== undefined) s.used[site] = (s.used[site] as number) - 1;
        return null;
      }
      const member = s.members[e.site];
      if (!member) return `cannot add ${e.workload} on ${e.site}: not a member (members: ${memberList(s)})`;
      const at = s.placements[e.workload];
      if (at !== undefined) return `workload ${e.workload} is in the federation already (on ${at}); remove it first`;
      const used = s.used[e.site] ?? 0;
      if (used + 1 > member.capacity) return `site ${e.site} is full (${used} of ${member.capacity} instances used); cannot add ${e.workload}`;
      s.used[e.site] = used + 1;
      s.placements[e.workload] = e.site;
      workloads[e.workload] = copyRecord(e.record);
      return null;
    }
    case 'placement': {
      const member = s.members[e.site];
      if (!member) return `cannot place ${e.workload} on ${e.site}: not a member (members: ${memberList(s)})`;
      const from = s.placements[e.workload];
      if (from === e.site) {
        // Placing where it already runs takes no capacity; it may still say what it runs on now.
        if (e.record) (s.workloads ??= {})[e.workload] = withSpecOf(copyRecord(e.record), s.workloads?.[e.workload]);
        return null;
      }
      const key = `${e.workload}@${e.site}`;
      const reservation = s.reservations[key];
      // A reservation made for this move becomes the placement's instance; otherwise one is needed.
      const used = (s.used[e.site] ?? 0) - (reservation?.instances ?? 0);
      if (used + 1 > member.capacity) return `site ${e.site} is full (${member.capacity} instances used); reserve capacity for ${e.workload} first`;
      if (reservation) delete s.reservations[key];
      s.used[e.site] = used + 1;
      if (from !== undefined && s.used[from] !== undefined) s.used[from] = (s.used[from] as number) - 1;
      s.placements[e.workload] = e.site;
      if (e.record) (s.workloads ??= {})[e.workload] = withSpecOf(copyRecord(e.record), s.workloads?.[e.workload]);
      return null;
    }
  }
}

/** What is wrong with a workload record as a proposal carries it, or undefined: checked before the log takes it. */
export function workloadRecordProblem(r: unknown): string | undefined {
  if (!r || typeof r !== 'object') return 'needs a record: { image, instance, volume, address }';
  const o = r as Record<string, unknown>;
  if (typeof o.image !== 'string' || !o.image) return `record.image must be a non-empty string; got ${JSON.stringify(o.image)}`;
  if (typeof o.address !== 'string' || !o.address) return `record.address must be a non-empty string; got ${JSON.stringify(o.address)}`;
  if (o.spec !== undefined && (!o.spec || typeof o.spec !== 'object' || typeof (o.spec as Record<string, unknown>).id !== 'string')) {
    return `record.spec must be a workload spec (an object with an id); got ${JSON.stringify(o.spec)?.slice(0, 80)}`;
  }
  for (const k of ['instance', 'volume'] as const) {
    const ref = o[k] as Record<string, unknown> | undefined;
    if (!ref || typeof ref !== 'object' || typeof ref.provider !== 'string' || typeof ref.site !== 'string' || typeof ref.id !== 'string' || !ref.id) {
      return `record.${k} must be { provider, site, id }; got ${JSON.stringify(ref)?.slice(0, 80)}`;
    }
  }
  return undefined;
}

function copyRecord(r: WorkloadRecord): WorkloadRecord {
  const copy: WorkloadRecord = { image: r.image, instance: { ...r.instance }, volume: { ...r.volume }, address: r.address };
  // Plain JSON data (it came through a payload): a JSON round trip is a deep copy, and deterministic.
  if (r.spec !== undefined) copy.spec = JSON.parse(JSON.stringify(r.spec)) as WorkloadSpec;
  return copy;
}

/** A placement's record without a spec keeps the spec the workload was added with: the spec is the workload's, wherever it runs. */
function withSpecOf(r: WorkloadRecord, before: WorkloadRecord | undefined): WorkloadRecord {
  if (r.spec === undefined && before?.spec !== undefined) r.spec = before.spec;
  return r;
}

function memberList(s: CommittedState): string {
  return Object.keys(s.members).sort().join(', ') || 'none';
}

/** A deep copy of plain data without structuredClone, which the workflow sandbox may lack. */
function structuredCopy(s: CommittedState): CommittedState {
  return {
    applied: s.applied,
    members: Object.fromEntries(Object.entries(s.members).map(([k, v]) => [k, { ...v }])),
    placements: { ...s.placements },
    workloads: Object.fromEntries(Object.entries(s.workloads ?? {}).map(([k, v]) => [k, copyRecord(v)])),
    reservations: Object.fromEntries(Object.entries(s.reservations).map(([k, v]) => [k, { ...v }])),
    used: { ...s.used },
    rejected: s.rejected.map((r) => ({ ...r })),
  };
}
