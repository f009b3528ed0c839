/**
 * The chunk endpoint and the transfer client together, over a real transfer server on loopback:
 * corrupt chunks on the wire, refused tokens, and a resumed pull.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ChunkStore } from '../../../agent/store/chunk-store';
import { assertStoreClean, rotChunk } from './store-disk';
import type { CodecSpec } from '../../../agent/transfer/codec';
import { SourceImages } from '../../../agent/capture/source-images';
import { ChunkCorruptError, fetchManifest, newPullCounters, pullMissingChunks, TransferRefusedError, type PullProgress } from '../../../agent/transfer/client';
import { memoryPullLedger, totalsOf, withAttempt } from '../../../agent/transfer/pull-ledger';
import { newTransferStats, startTransferServer, type TransferStats } from '../../../agent/transfer/server';
import { claimsFor, endpointToken, issueToken } from '../../../agent/transfer/token';
import type { Manifest } from '../../../core/manifest';
import { seededBytes } from './seeded-bytes';

const SECRET = Buffer.alloc(32, 7);
const OTHER_SECRET = Buffer.alloc(32, 8);
/** Small chunks, so a 1.5 MiB volume has ~100 of them and many batches. */
const PARAMS = { minSize: 4096, avgSize: 16384, maxSize: 65536 };
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Source {
  dir: string;
  file: string;
  bytes: Buffer;
  manifest: Manifest;
  images: SourceImages;
  stats: TransferStats;
  url: string;
  corrupt: (hash: string) => boolean;
  close(): Promise<void>;
}

