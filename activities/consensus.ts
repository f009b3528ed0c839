/**
 * The site side of the federation's consensus: activities on the site's own task queue
 * (`fedflow-site-<siteId>`) that hand a batch of messages to the site's replica and return its
 * replies. The workflow is the CFT leader and the router of BFT votes; everything that needs a
 * private key or a signature check happens here, at the site.
 *
 * Each call steps the replica synchronously and persists before returning (persist, then send:
 * a reply may claim the data is durable). JavaScript runs one call's steps without interleaving,
 * so two deliveries to the same site never see each other's steps half-done; a CFT delivery then
 * waits for the disk (FederationLog.durable) while others may step, and returns replies computed
 * before the wait, once every record written before it is on disk.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Replica } from '../core/consensus/bft-replica-state';
import { createReplica, proposeReplica, restoreReplica, stepReplica, type BftReady } from '../core/consensus/bft';
import { stepFollower, type FollowerState } from '../core/consensus/cft';
import type { FederationEntry } from '../core/consensus/entries';
import type { SiteId } from '../core/consensus/types';
import { FailureType } from '../core/contracts/failures';
import { BftStore } from '../agent/federation/bft-store';
import { FederationLog } from '../agent/federation/log';
import { ed25519Verifier, loadSiteSigner } from '../agent/federation/site-keys';
import { publishSiteKey, type PublicKeyResolver } from './consensus-keys';
import type { BftBatch, BftDeliverInput, BftDeliverResult, BftMsg, CftDeliverInput, CftDeliverResult, PingResult } from '../core/contracts/consensus-payloads';

export interface ConsensusDeps {
  site: SiteId;
  /** The site's directory: its private key, federation.log and bft.log live here. */
  dir: string;
  /** The other sites' public keys (activities/consensus-keys.ts says where they come from). */
  keys: PublicKeyResolver;
}

export type ConsensusActivities = ReturnType<typeof createConsensusActivities>;

export function createConsensusActivities(deps: ConsensusDeps) {
  const { site, dir } = deps;
  publishSiteKey(dir);
  const signer = loadSiteSigner(dir, site);

  // Opened on first use and dropped on any error; reopening fsyncs what the file holds (FederationLog's constructor).
  let cft: { log: FederationLog; follower: FollowerState<FederationEntry> } | undefined;
  let bftStore: BftStore<BftBatch> | undefined;
  const replicas = new Map<number, { members: string; replica: Replica<BftBatch> }>();

  function openCft() {
    if (!cft) {
      const log = FederationLog.open(dir);
      cft = { log, follower: log.followerState(site) };
    }
    return cft;
  }

  function replicaFor(view: number, members: SiteId[]): Replica<BftBatch> {
    if (!members.includes(site)) {
      throw ApplicationFailure.nonRetryable(`site ${site} is not a member of view ${view} (members: ${members.join(', ')})`, FailureType.NotAMember);
    }
    const key = members.join(',');
    const known = replicas.get(view);
    if (known) {
      if (known.members !== key) {
        throw ApplicationFailure.nonRetryable(
          `view ${view} at site ${site} has members ${known.members}, the message says ${key}; a new member list needs a new view`,
          FailureType.ViewMembersChanged,
        );
      }
      return known.replica;
    }
    const publicKeys: Record<SiteId, string> = {};
    for (const m of members) {
      const k = deps.keys(m);
      if (!k) {
        throw ApplicationFailure.nonRetryable(
          `site ${site} has no public key for member ${m}: set sites[].publicKey for ${m} in the federation config (base64 SPKI DER), or in the local federation let ${m}'s agent publish site-key.pub in its directory`,
          FailureType.MissingPublicKey,
        );
      }
      publicKeys[m] = k;
    }
    bftStore ??= BftStore.open<BftBatch>(dir);
    const durable = bftStore.view(view);
    const opts = { members, view, window: 1024 };
    const replica = durable.signed.length || durable.committed.length
      ? restoreReplica<BftBatch>(signer, ed25519Verifier(publicKeys), opts, durable.signed, durable.committed)
      : createReplica<BftBatch>(signer, ed25519Verifier(publicKeys), opts);
    replicas.set(view, { members: key, replica });
    return replica;
  }

  return {
    /** CFT: step the follower with each message, persist (fsync on the thread pool), then return the replies. */
    async cftDeliver(input: CftDeliverInput): Promise<CftDeliverResult> {
      let opened: typeof cft;
      try {
        opened = openCft();
        const { log, follower } = opened;
        const replies = [];
        for (const m of input.messages) {
          if (m.to !== site) {
            throw ApplicationFailure.nonRetryable(`a ${m.type} message for ${m.to} reached site ${site}; route it to ${m.to}'s task queue`, FailureType.MisroutedConsensusMessage);
          }
          const ready = stepFollower(follower, m);
          log.persistReadyLater(ready);
          replies.push(...ready.messages);
        }
        // What these replies rest on, as of now: another delivery may step the follower further
        // while this one waits for the disk.
        const state = { term: follower.term, commit: follower.commit, lastIndex: follower.log.length };
        // Persist, then send: every record written so far (this delivery's and any other's the
        // replies may rest on) is on disk before the replies leave.
        await log.durable();
        return { site, replies, ...state };
      } catch (err) {
        // Drop the state this delivery used (reopened from disk next time), unless another
        // delivery already did and opened it again.
        if (opened && cft === opened) {
          cft.log.close();
          cft = undefined;
        }
        throw err;
      }
    },

    /** BFT: propose (primary only), step the replica with each message, persist what it signed and committed, then reply. */
    async bftDeliver(input: BftDeliverInput): Promise<BftDeliverResult> {
      const r = replicaFor(input.view, input.members);
      const all: BftReady<BftBatch> = { persist: [], messages: [], committed: [], equivocations: [], refused: [] };
      const merge = (x: BftReady<BftBatch>) => {
        all.persist.push(...x.persist);
        all.messages.push(...x.messages);
        all.committed.push(...x.committed);
        all.equivocations.push(...x.equivocations);
        all.refused.push(...x.refused);
      };
      try {
        if (input.propose) merge(proposeReplica(r, input.propose));
        for (const m of input.messages) {
          if (m.to !== site) {
            throw ApplicationFailure.nonRetryable(`a ${m.type} message for ${m.to} reached site ${site}; route it to ${m.to}'s task queue`, FailureType.MisroutedConsensusMessage);
          }
          merge(stepReplica(r, m));
        }
        (bftStore as BftStore<BftBatch>).append(input.view, all.persist, all.committed);
      } catch (err) {
        replicas.delete(input.view); // rebuilt from disk on the next call
        throw err;
      }
      return {
        site,
        view: input.view,
        messages: all.messages as BftMsg[],
        committed: all.committed.map((c) => ({ seq: c.seq, digest: c.digest })),
        executed: r.state.executed,
        equivocations: all.equivocations,
        refused: all.refused,
      };
    },

    /** No work: the benchmark's measure of one activity round trip through this site's queue. */
    async consensusPing(): Promise<PingResult> {
      return { site };
    },
  };
}
