/**
 * The federation entity's input checks, as pure functions: the update validators call them, so a
 * bad proposal, join or leave is refused with a message naming what was wrong before it enters
 * history; the signal handler calls them too (signals have no validator) and answers the error.
 * Each throws an Error whose message names the problem and what would be right.
 */
import { canonicalJson } from '../consensus/canonical-json';
import { workloadRecordProblem, type CommittedState } from '../consensus/entries';
import type { SiteId } from '../consensus/types';
import { MAX_PROPOSALS_PER_UPDATE, type FederationInput, type JoinInput, type ProposeInput } from '../contracts/federation';
import { SITE_ID_PATTERN, TRUST_LEVELS, type Trust } from '../federation-config';

/** A run that has been superseded refuses everything with the reason (a newer run leads). */
export function validateProposal(p: ProposeInput, state: CommittedState, trust: Readonly<Record<SiteId, Trust>>, superseded?: string): void {
  if (superseded) throw new Error(superseded);
  if (!p || !Array.isArray(p.entries) || p.entries.length === 0) throw new Error('a proposal needs at least one entry in `entries`; got none');
  const members = Object.keys(state.members).sort();
  const known = (site: unknown, what: string) => {
    if (typeof site !== 'string' || !state.members[site]) {
      throw new Error(`${what}: site '${String(site)}' is not a member of the federation (members: ${members.join(', ') || 'none'})`);
    }
  };
  p.entries.forEach((e, i) => {
    const at = `entries[${i}]`;
    if (!e || typeof e !== 'object') throw new Error(`${at} is not an entry object`);
    if (e.kind === 'placement' || e.kind === 'reservation') {
      if (typeof e.workload !== 'string' || !e.workload) throw new Error(`${at} (${e.kind}) needs a workload id; got '${String(e.workload)}'`);
      known(e.site, `${at} (${e.kind} of ${e.workload})`);
      const op: unknown = e.kind === 'reservation' ? e.op : undefined;
      if (e.kind === 'reservation' && op !== 'reserve' && op !== 'release') throw new Error(`${at}: reservation op must be 'reserve' or 'release'; got '${String(op)}'`);
      const problem = e.kind === 'placement' && e.record !== undefined ? workloadRecordProblem(e.record) : undefined;
      if (problem) throw new Error(`${at} (placement of ${e.workload}): ${problem}`);
    } else if (e.kind === 'workload') {
      if (typeof e.workload !== 'string' || !e.workload) throw new Error(`${at} (workload) needs a workload id; got '${String(e.workload)}'`);
      known(e.site, `${at} (workload ${e.workload})`);
      const op: unknown = e.op;
      if (op !== 'add' && op !== 'remove') throw new Error(`${at}: workload op must be 'add' or 'remove'; got '${String(op)}'`);
      const problem = e.op === 'add' ? workloadRecordProblem(e.record) : undefined;
      if (problem) throw new Error(`${at} (workload ${e.workload}): ${problem}`);
    } else if (e.kind === 'membership') {
      throw new Error(`${at}: membership changes go through the join and leave updates, not propose`);
    } else {
      throw new Error(`${at}: kind must be 'placement', 'reservation' or 'workload'; got '${String((e as { kind?: unknown }).kind)}'`);
    }
  });
  for (const s of p.touches ?? []) known(s, 'touches');
  for (const s of touchedSites(p)) if (!trust[s]) throw new Error(`site ${s} has no trust level in this federation`);
}

/** proposeBatch: 1 to MAX_PROPOSALS_PER_UPDATE proposals, each valid; the message names the first bad one. */
export function validateProposeBatch(ps: ProposeInput[], state: CommittedState, trust: Readonly<Record<SiteId, Trust>>, superseded?: string): void {
  if (!Array.isArray(ps) || ps.length === 0 || ps.length > MAX_PROPOSALS_PER_UPDATE) {
    throw new Error(`proposeBatch takes 1 to ${MAX_PROPOSALS_PER_UPDATE} proposals; got ${Array.isArray(ps) ? ps.length : typeof ps}`);
  }
  ps.forEach((p, i) => {
    try {
      validateProposal(p, state, trust, superseded);
    } catch (err) {
      throw new Error(`proposals[${i}]: ${(err as Error).message}`);
    }
  });
}

