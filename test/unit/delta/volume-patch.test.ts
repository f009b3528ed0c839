/**
 * The target patches a directory volume in place: a volume extracted from one round's image,
 * then a few files modified, one added, one removed, one re-moded, and the next image applied.
 * The result is the tree a whole extraction gives (equal root hashes), and only the changed files
 * are written.
 */
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, symlinkSync, openSync, closeSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ChunkStore } from '../../../agent/store/chunk-store';
import { SourceImages } from '../../../agent/capture/source-images';
import { extractVolume } from '../../../agent/capture/volume-extract';
import { journalPath, readImageRecord, recoverVolume } from '../../../agent/capture/volume-journal';
import type { Manifest } from '../../../core/manifest';
import { buildVolume, captureInto, rootOf } from '../../helpers/volume-fixture';

describe('extractVolume patches a directory volume in place', () => {
  let dir: string;
  let images: SourceImages;
  let store: ChunkStore;
  let src: string;
  let v1: Manifest;
  let v2: Manifest;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-patch-'));
    src = join(dir, 'source-vol');
    buildVolume(src);
    images = new SourceImages(join(dir, 'images'));
    store = await ChunkStore.open(join(dir, 'store'));
    v1 = await captureInto(images, store, src);
    // The next round's changes at the source.
    writeFileSync(join(src, 'dir-1/sub-2/file-3.dat'), 'rewritten whole\n');
    writeFileSync(join(src, 'dir-4/sub-0/file-7.dat'), Buffer.alloc(20_000, 7));
    const fd = openSync(join(src, 'big.bin'), 'r+');
    writeSync(fd, Buffer.from('a few bytes changed in the middle of a big file'), 0, undefined, 1_000_000);
    closeSync(fd);
    appendFileSync(join(src, 'log.jsonl'), '{"k":"appended","v":"at the end"}\n');
    writeFileSync(join(src, 'dir-2/sub-1/new-file.txt'), 'a new file\n');
    rmSync(join(src, 'dir-5/sub-4/file-9.dat'));
    chmodSync(join(src, 'dir-3/sub-3/file-1.dat'), 0o600);
    writeFileSync(join(src, 'dir-1', `${'long-name-'.repeat(15)}.txt`), 'a long name, rewritten\n');
    v2 = await captureInto(images, store, src);
  });
  after(async () => {
    await store.close();
    await images.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes only the changed files, and the result equals a whole extraction', async () => {
    const target = join(dir, 'target-vol');
    const first = await extractVolume(store, v1, target);
    assert.equal(first.method, 'full', 'nothing there yet: extracted whole');
    assert.equal(readImageRecord(target)?.root, v1.rootHash, 'the image it holds is recorded');
    assert.equal(await rootOf(target, dir), v1.rootHash);

    const patched = await extractVolume(store, v2, target);
    assert.equal(patched.method, 'patch', `patched in place (fallback: ${patched.fallback})`);
    // Changed: three rewritten (one behind a pax header), one range in a big file, one append,
    // one new, one chmod. One removed.
    assert.equal(patched.filesWritten, 7, JSON.stringify(patched));
    assert.equal(patched.filesRemoved, 1);
    const fileCount = 6 * 5 * 10 + 4;
    assert.equal(patched.filesKept, fileCount - 7 + 1 - 1, JSON.stringify(patched));
    assert.ok(patched.bytesWritten < 64 * 1024, `only changed bytes written: ${patched.bytesWritten} of ${v2.totalBytes}`);
    assert.equal(await rootOf(target, dir), v2.rootHash, 'the patched tree is the new image');
    assert.equal(statSync(join(target, 'dir-3/sub-3/file-1.dat')).mode & 0o777, 0o600 & ~process.umask());
    assert.equal(existsSync(join(target, 'dir-5/sub-4/file-9.dat')), false);
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('staging') || n.includes('journal')), [], 'no staging or journal left');

    // A whole extraction of the same image elsewhere gives the same tree.
    const fresh = join(dir, 'fresh-vol');
    await extractVolume(store, v2, fresh, undefined, { wholeOnly: true });
    assert.equal(await rootOf(fresh, dir), await rootOf(target, dir));

    // The same image again: nothing to write.
    const again = await extractVolume(store, v2, target);
    assert.equal(again.method, 'patch');
    assert.equal(again.bytesWritten, 0);
    assert.equal(again.filesWritten, 0);

    // Back to the first image (entries come back, others go): still exact.
    const back = await extractVolume(store, v1, target);
    assert.equal(back.method, 'patch', `patched back (fallback: ${back.fallback})`);
    assert.equal(await rootOf(target, dir), v1.rootHash);
  });

  it('extracts whole when the volume was changed behind its record', async () => {
    const target = join(dir, 'tampered-vol');
    await extractVolume(store, v1, target);
    // Same size, new bytes: only the identity (mtime, ctime) tells.
    const fd = openSync(join(target, 'dir-0/sub-1/file-2.dat'), 'r+');
    writeSync(fd, Buffer.from('x'), 0, undefined, 0);
    closeSync(fd);
    const r = await extractVolume(store, v2, target);
    assert.equal(r.method, 'full');
    assert.match(r.fallback ?? '', /changed since it was written/);
    assert.equal(await rootOf(target, dir), v2.rootHash);
  });

  it('stages every patched range in one blob, and still refuses, after a patch, a file written behind the record it kept', async () => {
    const target = join(dir, 'kept-vol');
    await extractVolume(store, v1, target);
    let staged: string[] = [];
    const patched = await extractVolume(store, v2, target, undefined, { hooks: { beforeCommit: () => void (staged = readdirSync(`${target}.patch-staging`).sort()) } });
    assert.equal(patched.method, 'patch', `patched (fallback: ${patched.fallback})`);
    // Ranges of the files patched in place (big.bin, log.jsonl, and the rewritten ones) share one
    // blob; new files (the new one, and the rewritten one behind a pax header) are staged whole.
    assert.equal(staged.filter((n) => n === 'ranges.blob').length, 1, `staging: ${staged.join(', ')}`);
    assert.equal(staged.filter((n) => n.startsWith('p')).length, 0, `no blob per file: ${staged.join(', ')}`);
    assert.equal(await rootOf(target, dir), v2.rootHash);
    // The record names every file with its identity as it is on disk: kept files keep the
    // identity the patch checked at its start, written ones are looked at again.
    const rec = readImageRecord(target)!;
    assert.equal(rec.root, v2.rootHash);
    for (const e of rec.entries) {
      const st = lstatSync(join(target, e.path), { bigint: true });
      assert.equal(e.id.ino, String(st.ino), e.path);
      assert.equal(e.id.mtimeNs, String(st.mtimeNs), e.path);
      assert.equal(e.id.ctimeNs, String(st.ctimeNs), e.path);
    }
    // A file the patch left alone, written behind the record: the next patch refuses the volume.
    const kept = 'dir-0/sub-1/file-2.dat';
    const fd = openSync(join(target, kept), 'r+');
    writeSync(fd, Buffer.from('x'), 0, undefined, 0);
    closeSync(fd);
    const r = await extractVolume(store, v1, target);
    assert.equal(r.method, 'full');
    assert.match(r.fallback ?? '', new RegExp(`${kept} changed since it was written`));
    assert.equal(await rootOf(target, dir), v1.rootHash);
  });

  it('extracts whole when a file was added behind its record', async () => {
    const target = join(dir, 'added-vol');
    await extractVolume(store, v1, target);
    writeFileSync(join(target, 'dir-2/stray'), 'not in any image');
    const r = await extractVolume(store, v2, target);
    assert.equal(r.method, 'full');
    assert.equal(await rootOf(target, dir), v2.rootHash);
  });

  it('extracts whole when the record names an image the store no longer has', async () => {
    const target = join(dir, 'copied-vol');
    await extractVolume(store, v1, target);
    const other = await ChunkStore.open(join(dir, 'other-store'));
    try {
      for (const c of v2.chunks) await other.put(c.hash, (await store.get(c.hash))!);
      const r = await extractVolume(other, v2, target);
      assert.equal(r.method, 'full');
      assert.match(r.fallback ?? '', /no longer in the store/);
      assert.equal(await rootOf(target, dir), v2.rootHash);
    } finally {
      await other.close();
    }
  });

  it('follows names that change type: file to directory, directory to file, link to file, file to link', async () => {
    const s = join(dir, 'types-src');
    mkdirSync(join(s, 'was-dir/inner'), { recursive: true });
    writeFileSync(join(s, 'was-dir/inner/x'), 'inside a directory that becomes a file');
    writeFileSync(join(s, 'was-file'), 'a file that becomes a directory');
    symlinkSync('was-file', join(s, 'was-link'));
    writeFileSync(join(s, 'becomes-link'), 'a file that becomes a link');
    writeFileSync(join(s, 'stays'), 'unchanged');
    chmodSync(s, 0o755);
    const t1 = await captureInto(images, store, s);
    rmSync(join(s, 'was-dir'), { recursive: true });
    writeFileSync(join(s, 'was-dir'), 'now a file');
    rmSync(join(s, 'was-file'));
    mkdirSync(join(s, 'was-file'), { mode: 0o750 });
    writeFileSync(join(s, 'was-file/child'), 'in the new directory');
    rmSync(join(s, 'was-link'));
    writeFileSync(join(s, 'was-link'), 'now a file');
    rmSync(join(s, 'becomes-link'));
    symlinkSync('stays', join(s, 'becomes-link'));
    const t2 = await captureInto(images, store, s);

    const target = join(dir, 'types-vol');
    assert.equal((await extractVolume(store, t1, target)).method, 'full');
    const r = await extractVolume(store, t2, target);
    assert.equal(r.method, 'patch', `patched (fallback: ${r.fallback})`);
    assert.equal(await rootOf(target, dir), t2.rootHash);
    const back = await extractVolume(store, t1, target);
    assert.equal(back.method, 'patch', `patched back (fallback: ${back.fallback})`);
    assert.equal(await rootOf(target, dir), t1.rootHash);
  });

  it('does not guess from a journal it cannot apply: forgets the record, so the next extraction is whole', async () => {
    const target = join(dir, 'torn-journal-vol');
    await extractVolume(store, v1, target);
    writeFileSync(journalPath(target), '{"version":1,"root":"');
    assert.deepEqual(await recoverVolume(target), { volume: target, outcome: 'forgotten', detail: 'the journal is unreadable' });
    assert.equal(readImageRecord(target), undefined);
    const r = await extractVolume(store, v2, target);
    assert.equal(r.method, 'full');
    assert.equal(await rootOf(target, dir), v2.rootHash);
  });
});
