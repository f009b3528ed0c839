/**
 * The PBFT normal case (Castro & Liskov, OSDI'99, §4.2) for one site, as pure step functions:
 * the primary assigns a sequence and sends a signed pre-prepare; each backup that accepts it
 * signs a prepare; a slot is *prepared* with the pre-prepare and quorum-1 matching prepares
 * (2f when n = 3f+1), then each site signs a commit; quorum matching commits (2f+1) commit it.
 * View changes are out of scope: a faulty primary stalls progress but never breaks safety.
 */
import { makeCertificate, verifyCertificate } from './bft-certificate';
import { primaryOf, slotAt, type Replica, type ReplicaState, type Slot } from './bft-replica-state';
import { emptyBftReady, type BftMessage, type CommitCertificate, type BftReady, type SignedVote, type VoteType } from './bft-types';
import { signVote, voteSignatureValid } from './bft-votes';
import { digestOf } from './canonical-json';
import type { SiteId } from './types';

/** The primary proposes `value` at its next sequence number. */
export function proposeReplica<T>(r: Replica<T>, value: T): BftReady<T> {
  const s = r.state;
  const primary = primaryOf(s.members, s.view);
  if (s.self !== primary) throw new Error(`site ${s.self} is not the primary of view ${s.view}; propose through ${primary}`);
  if (s.nextSeq > s.executed + s.window) {
    throw new Error(`window full: sequences ${s.executed + 1}..${s.executed + s.window} are in flight; wait for commits before proposing`);
  }
  const ready = emptyBftReady<T>();
  const seq = s.nextSeq++;
  const vote = sign(r, ready, 'pre-prepare', seq, digestOf(value), value);
  if (!vote) return ready;
  const slot = slotAt(s, seq);
  slot.prePrepare = vote;
  slot.value = value;
  for (const to of peers(s)) ready.messages.push({ type: 'pre-prepare', to, vote, value });
  advance(r, seq, ready);
  return ready;
}

/** Advances logical time: retransmit this site's votes for open sequences, and say how far it got. */
export function tickReplica<T>(r: Replica<T>): BftReady<T> {
  const s = r.state;
  s.tick++;
  const ready = emptyBftReady<T>();
  if (s.tick % s.retransmitTicks !== 0) return ready;
  for (const key of Object.keys(s.slots)) {
    const seq = Number(key);
    const slot = s.slots[seq] as Slot<T>;
    if (slot.committed) continue;
    const own = [slot.prePrepare?.site === s.self ? slot.prePrepare : undefined, slot.prepares[s.self], slot.commits[s.self]];
    for (const vote of own) if (vote) for (const to of peers(s)) ready.messages.push(voteMessage(vote, to, slot.value));
  }
  for (const to of peers(s)) ready.messages.push({ type: 'status', to, from: s.self, executed: s.executed });
  return ready;
}

/** One step of a replica: a switch on the message type. */
export function stepReplica<T>(r: Replica<T>, m: BftMessage<T>): BftReady<T> {
  const s = r.state;
  const ready = emptyBftReady<T>();
  switch (m.type) {
    case 'status':
      s.lastHeard[m.from] = s.tick; // unsigned, so only a hint for reachability; it can only earn certificates
      sendCertificates(s, m.from, m.executed, ready);
      return ready;
    case 'certificate':
      onCertificate(r, m.cert, m.value, ready);
      return ready;
    case 'pre-prepare':
    case 'prepare':
    case 'commit': {
      if (m.vote.type !== m.type) return refuse(ready, m.vote.site, `a ${m.type} message carries a ${m.vote.type} vote`);
      const vote = admit(r, m.vote, ready);
      if (!vote) return ready;
      if (m.type === 'pre-prepare') onPrePrepare(r, vote, m.value, ready);
      else onVote(r, vote, ready);
      return ready;
    }
  }
}

/**
 * Checks shared by every vote. Order matters: the signature first (nothing unsigned is
 * believed), then view and watermarks (old or replayed votes are refused), then equivocation.
 */
