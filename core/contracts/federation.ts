/**
 * The federation's messages and the shapes they carry, defined once so the federation workflow,
 * commitProposal, the client helper for other workflows, tests and the benchmark agree on names.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { CommitCertificate, EquivocationProof } from '../consensus/bft-types';
import type { LogEntry } from '../consensus/cft-types';
import type { CommittedState, FederationEntry, Member } from '../consensus/entries';
import type { Trust } from '../federation-config';
import type { Protocol, SiteId } from '../consensus/types';


export interface FederationSite {
  id: SiteId;
  trust: Trust;
  /** Instances the site can run. */
  capacity: number;
  /** Ed25519 public key, base64 SPKI DER. Recorded in the membership; sites verify with their own copy. */
  publicKey: string;
}

/** Predicted round-trip times in ms per site pair, keyed `a|b` (either order). Missing pairs use DEFAULT_RTT_MS. */
export type RttTable = Record<string, number>;

export interface FederationInput {
  name: string;
  /** The founding members (the genesis membership, taken from the federation config). */
  sites: FederationSite[];
  rttMs?: RttTable;
  /** Rounds between continue-as-new checks are bounded by history size; this lowers the bound (tests). */
  maxHistoryEvents?: number;
  /** Most entries per round: what is queued beyond it waits for the next round. */
  maxBatchEntries?: number;
  /** Carried across continue-as-new; absent on a fresh start. */
  carry?: FederationCarry;
}

/** What one run hands the next: the committed state and the epochs, so a new run takes a new term. */
export interface FederationCarry {
  /** The previous run's CFT term; this run takes a higher one (its leader epoch). */
  term: number;
  /** The committed CFT log, so the new leader knows its prefix (see docs/consensus.md on size). */
  cftLog: LogEntry<FederationEntry>[];
  view: number;
  trust: Record<SiteId, Trust>;
  state: CommittedState;
  rounds: number;
  byzantine: Record<SiteId, EquivocationProof>;
  /** Results of recent proposals by request id, so a resent proposal is answered, not committed twice. */
  recent: Record<string, ProposalResult>;
}

export interface ProposeInput {
  entries: FederationEntry[];
  /** Sites the proposal touches (beyond those named by its entries), e.g. a migration's source. */
  touches?: SiteId[];
  /** Idempotency key: a proposal resent with the same id gets the first result. */
  requestId?: string;
}

export type CftCertificate = { protocol: 'cft'; term: number; index: number; firstIndex: number; ackedBy: SiteId[] };
export type BftCertificate = { protocol: 'bft'; certificate: CommitCertificate; members: SiteId[] };
export type RoundCertificate = CftCertificate | BftCertificate;

/** A certificate without signatures or payloads: what a migration keeps in its history. */
export type CertificateSummary =
  | { protocol: 'cft'; term: number; index: number; ackedBy: SiteId[] }
  | { protocol: 'bft'; view: number; seq: number; digest: string; signers: SiteId[] };

export interface QuorumFigures {
  needed: number;
  total: number;
  /** Sites whose ack or commit vote is in the certificate. */
  got: number;
}

export interface ProposalResult {
  requestId: string;
  protocol: Protocol;
  /** The federation round that committed it (rounds count from 1 across runs). */
  round: number;
  certificate: RoundCertificate;
  summary: CertificateSummary;
  quorum: QuorumFigures;
  /** Ms from arrival at the federation to commit, as workflow time. */
  waitedMs: number;
  /** Entries committed but not applied (over capacity, unknown site…), with the reason, by position in the proposal. */
  rejected: { position: number; reason: string }[];
}

export interface ConsensusStatus {
  phase: 'idle' | 'committing' | 'waiting' | 'superseded';
  /** `waiting for quorum: 2 of 4 sites reachable, need 3 (silent: …)` while a round cannot commit. */
  status: string;
  protocol?: Protocol;
  rounds: number;
  term: number;
  view: number;
  queued: number;
  byzantine: EquivocationProof[];
  /** The latest refusals sites reported (forged, replayed or conflicting votes), newest last. */
  refusals: { site: SiteId; reason: string; accused?: SiteId }[];
}

export interface Membership {
  members: (Member & { id: SiteId; trust: Trust })[];
}

export interface JoinInput {
  site: SiteId;
  trust: Trust;
  capacity: number;
  publicKey: string;
}

/** Proposals arrive as an update: the caller gets the certificate once its proposal committed. */
export const proposeUpdate = defineUpdate<ProposalResult, [ProposeInput]>('propose');
/**
 * Many proposals in one update, each with its own result (in order). For clients with many
 * proposals at once: the server admits few updates per workflow at a time (history.maxInFlightUpdates,
 * 10 by default), so one update per proposal caps throughput long before the rounds do.
 */
export const proposeBatchUpdate = defineUpdate<ProposalResult[], [ProposeInput[]]>('proposeBatch');
/** The most proposals one proposeBatch may carry. */
export const MAX_PROPOSALS_PER_UPDATE = 1_000;
export const joinUpdate = defineUpdate<ProposalResult, [JoinInput]>('join');
export const leaveUpdate = defineUpdate<ProposalResult, [{ site: SiteId }]>('leave');
export const committedStateQuery = defineQuery<CommittedState>('committedState');
export const membershipQuery = defineQuery<Membership>('membership');
export const consensusStatusQuery = defineQuery<ConsensusStatus>('consensusStatus');

/**
 * Workflows cannot send updates, so a workflow proposes by signal and is answered by signal
 * (workflows/federation-client.ts): status while it waits, then the result or the error.
 */
export interface ProposeFromWorkflow extends ProposeInput {
  requestId: string;
  replyTo: string;
}
export const proposeSignal = defineSignal<[ProposeFromWorkflow]>('federationPropose');
export const commitStatusSignal = defineSignal<[{ requestId: string; status: string }]>('federationCommitStatus');
export const commitResultSignal = defineSignal<[{ requestId: string; result?: ProposalResult; error?: string }]>('federationCommitResult');