/** A source site 'src' serving one captured volume; `corrupt` can be swapped per test. */
async function startSource(seed: number, size = 1_500_000): Promise<Source> {
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-endpoint-'));
  const file = join(dir, 'vol.img');
  const bytes = Buffer.from(seededBytes(size, seed));
  writeFileSync(file, bytes);
  const images = new SourceImages(join(dir, 'images'));
  const { manifest } = await images.capture('vol', file, PARAMS, { inPlace: true });
  const stats = newTransferStats();
  const src: Partial<Source> = { dir, file, bytes, manifest, images, stats, corrupt: () => false };
  const server = await startTransferServer({ site: 'src', images, secret: SECRET, stats, corrupt: (h) => src.corrupt!(h) });
  src.url = server.url;
  src.close = async () => {
    await server.close();
    await images.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return src as Source;
}

const tokenFor = (root: string, opts: { secret?: Buffer; source?: string; nowMs?: number; ttl?: number } = {}) =>
  issueToken(opts.secret ?? SECRET, claimsFor(root, opts.source ?? 'src', 'dst', opts.nowMs ?? Date.now(), opts.ttl ?? 600));

async function openStore(): Promise<{ store: ChunkStore; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-endpoint-store-'));
  return { store: await ChunkStore.open(dir), dir };
}

async function assembleSha(store: ChunkStore, m: Manifest, dir: string): Promise<string> {
  await store.putManifest(m, 'pinned');
  const out = join(dir, 'assembled.img');
  await store.assemble(m.rootHash, out);
  return sha(readFileSync(out));
}

describe('transfer endpoint over loopback', () => {
  let a: Source;
  let b: Source;
  before(async () => {
    a = await startSource(11);
    b = await startSource(12, 300_000);
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });

  const codecs: CodecSpec[] = [{ codec: 'none' }, { codec: 'lz4' }, { codec: 'zstd', level: 3 }];
  for (const codec of codecs) {
    it(`detects chunks corrupted on the wire (${codec.codec}), fetches them again and never stores bad bytes`, async () => {
      const { store, dir } = await openStore();
      const distinct = new Set(a.manifest.chunks.map((c) => c.hash));
      // Corrupt the first serving of three chunks spread over the volume, then serve them clean.
      const victims = new Set([a.manifest.chunks[1]!.hash, a.manifest.chunks[Math.floor(a.manifest.chunks.length / 2)]!.hash, a.manifest.chunks.at(-1)!.hash]);
      assert.equal(victims.size, 3);
      const corrupted = new Set<string>();
      a.corrupt = (h) => victims.has(h) && !corrupted.has(h) && corrupted.add(h) !== undefined;
      const served0 = a.stats.chunksServed;
      try {
        const token = tokenFor(a.manifest.rootHash);
        const manifest = await fetchManifest(a.url, a.manifest.rootHash, token);
        const f = await pullMissingChunks({ endpoint: a.url, root: a.manifest.rootHash, token, manifest, store, plan: { codec, streams: 2, batchBytes: 256 << 10 } });
        assert.equal(corrupted.size, 3, 'the hook corrupted three chunks');
        assert.equal(f.corruptRefetched, 3);
        assert.equal(f.chunksFetched, distinct.size);
        assert.equal(a.stats.chunksServed - served0, distinct.size + 3, 'each corrupt chunk served exactly once more');
        // Bad bytes that decoded reached the store's check and were refused there; none was written.
        assert.ok(store.stats().rejectedPuts <= 3);
        assert.equal(await assertStoreClean(store, dir), distinct.size);
        assert.equal(await assembleSha(store, manifest, dir), sha(a.bytes));
      } finally {
        a.corrupt = () => false;
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('an image torn on the source disk (images are not fsynced) fails the pull after a restart and never reaches the store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedflow-endpoint-torn-'));
    const vol = join(dir, 'volume');
    mkdirSync(vol);
    writeFileSync(join(vol, 'data.bin'), Buffer.from(seededBytes(600_000, 21)));
    writeFileSync(join(vol, 'meta.json'), '{"v":1}');
    const first = new SourceImages(join(dir, 'images'));
    const { manifest } = await first.capture('vol', vol, PARAMS);
    const imagePath = first.get(manifest.rootHash)!.files[0]!;
    await first.close();
    // What a crash before write-back can leave: a page of the image that never reached the disk.
    const image = readFileSync(imagePath);
    const mid = manifest.chunks[Math.floor(manifest.chunks.length / 2)]!;
    image.fill(0, mid.offset + 100, mid.offset + 4196);
    writeFileSync(imagePath, image);
    // The agent restarts and serves the image it finds.
    const images = new SourceImages(join(dir, 'images'));
    const server = await startTransferServer({ site: 'src', images, secret: SECRET, stats: newTransferStats() });
    const { store, dir: storeDir } = await openStore();
    try {
      const token = tokenFor(manifest.rootHash);
      await assert.rejects(
        pullMissingChunks({ endpoint: server.url, root: manifest.rootHash, token, manifest, store, plan: { codec: { codec: 'lz4' }, streams: 2, batchBytes: 64 << 10 } }),
        (err: unknown) => err instanceof ChunkCorruptError && /arrived corrupt 4 times/.test(err.message),
      );
      assert.equal(store.has(mid.hash), false, 'the torn chunk is not stored');
      await assertStoreClean(store, storeDir);
    } finally {
      await server.close();
      await images.close();
      rmSync(storeDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives up on a chunk that arrives corrupt every time, and stores nothing of it', async () => {
    const { store, dir } = await openStore();
    const victim = a.manifest.chunks[3]!.hash;
    a.corrupt = (h) => h === victim;
    try {
      const token = tokenFor(a.manifest.rootHash);
      await assert.rejects(
        pullMissingChunks({ endpoint: a.url, root: a.manifest.rootHash, token, manifest: a.manifest, store, plan: { codec: { codec: 'none' }, streams: 1, batchBytes: 1 << 20 } }),
        (err: unknown) => err instanceof ChunkCorruptError && /arrived corrupt 4 times/.test(err.message),
      );
      assert.equal(store.has(victim), false);
      assert.equal(store.stats().rejectedPuts, 4);
      await assertStoreClean(store, dir);
    } finally {
      a.corrupt = () => false;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves the manifest zstd-encoded to clients that accept it, plain JSON to others', async () => {
    const root = a.manifest.rootHash;
    const token = tokenFor(root);
    const plain = await fetch(`${a.url}/manifests/${root}`, { headers: { authorization: `Bearer ${token}`, 'accept-encoding': 'identity' } });
    assert.equal(plain.headers.get('content-encoding'), null);
    const json = Buffer.from(await plain.arrayBuffer());
    assert.deepEqual(JSON.parse(json.toString('utf8')), a.manifest);
    const compressed = await new Promise<{ encoding?: string; bytes: number }>((resolve, reject) => {
      http.get(`${a.url}/manifests/${root}`, { headers: { authorization: `Bearer ${token}`, 'accept-encoding': 'zstd' } }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ encoding: res.headers['content-encoding'], bytes }));
      }).on('error', reject);
    });
    assert.equal(compressed.encoding, 'zstd');
    assert.ok(compressed.bytes < json.length * 0.7, `zstd manifest ${compressed.bytes} bytes vs ${json.length} plain`);
    assert.deepEqual(await fetchManifest(a.url, root, token), a.manifest);
  });

  it('a chunk that rots on the target disk after its verified arrival fails the assembly, which leaves no file', async () => {
    const { store, dir } = await openStore();
    try {
      const root = a.manifest.rootHash;
      const token = tokenFor(root);
      await pullMissingChunks({ endpoint: a.url, root, token, manifest: a.manifest, store, plan: { codec: { codec: 'lz4' }, streams: 2, batchBytes: 256 << 10 } });
      await store.putManifest(a.manifest, 'pinned');
      const victim = a.manifest.chunks[5]!.hash;
      rotChunk(store, victim, 0, 1);
      const out = join(dir, 'assembled.img');
      await assert.rejects(store.assemble(root, out), (err: unknown) => (err as Error).name === 'ChunkHashMismatchError');
      assert.equal(store.has(victim), false, 'the bad chunk is dropped, so the next pull fetches it again');
      assert.ok(!readdirSync(dir).some((n) => n.startsWith('assembled') || n.startsWith('.tmp-')), 'no partial volume left');
      const again = await pullMissingChunks({ endpoint: a.url, root, token, manifest: a.manifest, store, plan: { codec: { codec: 'lz4' }, streams: 2, batchBytes: 256 << 10 } });
      assert.equal(again.chunksFetched, 1);
      assert.equal(await assembleSha(store, a.manifest, dir), sha(a.bytes));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A raw request, to see the status and the reason the server gives. */
  async function raw(root: string, token: string): Promise<{ status: number; body: { error?: string; reason?: string } }> {
    const res = await fetch(`${a.url}/manifests/${root}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as { error?: string; reason?: string } };
  }

  it('refuses expired, forged and other-manifest tokens with 401/403 and the reason, serving nothing', async () => {
    const root = a.manifest.rootHash;
    const served0 = a.stats.chunksServed;
    const refused0 = a.stats.refused;
    const good = tokenFor(root);
    const [prefix, claims] = good.split('.') as [string, string, string];
    const tampered = `${prefix}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(claims, 'base64url').toString()), exp: 4_000_000_000 })).toString('base64url')}.${good.split('.')[2]}`;
    const cases: { name: string; token: string; status: number; reason: string; message: RegExp }[] = [
      { name: 'expired', token: tokenFor(root, { nowMs: Date.now() - 3_600_000, ttl: 60 }), status: 401, reason: 'expired', message: /expired at/ },
      { name: 'signed with another secret', token: tokenFor(root, { secret: OTHER_SECRET }), status: 401, reason: 'bad-signature', message: /signature does not match/ },
      { name: 'claims altered after signing', token: tampered, status: 401, reason: 'bad-signature', message: /signature does not match/ },
      { name: 'not a token', token: 'hello', status: 401, reason: 'malformed', message: /not of the form/ },
      { name: 'for another manifest', token: tokenFor(b.manifest.rootHash), status: 403, reason: 'wrong-manifest', message: new RegExp(`for manifest ${b.manifest.rootHash}, not ${root}`) },
      { name: 'for another source site', token: tokenFor(root, { source: 'elsewhere' }), status: 403, reason: 'wrong-site', message: /source site 'elsewhere', not 'src'/ },
    ];
    for (const c of cases) {
      const r = await raw(root, c.token);
      assert.equal(r.status, c.status, `${c.name}: status`);
      assert.equal(r.body.reason, c.reason, `${c.name}: reason`);
      assert.match(r.body.error ?? '', c.message, `${c.name}: message`);
      // The client surfaces the same refusal, for chunks as for the manifest.
      const { store, dir } = await openStore();
      try {
        await assert.rejects(fetchManifest(a.url, root, c.token), (err: unknown) => err instanceof TransferRefusedError && err.status === c.status);
        await assert.rejects(
          pullMissingChunks({ endpoint: a.url, root, token: c.token, manifest: a.manifest, store, plan: { codec: { codec: 'none' }, streams: 1, batchBytes: 1 << 20 } }),
          (err: unknown) => err instanceof TransferRefusedError && err.status === c.status && c.message.test(err.message),
        );
        assert.equal(store.stats().chunks, 0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    assert.equal(a.stats.chunksServed, served0, 'no chunk served to a refused token');
    assert.equal(a.stats.refused - refused0, cases.length * 3);
    // And the good token works, so the refusals above were about the tokens.
    assert.equal((await raw(root, good)).status, 200);
  });

  it('resumes an aborted pull without fetching verified chunks again (counted at the server)', async () => {
    const { store, dir } = await openStore();
    const root = a.manifest.rootHash;
    const distinct = new Set(a.manifest.chunks.map((c) => c.hash)).size;
    const token = tokenFor(root);
    const plan = { codec: { codec: 'lz4' } as CodecSpec, streams: 1, batchBytes: 128 << 10 };
    const served = async () => ((await (await fetch(`${a.url}/stats`, { headers: { authorization: `Bearer ${endpointToken(SECRET, 'stats', 'src', 'test')}` } })).json()) as TransferStats).chunksServed;
    try {
      const s0 = await served();
      const ac = new AbortController();
      let last: PullProgress | undefined;
      await assert.rejects(
        pullMissingChunks({
          endpoint: a.url, root, token, manifest: a.manifest, store, plan, signal: ac.signal,
          onProgress: (p) => {
            last = p;
            if (p.cursor >= 3) ac.abort();
          },
        }),
        (err: unknown) => (err as Error).name === 'AbortError',
      );
      assert.ok(last && last.batches > 6, `the volume spans many batches (${last?.batches})`);
      const held = store.stats().chunks;
      assert.ok(held > 0 && held < distinct, `a partial pull: ${held} of ${distinct} chunks held`);
      const s1 = await served();
      // The first attempt had verified and stored exactly what it was served.
      assert.equal(s1 - s0, held);

      const f = await pullMissingChunks({ endpoint: a.url, root, token, manifest: a.manifest, store, plan, resumeCursor: last!.cursor });
      const s2 = await served();
      assert.equal(f.chunksFetched, distinct - held, 'the resumed pull fetched only what was missing');
      assert.equal(f.delta.baselineChunks, held, 'and counted the verified chunks as held');
      assert.equal(s2 - s0, distinct, 'every distinct chunk was served exactly once over both attempts');
      assert.equal(await assertStoreClean(store, dir), distinct);
      assert.equal(await assembleSha(store, a.manifest, dir), sha(a.bytes));

      // A third pull finds everything held and asks for nothing.
      const again = await pullMissingChunks({ endpoint: a.url, root, token, manifest: a.manifest, store, plan });
      assert.equal(again.chunksFetched, 0);
      assert.equal(await served(), s2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a pull cut in the middle of a batch: the retry is told what the source sends again, and both attempts add up to what it served', async () => {
    // A source of its own: what other tests pulled from `a` counts as sent to this target before.
    const a = await startSource(13);
    const { store, dir } = await openStore();
    const root = a.manifest.rootHash;
    const token = tokenFor(root);
    // One batch for the whole volume, so the cut falls inside it, with frames written but unread.
    const plan = { codec: { codec: 'none' } as CodecSpec, streams: 1, batchBytes: 8 << 20 };
    const before = { ...a.stats };
    const ledger = memoryPullLedger();
    try {
      const first = newPullCounters();
      const ac = new AbortController();
      const cut = () => (first.wireBytes > 0 ? ac.abort() : setImmediate(cut));
      setImmediate(cut);
      await assert.rejects(pullMissingChunks({ endpoint: a.url, root, token, manifest: a.manifest, store, plan, counters: first, signal: ac.signal }), /abort/i);
      ledger.write('k', { attempt: 1, ...first, durationMs: 5, ended: true });
      assert.ok(first.wireBytes > 0 && first.wireBytes < a.bytes.length, `cut inside the batch: ${first.wireBytes} of ${a.bytes.length} B received`);
      assert.equal(first.sourceCountsResent, true, 'the source says what it sends twice');
      assert.equal(first.resentWireBytes, 0, 'nothing was sent twice in the first attempt');

      const second = newPullCounters();
      await pullMissingChunks({ endpoint: a.url, root, token, manifest: a.manifest, store, plan, counters: second });
      assert.equal(await assembleSha(store, a.manifest, dir), sha(a.bytes));
      const served = a.stats.bytesServed - before.bytesServed;
      const resentServed = a.stats.resentBytesServed - before.resentBytesServed;
      assert.ok(resentServed > 0, 'the source wrote frames the first attempt never made durable, and wrote them again');
      // The retry counts exactly what the source marked as sent again, as it received it.
      assert.equal(second.resentWireBytes, resentServed);
      // What the target received over both attempts is what the source served, less the frames it
      // wrote into the cut connection that the target never read: all of those were sent again.
      const received = first.wireBytes + second.wireBytes;
      assert.ok(received <= served && served - received <= resentServed, `received ${received}, served ${served}, resent ${resentServed}`);
      // The figures of the attempt that finishes count both.
      const totals = withAttempt(totalsOf(ledger.records('k')), second, 7);
      assert.deepEqual(
        { attempts: totals.attempts, wireBytes: totals.wireBytes, resentBytes: totals.resentBytes, durationMs: totals.durationMs, storedChunks: totals.storedChunks },
        { attempts: 2, wireBytes: received, resentBytes: resentServed, durationMs: 12, storedChunks: new Set(a.manifest.chunks.map((c) => c.hash)).size },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await a.close();
    }
  });
});
