/**
 * One federation round: the next batch off the entity's queue, committed by the CFT leader or the
 * BFT router, applied to the committed state, and every proposal in it answered. Only the main
 * loop (federation.ts) calls this, one round at a time.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { applyEntries } from '../../core/consensus/entries';
import { bftSizes, majority } from '../../core/consensus/quorum';
import { takeBatch } from '../../core/federation/batching';
import type { RoundCertificate } from '../../core/contracts/federation';
import { LEADER_SUPERSEDED } from './cft';
import type { FederationEntity, Pending } from './entity';
import { certificateSummary } from './summary';

/** Runs the next round; a failure answers its proposals with the error, and a superseded leader stops the run. */
export async function runNextRound(fed: FederationEntity): Promise<void> {
  const batch = takeBatch(fed.queue, fed.maxBatch);
  fed.status.queued = fed.queue.length;
  try {
    await runRound(fed, batch);
  } catch (err) {
    const failure = err instanceof ApplicationFailure ? err : undefined;
    if (failure?.type === LEADER_SUPERSEDED) {
      const cft = fed.cft;
      if (!fed.input.carry && fed.rounds === 0 && cft && cft.leader.deposedBy && cft.leader.term === fed.term && !cft.leader.log.length) {
        // A fresh start (no previous run handed us a term) after a reset: take a term above the
        // sites' and campaign again. Only here: a run that has led never bids higher, or two runs would duel.
        fed.term = cft.leader.deposedBy.term + 1;
        fed.cft = fed.makeCft(fed.term);
        fed.queue.unshift(...batch);
        return;
      }
      fed.superseded = failure.message;
      fed.status.phase = 'superseded';
      fed.status.status = failure.message;
    }
    const error = (err as Error).message;
    fed.settle(batch, () => ({ error, type: failure?.type ?? 'FederationRoundFailed' }));
  }
}

async function runRound(fed: FederationEntity, batch: Pending[]): Promise<void> {
  const protocol = batch[0]!.protocol;
  const entries = batch.flatMap((p) => p.input.entries);
  fed.inRound = batch;
  fed.status.phase = 'committing';
  fed.status.status = `committing ${entries.length} entries (${protocol})`;
  fed.status.protocol = protocol;
  let certificate: RoundCertificate;
  let positions: (string | undefined)[]; // rejection reason per entry of the batch
  if (protocol === 'cft') {
    if (!fed.cft) throw new Error(`no trusted sites to run a CFT round (members: ${fed.members.join(', ')})`);
    fed.rejectedAtIndex = new Map();
    const cert = await fed.cft.commit(entries);
    certificate = cert;
    positions = entries.map((_, i) => fed.rejectedAtIndex.get(cert.firstIndex + i));
  } else {
    const ordinal = fed.state.applied + 1;
    const cert = await fed.bft.commit({ federation: fed.input.name, ordinal, entries });
    certificate = { protocol: 'bft', certificate: cert.certificate, members: cert.members };
    const before = fed.state.applied;
    fed.state = applyEntries(fed.state, entries);
    positions = entries.map((_, i) => fed.state.rejected.find((r) => r.ordinal === before + i + 1)?.reason);
  }
  fed.rounds++;
  const n = protocol === 'cft' ? fed.trusted.length : fed.members.length;
  const quorum = {
    needed: protocol === 'cft' ? majority(n) : bftSizes(n).quorum,
    total: n,
    got: certificate.protocol === 'cft' ? certificate.ackedBy.length : certificate.certificate.votes.length,
  };
  const summary = certificateSummary(certificate);
  let offset = 0;
  fed.settle(batch, (p) => {
    const rejected = p.input.entries.flatMap((_, i) => (positions[offset + i] ? [{ position: i, reason: positions[offset + i]! }] : []));
    offset += p.input.entries.length;
    return { result: { requestId: p.id, protocol, round: fed.rounds, certificate, summary, quorum, waitedMs: Date.now() - p.arrivedAt, rejected } };
  });
  if (batch.some((p) => p.membership)) fed.membershipChanged = true;
}
