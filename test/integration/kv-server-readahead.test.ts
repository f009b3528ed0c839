/**
 * The sample (workload/kv-server.js) as a migration's target uses it, on the real process over
 * HTTP: a standby reads ahead the full segments of its volume, and its activation replays only what
 * came after, unless a segment read ahead changed on disk, when it replays the whole log. And its
 * digest, a set hash kept with every write, equals the one computed here from the pairs alone.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT } from '../../agent/site/home';
import { freePort } from '../helpers/cli';
import { eventually } from '../helpers/eventually';

type Digest = { keys: number; sha256: string; readAheadSegments?: number };

/** The digest as the sample's header defines it, from the key/value pairs alone. */
function expectedDigest(pairs: Map<string, string>): Digest {
  const lanes = new Uint32Array(16);
  for (const [k, v] of pairs) {
    const b = createHash('sha512').update(`${Buffer.byteLength(k)}:`).update(k).update(v).digest();
    for (let i = 0; i < 16; i++) lanes[i] = lanes[i]! + b.readUInt32LE(i * 4);
  }
  return { keys: pairs.size, sha256: createHash('sha256').update(`${pairs.size}\n`).update(new Uint8Array(lanes.buffer)).digest('hex') };
}

const line = (k: string, v?: string) => `${JSON.stringify(v === undefined ? { k, del: true } : { k, v })}\n`;

/** Writes a segment file of `n` keys from `from`, with some deletes; applies it to `model`. */
function segment(file: string, from: number, n: number, model: Map<string, string>, tag: string): void {
  let text = '';
  for (let i = from; i < from + n; i++) {
    text += line(`k${i}`, `${tag}-${i}-${'y'.repeat(i % 50)}`);
    model.set(`k${i}`, `${tag}-${i}-${'y'.repeat(i % 50)}`);
  }
  // Overwrite and delete keys of earlier segments too: replay order matters.
  for (let i = Math.max(0, from - 40); i < from; i += 7) {
    text += line(`k${i}`);
    model.delete(`k${i}`);
  }
  // Padded to a full segment (the sample's 1 MiB): a segment followed by another is full, and a
  // shorter one is taken for one whose end a crash lost (workload/kv-server.js, load).
  const short = SEGMENT_BYTES - Buffer.byteLength(text);
  if (short > 0) {
    const pad = `${tag}-pad-${'p'.repeat(short)}`;
    text += line('_pad', pad);
    model.set('_pad', pad);
  }
  writeFileSync(file, text);
}

/** The sample's segment size (SEGMENT_BYTES in workload/kv-server.js). */
const SEGMENT_BYTES = 1 << 20;

