/** The site's durable replica of the federation log: restarts, torn tails, corruption, and the CFT core on top. */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FederationLog } from '../../../agent/federation/log';
import { stepFollower, type LogEntry } from '../../../core/consensus/cft';
import type { FederationEntry } from '../../../core/consensus/entries';

const root = mkdtempSync(join(tmpdir(), 'fedflow-log-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const dir = () => join(root, `site-${n++}`);

const e = (index: number, term: number, value: FederationEntry): LogEntry<FederationEntry> => ({ index, term, kind: 'value', value });
const joinParis: FederationEntry = { kind: 'membership', op: 'join', site: 'dc:paris', publicKey: 'pk', capacity: 2 };
const placeKv: FederationEntry = { kind: 'placement', workload: 'kv', site: 'dc:paris' };

test('entries, truncation and metadata survive a reopen', () => {
  const d = dir();
  const log = FederationLog.open(d);
  log.append([e(1, 1, joinParis), e(2, 1, placeKv), e(3, 1, placeKv)]);
  log.setMeta({ term: 1, vote: 'wf-1', commit: 2 });
  log.truncateFrom(3);
  log.append([e(3, 2, { kind: 'placement', workload: 'web', site: 'dc:paris' })]);
  log.setMeta({ term: 2, vote: 'wf-2', commit: 3 });
  log.close();
  const again = FederationLog.open(d);
  assert.equal(again.recoveredTornTail, false);
  assert.deepEqual(again.meta, { term: 2, vote: 'wf-2', commit: 3 });
  assert.deepEqual(again.entriesFrom(3), [e(3, 2, { kind: 'placement', workload: 'web', site: 'dc:paris' })]);
  assert.deepEqual(again.committedState().placements, { kv: 'dc:paris', web: 'dc:paris' });
  again.close();
});

test('a torn last record is cut off on open; earlier records stay', () => {
  const d = dir();
  const log = FederationLog.open(d);
  log.append([e(1, 1, joinParis)]);
  log.setMeta({ term: 1, vote: 'wf', commit: 1 });
  log.append([e(2, 1, placeKv)]);
  log.close();
  const path = join(d, 'federation.log');
  const full = statSync(path).size;
  truncateSync(path, full - 5); // the crash hit in the middle of the last append
  const again = FederationLog.open(d);
  assert.equal(again.recoveredTornTail, true);
  assert.equal(again.lastIndex, 1);
  assert.deepEqual(again.meta, { term: 1, vote: 'wf', commit: 1 });
  assert.ok(statSync(path).size < full - 5, 'the torn bytes must be removed from the file');
  again.append([e(2, 1, placeKv)]); // and the log keeps working after recovery
  again.close();
  assert.equal(FederationLog.open(d).lastIndex, 2);
  appendFileSync(path, Buffer.from([0, 0, 0])); // a header cut short is torn too
  assert.equal(FederationLog.open(d).recoveredTornTail, true);
});

test('a bad checksum followed by more records is corruption, not a torn tail', () => {
  const d = dir();
  const log = FederationLog.open(d);
  log.append([e(1, 1, joinParis)]);
  log.append([e(2, 1, placeKv)]);
  log.close();
  const path = join(d, 'federation.log');
  const bytes = readFileSync(path);
  bytes[12] = (bytes[12] as number) ^ 0xff; // inside the first record's payload
  writeFileSync(path, bytes);
  assert.throws(() => FederationLog.open(d), /corrupt at byte 0: checksum .* records after it exist/);
});

test('misuse is refused with what would be right', () => {
  const log = FederationLog.open(dir());
  assert.throws(() => log.append([e(2, 1, placeKv)]), /append of index 2, but the next index is 1/);
  log.append([e(1, 1, joinParis)]);
  log.setMeta({ term: 1, vote: null, commit: 1 });
  assert.throws(() => log.truncateFrom(1), /would drop committed entries \(commit 1\)/);
  assert.throws(() => log.setMeta({ term: 1, vote: null, commit: 5 }), /commit index 5 is past the last entry 1/);
  assert.equal(log.lastIndex, 1, 'a refused write writes nothing');
  log.close();
});

test('a CFT follower persisted through the log restarts with the same state', () => {
  const d = dir();
  let log = FederationLog.open(d);
  const f = log.followerState('dc:paris');
  const ready = stepFollower(f, { type: 'append', from: 'wf', to: 'dc:paris', term: 3, prevIndex: 0, prevTerm: 0, entries: [e(1, 3, joinParis), e(2, 3, placeKv)], commit: 2 });
  log.persistReady(ready);
  assert.deepEqual(ready.committed.length, 2);
  log.close();
  log = FederationLog.open(d);
  const back = log.followerState('dc:paris');
  assert.deepEqual({ term: back.term, vote: back.vote, commit: back.commit, log: back.log }, { term: 3, vote: 'wf', commit: 2, log: f.log });
  assert.deepEqual(log.committedState().placements, { kv: 'dc:paris' });
  // A stale leader is still fenced after the restart.
  const refused = stepFollower(back, { type: 'append', from: 'old', to: 'dc:paris', term: 2, prevIndex: 2, prevTerm: 3, entries: [], commit: 2 });
  assert.equal(refused.messages[0]?.type === 'append-resp' && refused.messages[0].success, false);
  log.close();
});

test('persistReadyLater then durable(): applied at once, fsynced on the thread pool, and durable() covers every earlier write', async () => {
  const d = dir();
  const log = FederationLog.open(d);
  const f = log.followerState('dc:paris');
  const first = stepFollower(f, { type: 'append', from: 'wf', to: 'dc:paris', term: 3, prevIndex: 0, prevTerm: 0, entries: [e(1, 3, joinParis)], commit: 0 });
  log.persistReadyLater(first);
  assert.equal(log.lastIndex, 1, 'the records are applied at once');
  assert.equal(log.undurable, 1, 'and not yet covered by an fsync');
  // A second delivery's write while the first waits: one durable() call covers both.
  const waitFirst = log.durable();
  const second = stepFollower(f, { type: 'append', from: 'wf', to: 'dc:paris', term: 3, prevIndex: 1, prevTerm: 3, entries: [e(2, 3, placeKv)], commit: 2 });
  log.persistReadyLater(second);
  assert.equal(log.undurable, 2);
  await log.durable();
  assert.equal(log.undurable, 0, 'durable() waits for an fsync begun after the last write, not only the one in flight');
  await waitFirst;
  // A refused write writes nothing and counts nothing.
  assert.throws(() => log.persistReadyLater({ truncateFrom: 1, entries: [], messages: [], committed: [] }), /would drop committed entries/);
  assert.equal(log.undurable, 0);
  log.close();
  const back = FederationLog.open(d);
  assert.deepEqual(back.followerState('dc:paris').log, f.log);
  assert.deepEqual(back.committedState().placements, { kv: 'dc:paris' });
  back.close();
});

test('close() with an fsync in flight lets it finish; durable() after close with writes not covered is refused', async () => {
  const d = dir();
  const log = FederationLog.open(d);
  log.persistReadyLater({ entries: [e(1, 1, joinParis)], messages: [], committed: [] });
  const inFlight = log.durable();
  log.close();
  await inFlight; // the descriptor stayed open for it
  assert.equal(log.undurable, 0);
  const other = FederationLog.open(d);
  assert.equal(other.lastIndex, 1);
  other.close();
  const d2 = dir();
  const closed = FederationLog.open(d2);
  closed.persistReadyLater({ entries: [e(1, 1, joinParis)], messages: [], committed: [] });
  closed.close();
  await assert.rejects(closed.durable(), /closed with 1 write\(s\) not yet fsynced/);
});
