/**
 * The binary manifest and manifest delta (core/manifest-delta.ts): round trips against a base and
 * without one, the size they save, and hostile input refused by bounds or by the root check.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeManifest, decodeManifestWithDigests, encodeManifest, firstIndexOf, ManifestDeltaError, readManifestHeader } from '../../../core/manifest-delta';
import type { Manifest } from '../../../core/manifest';
import { buildManifestFromStream, digestsOf, verifyDecodedManifest, verifyManifest } from '../../../agent/capture/manifest-builder';
import { ManifestError } from '../../../core/manifest';
import { seededBytes } from './seeded-bytes';

const PARAMS = { minSize: 1024, avgSize: 4096, maxSize: 16384 };

async function manifestOf(data: Uint8Array, volumeId = 'vol'): Promise<Manifest> {
  return buildManifestFromStream((async function* () {
    yield data;
  })(), { volumeId, params: PARAMS });
}

/** `old` with `insert` bytes put at `at` and `count` scattered 512-byte blocks rewritten. */
function edit(old: Uint8Array, at: number, insert: number, count: number, seed: number): Uint8Array {
  const fresh = seededBytes(insert + 512 * count, seed);
  const out = new Uint8Array(old.length + insert);
  out.set(old.subarray(0, at), 0);
  out.set(fresh.subarray(0, insert), at);
  out.set(old.subarray(at), at + insert);
  for (let k = 0; k < count; k++) {
    const pos = ((k * 7919 * 512) % Math.max(1, out.length - 512)) & ~511;
    out.set(fresh.subarray(insert + 512 * k, insert + 512 * (k + 1)), pos);
  }
  return out;
}

test('a full binary manifest decodes to the same manifest, at ~35 bytes per chunk', async () => {
  const m = await manifestOf(seededBytes(400_000, 1));
  const { bytes, info } = encodeManifest(m);
  assert.equal(info.newChunks, m.chunks.length);
  assert.equal(readManifestHeader(bytes).baseRoot, undefined);
  assert.deepEqual(decodeManifest(bytes), m);
  assert.ok(bytes.length < 36 * m.chunks.length + 100, `${bytes.length} bytes for ${m.chunks.length} chunks`);
});

test('the encoder refuses a hash that is not 64 hex digits (it used to write a zero byte for one)', async () => {
  const m = await manifestOf(seededBytes(100_000, 2));
  const h = m.chunks[1]!.hash;
  for (const bad of [`${h.slice(0, 63)}g`, h.slice(0, 62), `${h.slice(0, 31)} ${h.slice(32)}`]) {
    const broken = { ...m, chunks: m.chunks.map((c, i) => (i === 1 ? { ...c, hash: bad } : c)) };
    assert.throws(() => encodeManifest(broken), (err: unknown) => err instanceof ManifestDeltaError && err.message.includes(`'${bad}' is not 64 hex digits`));
  }
  assert.throws(() => encodeManifest({ ...m, rootHash: 'x'.repeat(64) }), ManifestDeltaError);
});

test('a delta against the old manifest decodes to the new one and costs a few bytes per unchanged run', async () => {
  const old = seededBytes(600_000, 2);
  const base = await manifestOf(old);
  const m = await manifestOf(edit(old, 300_000, 20_000, 0, 3));
  const { bytes, info } = encodeManifest(m, base);
  assert.equal(info.baseRoot, base.rootHash);
  assert.ok(info.copiedChunks > m.chunks.length * 0.8, `only ${info.copiedChunks} of ${m.chunks.length} entries copied`);
  assert.ok(info.copyOps <= 3, `${info.copyOps} COPY ops for one insertion`);
  assert.deepEqual(decodeManifest(bytes, base), m);
  assert.ok(bytes.length < encodeManifest(m).bytes.length / 5, `delta ${bytes.length} bytes, full ${encodeManifest(m).bytes.length}`);
});

test('property: any edit round-trips through a delta against the old manifest', async () => {
  const old = seededBytes(200_000, 4);
  const base = await manifestOf(old);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 0, max: 30_000 }), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 1, max: 1e6 }), async (at, insert, count, seed) => {
      const m = await manifestOf(edit(old, at, insert, count, seed));
      const bytes = encodeManifest(m, base).bytes;
      assert.deepEqual(verifyManifest(decodeManifest(bytes, base)), m);
      const d = decodeManifestWithDigests(bytes, base, digestsOf(base));
      assert.deepEqual(verifyDecodedManifest(d.manifest, d.digests), m);
    }),
    { numRuns: 25 },
  );
});