describe('kv-server: read ahead in standby, set-hash digest', () => {
  const root = mkdtempSync(join(tmpdir(), 'fedflow-kvahead-'));
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  async function start(dir: string, standby: boolean): Promise<string> {
    const port = await freePort();
    const child = spawn(process.execPath, [join(REPO_ROOT, 'workload', 'kv-server.js'), '--data', dir, '--port', String(port), ...(standby ? ['--standby'] : [])], { stdio: 'ignore' });
    children.push(child);
    const base = `http://127.0.0.1:${port}`;
    await eventually('kv-server answering /health', async () => (await fetch(`${base}/health`).catch(() => undefined))?.ok || undefined, 30_000);
    return base;
  }
  const health = async (base: string) => (await (await fetch(`${base}/health`)).json()) as { keys: number; standby: boolean; readAheadSegments?: number; readAheadPending?: number };
  const post = async (base: string, path: string) => (await (await fetch(`${base}${path}`, { method: 'POST' })).json()) as Digest;
  const get = async (base: string, path: string) => (await (await fetch(`${base}${path}`)).json()) as Digest;

  it('digest: the set hash of the pairs, kept through writes, overwrites and deletes, and equal after a restart', async () => {
    const dir = join(root, 'digest');
    mkdirSync(dir);
    const model = new Map<string, string>();
    segment(join(dir, 'kv.jsonl'), 0, 3000, model, 'a');
    const base = await start(dir, false);
    assert.deepEqual(await get(base, '/admin/digest'), expectedDigest(model), 'after a load: the pass over the store');
    for (let i = 0; i < 200; i++) {
      const k = `k${(i * 37) % 3500}`;
      if (i % 5 === 0) {
        await fetch(`${base}/kv/${k}`, { method: 'DELETE' });
        model.delete(k);
      } else {
        await fetch(`${base}/kv/${k}`, { method: 'PUT', body: `w${i}` });
        model.set(k, `w${i}`);
      }
    }
    const frozen = await post(base, '/admin/freeze');
    assert.equal(frozen.sha256, expectedDigest(model).sha256, 'at the freeze: kept with every write');
    assert.equal(frozen.keys, model.size);
    const again = await start(dir, false);
    assert.deepEqual(await get(again, '/admin/digest'), expectedDigest(model), 'the same data loaded by another process');
  });

  it('a standby reads full segments ahead; its activation replays only the rest and serves what a full load serves', async () => {
    const dir = join(root, 'ahead');
    mkdirSync(dir);
    const model = new Map<string, string>();
    segment(join(dir, 'kv.jsonl'), 0, 4000, model, 'a');
    segment(join(dir, 'kv.1.jsonl'), 4000, 4000, model, 'b');
    segment(join(dir, 'kv.2.jsonl'), 8000, 500, model, 'c');
    const base = await start(dir, true);
    // Segments 0 and 1 are full (each has a successor); 2 is the one written to.
    const modelAfterTwo = new Map<string, string>();
    segment(join(root, 'scratch'), 0, 4000, modelAfterTwo, 'a');
    segment(join(root, 'scratch'), 4000, 4000, modelAfterTwo, 'b');
    await eventually('both full segments read ahead', async () => ((await health(base)).keys === modelAfterTwo.size ? true : undefined), 30_000);
    // Caught up: nothing full left to read (what a pre-copy round waits for).
    await eventually('nothing pending once the set hash is built', async () => ((await health(base)).readAheadPending === 0 ? true : undefined), 30_000);
    // The source went on writing: the active segment grows, and a new one follows.
    appendFileSync(join(dir, 'kv.2.jsonl'), line('k1', 'late') + line('k8001'));
    model.set('k1', 'late');
    model.delete('k8001');
    writeFileSync(join(dir, 'kv.3.jsonl'), line('k9999', 'newest'));
    model.set('k9999', 'newest');
    // Segment 2 is full now: pending until it is read ahead, then caught up again.
    const after = await health(base);
    assert.ok(after.readAheadSegments === 3 || (after.readAheadPending ?? 0) >= 1, `segment 2 is full and not read ahead, yet nothing is pending: ${JSON.stringify(after)}`);
    await eventually('segment 2 read ahead', async () => {
      const h = await health(base);
      return h.readAheadSegments === 3 && h.readAheadPending === 0 ? true : undefined;
    }, 30_000);
    const got = await post(base, '/admin/activate');
    assert.ok((got.readAheadSegments ?? 0) >= 3, `the three full segments were not replayed again (read ahead: ${got.readAheadSegments})`);
    assert.deepEqual({ keys: got.keys, sha256: got.sha256 }, expectedDigest(model));
    assert.equal(await (await fetch(`${base}/kv/k1`)).text(), 'late');
    assert.equal((await fetch(`${base}/kv/k8001`)).status, 404);
    // Serving: writes land in the last segment and keep the digest.
    assert.equal((await fetch(`${base}/kv/k9999`, { method: 'PUT', body: 'after' })).status, 200);
    model.set('k9999', 'after');
    assert.deepEqual(await get(base, '/admin/digest'), expectedDigest(model));
    // A full load of the same volume serves the same.
    const copy = join(root, 'ahead-copy');
    cpSync(dir, copy, { recursive: true });
    const full = await start(copy, false);
    assert.deepEqual(await get(full, '/admin/digest'), expectedDigest(model));
  });

  it('a source that rolled its log over several segments, copied to a standby: the standby reads them ahead and activates to the source\'s frozen digest', async () => {
    const src = join(root, 'rolled');
    const base = await start(src, false);
    const model = new Map<string, string>();
    // 64 KiB values: ~10 MiB of log, more than two 4 MiB segments.
    for (let i = 0; i < 160; i++) {
      const v = `${i}:${'v'.repeat(64 << 10)}`;
      assert.equal((await fetch(`${base}/kv/key${i % 120}`, { method: 'PUT', body: v })).status, 200);
      model.set(`key${i % 120}`, v);
    }
    const frozen = await post(base, '/admin/freeze');
    assert.deepEqual({ keys: frozen.keys, sha256: frozen.sha256 }, expectedDigest(model));
    assert.ok(existsSync(join(src, 'kv.2.jsonl')), 'the log rolled over into a third segment');
    const copy = join(root, 'rolled-target');
    cpSync(src, copy, { recursive: true });
    const target = await start(copy, true);
    await eventually('the full segments read ahead', async () => (((await health(target)).readAheadSegments ?? 0) >= 2 ? true : undefined), 30_000);
    const got = await post(target, '/admin/activate');
    assert.ok((got.readAheadSegments ?? 0) >= 2, `read ahead: ${got.readAheadSegments}`);
    assert.deepEqual({ keys: got.keys, sha256: got.sha256 }, { keys: frozen.keys, sha256: frozen.sha256 });
  });

  it('an earlier segment read ahead that changed on disk is found by /health: pending again, read ahead again, then the activation serves the new files', async () => {
    const dir = join(root, 'changed-early');
    mkdirSync(dir);
    const model = new Map<string, string>();
    segment(join(dir, 'kv.jsonl'), 0, 2000, model, 'a');
    segment(join(dir, 'kv.1.jsonl'), 2000, 2000, model, 'b');
    segment(join(dir, 'kv.2.jsonl'), 4000, 2000, model, 'c');
    const base = await start(dir, true);
    await eventually('segments 0 and 1 read ahead', async () => {
      const h = await health(base);
      return h.readAheadSegments === 2 && h.readAheadPending === 0 ? true : undefined;
    }, 30_000);
    // Segment 0, not the last read ahead, replaced by another file: the standby's step checks only
    // the last one, so this must be found by the whole check behind /health.
    const whole = new Map<string, string>();
    segment(join(root, 'early0-new'), 0, 1500, whole, 'z');
    segment(join(root, 'scratch-1'), 2000, 2000, whole, 'b');
    segment(join(root, 'scratch-2'), 4000, 2000, whole, 'c');
    renameSync(join(root, 'early0-new'), join(dir, 'kv.jsonl'));
    const found = await health(base);
    assert.ok((found.readAheadPending ?? 0) >= 1 && (found.readAheadSegments ?? 0) < 2, `the change must show as pending: ${JSON.stringify(found)}`);
    await eventually('read ahead again from segment 0, nothing pending', async () => {
      const h = await health(base);
      return h.readAheadSegments === 2 && h.readAheadPending === 0 ? true : undefined;
    }, 30_000);
    const got = await post(base, '/admin/activate');
    assert.deepEqual({ keys: got.keys, sha256: got.sha256 }, expectedDigest(whole));
    assert.equal(got.readAheadSegments, 2, 'the second reading ahead is used');
    assert.equal(await (await fetch(`${base}/kv/k10`)).text(), `z-10-${'y'.repeat(10)}`);
  });

  it('a segment read ahead that changed on disk (another file at its name) makes the activation replay the whole log', async () => {
    const dir = join(root, 'changed');
    mkdirSync(dir);
    const first = new Map<string, string>();
    segment(join(dir, 'kv.jsonl'), 0, 3000, first, 'a');
    segment(join(dir, 'kv.1.jsonl'), 3000, 3000, new Map(), 'b');
    const base = await start(dir, true);
    await eventually('segment 0 read ahead', async () => ((await health(base)).keys === first.size ? true : undefined), 30_000);
    // Segment 0 replaced by another file (as a patch that rewrote it would): other records.
    const whole = new Map<string, string>();
    segment(join(root, 'kv0-new'), 0, 2500, whole, 'z');
    segment(join(root, 'scratch'), 3000, 3000, whole, 'b');
    renameSync(join(root, 'kv0-new'), join(dir, 'kv.jsonl'));
    const got = await post(base, '/admin/activate');
    assert.deepEqual({ keys: got.keys, sha256: got.sha256 }, expectedDigest(whole), 'what the files on disk hold, not what was read ahead');
    // Either the standby noticed and read the new segment 0 ahead, or the activation replayed it.
    assert.ok((got.readAheadSegments ?? 0) <= 1, `read ahead: ${got.readAheadSegments}`);
    assert.equal(await (await fetch(`${base}/kv/k10`)).text(), `z-10-${'y'.repeat(10)}`);
  });
});
