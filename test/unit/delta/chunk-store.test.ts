import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkStore } from '../../../agent/store/chunk-store';
import { ChunkHashMismatchError, ChunkStoreFullError, MissingChunksError } from '../../../agent/store/errors';
import { buildManifestFromStream } from '../../../agent/capture/manifest-builder';
import { seededBytes } from './seeded-bytes';
import { manifestOf, rotChunk, sha } from './store-disk';
import { tempDir } from '../../helpers/tmp';

const tmp = () => tempDir('fedflow-chunk-store-');
const chunk = (n: number, size = 1000) => Buffer.from(seededBytes(size, n + 1));

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
  assert.deepEqual(readdirSync(join(dir, 'packs')), ['index.log'], 'no pack written');
  assert.equal(store.stats().packBytes, 0);
  assert.equal(store.stats().rejectedPuts, 1);
  await assert.rejects(store.put('not-a-hash', a), /'not-a-hash' is not 64 lower-case hex digits/);
});

test('a group commit cut by a crash (bytes in a pack, a torn index record) is never read and is cut on open', async () => {
  const dir = tmp();
  const a = chunk(1);
  {
    const store = await ChunkStore.open(dir);
    await store.put(sha(a), a);
    await store.close();
  }
  // Simulate a crash in the middle of a second chunk's commit: its bytes appended to the pack,
  // half of its index record written.
  const b = chunk(2);
  const pack = readdirSync(join(dir, 'packs')).find((n) => n.endsWith('.pack'))!;
  appendFileSync(join(dir, 'packs', pack), b);
  const log = join(dir, 'packs', 'index.log');
  const whole = readFileSync(log);
  appendFileSync(log, whole.subarray(whole.length - 53, whole.length - 20));
  // And a temp file of a manifest write cut before its rename.
  writeFileSync(join(dir, 'manifests', 'pinned', '.tmp-cut'), '{');
  const store = await ChunkStore.open(dir);
  assert.equal(store.stats().truncatedLogBytes, 33);
  assert.equal(readFileSync(log).length, whole.length, 'the torn record is cut');
  assert.equal(store.stats().cleanedTempFiles, 1);
  assert.equal(store.has(sha(b)), false);
  assert.equal(store.has(sha(a)), true, 'the completed put survives the reopen');
  assert.deepEqual(await store.get(sha(a)), a);
  assert.equal(await store.put(sha(b), b), 'stored');
  assert.deepEqual(await store.get(sha(b)), b);
  await store.close();
  const again = await ChunkStore.open(dir);
  assert.deepEqual([await again.get(sha(a)), await again.get(sha(b))], [a, b]);
  assert.equal(again.stats().truncatedLogBytes, 0);
});

