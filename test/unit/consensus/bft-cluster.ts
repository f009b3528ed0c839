/** A BFT federation on the in-memory network: honest replicas with simulated disks, and Byzantine ones. */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  proposeReplica, restoreReplica, signVote, stepReplica, tickReplica,
  type BftCommitted, type BftMessage, type BftReady, type EquivocationProof, type Replica, type SignedRecord,
} from '../../../core/consensus/bft';
import { digestOf } from '../../../core/consensus/canonical-json';
import type { Signer, Verifier } from '../../../core/consensus/signing';
import { Network, type Node } from './network';

export type Msg = BftMessage<string>;

/** Fast deterministic stand-in for Ed25519 in property runs: HMAC with a per-site secret. */
export function hmacCrypto(sites: readonly string[]): { signer: (s: string) => Signer; verifier: Verifier } {
  const secret = (s: string) => `secret-of-${s}`;
  const mac = (s: string, b: Uint8Array) => createHmac('sha256', secret(s)).update(b).digest('base64');
  return {
    signer: (siteId) => ({ siteId, sign: (b) => mac(siteId, b) }),
    verifier: { verify: (site, b, sig) => sites.includes(site) && mac(site, b) === sig },
  };
}

export class BftLedger {
  readonly bySeq = new Map<number, string>();
  readonly perNode = new Map<string, BftCommitted<string>[]>();
  record(who: string, committed: readonly BftCommitted<string>[]): void {
    const mine = this.perNode.get(who) ?? [];
    for (const c of committed) {
      const prev = this.bySeq.get(c.seq);
      assert.ok(prev === undefined || prev === c.digest, `two values committed at sequence ${c.seq}: ${prev} and ${c.digest} (reported by ${who})`);
      assert.equal(digestOf(c.value), c.digest, `${who} committed a value whose digest does not match`);
      this.bySeq.set(c.seq, c.digest);
      mine.push(c);
    }
    this.perNode.set(who, mine);
  }
  values(who: string): string[] {
    return (this.perNode.get(who) ?? []).map((c) => c.value);
  }
}

export interface ReplicaDisk {
  signed: SignedRecord<string>[];
  committed: BftCommitted<string>[];
}

export class ReplicaNode implements Node<Msg> {
  readonly replica: Replica<string>;
  readonly readies: BftReady<string>[] = [];
  readonly proofs: EquivocationProof[] = [];
  constructor(readonly id: string, private readonly cl: BftCluster, readonly disk: ReplicaDisk) {
    const { signer, verifier } = cl.crypto;
    this.replica = restoreReplica(signer(id), verifier, { members: cl.sites, view: cl.view }, disk.signed, disk.committed);
  }
  receive(m: Msg): Msg[] {
    return this.apply(stepReplica(this.replica, m));
  }
  tick(): Msg[] {
    return this.apply(tickReplica(this.replica));
  }
  propose(v: string): Msg[] {
    return this.apply(proposeReplica(this.replica, v));
  }
  apply(r: BftReady<string>): Msg[] {
    this.readies.push(r);
    this.disk.signed.push(...r.persist); // persist before sending
    this.disk.committed.push(...r.committed);
    this.proofs.push(...r.equivocations);
    if (!this.cl.byzantine.has(this.id)) this.cl.ledger.record(this.id, r.committed);
    return this.cl.byzantine.has(this.id) ? this.cl.corrupt(this.id, r.messages) : r.messages;
  }
}

export class BftCluster {
  readonly net: Network<Msg>;
  readonly ledger = new BftLedger();
  readonly disks = new Map<string, ReplicaDisk>();
  readonly byzantine = new Set<string>();
  /** How a Byzantine site lies: 'split' sends the other digest to odd-numbered peers, 'flip' to even ones, 'both' sends both to everyone. */
  lie: 'split' | 'both' = 'split';

  constructor(readonly sites: string[], seed: number, readonly crypto: { signer: (s: string) => Signer; verifier: Verifier }, readonly view = 0) {
    this.net = new Network<Msg>(seed, (m) => ({ from: m.type === 'status' ? m.from : m.type === 'certificate' ? '?' : m.vote.site, to: m.to }));
    for (const id of sites) {
      const disk: ReplicaDisk = { signed: [], committed: [] };
      this.disks.set(id, disk);
      this.net.add(id, () => new ReplicaNode(id, this, disk));
    }
  }

  node(id: string): ReplicaNode {
    return this.net.node<ReplicaNode>(id);
  }

  /** Per-site override of `lie`. */
  readonly lieOf = new Map<string, 'split' | 'both' | 'flip'>();
  /** Digests proposed per sequence (honest and evil), so a liar can vote for the other one. */
  private readonly known = new Map<number, Set<string>>();

  propose(v: string): void {
    const primary = this.sites[this.view % this.sites.length] as string;
    const seq = this.node(primary).replica.state.nextSeq;
    this.digests(seq).add(digestOf(v));
    this.net.send(this.node(primary).propose(v));
  }

  private digests(seq: number): Set<string> {
    let d = this.known.get(seq);
    if (!d) this.known.set(seq, (d = new Set()));
    return d;
  }

  /** A Byzantine site's outgoing votes: re-signed with its real key over a different digest or value. */
  corrupt(id: string, msgs: Msg[]): Msg[] {
    const signer = this.crypto.signer(id);
    const mode = this.lieOf.get(id) ?? this.lie;
    const out: Msg[] = [];
    for (const m of msgs) {
      if (m.type === 'status' || m.type === 'certificate') {
        out.push(m);
        continue;
      }
      const evilValue = `evil:${m.vote.seq}`;
      const known = this.digests(m.vote.seq);
      known.add(digestOf(evilValue));
      const other = [...known].find((d) => d !== m.vote.digest) as string;
      const forge = (digest: string): Msg => {
        const vote = signVote(signer, { type: m.vote.type, view: m.vote.view, seq: m.vote.seq, digest });
        return m.type === 'pre-prepare' ? { type: 'pre-prepare', to: m.to, vote: signVote(signer, { type: 'pre-prepare', view: m.vote.view, seq: m.vote.seq, digest: digestOf(evilValue) }), value: evilValue } : { type: m.type, to: m.to, vote };
      };
      const even = this.sites.indexOf(m.to) % 2 === 0;
      if (mode === 'both') out.push(m, forge(other));
      else if (mode === 'split') out.push(even ? m : forge(other));
      else out.push(even ? forge(other) : m);
    }
    return out;
  }
}