test('a delta decoded against another base than the one it names is refused', async () => {
  const base = await manifestOf(seededBytes(100_000, 5));
  const other = await manifestOf(seededBytes(100_000, 6));
  const m = await manifestOf(seededBytes(120_000, 5));
  const { bytes } = encodeManifest(m, base);
  assert.throws(() => decodeManifest(bytes, other), (err: unknown) => err instanceof ManifestDeltaError && /delta against/.test(err.message));
  assert.throws(() => decodeManifest(bytes), ManifestDeltaError);
});

test('a tampered delta decodes to a manifest that fails the root check', async () => {
  const old = seededBytes(300_000, 7);
  const base = await manifestOf(old);
  const m = await manifestOf(edit(old, 0, 0, 10, 8));
  const { bytes } = encodeManifest(m, base);
  // Flip one bit in the last byte: inside the last entry's digest or a COPY op's count/index.
  const bad = Uint8Array.from(bytes);
  bad[bad.length - 1]! ^= 0x01;
  assert.throws(() => verifyManifest(decodeManifest(bad, base)), (err: unknown) => err instanceof ManifestError || err instanceof ManifestDeltaError);
  // A COPY op pointing at other base entries (same lengths or not): never the wanted root.
  const swapped = encodeManifest({ ...m, chunks: [...m.chunks].reverse().map((c, k, all) => ({ ...c, offset: all.slice(0, k).reduce((a, x) => a + x.length, 0) })) }, base);
  const forged = decodeManifest(swapped.bytes, base);
  assert.equal(forged.rootHash, m.rootHash, 'the forgery claims the wanted root');
  assert.throws(() => verifyManifest(forged), ManifestError);
});

test('hostile binary manifests are refused by bounds, before allocating', () => {
  const m: Manifest = { version: 1, volumeId: 'v', paramsId: 'fastcdc-v1:1024:4096:16384', chunks: [{ offset: 0, length: 5, hash: 'ab'.repeat(32) }], totalBytes: 5, rootHash: 'cd'.repeat(32) };
  const good = encodeManifest(m).bytes;
  assert.throws(() => decodeManifest(good.subarray(0, good.length - 3)), /ends inside/);
  assert.throws(() => decodeManifest(Uint8Array.from([...good, 0])), /after its last entry/);
  const notMagic = Uint8Array.from(good);
  notMagic[0] = 0;
  assert.throws(() => decodeManifest(notMagic), /magic/);
  // Claims 2^40 chunks.
  const huge = Uint8Array.from([...good.subarray(0, 4 + 2 + 32 + 2 + 1 + m.paramsId.length), 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 5]);
  assert.throws(() => decodeManifest(huge), /at most/);
});

/** The digests a manifest's root is over, spelled from its hex (the definition, not the code under test). */
function rawDigests(m: Manifest): Buffer {
  return Buffer.concat(m.chunks.map((c) => Buffer.from(c.hash, 'hex')));
}

