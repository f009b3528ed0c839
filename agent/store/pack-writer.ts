/**
 * The chunk store's one writer (the group commit; format in format.ts): every queued job (puts,
 * removals, compaction's moves) is taken at once, its chunk bytes appended to the current pack
 * and fdatasynced, then its records appended to the index log and fdatasynced. Also owns the
 * files it writes to: the index log's descriptor (and rewriting the log whole), the current
 * pack, opening and sealing packs, deleting an emptied pack, and synchronous reads from packs.
 */
import { randomBytes } from 'node:crypto';
import { close as closeCb, closeSync, fdatasync as fdatasyncCb, fsync as fsyncCb, ftruncate as ftruncateCb, open as openCb, openSync, promises as fs, readSync, write as writeCb, writev as writevCb } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fsyncPathAsync, writeFileDurableAsync } from '../durable-files';
import type { ChunkIndex, Loc, Pack } from './chunk-index';
import { encodeIndexLog, encodeRecord, LOG_NAME, REC_ADD, REC_BYTES, REC_DEL, type LogRecord } from './format';

/** A pack takes appends until it holds this many bytes; the next group starts a new one. */
const PACK_MAX_BYTES = 64 << 20;

const fdOpen = promisify(openCb);
const fdClose = promisify(closeCb);
const fdWrite = promisify(writeCb);
const fdWritev = promisify(writevCb);
const fdDatasync = promisify(fdatasyncCb);
const fdSync = promisify(fsyncCb);
const fdTruncate = promisify(ftruncateCb);

export type ChunkAdd = { hash: string; data: Uint8Array };
export type ChunkDel = { hash: string; pack: string };

/** One commit of the writer: chunk bytes to append, records to log. */
interface WriteJob {
  adds: ChunkAdd[];
  dels: ChunkDel[];
  resolve: (locs: Loc[]) => void;
  reject: (err: unknown) => void;
}

export class PackWriter {
  /** The pack group commits append to (opened on the first put after open()). */
  private current: { pack: Pack; fd: number } | undefined;
  /** The index log, open for appends (raw fds: a store lives as long as its process). */
  private logFd = -1;
  private logSize = 0;
  private readonly writeQueue: WriteJob[] = [];
  private writing = false;

  constructor(
    private readonly state: ChunkIndex,
    private readonly packsDir: string,
  ) {}

  /** The pack group commits currently append to, if one is open (compaction and removals leave it alone). */
  get currentPack(): Pack | undefined {
    return this.current?.pack;
  }

  /**
   * Opens the existing index log for appends after `validBytes` (recovery's replay), cutting a
   * torn tail (past validBytes, up to fileBytes) durably first.
   */
  async openLog(validBytes: number, fileBytes: number): Promise<void> {
    this.logFd = await fdOpen(join(this.packsDir, LOG_NAME), 'r+');
    this.logSize = validBytes;
    if (validBytes < fileBytes) {
      await fdTruncate(this.logFd, validBytes);
      await fdSync(this.logFd);
    }
  }

  /** Replaces the index log by one holding `records` (temp file, fsync, rename, directory fsync). */
  async writeNewLog(records: LogRecord[]): Promise<void> {
    const buf = encodeIndexLog(records);
    const path = join(this.packsDir, LOG_NAME);
    if (this.logFd >= 0) await fdClose(this.logFd);
    this.logFd = -1;
    await writeFileDurableAsync(path, buf);
    this.logFd = await fdOpen(path, 'r+');
    this.logSize = buf.length;
  }

  /** The index log rewritten with one ADD record per live chunk, in recency order. */
  async rewriteLog(): Promise<void> {
    await this.writeNewLog([...this.state.chunks].map(([hash, l]) => ({ type: REC_ADD, pack: l.pack.id, offset: l.offset, length: l.length, hash })));
  }

  /** Queues chunk bytes to append and DEL records to log; resolves with the chunks' locations once durable. */
  enqueue(adds: ChunkAdd[], dels: ChunkDel[]): Promise<Loc[]> {
    return new Promise<Loc[]>((resolve, reject) => {
      this.writeQueue.push({ adds, dels, resolve, reject });
      if (!this.writing) void this.runWriter();
    });
  }

