/**
 * The deterministic tar image of a directory volume, laid out before a byte of file data is read:
 * every entry's header, where it lies in the image and, for a file, its stat tuple. Any byte range
 * of the image can then be read on demand (VolumeTarReader), which is what lets a capture chunk
 * only the parts of the image that changed (./dir-capture.ts).
 *
 * The format is what tar-walk.ts and the target's extraction read: ustar headers from node-tar's
 * own Header class (pax extended headers for long names), entries depth first in sorted order,
 * owners left out, files' and links' mtimes 0, directories without one, modes as node-tar's
 * portable mode writes them, two zero blocks at the end. Regular files, directories and symbolic
 * links only; a hard-linked file is written as a file each time it is met (tar-walk.ts reads no
 * hard-link entries); sockets, FIFOs and devices are left out, as node-tar leaves them out.
 */
import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';

const BLOCK = 512;
/** The end-of-archive marker: two zero blocks. */
export const TRAILER_BYTES = 2 * BLOCK;

/**
 * What says a regular file is unchanged since it was last read: the kernel changes ctime on every
 * write, truncate, chmod, rename into place and utimes (so also on a write that puts mtime back);
 * a new file at the same path has another inode or another ctime.
 */
export interface StatTuple {
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
  dev: string;
}

export interface TarItem {
  /** Relative to the volume, '/'-separated; a directory's without its trailing slash. */
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** Absolute path on disk (files: where the data is read from). */
  abs: string;
  /** The entry's header blocks (a pax header first, when one is needed). */
  header: Buffer;
  /** Offset of the entry's first header byte in the image. */
  off: number;
  /** Header, data and padding: the next entry starts at off + len. */
  len: number;
  /** File data size (0 for others). */
  size: number;
  /** Files only: the stat tuple at layout, and when the stat was taken (ms since the epoch). */
  stat?: StatTuple;
  statAtMs?: number;
  /** The mode as lstat gave it, and a link's target: with path, type and size, all the header is made of. */
  mode: number;
  linkpath?: string;
}

/**
 * Headers an earlier layout of the same volume encoded, by path: a header is a pure function of
 * (path, type, mode, size, link target), so an entry whose four others are the same takes the
 * earlier header as it is instead of encoding it again (most of a layout's time, ~10 µs an entry).
 */
export type KnownHeaders = ReadonlyMap<string, Pick<TarItem, 'type' | 'mode' | 'size' | 'linkpath' | 'header'>>;

export interface VolumeLayout {
  items: TarItem[];
  /** Image size: every entry, then the trailer. */
  totalBytes: number;
}

export function statTuple(st: BigIntStats): StatTuple {
  return { size: Number(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs), ino: String(st.ino), dev: String(st.dev) };
}

/** node-tar's portable mode bits (mode-fix.js): never less than owner rw, no group/other write, listable dirs. */
function portableMode(mode: number, isDir: boolean): number {
  let m = ((mode & 0o7777) | 0o600) & ~0o22;
  if (isDir) {
    if (m & 0o400) m |= 0o100;
    if (m & 0o40) m |= 0o10;
    if (m & 0o4) m |= 0o1;
  }
  return m;
}

/** The header block(s) of one entry, as node-tar's WriteEntry encodes them in portable mode. */
export function entryHeader(path: string, type: TarItem['type'], mode: number, size: number, linkpath?: string): Buffer {
  const tarType = type === 'file' ? 'File' : type === 'dir' ? 'Directory' : 'SymbolicLink';
  const name = type === 'dir' ? `${path}/` : path;
  const mtime = type === 'dir' ? undefined : new Date(0);
  const h = new tar.Header({ path: name, mode: portableMode(mode, type === 'dir'), size, mtime, type: tarType, ...(linkpath !== undefined ? { linkpath } : {}) });
  const needsPax = h.encode();
  const block = h.block;
  if (!block) throw new Error(`could not encode a tar header for ${JSON.stringify(path)}`);
  if (!needsPax) return Buffer.from(block);
  const pax = new tar.Pax({ path: name, size, ...(mtime ? { mtime } : {}), ...(linkpath !== undefined ? { linkpath } : {}) }).encode();
  return Buffer.concat([pax, block]);
}

/** A file that vanished or changed size while the image was laid out or read: the caller captures a copy instead. */
export class VolumeChangedError extends Error {
  constructor(message: string) {
    // The words source-images.ts's fallback looks for.
    super(`encountered unexpected EOF: ${message}`);
    this.name = 'VolumeChangedError';
  }
}

/**
 * Lays the image of `dir` out: lstat of every entry, depth first, names sorted; no data read.
 * `now` gives the time each file is stat'ed (for the reuse rule's racy-file check).
 */