test("the decoder's digests are the entries' digests, full or delta (with the base's digests)", async () => {
  const old = seededBytes(400_000, 11);
  const base = await manifestOf(old);
  const m = await manifestOf(edit(old, 100_000, 9_000, 6, 12));
  const full = decodeManifestWithDigests(encodeManifest(m).bytes);
  assert.deepEqual(full.manifest, m);
  assert.deepEqual(Buffer.from(full.digests), rawDigests(m));
  const { bytes, info } = encodeManifest(m, base);
  assert.ok(info.copiedChunks > 0 && info.newChunks > 0, 'the delta has both kinds of entries');
  const d = decodeManifestWithDigests(bytes, base, digestsOf(base));
  assert.deepEqual(d.manifest, m);
  assert.deepEqual(Buffer.from(d.digests), rawDigests(m));
  assert.deepEqual(verifyDecodedManifest(d.manifest, d.digests), m);
  // The cache then holds the decoded manifest's digests: a delta against it copies from them.
  const next = await manifestOf(edit(edit(old, 100_000, 9_000, 6, 12), 50_000, 0, 3, 13));
  const d2 = decodeManifestWithDigests(encodeManifest(next, m).bytes, m, digestsOf(m));
  assert.deepEqual(Buffer.from(d2.digests), rawDigests(next));
  assert.throws(() => decodeManifestWithDigests(bytes, base, new Uint8Array(32)), /base's digests are 32 bytes/);
  assert.throws(() => decodeManifestWithDigests(bytes, base), /base's digests are not given/);
});

test('a decoded manifest whose digests do not give its root, or with a bad id, fails verifyDecodedManifest', async () => {
  const old = seededBytes(300_000, 14);
  const base = await manifestOf(old);
  const m = await manifestOf(edit(old, 0, 0, 10, 15));
  // COPY ops pointing at other base entries: the forgery claims the wanted root, its digests give another.
  const swapped = encodeManifest({ ...m, chunks: [...m.chunks].reverse().map((c, k, all) => ({ ...c, offset: all.slice(0, k).reduce((a, x) => a + x.length, 0) })) }, base);
  const forged = decodeManifestWithDigests(swapped.bytes, base, digestsOf(base));
  assert.equal(forged.manifest.rootHash, m.rootHash, 'the forgery claims the wanted root');
  assert.throws(() => verifyDecodedManifest(forged.manifest, forged.digests), (err: unknown) => err instanceof ManifestError && /but its chunk hashes give/.test(err.message));
  // One bit of one NEW digest flipped in the body.
  const { bytes } = encodeManifest(m);
  const bad = Uint8Array.from(bytes);
  bad[bad.length - 1]! ^= 0x01;
  const d = decodeManifestWithDigests(bad);
  assert.throws(() => verifyDecodedManifest(d.manifest, d.digests), ManifestError);
  const good = decodeManifestWithDigests(bytes);
  assert.throws(() => verifyDecodedManifest({ ...good.manifest, paramsId: 'fastcdc-v1:3:4:5' }, good.digests), ManifestError);
  assert.throws(() => verifyDecodedManifest({ ...good.manifest, volumeId: '' }, good.digests), /volumeId/);
  assert.throws(() => verifyDecodedManifest(good.manifest, good.digests.subarray(32)), /bytes of digests/);
});

test("a base whose hashes are not lower-case hex has no digests", async () => {
  const base = await manifestOf(seededBytes(200_000, 16));
  assert.equal(digestsOf({ chunks: base.chunks.map((c, i) => (i === 3 ? { ...c, hash: c.hash.toUpperCase() } : c)) }), undefined);
  assert.equal(digestsOf({ chunks: base.chunks.map((c, i) => (i === 3 ? { ...c, hash: c.hash.slice(2) } : c)) }), undefined);
  assert.deepEqual(Buffer.from(digestsOf(base)!), rawDigests(base));
});

test("an index of the base's first entries, passed in, gives the same bytes; a stale one costs bytes, never a wrong manifest", async () => {
  const old = seededBytes(400_000, 21);
  const base = await manifestOf(old);
  const m = await manifestOf(edit(old, 150_000, 7_000, 5, 22));
  const built = encodeManifest(m, base);
  const given = encodeManifest(m, base, firstIndexOf(base.chunks));
  assert.deepEqual(Buffer.from(given.bytes), Buffer.from(built.bytes));
  assert.ok(built.info.copiedChunks > m.chunks.length * 0.8);
  // An index of another manifest (every entry's index shifted by one, or of unrelated bytes): each
  // entry it names is checked against the base, so what it gets wrong goes as NEW.
  const shifted = new Map(base.chunks.map((c, i) => [c.hash, i + 1]));
  const unrelated = firstIndexOf((await manifestOf(seededBytes(400_000, 23))).chunks);
  for (const stale of [shifted, unrelated]) {
    const { bytes, info } = encodeManifest(m, base, stale);
    assert.equal(info.copiedChunks + info.newChunks, m.chunks.length);
    assert.deepEqual(verifyManifest(decodeManifest(bytes, base)), m);
  }
  assert.equal(encodeManifest(m, base, unrelated).info.copiedChunks, 0, 'nothing of an unrelated index is used');
});
