/** Test helpers that reach into a chunk store's files: damage a chunk on disk, check the store's bytes. */
import assert from 'node:assert/strict';
import { closeSync, openSync, readdirSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { ChunkStore } from '../../../agent/store/chunk-store';
import { computeRootHash } from '../../../agent/capture/manifest-builder';
import { MANIFEST_V1, type Manifest } from '../../../core/manifest';

/** Flips the bits of byte `at` of a held chunk where it lies on disk (bit rot after a verified arrival). */
export function rotChunk(store: ChunkStore, hash: string, at = 0, mask = 0xff): void {
  const loc = store.locateChunk(hash);
  assert.ok(loc, `chunk ${hash} is not held`);
  const fd = openSync(loc.path, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, loc.offset + at);
    b[0]! ^= mask;
    writeSync(fd, b, 0, 1, loc.offset + at);
  } finally {
    closeSync(fd);
  }
}

/** Every held chunk's bytes hash to its name and no temp file is left; returns the number of chunks. */
export async function assertStoreClean(store: ChunkStore, dir: string): Promise<number> {
  for (const name of readdirSync(join(dir, 'packs'))) assert.ok(!name.startsWith('.tmp-'), `temp file left in the store: packs/${name}`);
  const { chunks, corrupt } = await store.scrub();
  assert.deepEqual(corrupt, [], 'chunks whose bytes on disk do not match their hash');
  return chunks;
}

/** sha256 hex of a chunk's bytes: its hash in the store. */
export const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A manifest over the given chunks laid end to end. */
export function manifestOf(volumeId: string, chunks: Buffer[]): Manifest {
  let offset = 0;
  const refs = chunks.map((c) => {
    const r = { offset, length: c.length, hash: sha(c) };
    offset += c.length;
    return r;
  });
  return { version: MANIFEST_V1, volumeId, paramsId: 'fastcdc-v1:64:256:1024', chunks: refs, totalBytes: offset, rootHash: computeRootHash(refs) };
}
