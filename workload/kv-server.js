#!/usr/bin/env node
// The sample workload: a small HTTP key-value service whose data lives on its volume.
// Plain JavaScript with no dependencies so an instance starts in tens of milliseconds
// (start time is part of a migration's downtime).
//
//   node workload/kv-server.js --data <volume dir> --port <port> [--host 127.0.0.1] [--standby]
//
// --standby boots the process without reading its volume: it answers /health and waits for
// POST /admin/activate, which loads the volume and starts serving. A migration boots the target
// this way while pre-copy runs, so the cut-over pays for loading the data, not for a process start.
// While it stands by, it reads ahead: every full segment the pre-copy rounds have laid into its
// volume is replayed as it appears (a full segment is never written again), and the activation
// replays only what came after, provided each segment read ahead is still the same file, unchanged
// (its size, mtime, ctime, inode and device, the rule a final capture uses at the source, and read
// only once it is READ_AHEAD_AGE_MS old); if one is not, the activation replays the whole log as before.
//
// The digest is a set hash, kept up to date with every write, so a freeze or an activation answers
// it without reading the data: the 16 32-bit lanes of sha512(pair) summed over the key/value pairs,
// mod 2^32 each (a lattice hash, Bellare & Micciancio 1997, "A new paradigm for collision-free
// hashing: incrementality at reduced cost"; LtHash as Facebook uses it for its databases), so a
// write subtracts its old pair's hash and adds its new one. After a load the sum is built over the
// data in slices between requests; a digest asked for before that pass ends finishes it first.
// 16 lanes of 32 bits catch any divergence between source and target; they are not meant to stand
// against an adversary who chooses the data. The digest changed form on 2026-12-03 (it was the
// sha256 of the sorted pairs): a sample cut-over between sites running releases from either side
// of that change ends in DataMismatch and rolls back, so upgrade every site's agent together.
//
// Data: an append-only log of {"k","v"} / {"k","del":true} lines, replayed at start: <volume>/kv.jsonl,
// then segments kv.1.jsonl, kv.2.jsonl … once a segment reaches SEGMENT_BYTES, writes go to a new one.
// Like a database's WAL segments: a file once full is never written again, so a migration's final
// capture, which reads only files changed since the previous round, reads the last segment only.
// API:
//   GET  /health                 {ok, keys, frozen, standby, readAheadSegments and readAheadPending (standing by)}
//   GET  /kv                     every key and value, as one JSON object
//   GET  /kv/<key>               the value (404 if absent)
//   PUT  /kv/<key>               body is the value; 503 while frozen (and the connection closed)
//   DELETE /kv/<key>
//   GET  /admin/digest           {keys, sha256}: the sha256 of the key count and the set hash of the pairs
//   POST /admin/freeze           stop taking writes, flush to disk, return the digest (migration cut-over)
//   POST /admin/thaw             take writes again (a migration that rolled back)
//   POST /admin/activate         (standby only) load the volume and serve; returns the digest, and
//                                what the activation did (segments read ahead, replayed, ms)
'use strict';
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

const dataDir = arg('data');
const port = Number(arg('port', '0'));
const host = arg('host', '127.0.0.1');
if (!dataDir) {
  console.error('kv-server: --data <volume dir> is required');
  process.exit(2);
}
// Small enough that the activation's replay of the last one, and a final capture's read of it, stay
// short (it was 4 MiB until 2026-12-03: the activation replayed 12-40 ms of it; a volume written
// with 4 MiB segments loads as before, each of them full).
const SEGMENT_BYTES = 1 << 20;
/** Segment n's path: kv.jsonl for 0 (the only file of earlier versions), kv.<n>.jsonl after. */
const segmentPath = (n) => path.join(dataDir, n === 0 ? 'kv.jsonl' : `kv.${n}.jsonl`);
/** The segments on disk, in order: 0, 1, 2 … as long as they follow one another. */
function segments() {
  const out = [];
  for (let n = 0; fs.existsSync(segmentPath(n)); n++) out.push(n);
  return out;
}

/** @type {Map<string,string>} */
const store = new Map();
let standby = process.argv.includes('--standby');
/** @type {number | undefined} */
let fd;
/** The segment written to, and its size. */
let active = 0;
let activeBytes = 0;
let frozen = false;
let dirty = false;

