import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cutAll, CHUNKER_PRESETS, paramsId } from '../../../core/chunking';
import { checkManifest, summarize, Manifest } from '../../../core/manifest';
import { diffManifest, summarizeDelta } from '../../../core/manifest-diff';
import { buildManifestFromFile, buildManifestFromStream, computeRootHash, verifyManifest } from '../../../agent/capture/manifest-builder';
import { seededBytes } from './seeded-bytes';
import { tempDir } from '../../helpers/tmp';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const params = CHUNKER_PRESETS.internet;

async function* blocks(data: Uint8Array, size: number) {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

test('a file manifest has the chunker cuts, chunk sha256s, and root = sha256(concatenated raw digests)', async () => {
  const data = seededBytes(700_000, 3);
  const path = join(tempDir('fedflow-manifest-'), 'vol.img');
  writeFileSync(path, data);
  const m = await buildManifestFromFile(path, { volumeId: 'vol-1', params });
  const cuts = cutAll(data, params);
  assert.deepEqual(m.chunks, cuts.map((c) => ({ ...c, hash: sha(data.subarray(c.offset, c.offset + c.length)) })));
  const root = createHash('sha256');
  for (const c of m.chunks) root.update(Buffer.from(c.hash, 'hex'));
  assert.equal(m.rootHash, root.digest('hex'));
  assert.equal(m.totalBytes, data.length);
  assert.equal(m.paramsId, paramsId(params));
  assert.deepEqual(checkManifest(m), []);
  assert.equal(verifyManifest(m), m);
  assert.deepEqual(summarize(m), { volumeId: 'vol-1', rootHash: m.rootHash, paramsId: 'fastcdc-v1:4096:16384:65536', chunkCount: cuts.length, totalBytes: 700_000 });
});

test('the empty volume has no chunks and root sha256("")', async () => {
  const m = await buildManifestFromStream(blocks(new Uint8Array(0), 1), { volumeId: 'empty', params });
  assert.deepEqual(m.chunks, []);
  assert.equal(m.rootHash, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(computeRootHash([]), m.rootHash);
});

test('verifyManifest and checkManifest name what is wrong', async () => {
  const m = await buildManifestFromStream(blocks(seededBytes(100_000, 4), 4096), { volumeId: 'v', params });
  const swapped: Manifest = { ...m, chunks: [m.chunks[1]!, m.chunks[0]!, ...m.chunks.slice(2)] };
  assert.match(checkManifest(swapped).join('\n'), /chunks\[0\]\.offset is \d+; expected 0 \(chunks are contiguous from 0\)/);
  assert.throws(() => verifyManifest({ ...m, totalBytes: 5 }), /totalBytes is 5; the chunks add up to 100000/);
  const tampered = { ...m, chunks: m.chunks.map((c, k) => (k === 2 ? { ...c, hash: sha(Buffer.from('x')) } : c)) };
  assert.throws(() => verifyManifest(tampered), /claims root hash [0-9a-f]{64}, but its chunk hashes give [0-9a-f]{64}/);
  assert.match(checkManifest({ ...m, paramsId: 'rabin' }).join(), /'rabin' is not of the form 'fastcdc-v1:<min>:<avg>:<max>'/);
  assert.deepEqual(checkManifest(null), ['manifest must be an object']);
});

test('verifyManifest refuses, naming the problem, every hash that is not 64 lower-case hex digits (its fast path checks them in bulk)', async () => {
  const m = await buildManifestFromStream(blocks(seededBytes(300_000, 5), 4096), { volumeId: 'v', params });
  assert.ok(m.chunks.length > 5);
  const withHash = (k: number, hash: unknown) => ({ ...m, chunks: m.chunks.map((c, i) => (i === k ? { ...c, hash } : c)) });
  const k = 3;
  const h = m.chunks[k]!.hash;
  // The same digest in upper case decodes to the same bytes (and root): refused all the same.
  assert.throws(() => verifyManifest(withHash(k, h.toUpperCase())), new RegExp(`chunks\\[${k}\\]\\.hash is "${h.toUpperCase()}"; expected 64 lower-case hex digits`));
  assert.throws(() => verifyManifest(withHash(k, `${h.slice(0, 63)}g`)), /chunks\[3\]\.hash is "[0-9a-f]{63}g"; expected 64 lower-case hex digits/);
  assert.throws(() => verifyManifest(withHash(k, h.slice(0, 62))), /chunks\[3\]\.hash is "[0-9a-f]{62}"; expected 64 lower-case hex digits/);
  assert.throws(() => verifyManifest(withHash(k, `${h} `.slice(1))), /chunks\[3\]\.hash is/);
  assert.throws(() => verifyManifest(withHash(k, 42)), /chunks\[3\]\.hash is 42/);
  // A hole between chunks, a zero length, a wrong version, an empty volume id: each named.
  assert.throws(() => verifyManifest({ ...m, chunks: m.chunks.map((c, i) => (i === 2 ? { ...c, offset: c.offset + 1 } : c)) }), /chunks\[2\]\.offset is \d+; expected \d+/);
  assert.throws(() => verifyManifest({ ...m, chunks: m.chunks.map((c, i) => (i === 2 ? { ...c, length: 0 } : c)) }), /chunks\[2\]\.length is 0; expected a positive integer/);
  assert.throws(() => verifyManifest({ ...m, version: 2 }), /version is 2; expected 1/);
  assert.throws(() => verifyManifest({ ...m, volumeId: '' }), /volumeId is ""; expected a non-empty string/);
  assert.throws(() => verifyManifest({ ...m, rootHash: m.rootHash.toUpperCase() }), /rootHash is "[0-9A-F]{64}"; expected 64 lower-case hex digits/);
  // Well formed, the root must still match the hashes.
  const other = sha(Buffer.from('another chunk'));
  assert.throws(() => verifyManifest(withHash(k, other)), /claims root hash [0-9a-f]{64}, but its chunk hashes give [0-9a-f]{64}/);
  assert.equal(verifyManifest(m), m);
});

test('diff sends each missing hash once, skips the baseline, and counts bytes', () => {
  const h = (s: string) => sha(Buffer.from(s));
  const chunks = [
    { offset: 0, length: 10, hash: h('a') },
    { offset: 10, length: 20, hash: h('b') },
    { offset: 30, length: 10, hash: h('a') },
    { offset: 40, length: 30, hash: h('c') },
    { offset: 70, length: 20, hash: h('b') },
  ];
  const d = diffManifest({ chunks, totalBytes: 90 }, new Set([h('c')]));
  assert.deepEqual(d.toSend, [chunks[0], chunks[1]]);
  assert.deepEqual(summarizeDelta(d), { sendChunks: 2, sendBytes: 30, baselineChunks: 1, baselineBytes: 30, repeatChunks: 2, repeatBytes: 30, totalChunks: 5, totalBytes: 90 });
});

test("diff counts a held chunk's repeats as held, and every byte exactly once", () => {
  const h = (s: string) => sha(Buffer.from(s));
  const chunks = [
    { offset: 0, length: 10, hash: h('held') },
    { offset: 10, length: 20, hash: h('new') },
    { offset: 30, length: 10, hash: h('held') },
    { offset: 40, length: 20, hash: h('new') },
  ];
  const d = diffManifest({ chunks, totalBytes: 60 }, new Set([h('held')]));
  assert.deepEqual(d.toSend, [chunks[1]]);
  assert.deepEqual(summarizeDelta(d), { sendChunks: 1, sendBytes: 20, baselineChunks: 2, baselineBytes: 20, repeatChunks: 1, repeatBytes: 20, totalChunks: 4, totalBytes: 60 });
});

test('a small edit to a big volume makes a small delta against the old manifest', async () => {
  const data = seededBytes(4_000_000, 11);
  const old = await buildManifestFromStream(blocks(data, 65_536), { volumeId: 'v', params });
  const edited = new Uint8Array(data.length + 100);
  edited.set(data.subarray(0, 2_000_000));
  edited.set(seededBytes(100, 12), 2_000_000);
  edited.set(data.subarray(2_000_000), 2_000_100);
  const now = await buildManifestFromStream(blocks(edited, 65_536), { volumeId: 'v', params });
  const d = diffManifest(now, new Set(old.chunks.map((c) => c.hash)));
  assert.ok(d.sendBytes < 4 * params.maxSize, `an edit of 100 bytes sends ${d.sendBytes} bytes; expected a few chunks`);
  assert.ok(d.sendChunks >= 1);
  assert.equal(d.sendBytes + d.baselineBytes + d.repeatBytes, edited.length);
});