export function layoutVolume(dir: string, now: () => number = Date.now, known?: KnownHeaders): VolumeLayout {
  const items: TarItem[] = [];
  let off = 0;
  const header = (rel: string, type: TarItem['type'], mode: number, size: number, linkpath?: string): Buffer => {
    const k = known?.get(rel);
    return k && k.type === type && k.mode === mode && k.size === size && k.linkpath === linkpath ? k.header : entryHeader(rel, type, mode, size, linkpath);
  };
  const visit = (rel: string) => {
    const abs = join(dir, rel);
    const statAtMs = now();
    let st: BigIntStats;
    try {
      st = lstatSync(abs, { bigint: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new VolumeChangedError(`${abs} went away while the volume was laid out`);
      throw err;
    }
    const mode = Number(st.mode);
    if (st.isFile()) {
      const size = Number(st.size);
      const h = header(rel, 'file', mode, size);
      const len = h.length + Math.ceil(size / BLOCK) * BLOCK;
      items.push({ path: rel, type: 'file', abs, header: h, off, len, size, stat: statTuple(st), statAtMs, mode });
      off += len;
    } else if (st.isDirectory()) {
      const h = header(rel, 'dir', mode, 0);
      items.push({ path: rel, type: 'dir', abs, header: h, off, len: h.length, size: 0, mode });
      off += h.length;
      for (const name of readdirSync(abs).sort()) visit(`${rel}/${name}`);
    } else if (st.isSymbolicLink()) {
      const linkpath = readlinkSync(abs);
      const h = header(rel, 'symlink', mode, 0, linkpath);
      items.push({ path: rel, type: 'symlink', abs, header: h, off, len: h.length, size: 0, mode, linkpath });
      off += h.length;
    }
    // Sockets, FIFOs, devices: not data; left out, as node-tar leaves them out.
  };
  for (const name of readdirSync(dir).sort()) visit(name);
  return { items, totalBytes: off + TRAILER_BYTES };
}

/**
 * Reads any byte range of a laid-out image: headers from memory, data from the files, zeros for
 * padding. File reads are asynchronous (the thread pool): a read from disk never holds up the
 * agent's event loop (its chunk endpoint, heartbeats, the workload fronts in the same process).
 */
export class VolumeTarReader {
  private readonly fds = new Map<number, FileHandle>();
  /** Bytes of file data read from the volume so far. */
  fileBytesRead = 0;
  /** Indexes of the files whose data was read (even in part). */
  readonly filesTouched = new Set<number>();
  private hint = 0;

  constructor(private readonly layout: VolumeLayout) {}

  /** Index of the item holding image byte `pos` (items.length for the trailer). */
  private itemAt(pos: number): number {
    const items = this.layout.items;
    let i = this.hint;
    if (i >= items.length || items[i]!.off > pos) i = 0;
    if (i < items.length && pos >= items[i]!.off + items[i]!.len) {
      // Binary search from here: reads move forward, mostly within one item or the next.
      let lo = i;
      let hi = items.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (items[mid]!.off + items[mid]!.len <= pos) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    this.hint = i;
    return i;
  }

  /** Fills buf[at, at + len) with image bytes from `pos`. */
  async read(buf: Buffer, at: number, len: number, pos: number): Promise<void> {
    const end = pos + len;
    if (end > this.layout.totalBytes) throw new RangeError(`read past the image's end (${end} > ${this.layout.totalBytes})`);
    while (pos < end) {
      const i = this.itemAt(pos);
      const item = this.layout.items[i];
      if (!item) {
        buf.fill(0, at, at + (end - pos));
        return;
      }
      const rel = pos - item.off;
      const itemEnd = Math.min(end, item.off + item.len);
      const hl = item.header.length;
      if (rel < hl) {
        const n = Math.min(hl - rel, itemEnd - pos);
        item.header.copy(buf, at, rel, rel + n);
        at += n;
        pos += n;
        continue;
      }
      const dataRel = rel - hl;
      if (dataRel < item.size) {
        const n = Math.min(item.size - dataRel, itemEnd - pos);
        await this.readFile(i, item, buf, at, n, dataRel);
        at += n;
        pos += n;
        continue;
      }
      const n = itemEnd - pos; // padding
      buf.fill(0, at, at + n);
      at += n;
      pos += n;
    }
  }

  private async readFile(i: number, item: TarItem, buf: Buffer, at: number, n: number, fileOff: number): Promise<void> {
    let fd = this.fds.get(i);
    if (fd === undefined) {
      // At most a few open at once: the reads move forward through the files.
      for (const [j, other] of this.fds) {
        if (j >= i) continue;
        await other.close();
        this.fds.delete(j);
      }
      try {
        fd = await open(item.abs, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new VolumeChangedError(`${item.abs} went away while it was read`);
        throw err;
      }
      this.fds.set(i, fd);
    }
    this.filesTouched.add(i);
    let got = 0;
    while (got < n) {
      const { bytesRead: r } = await fd.read(buf, at + got, n - got, fileOff + got);
      if (r === 0) throw new VolumeChangedError(`${item.abs} ended at ${fileOff + got} while it was read; it was ${item.size} bytes when laid out`);
      got += r;
    }
    this.fileBytesRead += n;
  }

  async close(): Promise<void> {
    for (const fd of this.fds.values()) await fd.close().catch(() => undefined);
    this.fds.clear();
  }
}
