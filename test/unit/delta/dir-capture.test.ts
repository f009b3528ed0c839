/**
 * Directory captures that reuse the previous round's chunks (agent/capture/dir-capture.ts,
 * source-images.ts): the manifest is the one a full capture gives, chunk for chunk; only changed
 * files are read; what is served from an earlier round's file is the right bytes; the image is a
 * tar that node-tar and the target's walker read back as the volume.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as tar from 'tar';
import { captureDirectory, type PriorCapture } from '../../../agent/capture/dir-capture';
import { SourceImages, tarStream } from '../../../agent/capture/source-images';
import { TarWalker, type TarEntry } from '../../../agent/capture/tar-walk';
import { layoutVolume } from '../../../agent/capture/volume-tar';
import { seededBytes } from './seeded-bytes';

const SMALL = { minSize: 256, avgSize: 1024, maxSize: 4096 };
const PARAMS = { minSize: 4096, avgSize: 16384, maxSize: 65536 };

const dirs: string[] = [];
const tmp = (tag: string) => {
  const d = mkdtempSync(join(tmpdir(), `fedflow-dircap-${tag}-`));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Past the reuse rule's racy window (RACY_MS, 1 s): files written before are trusted by the next capture. */
const settle = () => new Promise((r) => setTimeout(r, 1_050));

/** Every chunk of the image is served, and is its bytes. */
function servesAll(images: SourceImages, m: { rootHash: string; chunks: readonly { hash: string }[] }, what: string): void {
  for (const c of m.chunks) {
    const got = images.readChunkSync(m.rootHash, c.hash);
    assert.ok(got && createHash('sha256').update(got).digest('hex') === c.hash, `${what}: chunk ${c.hash.slice(0, 12)} is served`);
  }
}

function put(vol: string, rel: string, bytes: Uint8Array | string): void {
  mkdirSync(join(vol, rel, '..'), { recursive: true });
  writeFileSync(join(vol, rel), bytes);
}

/** A mixed volume: big and small files, an empty file and directory, a symlink, a name over 100 bytes. */
function makeVolume(vol: string, seed: number): void {
  put(vol, 'base/big1', seededBytes(700_000, seed));
  put(vol, 'base/big2', seededBytes(500_000, seed + 1));
  for (let i = 0; i < 12; i++) put(vol, `base/small/${i}`, seededBytes(300 + i * 977, seed + 10 + i));
  put(vol, 'empty', '');
  mkdirSync(join(vol, 'emptydir'), { recursive: true });
  symlinkSync('base/big1', join(vol, 'link'));
  put(vol, `deep/${'n'.repeat(120)}/file`, 'long name\n');
}

/** Layout with every stat taken "later" than now: files just written count as settled (not racy). */
const settled = (vol: string) => layoutVolume(vol, () => Date.now() + 10_000);

async function full(vol: string, tag: string) {
  return captureDirectory(vol, { volumeId: 'v', params: SMALL, freshPath: join(tmp(tag), 'fresh.img'), layout: settled(vol) });
}

