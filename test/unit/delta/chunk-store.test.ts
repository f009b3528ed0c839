import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkStore } from '../../../agent/chunk-store';
import { ChunkHashMismatchError, ChunkStoreFullError, MissingChunksError } from '../../../agent/chunk-errors';
import { buildManifestFromStream, computeRootHash } from '../../../agent/manifest-builder';
import { Manifest, MANIFEST_V1 } from '../../../core/manifest';
import { seededBytes } from './seeded-bytes';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const tmp = () => mkdtempSync(join(tmpdir(), 'fedflow-chunk-store-'));
const chunk = (n: number, size = 1000) => Buffer.from(seededBytes(size, n + 1));

/** A manifest over the given chunks laid end to end. */
function manifestOf(volumeId: string, chunks: Buffer[]): Manifest {
  let offset = 0;
  const refs = chunks.map((c) => {
    const r = { offset, length: c.length, hash: sha(c) };
    offset += c.length;
    return r;
  });
  return { version: MANIFEST_V1, volumeId, paramsId: 'fastcdc-v1:64:256:1024', chunks: refs, totalBytes: offset, rootHash: computeRootHash(refs) };
}

test('put stores once and dedups by hash; get returns the bytes; counters count', async () => {
  const store = await ChunkStore.open(tmp());
  const a = chunk(1);
  assert.equal(await store.put(sha(a), a), 'stored');
  assert.equal(await store.put(sha(a), a), 'duplicate');
  assert.equal(store.has(sha(a)), true);
  assert.equal(store.has(sha(chunk(2))), false);
  assert.deepEqual(await store.get(sha(a)), a);
  assert.equal(await store.get(sha(chunk(3))), undefined);
  const s = store.stats();
  assert.deepEqual(
    { chunks: s.chunks, bytes: s.bytes, puts: s.puts, duplicatePuts: s.duplicatePuts, hits: s.hits, misses: s.misses },
    { chunks: 1, bytes: 1000, puts: 1, duplicatePuts: 1, hits: 2, misses: 2 },
  );
  assert.equal(await store.delete(sha(a)), true);
  assert.equal(store.has(sha(a)), false);
  assert.equal(await store.delete(sha(a)), false);
});

test('a put whose bytes do not match the hash is refused and writes nothing', async () => {
  const dir = tmp();
  const store = await ChunkStore.open(dir);
  const a = chunk(1);
  const b = chunk(2);
  await assert.rejects(store.put(sha(a), b), (err: unknown) => {
    assert.ok(err instanceof ChunkHashMismatchError);
    assert.match(err.message, new RegExp(`offered as ${sha(a)} hashes to ${sha(b)}`));
    return true;
  });
  assert.equal(store.has(sha(a)), false);
  assert.deepEqual(readdirSync(join(dir, 'chunks', sha(a).slice(0, 2))), []);
  assert.equal(store.stats().rejectedPuts, 1);
  await assert.rejects(store.put('not-a-hash', a), /'not-a-hash' is not 64 lower-case hex digits/);
});

test('a leftover temp file from a crashed put is never read and is removed on open', async () => {
  const dir = tmp();
  const a = chunk(1);
  {
    const store = await ChunkStore.open(dir);
    await store.put(sha(a), a);
  }
  // Simulate a crash between write and rename of a second chunk.
  const b = chunk(2);
  const sub = join(dir, 'chunks', sha(b).slice(0, 2));
  const leftover = join(sub, `.tmp-${sha(b)}-deadbeef0000`);
  writeFileSync(leftover, b.subarray(0, 10));
  const store = await ChunkStore.open(dir);
  assert.equal(existsSync(leftover), false);
  assert.equal(store.stats().cleanedTempFiles, 1);
  assert.equal(store.has(sha(b)), false);
  assert.equal(store.has(sha(a)), true, 'the completed put survives the reopen');
  assert.equal(await store.put(sha(b), b), 'stored');
  assert.deepEqual(await store.get(sha(b)), b);
});

test('a chunk corrupted on disk is detected on read, removed, and reported', async () => {
  const dir = tmp();
  const store = await ChunkStore.open(dir);
  const a = chunk(1);
  await store.put(sha(a), a);
  const path = join(dir, 'chunks', sha(a).slice(0, 2), sha(a));
  const bad = Buffer.from(readFileSync(path));
  bad[17] = bad[17]! ^ 0xff;
  writeFileSync(path, bad);
  await assert.rejects(store.get(sha(a)), ChunkHashMismatchError);
  assert.equal(store.has(sha(a)), false);
  assert.equal(store.stats().corruptChunks, 1);
});

