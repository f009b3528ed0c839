/**
 * `commitProposal`: one consensus round as a workflow of its own, for callers that own a leader
 * epoch (bootstrapping a federation, repairs, tests). It picks the protocol (CFT when every site
 * the proposal touches is trusted, BFT otherwise), runs the round and returns the certificate.
 *
 * Normal traffic goes through the `federation` workflow instead, which runs the same round code
 * inline: a child workflow per round would add two workflow tasks to every commit, and one writer
 * per federation is what keeps the CFT epochs ordered. A CFT commitProposal is a leader epoch of
 * its own: with an explicit `term` it is strict (a stale term fails with LeaderSuperseded and
 * writes nothing); without one it takes the term above the sites' current one, which fences the
 * federation workflow's epoch in turn.
 */
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { FederationEntry } from '../../core/consensus/entries';
import { chooseProtocol } from '../../core/consensus/protocol-choice';
import { bftSizes, majority } from '../../core/consensus/quorum';
import type { Protocol, SiteId } from '../../core/consensus/types';
import type { Trust } from '../../core/federation-config';
import { BftDriver } from './bft';
import { CftDriver, LEADER_SUPERSEDED } from './cft';
import { certificateSummary } from './summary';
import type { CertificateSummary, QuorumFigures, RoundCertificate, RttTable } from '../../core/contracts/federation';
import { FailureType } from '../../core/contracts/failures';

export interface CommitProposalInput {
  federation: string;
  /** Every member, with its trust; BFT members are all of them, CFT members the trusted ones. */
  sites: { id: SiteId; trust: Trust }[];
  entries: FederationEntry[];
  touches?: SiteId[];
  rttMs?: RttTable;
  /** CFT leader epoch. Omit to take the term above the sites' current one. */
  term?: number;
  /** CFT leader name; defaults to this workflow's id. */
  leaderId?: string;
  /** BFT view; the round moves to a later one if its primary does not answer. */
  view?: number;
  /** Position of the first entry in the federation's order (BFT batches carry it). */
  ordinal?: number;
}

export interface CommitProposalResult {
  protocol: Protocol;
  certificate: RoundCertificate;
  summary: CertificateSummary;
  quorum: QuorumFigures;
  /** The last status a waiting round reported, if it had to wait. */
  waited?: string;
}

export async function commitProposal(input: CommitProposalInput): Promise<CommitProposalResult> {
  if (!input.entries?.length) throw ApplicationFailure.nonRetryable('commitProposal needs at least one entry; got none', FailureType.InvalidProposal);
  const trust = Object.fromEntries(input.sites.map((s) => [s.id, s.trust]));
  const touched = [...new Set([...(input.touches ?? []), ...input.entries.map((e) => e.site)])];
  for (const s of touched) {
    if (!trust[s]) throw ApplicationFailure.nonRetryable(`site '${s}' is not a member (members: ${Object.keys(trust).sort().join(', ')})`, FailureType.UnknownSite);
  }
  const protocol = chooseProtocol(touched, (s) => trust[s]);
  const members = input.sites.map((s) => s.id).sort();
  let waited: string | undefined;
  const onWaiting = (s: string) => (waited = s);
  let certificate: RoundCertificate;
  if (protocol === 'cft') {
    const trusted = members.filter((m) => trust[m] === 'trusted');
    const leaderId = input.leaderId ?? workflowInfo().workflowId;
    let term = input.term ?? 1;
    for (;;) {
      const driver = new CftDriver({ federation: input.federation, leaderId, term, members: trusted, base: [], rttMs: input.rttMs, onCommitted: () => undefined, onWaiting });
      try {
        certificate = await driver.commit(input.entries);
        break;
      } catch (err) {
        // Without an explicit epoch: learn the sites' term from the refusal and bid above it.
        const by = driver.leader.deposedBy;
        if (input.term !== undefined || !by || !(err instanceof ApplicationFailure) || err.type !== LEADER_SUPERSEDED) throw err;
        term = by.term + 1;
      }
    }
  } else {
    const driver = new BftDriver({
      federation: input.federation, members, view: input.view ?? 0, rttMs: input.rttMs, onWaiting,
      onEquivocation: () => undefined, onRefusal: () => undefined,
    });
    const cert = await driver.commit({ federation: input.federation, ordinal: input.ordinal ?? 0, entries: input.entries });
    certificate = { protocol: 'bft', certificate: cert.certificate, members: cert.members };
  }
  const n = protocol === 'cft' ? members.filter((m) => trust[m] === 'trusted').length : members.length;
  const quorum = {
    needed: protocol === 'cft' ? majority(n) : bftSizes(n).quorum,
    total: n,
    got: certificate.protocol === 'cft' ? certificate.ackedBy.length : certificate.certificate.votes.length,
  };
  return { protocol, certificate, summary: certificateSummary(certificate), quorum, ...(waited ? { waited } : {}) };
}