describe('directory capture with reuse', () => {
  it('gives the full capture\'s manifest, chunk for chunk, after random changes (many seeds)', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const vol = join(tmp(`eq${seed}`), 'vol');
      makeVolume(vol, seed * 100);
      const first = await full(vol, `a${seed}`);
      let prior: PriorCapture = first.next;
      for (let round = 0; round < 3; round++) {
        const rnd = seededBytes(16, seed * 31 + round);
        const pick = rnd[0]! % 5;
        if (pick === 0) appendFileSync(join(vol, `base/small/${rnd[1]! % 12}`), 'more bytes');
        if (pick === 1) {
          // An overwrite in the middle, mtime put back: only ctime tells.
          const p = join(vol, 'base/big2');
          const st = statSync(p);
          const b = readFileSync(p);
          b.fill(rnd[2]!, 1000 + rnd[3]! * 100, 5000 + rnd[3]! * 100);
          writeFileSync(p, b);
          utimesSync(p, st.atime, st.mtime);
        }
        if (pick === 2) put(vol, `base/new-${seed}-${round}`, seededBytes(2000 + rnd[4]! * 10, seed + round + 1));
        if (pick === 3) unlinkSync(join(vol, `base/small/${rnd[5]! % 12}`));
        if (pick === 4) put(vol, 'base/big1', seededBytes(700_000, seed * 100 + round + 7));
        // ctime moves on the next clock tick at the latest: make sure the tick passed.
        await new Promise((r) => setTimeout(r, 20));
        const inc = await captureDirectory(vol, { volumeId: 'v', params: SMALL, freshPath: join(tmp(`i${seed}${round}`), 'fresh.img'), prior, layout: settled(vol) });
        const ref = await full(vol, `f${seed}${round}`);
        assert.equal(inc.manifest.rootHash, ref.manifest.rootHash, `seed ${seed} round ${round} (change ${pick}): root`);
        assert.deepEqual(inc.manifest.chunks, ref.manifest.chunks);
        assert.ok(inc.figures.chunksReused > 0, `seed ${seed} round ${round}: some chunks reused`);
        prior = inc.next;
      }
    }
  });

  it('takes the previous layout\'s headers only where path, type, mode, size and link target are the same', async () => {
    // The capture lays the volume out itself here, with the prior's headers at hand (not `settled`).
    const vol = join(tmp('hdr'), 'vol');
    makeVolume(vol, 11);
    let prior = (await captureDirectory(vol, { volumeId: 'v', params: SMALL, freshPath: join(tmp('hdr-0'), 'fresh.img') })).next;
    assert.ok(prior.headers && prior.headers.size > 0 && prior.digests, 'the capture keeps its headers and digests for the next one');
    const changes: [string, () => void][] = [
      ['a mode', () => chmodSync(join(vol, 'base/small/2'), 0o600)],
      ['a size (same bytes up to it)', () => appendFileSync(join(vol, 'base/small/4'), 'more')],
      ['a link target', () => {
        unlinkSync(join(vol, 'link'));
        symlinkSync('base/big2', join(vol, 'link'));
      }],
      ['a type (file to directory)', () => {
        unlinkSync(join(vol, 'base/small/5'));
        put(vol, 'base/small/5/inner', 'now a directory');
      }],
      ['a directory\'s mode', () => chmodSync(join(vol, 'emptydir'), 0o700)],
      ['nothing', () => undefined],
    ];
    for (const [i, [what, change]] of changes.entries()) {
      change();
      const inc = await captureDirectory(vol, { volumeId: 'v', params: SMALL, freshPath: join(tmp(`hdr-${i + 1}`), 'fresh.img'), prior });
      const ref = await full(vol, `hdr-full-${i + 1}`);
      assert.equal(inc.manifest.rootHash, ref.manifest.rootHash, `after changing ${what}: the full capture's root`);
      assert.deepEqual(inc.manifest.chunks, ref.manifest.chunks, `after changing ${what}: the full capture's chunks`);
      assert.equal(inc.manifest.rootHash, createHash('sha256').update(Buffer.concat(inc.manifest.chunks.map((c) => Buffer.from(c.hash, 'hex')))).digest('hex'));
      // An entry nothing changed keeps the previous layout's header itself (not encoded again).
      assert.equal(inc.next.headers!.get('base/big1')!.header, prior.headers!.get('base/big1')!.header, `after changing ${what}: an unchanged entry's header taken over`);
      prior = inc.next;
    }
  });

  it('reads nothing of an unchanged volume', async () => {
    const vol = join(tmp('same'), 'vol');
    makeVolume(vol, 7);
    const first = await full(vol, 'same-a');
    assert.ok(first.figures.bytesRead >= 700_000 + 500_000, 'the first capture reads everything');
    const again = await captureDirectory(vol, { volumeId: 'v', params: SMALL, freshPath: join(tmp('same-b'), 'fresh.img'), prior: first.next, layout: settled(vol) });
    assert.equal(again.manifest.rootHash, first.manifest.rootHash);
    assert.equal(again.figures.bytesRead, 0);
    assert.equal(again.figures.filesRead, 0);
    assert.equal(again.figures.chunksHashed, 0);
    assert.equal(again.freshBytes, 0);
  });

  it('a record taken right after the files were written (racy) is not reused: the next capture reads them again', async () => {
    const vol = join(tmp('racy'), 'vol');
    makeVolume(vol, 8);
    // Stat'ed now, just after the writes: not trusted.
    const first = await captureDirectory(vol, { volumeId: 'v', params: SMALL, freshPath: join(tmp('racy-a'), 'fresh.img') });
    const again = await captureDirectory(vol, { volumeId: 'v', params: SMALL, freshPath: join(tmp('racy-b'), 'fresh.img'), prior: first.next, layout: settled(vol) });
    assert.equal(again.manifest.rootHash, first.manifest.rootHash);
    assert.ok(again.figures.bytesRead >= 1_200_000, `every file read again (read ${again.figures.bytesRead})`);
  });

  it('the image is a tar that node-tar extracts back to the volume, and that the target\'s walker reads', async () => {
    const root = tmp('tar');
    const vol = join(root, 'vol');
    makeVolume(vol, 9);
    const parts: Buffer[] = [];
    for await (const b of tarStream(vol)) parts.push(Buffer.from(b));
    const image = Buffer.concat(parts);
    assert.equal(image.length % 512, 0);
    const out = join(root, 'out');
    mkdirSync(out);
    await new Promise<void>((resolve, reject) => {
      const x = tar.x({ cwd: out });
      x.on('finish', resolve).on('error', reject);
      x.end(image);
    });
    for (const rel of ['base/big1', 'base/big2', 'base/small/3', 'empty', `deep/${'n'.repeat(120)}/file`]) assert.deepEqual(readFileSync(join(out, rel)), readFileSync(join(vol, rel)), rel);
    assert.ok(statSync(join(out, 'emptydir')).isDirectory());
    const entries: TarEntry[] = [];
    const w = new TarWalker(0, (e) => entries.push(e));
    w.feed(image);
    assert.ok(w.ended);
    assert.ok(entries.some((e) => e.type === 'symlink' && e.path === 'link' && e.linkpath === 'base/big1'));
    assert.ok(entries.some((e) => e.path === `deep/${'n'.repeat(120)}/file`));
  });
});

