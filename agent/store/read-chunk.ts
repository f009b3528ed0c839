/** Reading one held chunk for ChunkStore.get(): from its pack, verified, and marked recently used. */
import { webcrypto } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { ChunkIndex } from './chunk-index';
import { ChunkHashMismatchError } from './errors';

/**
 * The chunk's bytes, or undefined when it is not held. Throws ChunkHashMismatchError (after
 * `remove`-ing the chunk) when the stored bytes no longer match their hash.
 */
export async function readChunk(state: ChunkIndex, hash: string, verifyOnRead: boolean, remove: (hash: string) => Promise<void>): Promise<Buffer | undefined> {
  const { counters } = state;
  const loc = state.chunks.get(hash);
  if (loc === undefined) {
    counters.misses++;
    return undefined;
  }
  let data: Buffer;
  // Its own handle: a pack's cached fd may be closed (its pack emptied) while this read waits.
  let h: fs.FileHandle;
  try {
    h = await fs.open(loc.pack.path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // Its pack was emptied and deleted while we were opening it.
    counters.misses++;
    return undefined;
  }
  try {
    data = Buffer.allocUnsafe(loc.length);
    let got = 0;
    while (got < loc.length) {
      const { bytesRead } = await h.read(data, got, loc.length - got, loc.offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got !== loc.length) data = data.subarray(0, got);
  } finally {
    await h.close();
  }
  if (verifyOnRead || data.length !== loc.length) {
    // On the thread pool (WebCrypto), so that many reads hash in parallel.
    const actual = Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex');
    if (actual !== hash) {
      counters.corruptChunks++;
      await remove(hash);
      throw new ChunkHashMismatchError(hash, actual, 'read');
    }
  }
  counters.hits++;
  state.touch(hash);
  return data;
}
