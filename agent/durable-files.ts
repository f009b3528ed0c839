/**
 * Small helpers for files that must survive a crash of the machine, not just of the process.
 *
 * Two forms of the same write: `writeFileDurable` (synchronous, for small records written where
 * the caller must not yield, e.g. the federation state and a cut-over's first freeze time) and
 * `writeFileDurableAsync` (for the chunk store, whose manifest and volume-record writes run
 * beside live transfers, and the final-image announcement, written as the target asks for the
 * manifest: a synchronous fsync would stall every stream on the event loop for its duration).
 * The asynchronous form names its temporary file `.tmp-<name>-<random>` in the same directory
 * (see tempPathBeside), so that a store can sweep what a crash left by that prefix.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, mkdirSync, openSync, promises as fs, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Prefix of the temporary files writeFileDurableAsync (and the store's assemble) create. */
export const TMP_PREFIX = '.tmp-';

/**
 * fsync a file or a directory (for a directory: the names it holds, e.g. after a rename). A file
 * whose mode lets its owner write but not read (an image's 0200 file, the agent not root) is
 * opened for writing instead: any descriptor of the file syncs it.
 */
export function fsyncPath(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    fd = openSync(path, constants.O_WRONLY);
  }
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsyncPath without blocking the event loop. */
export async function fsyncPathAsync(path: string): Promise<void> {
  const h = await fs.open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EACCES') throw err;
    return fs.open(path, constants.O_WRONLY);
  });
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * fsync many files (or directories) on the thread pool, up to `concurrency` at a time: the
 * filesystem commits concurrent syncs together, where one after another each waits for its own
 * journal commit. Every sync has ended when this returns or throws (the first error).
 */
export async function fsyncAllAsync(paths: readonly string[], concurrency = 16): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | undefined;
  const lane = async () => {
    while (next < paths.length) {
      const p = paths[next++]!;
      try {
        await fsyncPathAsync(p);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, paths.length) }, lane));
  if (failed) throw failed.err;
}

/**
 * Writes `data` to `path` whole or not at all: a temporary file, fsynced, renamed, directory fsynced.
 * `mode` (0600 for a secret) is the file's from its creation on, so no reader ever sees it wider.
 */
export function writeFileDurable(path: string, data: string | Uint8Array, mode?: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', mode ?? 0o666);
  try {
    writeFileSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncPath(dirname(path));
}

/**
 * writeFileDurable in two halves, for a caller that makes several files durable at once: this
 * writes the temporary file (the same name writeFileDurable uses) and returns its path, NOT
 * fsynced; the caller fsyncs it (e.g. with fsyncAllAsync, beside other files), then renames it
 * over `path` and fsyncs the directory. Until the rename, `path` is untouched.
 */
export function writeFileUnsynced(path: string, data: string | Uint8Array): string {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', 0o666);
  try {
    writeFileSync(fd, data);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/**
 * A fresh temporary name beside `path`: `.tmp-<name>-<12 hex digits>`. Random, so concurrent
 * writers of one path never share a temporary file; hidden and prefixed, so an open() can sweep
 * the ones a crash left.
 */
export function tempPathBeside(path: string): string {
  return join(dirname(path), `${TMP_PREFIX}${basename(path)}-${randomBytes(6).toString('hex')}`);
}

/**
 * writeFileDurable without blocking the event loop: after a crash `path` holds either nothing or
 * all of `data`, and at most a `.tmp-` file is left beside it (removed on error).
 */
export async function writeFileDurableAsync(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempPathBeside(path);
  const h = await fs.open(tmp, 'wx');
  try {
    await h.writeFile(data);
    await h.sync();
  } catch (err) {
    await h.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await h.close();
  await fs.rename(tmp, path);
  await fsyncPathAsync(dirname(path));
}

/**
 * Makes `dir` (mode 0700: keys and secrets live there) and whatever is missing above it with the
 * ordinary mode. `mkdirSync(dir, { recursive: true, mode: 0o700 })` would give every missing
 * parent 0700 too, a new FEDFLOW_HOME included, which locks out the user a workload runs as.
 */
export function mkdirPrivate(dir: string): void {
  mkdirSync(dirname(dir), { recursive: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}