describe('SourceImages: the final capture after a small change', () => {
  it('reads only the changed files, serves every chunk right from the earlier round\'s file after that round is released, and keeps its record across a restart', async () => {
    const root = tmp('images');
    const vol = join(root, 'vol');
    makeVolume(vol, 11);
    put(vol, 'base/big3', seededBytes(4_000_000, 99));
    // Settled before the first capture reads them (the reuse rule trusts no file written within RACY_MS).
    await new Promise((r) => setTimeout(r, 1_200));
    let images = new SourceImages(join(root, 'images'));
    const first = await images.capture('vol', vol, PARAMS);
    assert.ok(first.reuse!.bytesRead >= 5_200_000, 'the first round reads the whole volume');
    // The small change: a write to one small file, and an overwrite of big2 with its mtime put back.
    appendFileSync(join(vol, 'base/small/4'), 'acknowledged write\n');
    const big2 = join(vol, 'base/big2');
    const st = statSync(big2);
    const b = readFileSync(big2);
    b.fill(7, 100_000, 100_100);
    writeFileSync(big2, b);
    utimesSync(big2, st.atime, st.mtime);
    await new Promise((r) => setTimeout(r, 1_200));
    const final = await images.capture('vol', vol, PARAMS);
    const r = final.reuse!;
    // big2 (500 kB) and the chunk holding small/4 are read (a chunk spans several small files,
    // which count as read), plus at most a chunk or two where the chains of cuts meet again;
    // big1 (700 kB) and big3 (4 MB) are not.
    assert.ok(r.bytesRead >= 500_000, `big2 read again (read ${r.bytesRead})`);
    assert.ok(r.bytesRead < 500_000 + 3 * 65536, `only the changed files and a few chunks around them read (read ${r.bytesRead} of ${final.manifest.totalBytes})`);
    assert.ok(r.filesReused >= 2, `files read ${r.filesRead}, reused ${r.filesReused}`);
    assert.ok(r.chunksReused > r.chunksHashed, `chunks reused ${r.chunksReused}, hashed ${r.chunksHashed}`);
    // The same manifest as a capture from scratch.
    const fresh = new SourceImages(join(root, 'images-fresh'));
    const ref = await fresh.capture('vol', vol, PARAMS);
    assert.equal(final.manifest.rootHash, ref.manifest.rootHash);
    await fresh.close();
    // The first round is released (as the workflow does after its pull): its file stays while the final image needs it.
    await images.release(first.manifest.rootHash);
    const image = Buffer.concat(await collect(tarStream(vol)));
    for (const c of final.manifest.chunks) {
      const got = images.readChunkSync(final.manifest.rootHash, c.hash)!;
      assert.equal(createHash('sha256').update(got).digest('hex'), c.hash);
      assert.deepEqual(got, image.subarray(c.offset, c.offset + c.length));
    }
    // A restart: the record is read back, and an unchanged volume is not read at all.
    await images.close();
    images = new SourceImages(join(root, 'images'));
    const third = await images.capture('vol', vol, PARAMS);
    assert.equal(third.manifest.rootHash, final.manifest.rootHash);
    assert.equal(third.reuse!.bytesRead, 0);
    for (const c of third.manifest.chunks.slice(0, 50)) assert.ok(images.readChunkSync(third.manifest.rootHash, c.hash));
    await images.close();
  });
});