/** Applies one log line; false for a torn line (after a crash), where replay stops. */
function apply(line) {
  if (!line) return true;
  let rec;
  try {
    rec = JSON.parse(line);
  } catch {
    // A torn last line after a crash: everything before it is intact, so stop here.
    return false;
  }
  if (rec.del) deleteKey(rec.k);
  else setKey(rec.k, rec.v);
  return true;
}

/**
 * Replays one segment in pieces, one line at a time (a segment of an earlier version may be longer
 * than the longest string V8 holds). Returns the offset just past the last whole line applied,
 * and the file's size: less means a torn tail (a crash in mid-append), or a last line cut short
 * before its newline, even one that parses.
 */
function replaySegment(file) {
  const rfd = fs.openSync(file, 'r');
  let good = 0;
  try {
    const size = fs.fstatSync(rfd).size;
    // At most 8 MiB at a time, and no more than the file: a fresh 8 MiB buffer for each 1 MiB
    // segment was half the time of reading a 1 GiB log ahead (`npm run bench -- kv-readahead`).
    const buf = Buffer.allocUnsafe(Math.min(8 << 20, Math.max(64 << 10, size + 1)));
    /** @type {Buffer} */
    let rest = Buffer.alloc(0);
    let n;
    while ((n = fs.readSync(rfd, buf, 0, buf.length, null)) > 0) {
      const piece = rest.length ? Buffer.concat([rest, buf.subarray(0, n)]) : buf.subarray(0, n);
      let start = 0;
      for (let nl = piece.indexOf(10, start); nl !== -1; nl = piece.indexOf(10, start)) {
        if (!apply(piece.toString('utf8', start, nl))) return { good, size };
        good += nl + 1 - start;
        start = nl + 1;
      }
      rest = Buffer.from(piece.subarray(start));
    }
    return { good, size };
  } finally {
    fs.closeSync(rfd);
  }
}

/**
 * Replays the log into the store and opens its last segment for appends. `ahead`: the segments a
 * standby has replayed already (see readAhead), whose records the store holds; the replay starts
 * after them. Without it, the store starts empty. The set hash is built afterwards (startSum).
 */
function load(ahead = 0) {
  fs.mkdirSync(dataDir, { recursive: true });
  if (ahead === 0) {
    store.clear();
    // Nothing counted: the replay sets keys without hashing, and startSum counts them after.
    lanes.fill(0);
    counted = new Set();
    pass = undefined;
  }
  const segs = segments();
  for (let i = ahead; i < segs.length; i++) {
    const file = segmentPath(segs[i]);
    const { good, size } = replaySegment(file);
    // A segment with a successor is full (it rolled over at SEGMENT_BYTES or more): one that is
    // shorter lost its end in a crash of the machine, even one that ends on a whole record (the
    // kernel may write the next segment's pages before this one's last). Replaying the next
    // would leave a hole in the log, so it ends here, as at a torn record.
    const shortFull = i < segs.length - 1 && size < SEGMENT_BYTES;
    if (good === size && !shortFull) continue;
    // A torn tail is cut off before appending, or the next record would be glued to the fragment
    // and every record after it lost at the next load. Any segment after it could not be replayed
    // in order: the log stays a prefix of what was written.
    if (good < size) console.error(`kv-server: ${size - good} bytes of a torn last record cut off ${path.basename(file)} (a crash in mid-write)`);
    else console.error(`kv-server: ${path.basename(file)} is ${size} bytes, short of a full segment (${SEGMENT_BYTES}), yet followed by another: its end was lost in a crash`);
    fs.truncateSync(file, good);
    for (const later of segs.slice(i + 1)) {
      console.error(`kv-server: ${path.basename(segmentPath(later))} follows a torn segment; moved aside to ${path.basename(segmentPath(later))}.orphan`);
      fs.renameSync(segmentPath(later), `${segmentPath(later)}.orphan`);
    }
    segs.length = i + 1;
    break;
  }
  active = segs.length ? segs[segs.length - 1] : 0;
  activeBytes = fs.existsSync(segmentPath(active)) ? fs.statSync(segmentPath(active)).size : 0;
  if (activeBytes >= SEGMENT_BYTES) {
    active++;
    activeBytes = 0;
  }
  fd = fs.openSync(segmentPath(active), 'a');
  if (pass === undefined && counted !== undefined) startSum();
}

