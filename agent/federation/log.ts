/**
 * A site's durable replica of the federation log: one append-only file of checksummed records
 * (log-records.ts). Entries, truncations and term/vote/commit metadata are all records,
 * so every change is one append followed by one fsync; on open the records are replayed and a
 * torn last record is cut off. An agent step must be durable before it answers (CftReady order:
 * persist, then send): `persistReady` writes and fsyncs in place; the consensus activity uses
 * `persistReadyLater` then `durable()`, which fsyncs on the thread pool (one fsync for every write
 * before it: a group commit), so a slow disk holds that answer and not the agent's whole event
 * loop (its fronts, its transfer server, and, when one process runs every site as `fedflow up`
 * and the benchmarks do, the other sites' answers to the same round).
 */
import { closeSync, existsSync, fstatSync, fsync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { restoreFollower } from '../../core/consensus/cft-follower';
import type { CftReady, FollowerState, HardState, LogEntry } from '../../core/consensus/cft-types';
import { applyEntries, emptyCommittedState, type CommittedState, type FederationEntry } from '../../core/consensus/entries';
import { fsyncPath } from '../durable-files';
import { encodeRecord, scanRecords, type LogRecord } from './log-records';

export const FEDERATION_LOG_FILE = 'federation.log';

export class FederationLog {
  private fd: number;
  private entries: LogEntry<FederationEntry>[] = [];
  private hard: HardState = { term: 0, vote: null, commit: 0 };
  /** True if the last open cut off a torn record. */
  readonly recoveredTornTail: boolean;
  /** Writes made so far (each a batch of records, in the page cache), and how many an fsync has covered. */
  private written = 0;
  private synced = 0;
  private syncing: Promise<void> | undefined;
  private closed = false;

  private constructor(readonly path: string) {
    const created = !existsSync(path);
    this.fd = openSync(path, created ? 'a+' : 'r+');
    if (created) {
      // The new file's name must itself survive a crash, so fsync the directory too.
      fsyncSync(this.fd);
      fsyncPath(dirname(path));
    }
    const scan = scanRecords(readFileSync(path), path);
    for (const r of scan.records) this.replay(r);
    this.recoveredTornTail = scan.tornTail;
    if (scan.tornTail) ftruncateSync(this.fd, scan.goodBytes);
    // What was read may be only in the page cache: written by an instance that was closed or
    // killed before its fsync (persistReadyLater). This instance's replies rest on it, so it is
    // made durable before any of them (durable() counts only this instance's own writes).
    fsyncSync(this.fd);
  }

  /** Opens (or creates) the log in `siteDir`. */
  static open(siteDir: string): FederationLog {
    mkdirSync(siteDir, { recursive: true });
    return new FederationLog(join(siteDir, FEDERATION_LOG_FILE));
  }

  get meta(): HardState {
    return { ...this.hard };
  }

  get lastIndex(): number {
    return this.entries.length;
  }

  /** Entries from `index` (1-based) to the end. */
  entriesFrom(index: number): LogEntry<FederationEntry>[] {
    if (!Number.isSafeInteger(index) || index < 1) throw new Error(`entriesFrom needs an index ≥ 1; got ${index}`);
    return this.entries.slice(index - 1);
  }

  append(entries: readonly LogEntry<FederationEntry>[]): void {
    this.write(entries.map((entry) => ({ t: 'entry', entry }) as const));
  }

  /** Drops entries at `index` and after (a conflicting suffix, Raft §5.3). Committed entries are never dropped. */
  truncateFrom(index: number): void {
    this.write([{ t: 'truncate', from: index }]);
  }

  setMeta(meta: HardState): void {
    this.write([{ t: 'meta', meta }]);
  }

  /** Persists one CftReady in its documented order (truncate, entries, hard state) with one fsync. */
  persistReady(ready: CftReady<FederationEntry>): void {
    const records: LogRecord[] = [];
    if (ready.truncateFrom !== undefined) records.push({ t: 'truncate', from: ready.truncateFrom });
    for (const entry of ready.entries) records.push({ t: 'entry', entry });
    if (ready.hardState) records.push({ t: 'meta', meta: ready.hardState });
    this.write(records);
  }

  /**
   * persistReady without waiting for the disk: the records are checked, written in order and
   * applied at once, and are on disk once `durable()` resolves. Nothing that depends on them may
   * leave the site before that.
   */
  persistReadyLater(ready: CftReady<FederationEntry>): void {
    const records: LogRecord[] = [];
    if (ready.truncateFrom !== undefined) records.push({ t: 'truncate', from: ready.truncateFrom });
    for (const entry of ready.entries) records.push({ t: 'entry', entry });
    if (ready.hardState) records.push({ t: 'meta', meta: ready.hardState });
    this.write(records, false);
  }

  /** Writes not yet covered by an fsync. */
  get undurable(): number {
    return this.written - this.synced;
  }

  /**
   * Resolves once every write made before the call is on disk: an fsync on the thread pool that
   * began after them (one in flight that began earlier is waited for, then another is made).
   * Rejects with the fsync's error; the caller must then drop its in-memory state and reopen.
   */
  async durable(): Promise<void> {
    const want = this.written;
    while (this.synced < want) {
      if (!this.syncing) {
        if (this.closed) throw new Error(`${this.path}: closed with ${want - this.synced} write(s) not yet fsynced`);
        const upTo = this.written;
        const fd = this.fd;
        this.syncing = new Promise<void>((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())))
          .then(() => {
            this.synced = Math.max(this.synced, upTo);
          })
          .finally(() => {
            this.syncing = undefined;
          });
      }
      await this.syncing;
    }
  }

  /** The follower state to hand back to the core after a restart. */
  followerState(siteId: string): FollowerState<FederationEntry> {
    return restoreFollower(siteId, { ...this.hard, log: this.entries });
  }

  /** The committed state: applyEntries over the committed value entries. */
  committedState(): CommittedState {
    const values: FederationEntry[] = [];
    for (const e of this.entries.slice(0, this.hard.commit)) if (e.kind === 'value') values.push(e.value);
    return applyEntries(emptyCommittedState(), values);
  }

  /** Closes the file; an fsync in flight finishes first (its descriptor is never reused under it). */
  close(): void {
    this.closed = true;
    const fd = this.fd;
    const closeQuietly = () => {
      try {
        closeSync(fd);
      } catch {
        // Already closed: nothing to release.
      }
    };
    if (this.syncing) void this.syncing.then(closeQuietly, closeQuietly);
    else closeSync(fd);
  }

  private write(records: readonly LogRecord[], sync = true): void {
    if (records.length === 0) return;
    // Check every record against the in-memory state before writing any, so a bad call writes nothing.
    const trial = { entries: [...this.entries], hard: { ...this.hard } };
    for (const r of records) check(trial, r, this.path);
    const buf = Buffer.concat(records.map(encodeRecord));
    const at = fstatSync(this.fd).size;
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off, at + off);
    this.written++;
    if (sync) {
      fsyncSync(this.fd);
      this.synced = this.written;
    }
    for (const r of records) this.replay(r);
  }

  private replay(r: LogRecord): void {
    const state = { entries: this.entries, hard: this.hard };
    apply(state, r);
    this.hard = state.hard;
  }
}

type Mem = { entries: LogEntry<FederationEntry>[]; hard: HardState };

function check(m: Mem, r: LogRecord, path: string): void {
  if (r.t === 'entry' && r.entry.index !== m.entries.length + 1) {
    throw new Error(`${path}: append of index ${r.entry.index}, but the next index is ${m.entries.length + 1}; truncate first or append in order`);
  }
  if (r.t === 'truncate' && (r.from <= m.hard.commit || r.from < 1)) {
    throw new Error(`${path}: truncate from index ${r.from} would drop committed entries (commit ${m.hard.commit}); only indexes above ${m.hard.commit} may be truncated`);
  }
  if (r.t === 'meta' && r.meta.commit > m.entries.length) {
    throw new Error(`${path}: commit index ${r.meta.commit} is past the last entry ${m.entries.length}; append the entries before committing them`);
  }
  apply(m, r);
}

function apply(m: Mem, r: LogRecord): void {
  if (r.t === 'entry') m.entries.push(r.entry);
  else if (r.t === 'truncate') m.entries.length = Math.min(m.entries.length, r.from - 1);
  else m.hard = { ...r.meta };
}