  /**
   * The one writer: takes every queued job at once (concurrent puts and removals are committed
   * together), appends their chunk bytes to the current pack and fdatasyncs it, then appends their
   * records to the index log and fdatasyncs that.
   */
  private async runWriter(): Promise<void> {
    this.writing = true;
    try {
      while (this.writeQueue.length) {
        const jobs = this.writeQueue.splice(0);
        try {
          const adds = jobs.flatMap((j) => j.adds);
          const addBytes = adds.reduce((s, a) => s + a.data.length, 0);
          const locs: Loc[] = [];
          const records: LogRecord[] = [];
          if (adds.length) {
            const { pack, fd } = await this.packFor(addBytes);
            let at = pack.size;
            for (const a of adds) {
              locs.push({ pack, offset: at, length: a.data.length });
              records.push({ type: REC_ADD, pack: pack.id, offset: at, length: a.data.length, hash: a.hash });
              at += a.data.length;
            }
            const { bytesWritten } = await fdWritev(fd, adds.map((a) => a.data), pack.size);
            if (bytesWritten !== addBytes) throw new Error(`short write to ${pack.path}: ${bytesWritten} of ${addBytes} bytes`);
            await fdDatasync(fd);
            pack.size = at;
          }
          for (const j of jobs) for (const d of j.dels) records.push({ type: REC_DEL, pack: d.pack, offset: 0, length: 0, hash: d.hash });
          const buf = Buffer.allocUnsafe(records.length * REC_BYTES);
          records.forEach((r, k) => encodeRecord(r, buf, k * REC_BYTES));
          const { bytesWritten } = await fdWrite(this.logFd, buf, 0, buf.length, this.logSize);
          if (bytesWritten !== buf.length) throw new Error(`short write to the chunk index log: ${bytesWritten} of ${buf.length} bytes`);
          await fdDatasync(this.logFd);
          this.logSize += buf.length;
          let k = 0;
          for (const j of jobs) {
            j.resolve(locs.slice(k, k + j.adds.length));
            k += j.adds.length;
          }
        } catch (err) {
          // Nothing of this commit is acknowledged; bytes written past pack.size / logSize are
          // overwritten by the next commit (or cut by the next open).
          for (const j of jobs) j.reject(err);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  /** The pack to append `bytes` to: the current one, or a new one when it is full. */
  private async packFor(bytes: number): Promise<{ pack: Pack; fd: number }> {
    if (this.current && (this.current.pack.size === 0 || this.current.pack.size + bytes <= PACK_MAX_BYTES)) return this.current;
    if (this.current) await this.sealCurrent();
    const id = randomBytes(8).toString('hex');
    const path = join(this.packsDir, `${id}.pack`);
    const fd = await fdOpen(path, 'wx');
    // The pack's directory entry is durable before any record points into it.
    await fsyncPathAsync(this.packsDir);
    const pack: Pack = { id, path, size: 0, live: 0 };
    this.state.packs.set(id, pack);
    this.current = { pack, fd };
    return this.current;
  }

  private async sealCurrent(): Promise<void> {
    const c = this.current!;
    this.current = undefined;
    await fdClose(c.fd);
    if (c.pack.live === 0) await this.dropPack(c.pack);
  }

  private closePackFd(p: Pack): void {
    if (p.fd === undefined) return;
    closeSync(p.fd);
    p.fd = undefined;
  }

  /** Deletes a pack nothing live is left in. Its ADD records are then ignored by open(). */
  async dropPack(p: Pack): Promise<void> {
    if (this.state.packs.get(p.id) !== p) return;
    this.state.packs.delete(p.id);
    this.closePackFd(p);
    await fs.rm(p.path, { force: true });
    this.state.counters.removedPacks++;
  }

  /** A chunk's bytes as stored (not verified), read synchronously. */
  readAt(l: Loc): Buffer {
    if (l.pack.fd === undefined) l.pack.fd = openSync(l.pack.path, 'r');
    const buf = Buffer.allocUnsafe(l.length);
    let got = 0;
    while (got < l.length) {
      const n = readSync(l.pack.fd, buf, got, l.length - got, l.offset + got);
      if (n === 0) break;
      got += n;
    }
    return got === l.length ? buf : buf.subarray(0, got);
  }

  /** Resolves once no commit is queued or running. */
  async drain(): Promise<void> {
    while (this.writing || this.writeQueue.length) await new Promise((r) => setTimeout(r, 1));
  }

  /** Closes the packs' and the log's descriptors (after drain()). */
  async close(): Promise<void> {
    for (const p of this.state.packs.values()) this.closePackFd(p);
    if (this.current) await fdClose(this.current.fd);
    this.current = undefined;
    await fdClose(this.logFd);
    this.logFd = -1;
  }
}