describe('SourceImages: the cut-over capture always reuses', () => {
  it('a frozen capture reuses the previous one however many files its chunks lie in; a pre-copy capture past that bound reads the volume afresh', async () => {
    const root = tmp('bound');
    const vol = join(root, 'vol');
    makeVolume(vol, 5);
    const images = new SourceImages(join(root, 'images'));
    // A full capture, then eight rounds that each add a file of its own bytes, settled past the racy
    // window first, so that every round's fresh-chunk file stays referenced: nine files in all.
    const round = async (i: number, frozen: boolean) => {
      put(vol, `z/${String(i).padStart(2, '0')}`, seededBytes(60_000, 1000 + i));
      await settle();
      return images.capture('vol', vol, PARAMS, { frozen });
    };
    await settle();
    // Each image released once captured, as a migration releases a round's after its pull: the
    // reuse record alone keeps the files.
    const first = await images.capture('vol', vol, PARAMS);
    const total = first.manifest.totalBytes;
    await images.release(first.manifest.rootHash);
    for (let i = 1; i <= 8; i++) {
      const r = await round(i, false);
      await images.release(r.manifest.rootHash);
      assert.ok(r.reuse!.bytesRead < total / 2, `round ${i} reused the one before (read ${r.reuse!.bytesRead} of ${r.manifest.totalBytes})`);
    }
    // The setup holds: the previous capture's chunks lie in more files than a pre-copy capture reuses from (8).
    const pinned = (JSON.parse(readFileSync(join(root, 'images', 'reuse', 'vol.pin.json'), 'utf8')) as { files: string[] }).files;
    assert.ok(pinned.length > 8, `the previous capture's chunks lie in ${pinned.length} files`);
    const cut = await round(9, true);
    assert.ok(cut.reuse!.bytesRead < 200_000, `the frozen capture read only the new file and the chunks around it (read ${cut.reuse!.bytesRead} of ${cut.manifest.totalBytes})`);
    const fresh = new SourceImages(join(root, 'images-fresh'));
    assert.equal(cut.manifest.rootHash, (await fresh.capture('vol', vol, PARAMS)).manifest.rootHash, 'the manifest a capture from scratch gives');
    await fresh.close();
    await images.release(cut.manifest.rootHash);
    const after = await round(10, false);
    assert.ok(after.reuse!.bytesRead > total, `past the bound a pre-copy capture reads the whole volume again (read ${after.reuse!.bytesRead} of ${after.manifest.totalBytes})`);
    // The files only the replaced record named (every earlier round's) go with its sweep, not at a restart.
    await images.flush();
    const left = readdirSync(join(root, 'images')).filter((n) => n.endsWith('.img'));
    assert.deepEqual(left.map((n) => n.split('.')[0]), [after.manifest.rootHash], `only the last capture's file is left: ${left.join(', ')}`);
    servesAll(images, after.manifest, 'the last capture');
    await images.close();
  });
});