test('manifests are stored by root hash, verified, and survive a reopen', async () => {
  const dir = tmp();
  const chunks = [chunk(1), chunk(2), chunk(1)];
  const m = manifestOf('vol-a', chunks);
  {
    const store = await ChunkStore.open(dir);
    await store.putManifest(m);
    await assert.rejects(store.putManifest({ ...m, rootHash: sha(Buffer.from('other')) }), /claims root hash .* but its chunk hashes give/);
  }
  const store = await ChunkStore.open(dir);
  assert.deepEqual(await store.getManifest(m.rootHash), m);
  assert.deepEqual(store.listManifests(), [{ rootHash: m.rootHash, retention: 'pinned' }]);
  const delta = store.missing(m);
  assert.deepEqual(delta.toSend.map((c) => c.hash), [sha(chunk(1)), sha(chunk(2))]);
});

test('gc removes exactly the chunks no retained manifest references', async () => {
  const store = await ChunkStore.open(tmp());
  const [a, b, c, d] = [chunk(1), chunk(2), chunk(3), chunk(4)];
  for (const x of [a, b, c, d]) await store.put(sha(x), x);
  const pinned = manifestOf('v1', [a, b]);
  const baseline = manifestOf('v2', [b, c]);
  await store.putManifest(pinned, 'pinned');
  await store.putManifest(baseline, 'baseline');
  assert.deepEqual(await store.gc(), { removedChunks: 1, removedBytes: 1000 });
  assert.deepEqual([a, b, c, d].map((x) => store.has(sha(x))), [true, true, true, false]);
  await store.deleteManifest(baseline.rootHash);
  assert.deepEqual(await store.gc(), { removedChunks: 1, removedBytes: 1000 });
  assert.deepEqual([a, b, c].map((x) => store.has(sha(x))), [true, true, false]);
});

test('over maxBytes, the least recently used unpinned chunks are evicted; pinned ones never', async () => {
  const store = await ChunkStore.open(tmp(), { maxBytes: 4000 });
  const [a, b, c, d, e] = [chunk(1), chunk(2), chunk(3), chunk(4), chunk(5)];
  await store.putManifest(manifestOf('pinned', [a]), 'pinned');
  await store.putManifest(manifestOf('base', [b]), 'baseline');
  for (const x of [a, b, c, d]) await store.put(sha(x), x);
  await store.get(sha(b)); // b is now more recent than c and d
  await store.put(sha(e), e); // needs 1000 bytes: evicts c, the LRU unpinned chunk
  assert.deepEqual([a, b, c, d, e].map((x) => store.has(sha(x))), [true, true, false, true, true]);
  const s = store.stats();
  assert.equal(s.bytes, 4000);
  assert.equal(s.evictedChunks, 1);
  assert.equal(s.pinnedBytes, 1000);
});

test('when everything left is pinned, a put is refused with a clear error', async () => {
  const store = await ChunkStore.open(tmp(), { maxBytes: 2000 });
  const [a, b, c] = [chunk(1), chunk(2), chunk(3)];
  await store.putManifest(manifestOf('pinned', [a, b]), 'pinned');
  await store.put(sha(a), a);
  await store.put(sha(b), b);
  await assert.rejects(store.put(sha(c), c), (err: unknown) => {
    assert.ok(err instanceof ChunkStoreFullError);
    assert.match(err.message, /2000 bytes are pinned by manifests; release a manifest/);
    return true;
  });
  await store.setRetention((store.listManifests()[0]!).rootHash, 'baseline');
  assert.equal(await store.put(sha(c), c), 'stored');
  assert.equal(store.stats().bytes, 2000);
});

test('concurrent puts together stay within maxBytes', async () => {
  const store = await ChunkStore.open(tmp(), { maxBytes: 5000 });
  const all = Array.from({ length: 20 }, (_, k) => chunk(k));
  await Promise.all(all.map((x) => store.put(sha(x), x)));
  assert.ok(store.stats().bytes <= 5000, `store holds ${store.stats().bytes} bytes; bound is 5000`);
});

test('assemble streams a manifest back into the original file, and names missing chunks', async () => {
  const dir = tmp();
  const store = await ChunkStore.open(join(dir, 'store'));
  const volume = seededBytes(300_000, 77);
  const manifest = await buildManifestFromStream(
    (async function* () {
      for (let i = 0; i < volume.length; i += 10_000) yield volume.subarray(i, i + 10_000);
    })(),
    { volumeId: 'vol', params: { minSize: 4096, avgSize: 16384, maxSize: 65536 }, onChunk: async (ref, bytes) => void (await store.put(ref.hash, bytes)) },
  );
  await store.putManifest(manifest);
  const out = join(dir, 'volume.img');
  assert.deepEqual(await store.assemble(manifest.rootHash, out), { bytes: volume.length, chunks: manifest.chunks.length });
  assert.ok(Buffer.from(readFileSync(out)).equals(Buffer.from(volume)));
  await store.delete(manifest.chunks[1]!.hash);
  await assert.rejects(store.assemble(manifest.rootHash, join(dir, 'again.img')), (err: unknown) => {
    assert.ok(err instanceof MissingChunksError);
    assert.deepEqual(err.missing, [manifest.chunks[1]!.hash]);
    return true;
  });
  assert.equal(existsSync(join(dir, 'again.img')), false);
});