/**
 * Reading ahead while standing by: the segments replayed so far, in order from segment 0, each
 * with the identity its file had when it was read. Only full segments (one with a successor) are
 * read ahead: they are never written again, so the same file, unchanged, holds the same records.
 * And only once the segment and its successor are READ_AHEAD_AGE_MS old: a write in the same clock
 * tick as the stat could leave the identity as it was (git's racily-clean rule), and the round that
 * laid down the successor may still be finishing the segment (a patch applies file by file).
 * @type {{ n: number, id: string }[]}
 */
const readAhead = [];
/**
 * How old (by ctime) a segment and its successor must be before the segment is read ahead. Linux
 * stamps ctime from its coarse clock, at most one tick (1-10 ms) behind the wall clock; a file
 * whose ctime is 100 ms behind the stat's time cannot be written again with the same ctime, so
 * its identity changes with any later write. (A filesystem that keeps whole seconds only, whose
 * ctimes have no sub-second part, gets a full second instead.) It also waits out a patch still applying: a round's
 * journal applies its in-place writes and renames within milliseconds, and a segment that
 * changes after it was read ahead is caught by the activation's identity check anyway (the whole
 * log is then replayed). It was 1 s: a 64 MiB migration (about 3 s, its final round less than a
 * second after the first laid the segments down) then read nothing ahead.
 */
const READ_AHEAD_AGE_MS = 100;
let readingAhead = false;
/** How many times reading ahead started again from segment 0 (a segment read ahead changed). */
let readAheadRestarts = 0;
/** A file's identity (size, mtime, ctime in ns, inode, device) and its ctime in ms; undefined if it is missing. */
function identity(file) {
  try {
    const st = fs.statSync(file, { bigint: true });
    return { id: `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}:${st.dev}`, ctimeMs: Number(st.ctimeNs / 1_000_000n), ctimeNs: st.ctimeNs };
  } catch {
    return undefined;
  }
}
/** Whether every segment read ahead is still the same file, unchanged. */
const readAheadHolds = () => readAhead.every((r) => identity(segmentPath(r.n))?.id === r.id);
function forgetReadAhead() {
  readAhead.length = 0;
  store.clear();
  lanes.fill(0);
  counted = undefined;
  pass = undefined;
}
/** A segment read ahead changed on disk: forget what was read ahead and read again from segment 0. */
function restartReadAhead() {
  console.error('kv-server: a segment read ahead has changed on disk; reading ahead again from the start');
  forgetReadAhead();
  readAheadRestarts++;
  if (standby) setImmediate(readAheadStep);
}
/** One step of reading ahead: replays the next full segment, if there is one. */
function readAheadStep() {
  if (!standby || readingAhead) return;
  readingAhead = true;
  try {
    readAheadOnce();
  } catch (err) {
    // A file gone or unreadable in mid-step (the volume being written): the activation replays whatever is not read ahead.
    console.error(`kv-server: reading ahead failed (${err && err.message}); reading ahead again from the start`);
    forgetReadAhead();
    readAheadRestarts++;
  } finally {
    readingAhead = false;
  }
}
/** readAheadStep's body: may throw, on a file that goes or cannot be read in mid-step. */
function readAheadOnce() {
  // Only the last segment read ahead is checked here, in O(1): checking every one at every step
  // made reading a 1 GiB log ahead quadratic (a stat per segment read, per segment: 16 s for 1088
  // segments of 1 MiB on 2026-12-03). The whole check runs where it decides something: at each
  // /health (readAheadPending, which starts over if it fails) and at the activation.
  const last = readAhead[readAhead.length - 1];
  if (last && identity(segmentPath(last.n))?.id !== last.id) return restartReadAhead();
  // While the set hash's first pass runs, it goes first: the pass then trails the read-ahead by
  // a segment at most, and an activation never waits for it (the pass's end resumes this).
  if (pass !== undefined) return;
  const n = readAhead.length;
  const file = segmentPath(n);
  const before = identity(file);
  const next = identity(segmentPath(n + 1));
  if (before === undefined || next === undefined) return;
  // On a filesystem with whole-second timestamps (no sub-second part), a second.
  const age = before.ctimeNs % 1_000_000_000n === 0n && next.ctimeNs % 1_000_000_000n === 0n ? 1000 : READ_AHEAD_AGE_MS;
  if (Date.now() - Math.max(before.ctimeMs, next.ctimeMs) < age) return;
  if (n === 0) {
    lanes.fill(0);
    counted = new Set();
    pass = undefined;
  }
  const { good, size } = replaySegment(file);
  // Torn, or written to while it was read: leave it to the activation's full replay.
  if (good !== size || identity(file)?.id !== before.id) {
    console.error(`kv-server: ${path.basename(file)} was torn or changed while it was read ahead; reading ahead again from the start`);
    forgetReadAhead();
    readAheadRestarts++;
    return;
  }
  readAhead.push({ n, id: before.id });
  // After the first segment, the set hash over what was read is built between steps; once it
  // covers the store, later segments (and the activation's) keep it record by record.
  if (pass === undefined && counted !== undefined) startSum();
  setImmediate(readAheadStep);
}