describe('SourceImages: a volume that leaves the site', () => {
  it('takes its reuse record and the capture files only it kept with it; a held image keeps its files until released', async () => {
    const root = tmp('leave');
    const vol = join(root, 'vol');
    makeVolume(vol, 21);
    const other = join(root, 'other');
    makeVolume(other, 22);
    await settle();
    const dir = join(root, 'images');
    const images = new SourceImages(dir);
    const imgFiles = () => readdirSync(dir).filter((n) => n.endsWith('.img')).sort();
    const kept = await images.capture('other', other, PARAMS);
    const othersFiles = imgFiles();
    const first = await images.capture('vol', vol, PARAMS);
    put(vol, 'z/added', seededBytes(80_000, 7));
    await settle();
    const second = await images.capture('vol', vol, PARAMS);
    // Both rounds released, as a migration releases them after their pulls: the reuse record alone keeps their files.
    await images.release(first.manifest.rootHash);
    await images.release(second.manifest.rootHash);
    const volsFiles = imgFiles().filter((n) => !othersFiles.includes(n));
    assert.ok(volsFiles.length >= 2, `the rounds' files, kept for the next capture: ${volsFiles.join(', ')}`);
    await images.forgetVolume('vol');
    assert.deepEqual(imgFiles(), othersFiles, 'only the other volume\'s file is left');
    assert.ok(!existsSync(join(dir, 'reuse', 'vol.json')) && !existsSync(join(dir, 'reuse', 'vol.pin.json')), 'the record and its pin are gone');
    // Captured again, it is read whole; an image still held keeps its files through a forget.
    const again = await images.capture('vol', vol, PARAMS);
    assert.equal(again.reuse!.filesReused, 0, 'nothing of the forgotten record is reused');
    assert.equal(again.reuse!.chunksReused, 0);
    await images.forgetVolume('vol');
    servesAll(images, again.manifest, 'the held image');
    await images.release(again.manifest.rootHash);
    assert.deepEqual(imgFiles(), othersFiles, 'released, nothing keeps its file');
    // After a restart, the record is known only from the lists on disk.
    const last = await images.capture('vol', vol, PARAMS);
    await images.release(last.manifest.rootHash);
    await images.close();
    const reopened = new SourceImages(dir);
    assert.ok(imgFiles().length > othersFiles.length, 'the record keeps its file across the restart');
    await reopened.forgetVolume('vol');
    assert.deepEqual(imgFiles(), othersFiles, 'forgotten from the lists on disk');
    assert.ok(reopened.readChunkSync(kept.manifest.rootHash, kept.manifest.chunks[0]!.hash), "the other volume's image, held across the restart, still serves");
    await reopened.close();
  });
});

describe('SourceImages: a capture under way', () => {
  it('keeps the files it reuses, even when its volume is forgotten meanwhile (a retried attempt beside the first)', async () => {
    const root = tmp('inuse');
    const vol = join(root, 'vol');
    makeVolume(vol, 31);
    await settle();
    const images = new SourceImages(join(root, 'images'));
    const first = await images.capture('vol', vol, PARAMS);
    // Released after its pull: the record alone names its file now.
    await images.release(first.manifest.rootHash);
    appendFileSync(join(vol, 'base/small/4'), 'a write\n');
    await settle();
    const during = images.capture('vol', vol, PARAMS);
    await images.forgetVolume('vol');
    const r = await during;
    assert.ok(r.reuse!.chunksReused > 0, 'it reused the record it began with');
    servesAll(images, r.manifest, 'the capture under way');
    await images.close();
  });
});

describe('SourceImages: nothing big is written or parsed inside a cut-over window', () => {
  it('writes a capture\'s metadata only later (2 s, or at flush), and answers a just-released manifest from memory', async () => {
    const root = tmp('images-later');
    const vol = join(root, 'vol');
    makeVolume(vol, 5);
    const dir = join(root, 'images');
    const images = new SourceImages(dir);
    const first = await images.capture('vol', vol, PARAMS);
    const meta = join(dir, `${first.manifest.rootHash}.manifest.json`);
    // For a while after the capture (a cut-over's window): served from memory, nothing serialised yet.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(existsSync(meta), false, 'the metadata is not written right after the capture');
    assert.ok(images.readChunkSync(first.manifest.rootHash, first.manifest.chunks[0]!.hash));
    // Then by its timer, with no flush.
    const t0 = Date.now();
    while (!existsSync(meta) && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 50));
    assert.equal(existsSync(meta), true, 'written about 2 s after the capture');
    // A second capture: its metadata waits its own 2 s, and a flush writes it at once.
    appendFileSync(join(vol, 'base/small/1'), 'more\n');
    const second = await images.capture('vol', vol, PARAMS);
    const meta2 = join(dir, `${second.manifest.rootHash}.manifest.json`);
    assert.equal(existsSync(meta2), false);
    await images.flush();
    assert.equal(existsSync(meta2), true, 'flush writes it');
    // Released: kept as a delta base. Its file gone too, the manifest still comes from memory.
    await images.release(first.manifest.rootHash);
    rmSync(join(dir, 'past'), { recursive: true, force: true });
    assert.equal(images.manifestOf(first.manifest.rootHash)?.rootHash, first.manifest.rootHash);
    // A restarted agent has only the files: none left, no base.
    await images.close();
    const again = new SourceImages(dir);
    assert.equal(again.manifestOf(first.manifest.rootHash), undefined);
    await again.close();
  });
});

async function collect(src: AsyncIterable<Uint8Array>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const b of src) out.push(Buffer.from(b));
  return out;
}