test('a chunk corrupted on disk is detected on read, removed, and reported', async () => {
  const dir = tmp();
  const store = await ChunkStore.open(dir);
  const a = chunk(1);
  await store.put(sha(a), a);
  rotChunk(store, sha(a), 17);
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

const LOG_HEADER = 8;
const REC = 53;

test('pack recovery: an index log cut at any byte of its last commit keeps exactly the whole records before the cut', async () => {
  const dir = tmp();
  const first = [chunk(1), chunk(2)];
  const last = [chunk(3), chunk(4), chunk(5)];
  {
    const store = await ChunkStore.open(dir);
    await store.putMany(first.map((x) => ({ hash: sha(x), data: x })));
    await store.putMany(last.map((x) => ({ hash: sha(x), data: x })));
    await store.close();
  }
  const log = join(dir, 'packs', 'index.log');
  const whole = readFileSync(log);
  assert.equal(whole.length, LOG_HEADER + 5 * REC);
  const lastStart = LOG_HEADER + 2 * REC;
  for (let cut = lastStart; cut < whole.length; cut++) {
    writeFileSync(log, whole.subarray(0, cut));
    const store = await ChunkStore.open(dir);
    const whole_ = Math.floor((cut - lastStart) / REC);
    assert.equal(store.stats().truncatedLogBytes, (cut - lastStart) % REC, `cut at ${cut}`);
    for (const x of first) assert.deepEqual(await store.get(sha(x)), x);
    for (let k = 0; k < last.length; k++) {
      assert.equal(store.has(sha(last[k]!)), k < whole_, `cut at ${cut}: chunk ${k} of the last commit`);
      if (k < whole_) assert.deepEqual(await store.get(sha(last[k]!)), last[k]);
    }
    await store.close();
    assert.equal(statSync(log).size, LOG_HEADER + (2 + whole_) * REC, 'the torn tail is cut from the file');
  }
});

test('pack recovery: a record whose checksum fails ends the log there; a record past its pack end is dropped', async () => {
  const dir = tmp();
  const xs = [chunk(1), chunk(2), chunk(3)];
  {
    const store = await ChunkStore.open(dir);
    for (const x of xs) await store.put(sha(x), x);
    await store.close();
  }
  const log = join(dir, 'packs', 'index.log');
  const bytes = readFileSync(log);
  bytes[LOG_HEADER + REC + 20]! ^= 0x01; // inside the second record's hash
  writeFileSync(log, bytes);
  let packPath: string;
  {
    const store = await ChunkStore.open(dir);
    assert.deepEqual(xs.map((x) => store.has(sha(x))), [true, false, false]);
    assert.equal(store.stats().truncatedLogBytes, 2 * REC);
    // The pack lost its tail (a file system that did not keep the last write): the record pointing there goes.
    await store.put(sha(xs[1]!), xs[1]!);
    packPath = store.locateChunk(sha(xs[1]!))!.path;
    assert.notEqual(packPath, store.locateChunk(sha(xs[0]!))!.path, 'each open starts a new pack');
    await store.close();
  }
  writeFileSync(packPath, readFileSync(packPath).subarray(0, 500));
  const store = await ChunkStore.open(dir);
  assert.deepEqual(xs.map((x) => store.has(sha(x))), [true, false, false]);
  assert.match(store.warnings.join('\n'), /past the pack's end/);
  assert.deepEqual(await store.get(sha(xs[0]!)), xs[0]);
});

test('pack recovery: a pack no durable record points at (a commit cut before its records) is removed on open', async () => {
  const dir = tmp();
  {
    const store = await ChunkStore.open(dir);
    await store.put(sha(chunk(1)), chunk(1));
    await store.close();
  }
  const orphan = join(dir, 'packs', '0123456789abcdef.pack');
  writeFileSync(orphan, chunk(2));
  writeFileSync(join(dir, 'packs', '.tmp-index.log-cut'), 'x');
  const store = await ChunkStore.open(dir);
  assert.equal(existsSync(orphan), false);
  assert.equal(store.stats().removedPacks, 1);
  assert.equal(store.stats().cleanedTempFiles, 1);
  assert.equal(store.has(sha(chunk(2))), false);
  assert.equal(store.has(sha(chunk(1))), true);
});

test('removals are durable: deleted, evicted and gc-ed chunks stay gone after a reopen, and their pack space is reclaimed', async () => {
  const dir = tmp();
  const xs = Array.from({ length: 12 }, (_, k) => chunk(k, 4000));
  {
    const store = await ChunkStore.open(dir, { maxBytes: 40_000 });
    await store.putMany(xs.slice(0, 6).map((x) => ({ hash: sha(x), data: x })));
    await store.close();
  }
  {
    const store = await ChunkStore.open(dir, { maxBytes: 40_000 });
    await store.putManifest(manifestOf('keep', [xs[0]!, xs[1]!]), 'pinned');
    assert.equal(await store.delete(sha(xs[2]!)), true);
    // 6 more chunks of 4000 bytes over a 40 000-byte bound: the least recently used unpinned go.
    await store.putMany(xs.slice(6).map((x) => ({ hash: sha(x), data: x })));
    assert.ok(store.stats().bytes <= 40_000);
    assert.ok(store.stats().evictedChunks >= 1);
    await store.close();
  }
  const store = await ChunkStore.open(dir, { maxBytes: 40_000 });
  const held = xs.map((x) => store.has(sha(x)));
  assert.equal(held[2], false, 'the deleted chunk stays deleted');
  assert.equal(held.filter(Boolean).length, store.stats().chunks);
  assert.ok(store.stats().bytes <= 40_000);
  for (const [k, x] of xs.entries()) if (held[k]) assert.deepEqual(await store.get(sha(x)), x);
  const { removedChunks } = await store.gc();
  assert.equal(removedChunks, held.filter(Boolean).length - 2, 'only the pinned manifest’s chunks are kept');
  const s = store.stats();
  assert.equal(s.chunks, 2);
  assert.ok(s.packBytes <= 8000, `after gc the packs hold ${s.packBytes} bytes for 8000 live`);
  await store.close();
  const reopened = await ChunkStore.open(dir);
  assert.deepEqual(xs.map((x) => reopened.has(sha(x))), xs.map((_, k) => k < 2));
  assert.deepEqual([await reopened.get(sha(xs[0]!)), await reopened.get(sha(xs[1]!))], [xs[0], xs[1]]);
});

test('a format-1 store (one file per chunk) is migrated into packs on open; a bad chunk file is dropped', async () => {
  const dir = tmp();
  const [a, b, c] = [chunk(1), chunk(2), chunk(3)];
  for (const x of [a, b]) {
    mkdirSync(join(dir, 'chunks', sha(x).slice(0, 2)), { recursive: true });
    writeFileSync(join(dir, 'chunks', sha(x).slice(0, 2), sha(x)), x);
  }
  mkdirSync(join(dir, 'chunks', sha(c).slice(0, 2)), { recursive: true });
  writeFileSync(join(dir, 'chunks', sha(c).slice(0, 2), sha(c)), a); // rotted: other bytes under c's name
  writeFileSync(join(dir, 'chunks', sha(c).slice(0, 2), `.tmp-${sha(c)}-deadbeef0000`), c.subarray(0, 10));
  mkdirSync(join(dir, 'manifests', 'pinned'), { recursive: true });
  const m = manifestOf('v', [a, b]);
  writeFileSync(join(dir, 'manifests', 'pinned', `${m.rootHash}.json`), JSON.stringify(m));
  {
    const store = await ChunkStore.open(dir);
    const s = store.stats();
    assert.deepEqual({ migrated: s.migratedChunks, corrupt: s.corruptChunks, cleaned: s.cleanedTempFiles, chunks: s.chunks, pinned: s.pinnedBytes }, { migrated: 2, corrupt: 1, cleaned: 1, chunks: 2, pinned: 2000 });
    assert.equal(existsSync(join(dir, 'chunks')), false, 'the chunk files are gone');
    assert.deepEqual([store.has(sha(a)), store.has(sha(b)), store.has(sha(c))], [true, true, false]);
    await store.close();
  }
  const store = await ChunkStore.open(dir);
  assert.deepEqual([await store.get(sha(a)), await store.get(sha(b))], [a, b]);
  const out = join(dir, 'v.img');
  await store.assemble(m.rootHash, out);
  assert.ok(readFileSync(out).equals(Buffer.concat([a, b])));
});

test('an index log with a damaged header is refused, and its packs are left alone', async () => {
  const dir = tmp();
  {
    const store = await ChunkStore.open(dir);
    await store.put(sha(chunk(1)), chunk(1));
    await store.close();
  }
  const log = join(dir, 'packs', 'index.log');
  const bytes = readFileSync(log);
  bytes[0] = 0;
  writeFileSync(log, bytes);
  const packs = readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'));
  await assert.rejects(ChunkStore.open(dir), /does not start with FFCHUNK2: damaged/);
  assert.deepEqual(readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack')), packs);
});