/**
 * Standby → serving: replays what was not read ahead (or everything, if a segment read ahead
 * changed). Returns what it did, which the activation's answer and the instance's log carry.
 */
function activate() {
  const t0 = performance.now();
  const ahead = readAhead.length > 0 && readAheadHolds() ? readAhead.length : 0;
  if (ahead === 0 && readAhead.length > 0) console.error('kv-server: a segment read ahead has changed on disk; replaying the whole log');
  if (ahead === 0) forgetReadAhead();
  readAhead.length = 0;
  const tLoad = performance.now();
  load(ahead);
  standby = false;
  const tDigest = performance.now();
  digest();
  const done = { readAheadSegments: ahead, readAheadRestarts, replayedSegments: segments().length - ahead, checkMs: Math.round(tLoad - t0), replayMs: Math.round(tDigest - tLoad), digestMs: Math.round(performance.now() - tDigest) };
  console.error(`kv-server: activated ${JSON.stringify(done)}`);
  return done;
}
if (standby) setInterval(readAheadStep, 250).unref();

/**
 * Standing by: the full segments on the volume not yet read ahead, plus one while the set hash's
 * first pass runs. 0 means an activation now replays the last segment only. A migration's
 * pre-copy round waits (bounded) for 0 before it returns, so that the cut-over finds the standby
 * caught up with everything but the final round.
 */
function readAheadPending() {
  const full = Math.max(0, segments().length - 1);
  // A segment read ahead that changed on disk (a round replaced it): reading ahead starts over.
  if (readAhead.length > 0 && !readAheadHolds()) restartReadAhead();
  return Math.max(0, full - readAhead.length) + (pass !== undefined ? 1 : 0);
}

/**
 * The last segment that filled up, while its fsync and then the directory's (the new segment's
 * name) run on the thread pool; `settled` once both are done or a synchronous flush did them
 * (the freeze, a stop, the next roll), `chainDone` once the thread pool's are done. Its descriptor
 * stays open until the next roll and the end of that chain, whichever is later: an fsync queued
 * on the thread pool must never meet a closed (or reused) descriptor.
 * @type {{ fd: number, settled: boolean, chainDone: boolean } | undefined}
 */
let retired;
/** Descriptors of earlier full segments, closed once no periodic fsync uses them. @type {Set<number>} */
const toClose = new Set();
/** The descriptor a periodic fsync in flight is on. @type {number | undefined} */
let flushingFd;

function closeRetired() {
  for (const f of toClose) {
    if (f === flushingFd) continue;
    fs.closeSync(f);
    toClose.delete(f);
  }
}

function fsyncDirSync() {
  const dirFd = fs.openSync(dataDir, 'r');
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}

/** A failed fsync ends the process (see flushSoon). */
function fsyncFailed(what, err) {
  console.error(`kv-server: fsync of ${what} failed (${err.message}); exiting`);
  process.exit(1);
}

/**
 * Appends one record; a full segment is followed by the next, and fsynced, then the directory,
 * on the thread pool: a synchronous fsync here held every request for as long as the disk took
 * (up to a second while another process flushed a gigabyte to the same disk). Until both are
 * done the periodic flush waits (flushSoon), so this process never counts a write of the new
 * segment as flushed before the end of the full one is on disk. The kernel may still write the new
 * segment's pages first: after a crash of the machine, a full segment found short is where the
 * log ends (load), so it stays a prefix. The freeze's flush fsyncs both itself (flush).
 */
