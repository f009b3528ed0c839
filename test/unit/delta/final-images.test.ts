/**
 * The cut-over's final-image announcement (agent/capture/final-images.ts) and its long poll on the chunk
 * endpoint (GET /finals/<slot>), over a real transfer server on loopback.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { finalSlot, FinalImages, type FinalImage } from '../../../agent/capture/final-images';
import { SourceImages } from '../../../agent/capture/source-images';
import { fetchFinalImage, TransferRefusedError } from '../../../agent/transfer/client';
import { startTransferServer } from '../../../agent/transfer/server';
import { claimsFor, issueToken } from '../../../agent/transfer/token';
import { CHUNKER_PRESETS } from '../../../core/chunking/params';

const SECRET = Buffer.alloc(32, 7);
const OTHER_SECRET = Buffer.alloc(32, 8);

function image(n: number): FinalImage {
  return {
    manifest: { rootHash: n.toString(16).padStart(64, 'a'), totalBytes: 1000 + n, chunkCount: 3, volumeId: 'vol' } as unknown as FinalImage['manifest'],
    digest: { keys: n, sha256: 'b'.repeat(64) },
    frozenAtMs: 1_700_000_000_000 + n,
  };
}

describe('FinalImages', () => {
  it('names a slot by a hash of the cut-over key: 64 hex digits, one per key', () => {
    const a = finalSlot('migrate-kv-demo/run-1/cutover');
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.equal(finalSlot('migrate-kv-demo/run-1/cutover'), a);
    assert.notEqual(finalSlot('migrate-kv-demo/run-2/cutover'), a);
  });

  it('wakes a waiter when its slot is published, and only that slot', async () => {
    const f = new FinalImages();
    const slot = finalSlot('k1');
    const other = finalSlot('k2');
    const waiting = f.wait(slot, 5_000);
    const otherWaiting = f.wait(other, 50);
    await f.publish(slot, image(1));
    assert.deepEqual(await waiting, image(1));
    assert.equal(await otherWaiting, undefined);
    // Published before the wait: answered at once.
    assert.deepEqual(await f.wait(slot, 0), image(1));
  });

  it('gives up after the timeout or on abort', async () => {
    const f = new FinalImages();
    const t0 = Date.now();
    assert.equal(await f.wait(finalSlot('late'), 30), undefined);
    assert.ok(Date.now() - t0 >= 25);
    const abort = new AbortController();
    const w = f.wait(finalSlot('late'), 60_000);
    const aborted = f.wait(finalSlot('late'), 60_000, abort.signal);
    abort.abort();
    assert.equal(await aborted, undefined);
    // The other waiter is still there and still woken.
    await f.publish(finalSlot('late'), image(2));
    assert.deepEqual(await w, image(2));
  });

  it('refuses a slot that is not 64 hex digits', async () => {
    await assert.rejects(new FinalImages().publish('../etc/passwd', image(1)), /not 64 lower-case hex digits/);
  });

  it('survives a restart of the agent when given a directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedflow-finals-'));
    try {
      await new FinalImages(dir).publish(finalSlot('k'), image(3));
      const again = new FinalImages(dir);
      assert.deepEqual(again.get(finalSlot('k')), image(3));
      assert.deepEqual(await again.wait(finalSlot('k'), 0), image(3));
      assert.equal(again.get(finalSlot('other')), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("writes a slot's announcements in order: the newest is what a restart finds, and no temporary file is left", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedflow-finals-'));
    try {
      const f = new FinalImages(dir);
      const slot = finalSlot('k');
      // Twenty announcements of one slot, none waiting for the one before: written on the thread
      // pool (four threads) each on its own, their renames could land in any order.
      const all = Array.from({ length: 20 }, (_, i) => f.publish(slot, image(i + 1)));
      await Promise.all(all);
      // Before a second instance is made: its constructor sweeps leftover temporary files.
      assert.deepEqual(readdirSync(dir), [`${slot}.json`]);
      assert.deepEqual(new FinalImages(dir).get(slot), image(20));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('GET /finals/<slot> on the chunk endpoint', () => {
  let dir: string;
  let images: SourceImages;
  let server: Awaited<ReturnType<typeof startTransferServer>>;
  const slot = finalSlot('migrate-kv-demo/run/cutover');
  const token = (opts: { slot?: string; secret?: Buffer; nowMs?: number; target?: string } = {}) =>
    issueToken(opts.secret ?? SECRET, claimsFor(opts.slot ?? slot, 'src', opts.target ?? 'dst', opts.nowMs ?? Date.now(), 600));

  /** image(n), of an image the source holds: the endpoint answers only with those. */
  const heldImage = async (n: number): Promise<FinalImage> => {
    const vol = join(dir, `vol-${n}`);
    mkdirSync(vol, { recursive: true });
    writeFileSync(join(vol, 'data'), `volume ${n}\n`.repeat(100 + n));
    const { manifest } = await images.capture(`vol-${n}`, vol, CHUNKER_PRESETS.internet);
    const fake = image(n);
    return { ...fake, manifest: { ...fake.manifest, rootHash: manifest.rootHash } };
  };
  let held: FinalImage[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-finals-endpoint-'));
    images = new SourceImages(join(dir, 'images'));
    server = await startTransferServer({ site: 'src', images, secret: SECRET });
    held = [];
    for (const n of [7, 8, 9]) held[n] = await heldImage(n);
  });
  after(async () => {
    await server.close();
    await images.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers nothing (204) when no image comes within waitMs', async () => {
    assert.equal(await fetchFinalImage(server.url, slot, token(), 50), undefined);
  });

  it('answers a waiting target as soon as the source publishes', async () => {
    const polling = fetchFinalImage(server.url, slot, token(), 10_000);
    await new Promise((r) => setTimeout(r, 30));
    const t0 = Date.now();
    await images.finals.publish(slot, held[7]!);
    assert.deepEqual(await polling, held[7]);
    assert.ok(Date.now() - t0 < 2_000, 'the long poll returned when the image was published, not at its timeout');
  });

  it('with lost, answers only with an image the source holds: an announced image lost in a crash is not taken again until captured again', async () => {
    // An agent that dies after announcing, before it writes the image down, comes back with the
    // announcement (written at once) but not the image; its retried capture announces anew.
    const s3 = finalSlot('migrate-lost/run/cutover');
    const t = token({ slot: s3 });
    await images.finals.publish(s3, image(6));
    assert.deepEqual(await fetchFinalImage(server.url, s3, t, 0), image(6), 'without lost: what was announced');
    const lost = image(6).manifest.rootHash;
    assert.equal(await fetchFinalImage(server.url, s3, t, 60, undefined, undefined, undefined, lost), undefined, 'not the lost image again');
    const polling = fetchFinalImage(server.url, s3, t, 10_000, undefined, undefined, undefined, lost);
    await new Promise((r) => setTimeout(r, 30));
    await images.finals.publish(s3, image(5));
    await new Promise((r) => setTimeout(r, 60));
    await images.finals.publish(s3, held[9]!);
    assert.deepEqual(await polling, held[9], 'answered with the image the source holds, not with another it does not (image 5)');
    const bad = await fetchFinalImage(server.url, s3, t, 0, undefined, undefined, undefined, 'nope').then(() => undefined, (e: unknown) => e);
    assert.ok(bad instanceof TransferRefusedError);
    assert.equal(bad.status, 400);
    assert.match(bad.message, /lost 'nope' is not a manifest root/);
    // The same frozen data captured again gives the same root: held now, so it is an answer.
    const again = finalSlot('migrate-recaptured/run/cutover');
    await images.finals.publish(again, held[7]!);
    assert.deepEqual(await fetchFinalImage(server.url, again, token({ slot: again }), 0, undefined, undefined, undefined, held[7]!.manifest.rootHash), held[7]);
  });

  it('with digestOf, holds the poll while the image of that root has no digest, and answers when the digest (or another image) is announced', async () => {
    const s2 = finalSlot('migrate-pg/run/cutover');
    const t = token({ slot: s2 });
    const { digest: _d8, ...bare } = held[8]!;
    await images.finals.publish(s2, bare);
    // Without digestOf: the image, at once, digest or not.
    assert.deepEqual(await fetchFinalImage(server.url, s2, t, 0), bare);
    // With it: nothing while only the bare image is held.
    assert.equal(await fetchFinalImage(server.url, s2, t, 60, undefined, undefined, bare.manifest.rootHash), undefined);
    const polling = fetchFinalImage(server.url, s2, t, 10_000, undefined, undefined, bare.manifest.rootHash);
    await new Promise((r) => setTimeout(r, 30));
    const t0 = Date.now();
    await images.finals.publish(s2, held[8]!);
    assert.deepEqual(await polling, held[8]);
    assert.ok(Date.now() - t0 < 2_000, 'answered when the digest was announced, not at the timeout');
    // A retried capture announced another root: that is an answer too (the waiter must start over).
    const { digest: _d9, ...other } = held[9]!;
    const polling2 = fetchFinalImage(server.url, s2, t, 10_000, undefined, undefined, 'c'.repeat(64));
    assert.deepEqual(await polling2, held[8], 'already answerable: the held image has a digest');
    await images.finals.publish(s2, other);
    assert.deepEqual(await fetchFinalImage(server.url, s2, t, 10_000, undefined, undefined, held[8]!.manifest.rootHash), other, 'another root ends the wait at once');
    const bad = await fetchFinalImage(server.url, s2, t, 0, undefined, undefined, 'not-a-root').then(() => undefined, (e: unknown) => e);
    assert.ok(bad instanceof TransferRefusedError);
    assert.equal(bad.status, 400);
    assert.match(bad.message, /digestOf 'not-a-root' is not a manifest root/);
  });

  it('refuses a forged token, an expired one and one for another slot', async () => {
    const refusal = async (t: string) => {
      const err = await fetchFinalImage(server.url, slot, t, 0).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof TransferRefusedError, `refused, got ${String(err)}`);
      return err;
    };
    assert.equal((await refusal(token({ secret: OTHER_SECRET }))).status, 401);
    assert.equal((await refusal(token({ nowMs: Date.now() - 3_600_000 }))).status, 401);
    const other = await refusal(token({ slot: finalSlot('someone else') }));
    assert.equal(other.status, 403);
    assert.match(other.message, /not .*finals|is for manifest/);
  });

  it('refuses a wait longer than the endpoint holds a poll', async () => {
    const err = await fetchFinalImage(server.url, slot, token(), 60_000).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof TransferRefusedError);
    assert.equal(err.status, 400);
    assert.match(err.message, /waitMs '60000' is not an integer in 0\.\.20000/);
  });
});

describe('the first freeze of a cut-over', () => {
  it('is kept across a restart of the agent: a retried capture counts the downtime from it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedflow-freeze-'));
    try {
      const slot = finalSlot('migrate-w/run-1/cutover');
      assert.equal(new FinalImages(dir).firstFreeze(slot, 1_000), 1_000);
      // A new process (same directory) asked later keeps the first time, not its own.
      const again = new FinalImages(dir);
      assert.equal(again.firstFreeze(slot, 5_000), 1_000);
      assert.equal(again.firstFreeze(finalSlot('migrate-w/run-2/cutover'), 7_000), 7_000, 'another cut-over has its own');
      assert.throws(() => again.firstFreeze('not-a-slot', 1), /not 64 lower-case hex digits/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