function admit<T>(r: Replica<T>, v: SignedVote, ready: BftReady<T>): SignedVote | undefined {
  const s = r.state;
  if (!s.members.includes(v.site)) return void refuse(ready, v.site, `vote from ${v.site}, which is not a member (members: ${s.members.join(', ')})`);
  if (!voteSignatureValid(r.verifier, v)) return void refuse(ready, v.site, `${v.type} for seq ${v.seq} claims site ${v.site} but its signature does not verify (forged or altered)`);
  if (v.view < s.view) return void refuse(ready, v.site, `replayed ${v.type} from ${v.site}: view ${v.view} is older than the current view ${s.view}`);
  if (v.view > s.view) return void refuse(ready, v.site, `${v.type} from ${v.site} for view ${v.view}; this replica is in view ${s.view} (view change is not supported)`);
  s.lastHeard[v.site] = s.tick;
  if (!Number.isSafeInteger(v.seq) || v.seq < 1) return void refuse(ready, v.site, `${v.type} from ${v.site} has sequence ${v.seq}; sequences start at 1`);
  if (v.seq <= s.executed) {
    sendCertificates(s, v.site, v.seq - 1, ready, 1);
    return void refuse(ready, v.site, `replayed ${v.type} from ${v.site}: sequence ${v.seq} is already executed (executed up to ${s.executed})`);
  }
  if (v.seq > s.executed + s.window) return void refuse(ready, v.site, `${v.type} from ${v.site} for sequence ${v.seq} is above the window (accepting ${s.executed + 1}..${s.executed + s.window})`);
  const key = `${v.view}:${v.seq}`;
  const seen = (s.firstVote[v.site] ??= {});
  const first = seen[key];
  if (first && first.digest !== v.digest) {
    if (!s.byzantine[v.site]) {
      const proof = { site: v.site, view: v.view, seq: v.seq, first, second: v };
      s.byzantine[v.site] = proof;
      ready.equivocations.push(proof);
    }
    return void refuse(ready, v.site, `site ${v.site} equivocated: it signed digest ${first.digest} and digest ${v.digest} for view ${v.view} seq ${v.seq}`);
  }
  if (!first) seen[key] = v;
  return v;
}

function onPrePrepare<T>(r: Replica<T>, v: SignedVote, value: T, ready: BftReady<T>): void {
  const s = r.state;
  const primary = primaryOf(s.members, s.view);
  if (v.site !== primary) return void refuse(ready, v.site, `pre-prepare from ${v.site}, but the primary of view ${s.view} is ${primary}`);
  let digest: string;
  try {
    digest = digestOf(value);
  } catch (err) {
    return void refuse(ready, v.site, `pre-prepare for seq ${v.seq} carries a value that is not JSON data: ${(err as Error).message}`);
  }
  if (digest !== v.digest) return void refuse(ready, v.site, `pre-prepare for seq ${v.seq} signs digest ${v.digest} but its value hashes to ${digest}`);
  const slot = slotAt(s, v.seq);
  if (slot.prePrepare) {
    if (slot.prePrepare.digest !== v.digest) return void refuse(ready, v.site, `replayed pre-prepare from ${v.site} for seq ${v.seq}: already accepted`);
    // The primary sends a pre-prepare again while it sees the round stall: this replica's votes
    // for it may have been lost (a peer down when they went out). Sent again, as signed then (a
    // peer counts each site's vote once). Without this, a replica that came back after voting
    // refused every retransmission and the round never reached quorum.
    const prepare = slot.sentPrepare ? slot.prepares[s.self] : undefined;
    const commit = slot.sentCommit ? slot.commits[s.self] : undefined;
    for (const to of peers(s)) {
      if (prepare) ready.messages.push({ type: 'prepare', to, vote: prepare });
      if (commit) ready.messages.push({ type: 'commit', to, vote: commit });
    }
    return;
  }
  slot.prePrepare = v;
  slot.value = value;
  if (s.self !== primary && !slot.sentPrepare) {
    const prepare = sign(r, ready, 'prepare', v.seq, v.digest);
    if (prepare) {
      slot.prepares[s.self] = prepare;
      slot.sentPrepare = true;
      for (const to of peers(s)) ready.messages.push({ type: 'prepare', to, vote: prepare });
    }
  }
  advance(r, v.seq, ready);
}

function onVote<T>(r: Replica<T>, v: SignedVote, ready: BftReady<T>): void {
  const s = r.state;
  const slot = slotAt(s, v.seq);
  // The primary's pre-prepare stands for its prepare (PBFT §4.2); a prepare from it is not counted.
  if (v.type === 'prepare' && v.site === primaryOf(s.members, s.view)) return void refuse(ready, v.site, `prepare from the primary ${v.site}; its pre-prepare already counts as its prepare`);
  const votes = v.type === 'prepare' ? slot.prepares : slot.commits;
  if (votes[v.site]) return void refuse(ready, v.site, `replayed ${v.type} from ${v.site} for seq ${v.seq}: already counted`);
  votes[v.site] = v;
  advance(r, v.seq, ready);
}