function append(line) {
  activeBytes += fs.writeSync(fd, line);
  dirty = true;
  if (activeBytes < SEGMENT_BYTES) return;
  if (retired) {
    // The segment before still settling (a whole segment written in less than an fsync): finish it here.
    if (!retired.settled) settleRetiredSync();
    // Its descriptor is closed once its own fsyncs on the thread pool are done (never under them).
    if (retired.chainDone) {
      toClose.add(retired.fd);
      closeRetired();
    }
  }
  const full = { fd, settled: false, chainDone: false };
  const name = path.basename(segmentPath(active));
  retired = full;
  active++;
  activeBytes = 0;
  dirty = false;
  fd = fs.openSync(segmentPath(active), 'a');
  fs.fsync(full.fd, (err) => {
    if (err) return fsyncFailed(name, err);
    fs.open(dataDir, 'r', (err, dirFd) => {
      if (err) return fsyncFailed(dataDir, err);
      fs.fsync(dirFd, (err) => {
        fs.close(dirFd, () => undefined);
        if (err) return fsyncFailed(dataDir, err);
        full.settled = true;
        full.chainDone = true;
        // A later segment has rolled over meanwhile: this descriptor is no longer needed.
        if (retired !== full) {
          toClose.add(full.fd);
          closeRetired();
        }
      });
    });
  });
}

function settleRetiredSync() {
  fs.fsyncSync(retired.fd);
  fsyncDirSync();
  retired.settled = true;
}

/** Lanes of the set hash (see the header): the sum, lane by lane mod 2^32, of every pair's hash. */
const lanes = new Uint32Array(16);
/**
 * While the sum is first built after a load: the keys the pass has counted, and the pass itself, a
 * live iterator over the store (it sees keys added after it began and skips keys deleted before it
 * reaches them). Both undefined once the sum covers the whole store.
 * @type {Set<string> | undefined}
 */
let counted;
/** @type {IterableIterator<[string, string]> | undefined} */
let pass;

function pairHash(k, v) {
  const h = crypto.createHash('sha512');
  h.update(`${Buffer.byteLength(k)}:`).update(k).update(v);
  // Lanes read little-endian, whatever the host's byte order.
  return h.digest();
}
function addPair(k, v, sign) {
  const p = pairHash(k, v);
  for (let i = 0; i < 16; i++) lanes[i] = lanes[i] + sign * p.readUInt32LE(4 * i);
}
/** Whether the sum covers key k now: always, but during the first pass only the keys it counted. */
const covers = (k) => counted === undefined || counted.has(k);

/** Sets a key, keeping the sum (a key the first pass has not reached yet is counted when it is). */
function setKey(k, v) {
  if (covers(k)) {
    const old = store.get(k);
    if (old !== undefined) addPair(k, old, -1);
    addPair(k, v, 1);
    counted?.add(k);
  }
  store.set(k, v);
}
function deleteKey(k) {
  const old = store.get(k);
  if (old === undefined) return;
  if (covers(k)) addPair(k, old, -1);
  // Counted and deleted: if set again it is a new entry at the end, which the pass will reach.
  counted?.delete(k);
  store.delete(k);
}

/** Starts building the sum over a freshly loaded store, in slices between requests. */
function startSum() {
  lanes.fill(0);
  counted = new Set();
  pass = store.entries();
  setImmediate(sumSlice);
}
/** Counts more pairs, until about `bytes` of them are hashed; true once the pass has covered the whole store. */
function sumSome(bytes) {
  if (pass === undefined) return true;
  for (let hashed = 0; hashed < bytes; ) {
    const e = pass.next();
    if (e.done) {
      pass = undefined;
      counted = undefined;
      return true;
    }
    addPair(e.value[0], e.value[1], 1);
    counted.add(e.value[0]);
    hashed += e.value[0].length + e.value[1].length + 64;
  }
  return false;
}
// A slice hashes ~4 MiB (a few ms), so requests are answered between slices.
function sumSlice() {
  if (!sumSome(4 << 20)) setImmediate(sumSlice);
  else if (standby) setImmediate(readAheadStep);
}

function digest() {
  sumSome(Infinity);
  const h = crypto.createHash('sha256').update(`${store.size}\n`).update(new Uint8Array(lanes.buffer));
  return { keys: store.size, sha256: h.digest('hex') };
}

if (!standby) load();