export function validateJoin(j: JoinInput, state: CommittedState, superseded?: string): void {
  if (superseded) throw new Error(superseded);
  const problem =
    siteProblem(j?.site) ??
    (state.members[j.site] ? `site ${j.site} is already a member; a site leaves before it joins again` : undefined) ??
    trustProblem(j.site, j.trust) ??
    (!Number.isSafeInteger(j.capacity) || j.capacity < 0 ? `site ${j.site} joins with capacity ${j.capacity}; capacity is a whole number of instances ≥ 0` : undefined) ??
    keyProblem(j.site, j.publicKey);
  if (problem) throw new Error(`cannot join: ${problem}`);
}

export function validateLeave(site: SiteId, state: CommittedState, superseded?: string): void {
  if (superseded) throw new Error(superseded);
  const members = Object.keys(state.members).sort();
  if (!state.members[site]) throw new Error(`cannot leave: site '${site}' is not a member (members: ${members.join(', ') || 'none'})`);
  if (members.length === 1) throw new Error(`cannot leave: ${site} is the last member; a federation needs at least one site`);
  const held = Object.entries(state.placements).filter(([, s]) => s === site).map(([w]) => w);
  const reserved = Object.values(state.reservations).filter((r) => r.site === site).map((r) => r.workload);
  if (held.length || reserved.length) throw new Error(`cannot leave: ${site} still runs or reserves workloads (${[...held, ...reserved].sort().join(', ')}); move or release them first`);
}

/** What is wrong with a fresh federation's founding sites, if anything (the workflow fails on it). */
export function foundersProblem(input: FederationInput): string | undefined {
  if (!Array.isArray(input.sites) || input.sites.length === 0) return `federation ${input.name} needs at least one founding site; got none`;
  const seen = new Set<string>();
  for (const s of input.sites) {
    const problem = siteProblem(s.id) ?? (seen.has(s.id) ? `site ${s.id} is listed twice` : undefined) ?? trustProblem(s.id, s.trust) ?? keyProblem(s.id, s.publicKey);
    if (problem) return `federation ${input.name}: ${problem}`;
    seen.add(s.id);
  }
  return undefined;
}

/**
 * Why `b` may not join the pending proposal `a` that has its request id: undefined when both name
 * the same entries and touch the same sites (compared by content, whatever the key order).
 */
export function requestIdClash(a: ProposeInput, b: ProposeInput): string | undefined {
  const canon = (p: ProposeInput) => canonicalJson({ entries: p.entries, touches: [...(p.touches ?? [])].sort() });
  if (canon(a) === canon(b)) return undefined;
  return `request id '${b.requestId}' is already queued with other entries (${canonicalJson(a.entries)}); a retry must resend the same entries, a new change needs a new request id`;
}

/** The sites a proposal touches: those its entries name plus `touches`, sorted. They choose its protocol. */
export function touchedSites(p: ProposeInput): SiteId[] {
  const sites = new Set<SiteId>(p.touches ?? []);
  for (const e of p.entries) sites.add(e.site);
  return [...sites].sort();
}

function siteProblem(site: unknown): string | undefined {
  if (typeof site !== 'string' || !SITE_ID_PATTERN.test(site)) return `site id '${String(site)}' must look like <kind>:<name>, e.g. dc:paris`;
  return undefined;
}

function trustProblem(site: string, t: unknown): string | undefined {
  return (TRUST_LEVELS as readonly unknown[]).includes(t) ? undefined : `site ${site} has trust '${String(t)}'; expected ${TRUST_LEVELS.join(' or ')}`;
}

function keyProblem(site: string, key: unknown): string | undefined {
  // 44 bytes: the 12-byte SPKI header of an Ed25519 key and its 32-byte public key, base64-encoded.
  if (typeof key !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(key) || key.length !== 60) {
    return `site ${site} needs publicKey: its Ed25519 public key as base64 SPKI DER (60 characters); got '${String(key).slice(0, 80)}'`;
  }
  return undefined;
}