function onCertificate<T>(r: Replica<T>, cert: CommitCertificate, value: T, ready: BftReady<T>): void {
  const s = r.state;
  if (cert.seq <= s.executed || s.slots[cert.seq]?.committed) return;
  if (cert.view !== s.view) return void refuse(ready, undefined, `certificate for view ${cert.view}; this replica is in view ${s.view}`);
  const check = verifyCertificate(cert, s.members, r.verifier);
  if (!check.ok) return void refuse(ready, undefined, check.reason);
  if (digestOf(value) !== cert.digest) return void refuse(ready, undefined, `certificate for seq ${cert.seq} is for digest ${cert.digest} but its value hashes to ${digestOf(value)}`);
  slotAt(s, cert.seq).committed = { value, certificate: cert };
  execute(s, ready);
}

/** Moves a slot through prepared → committed, signing this site's commit once prepared. */
function advance<T>(r: Replica<T>, seq: number, ready: BftReady<T>): void {
  const s = r.state;
  const slot = slotAt(s, seq);
  const pp = slot.prePrepare;
  if (!pp || slot.committed) return;
  const matching = (votes: Record<SiteId, SignedVote>) => Object.values(votes).filter((x) => x.digest === pp.digest);
  const prepared = matching(slot.prepares).length >= s.quorum - 1;
  if (!prepared) return;
  if (!slot.sentCommit) {
    const commit = sign(r, ready, 'commit', seq, pp.digest);
    if (!commit) return;
    slot.commits[s.self] = commit;
    slot.sentCommit = true;
    for (const to of peers(s)) ready.messages.push({ type: 'commit', to, vote: commit });
  }
  const commits = matching(slot.commits);
  if (commits.length >= s.quorum) {
    slot.committed = { value: slot.value as T, certificate: makeCertificate(s.view, seq, pp.digest, commits) };
    execute(s, ready);
  }
}

/** Hands out committed slots in sequence order, without gaps (PBFT executes in order). */
function execute<T>(s: ReplicaState<T>, ready: BftReady<T>): void {
  for (let slot = s.slots[s.executed + 1]; slot?.committed; slot = s.slots[s.executed + 1]) {
    const seq = s.executed + 1;
    const c = { seq, value: slot.committed.value, digest: slot.committed.certificate.digest, certificate: slot.committed.certificate };
    s.done[seq] = c;
    ready.committed.push(c);
    delete s.slots[seq];
    s.executed = seq;
  }
  s.nextSeq = Math.max(s.nextSeq, s.executed + 1);
}

/** Signs once per (view, seq) digest: refuses, rather than equivocates, if asked to sign another. */
function sign<T>(r: Replica<T>, ready: BftReady<T>, type: VoteType, seq: number, digest: string, value?: T): SignedVote | undefined {
  const s = r.state;
  const mine = (s.firstVote[s.self] ??= {});
  const key = `${s.view}:${seq}`;
  const earlier = mine[key];
  if (earlier && earlier.digest !== digest) {
    return void refuse(ready, s.self, `site ${s.self} already signed digest ${earlier.digest} for view ${s.view} seq ${seq}; it will not sign ${digest}`);
  }
  const vote = signVote(r.signer, { type, view: s.view, seq, digest });
  mine[key] ??= vote;
  ready.persist.push(value === undefined ? { vote } : { vote, value });
  return vote;
}

function sendCertificates<T>(s: ReplicaState<T>, to: SiteId, theirExecuted: number, ready: BftReady<T>, max = 16): void {
  if (to === s.self || !s.members.includes(to)) return;
  for (let seq = theirExecuted + 1; seq <= Math.min(s.executed, theirExecuted + max); seq++) {
    const c = s.done[seq];
    if (c) ready.messages.push({ type: 'certificate', to, cert: c.certificate, value: c.value });
  }
}

function voteMessage<T>(vote: SignedVote, to: SiteId, value: T | undefined): BftMessage<T> {
  if (vote.type === 'pre-prepare') return { type: 'pre-prepare', to, vote, value: value as T };
  return { type: vote.type, to, vote };
}

function peers<T>(s: ReplicaState<T>): SiteId[] {
  return s.members.filter((m) => m !== s.self);
}

function refuse<T>(ready: BftReady<T>, site: SiteId | undefined, reason: string): BftReady<T> {
  ready.refused.push(site === undefined ? { reason } : { reason, site });
  return ready;
}