let flushing = false;
/** Everything written is durable when this returns (a periodic flush in flight may not have finished: it fsyncs again). */
function flush() {
  if (retired && !retired.settled) settleRetiredSync();
  if ((dirty || flushing) && fd !== undefined) {
    fs.fsyncSync(fd);
    dirty = false;
  }
}
/**
 * The periodic flush, on the thread pool: a synchronous fsync held this process's requests for as
 * long as the disk took, up to a second and more while another process flushed a gigabyte to the
 * same disk (the 1 GiB downtime benchmark, where both sites share one machine). A write that lands
 * while it runs is flushed by the next one; an fsync that fails ends the process.
 */
function flushSoon() {
  // A segment that filled up is settling (append): the next tick flushes, after it.
  if (!dirty || fd === undefined || flushing || (retired && !retired.settled)) return;
  dirty = false;
  flushing = true;
  flushingFd = fd;
  fs.fsync(fd, (err) => {
    flushing = false;
    flushingFd = undefined;
    closeRetired();
    if (!err) return;
    // Fail-stop (nothing closes a descriptor under a periodic fsync, so EBADF too), as the synchronous fsync was (its throw ended the process): after a failed fsync
    // Linux may have dropped the dirty pages, so a later fsync could succeed with acknowledged
    // writes lost. A restart replays the log from disk.
    fsyncFailed('the log', err);
  });
}
// Writes are acknowledged once written to the page cache and flushed every 50 ms, like most
// key-value stores' default; freeze flushes synchronously so a snapshot sees every acknowledged write.
setInterval(flushSoon, 50).unref();

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', ...headers });
  res.end(text);
}

// A write refused while frozen also ends its connection: the client's retry then comes on a new
// connection, which the workload's front holds during the cut-over and hands to the target at the
// switch (or back here at a thaw). On a kept-alive connection it would reach this frozen process
// again and again, piped through the front, each a refusal, until the route switched. (Idle
// connections are not ended at the freeze: a client that pools them, such as the agent calling
// /admin/digest right after /admin/freeze, could be handed one as it closes.)
const refuseFrozen = (res) => send(res, 503, { error: 'frozen for migration; retry against the new site' }, { connection: 'close' });

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  if (req.method === 'GET' && p === '/health') {
    // Pending first: its check may start reading ahead over (a segment read ahead changed).
    const pending = standby ? readAheadPending() : undefined;
    return send(res, 200, { ok: true, keys: store.size, frozen, standby, ...(standby ? { readAheadSegments: readAhead.length, readAheadPending: pending } : {}) });
  }
  if (req.method === 'POST' && p === '/admin/activate') {
    const activation = standby ? activate() : undefined;
    return send(res, 200, { ...digest(), ...(activation ?? {}) });
  }
  if (standby) return send(res, 503, { error: 'standby: not activated yet' });
  if (req.method === 'GET' && p === '/admin/digest') return send(res, 200, digest());
  if (req.method === 'POST' && p === '/admin/freeze') {
    frozen = true;
    flush();
    return send(res, 200, { ...digest(), frozen: true });
  }
  if (req.method === 'POST' && p === '/admin/thaw') {
    frozen = false;
    return send(res, 200, { frozen: false });
  }
  if (req.method === 'GET' && p === '/kv') return send(res, 200, Object.fromEntries(store));
  if (p.startsWith('/kv/')) {
    const key = decodeURIComponent(p.slice(4));
    if (!key) return send(res, 400, { error: 'empty key' });
    if (req.method === 'GET') {
      return store.has(key) ? send(res, 200, store.get(key)) : send(res, 404, { error: `no key '${key}'` });
    }
    if (req.method === 'PUT' || req.method === 'DELETE') {
      if (frozen) return refuseFrozen(res);
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        if (frozen) return refuseFrozen(res);
        const rec = req.method === 'PUT' ? { k: key, v: Buffer.concat(chunks).toString('utf8') } : { k: key, del: true };
        append(JSON.stringify(rec) + '\n');
        if (rec.del) deleteKey(key);
        else setKey(key, rec.v);
        send(res, 200, { ok: true });
      });
      return;
    }
  }
  send(res, 404, { error: `no route ${req.method} ${p}` });
});
server.keepAliveTimeout = 5000;

server.listen(port, host, () => {
  const addr = server.address();
  // The local provider reads this line to learn the port when it asked for port 0.
  process.stdout.write(JSON.stringify({ listening: `http://${host}:${addr.port}`, keys: store.size }) + '\n');
});

function shutdown() {
  flush();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
