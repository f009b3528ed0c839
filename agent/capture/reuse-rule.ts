/**
 * Which bytes of a directory volume's new image are provably the bytes of its previous image, at
 * the same place relative to each other: the rule the final capture uses to take the previous
 * round's chunk hashes instead of reading and hashing again. Pure: stat tuples in, spans out.
 *
 * A regular file is taken as unchanged when its stat tuple (size, mtime, ctime, inode, device) is
 * the one recorded when it was last read, and that record was not "racy":
 * - Every write(2), truncate, fallocate, chmod/chown, link count change, and utimes (so also a
 *   write followed by a touch that puts mtime back) sets ctime to the current time, and userspace
 *   cannot set ctime. A file replaced by another (rename over it, delete and create) has another
 *   inode, or, if the inode number is reused, a newer ctime.
 * - The kernel's file times come from a coarse clock (a few ms). A write that lands in the same
 *   tick as the write before the stat leaves ctime as it was: the stat would see the old ctime and
 *   the content read after it could be either. So a file is recorded as reusable only if its ctime
 *   and mtime are older than RACY_MS before the stat was taken (git's "racily clean" rule): any
 *   later write then moves ctime past the recorded value.
 *
 * What the tuple does not see: a write through a shared writable mmap to a page that is already
 * dirty (the kernel updates the times on the first write fault of a clean page, then not until
 * writeback), and a change of the system clock backwards by more than RACY_MS between rounds. At
 * the final capture the workload is frozen (its freeze hook flushed or stopped it), so nothing
 * writes while the volume is read; the tuple answers only "did anything write since the previous
 * round read it". Neither PostgreSQL's data files nor Redis's AOF are written through mmap.
 *
 * Directories and symbolic links carry no data: their header bytes are compared instead.
 */
import type { StatTuple } from './volume-tar';

/** A stat older than this (ms) before the stat was taken cannot change without its ctime changing. */
export const RACY_MS = 1_000;

/** An entry of the new image, as laid out (no data read). */
export interface NowItem {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  off: number;
  len: number;
  /** sha256 (hex) of the entry's header blocks. */
  hdr: string;
  /** Files: the tuple at the stat before the read. */
  stat?: StatTuple;
}

/** One entry of a previous image, as recorded: whether its tuple was old enough to be trusted. */
export interface ReuseItem extends NowItem {
  reusable?: boolean;
}

/** New image bytes [newStart, newEnd) are the previous image's bytes from oldStart on. */
export interface ReuseSpan {
  newStart: number;
  newEnd: number;
  oldStart: number;
}

export function sameTuple(a: StatTuple, b: StatTuple): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino && a.dev === b.dev;
}

/** Whether a tuple stat'ed at `statAtMs` may be trusted next time (not racy: see the file's comment). */
export function trustworthy(stat: StatTuple, statAtMs: number): boolean {
  const limitNs = BigInt(Math.floor(statAtMs - RACY_MS)) * 1_000_000n;
  return BigInt(stat.ctimeNs) < limitNs && BigInt(stat.mtimeNs) < limitNs;
}

/** Whether the new entry's bytes (header, data, padding) are the previous entry's. */
export function unchanged(prev: ReuseItem, now: NowItem): boolean {
  if (prev.path !== now.path || prev.type !== now.type || prev.len !== now.len || prev.hdr !== now.hdr) return false;
  if (now.type !== 'file') return true;
  return !!prev.reusable && !!prev.stat && !!now.stat && sameTuple(prev.stat, now.stat);
}

/**
 * The spans of the new image that are bytes of the previous one: runs of unchanged entries that
 * were consecutive there too, merged; the trailer (zeros after the last entry) joins the run
 * that ends both images' entries.
 */
export function reuseSpans(prev: readonly ReuseItem[], prevTotal: number, now: readonly NowItem[], nowTotal: number): ReuseSpan[] {
  const byPath = new Map<string, number>();
  prev.forEach((p, i) => byPath.set(p.path, i));
  const spans: ReuseSpan[] = [];
  let last: { span: ReuseSpan; prevIdx: number } | undefined;
  const add = (newStart: number, len: number, oldStart: number, prevIdx: number) => {
    if (last && last.span.newEnd === newStart && last.span.oldStart + (newStart - last.span.newStart) === oldStart) {
      last.span.newEnd += len;
      last.prevIdx = prevIdx;
      return;
    }
    const span = { newStart, newEnd: newStart + len, oldStart };
    spans.push(span);
    last = { span, prevIdx };
  };
  for (const n of now) {
    const i = byPath.get(n.path);
    if (i === undefined || !unchanged(prev[i]!, n)) continue;
    add(n.off, n.len, prev[i]!.off, i);
  }
  // The trailer: zeros in both, from the end of the entries to the end of the image.
  const nowEntriesEnd = now.length ? now[now.length - 1]!.off + now[now.length - 1]!.len : 0;
  const prevEntriesEnd = prev.length ? prev[prev.length - 1]!.off + prev[prev.length - 1]!.len : 0;
  if (nowTotal - nowEntriesEnd === prevTotal - prevEntriesEnd && nowTotal > nowEntriesEnd) add(nowEntriesEnd, nowTotal - nowEntriesEnd, prevEntriesEnd, prev.length);
  return spans;
}
