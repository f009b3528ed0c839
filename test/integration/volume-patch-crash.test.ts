/**
 * Crash safety of the in-place patch (issue 14 item 5): a process patching a target's volume is
 * killed with SIGKILL (a) after staging, before the journal's commit, and (b) in the middle of
 * applying the committed journal. The recovery the agent runs when it starts again then leaves
 * the old image in (a) and the new one in (b), checked by root hash; never a mix. In (c) the
 * recovery is the target's agent's own: the worker process started again on the site's home
 * finishes the patch before it is ready.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { REPO_ROOT, siteDir } from '../../agent/site/home';
import { SourceImages } from '../../agent/capture/source-images';
import { extractVolume } from '../../agent/capture/volume-extract';
import { journalPath, readImageRecord, recoverVolumes, stagingPath } from '../../agent/capture/volume-journal';
import { ChunkStore } from '../../agent/store/chunk-store';
import type { Manifest } from '../../core/manifest';
import { startTestServer } from '../helpers/temporal';
import { buildVolume, captureInto, rootOf } from '../helpers/volume-fixture';
import { killHard, spawnWorker, type WorkerProcess } from '../helpers/worker-process';

describe('a kill -9 in the middle of an in-place patch', () => {
  let dir: string;
  let storeDir: string;
  let v1: Manifest;
  let v2: Manifest;
  let kills = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-patch-crash-'));
    const src = join(dir, 'source-vol');
    buildVolume(src);
    const images = new SourceImages(join(dir, 'images'));
    storeDir = join(dir, 'site', 'chunks');
    const store = await ChunkStore.open(storeDir);
    try {
      v1 = await captureInto(images, store, src);
      writeFileSync(join(src, 'dir-1/sub-2/file-3.dat'), 'rewritten whole\n');
      const fd = openSync(join(src, 'big.bin'), 'r+');
      writeSync(fd, Buffer.from('changed in the middle'), 0, undefined, 1_500_000);
      closeSync(fd);
      writeFileSync(join(src, 'dir-2/sub-1/new-file.txt'), 'a new file\n');
      writeFileSync(join(src, 'dir-0/sub-0/file-5.dat'), Buffer.alloc(10_000, 1));
      rmSync(join(src, 'dir-5/sub-4/file-9.dat'));
      v2 = await captureInto(images, store, src);
    } finally {
      await store.close();
      await images.close();
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A site's volume holding v1 (extracted and recorded as a round leaves it). */
  async function volumeWithV1(name: string, volumes = join(dir, name, 'volumes')): Promise<string> {
    mkdirSync(volumes, { recursive: true });
    const vol = join(volumes, 'vol');
    const store = await ChunkStore.open(storeDir);
    try {
      await extractVolume(store, v1, vol);
    } finally {
      await store.close();
    }
    assert.equal(readImageRecord(vol)?.root, v1.rootHash);
    return vol;
  }

  /** Runs the patch to v2 in its own process, stopped at `point`, and kills it with SIGKILL there. */
  async function killedAt(vol: string, point: 'before-commit' | 'mid-apply'): Promise<void> {
    // One marker per run: a marker an earlier case left must not stand for this one.
    const marker = join(dir, `marker-${point}-${++kills}`);
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/helpers/patch-child.ts'), storeDir, v2.rootHash, vol, point, marker], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, sig) => resolve(sig ?? code)));
    const deadline = Date.now() + 120_000;
    while (!existsSync(marker)) {
      if (child.exitCode !== null || child.signalCode !== null) assert.fail(`the patching process ended before ${point}:\n${out}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        assert.fail(`the patching process did not reach ${point} in 120 s:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    assert.match(readFileSync(marker, 'utf8'), point === 'before-commit' ? /not committed/ : /committed, 3 operations/);
  }

  it('(a) before the journal is committed: the old volume, staging dropped', async () => {
    const vol = await volumeWithV1('site-a');
    await killedAt(vol, 'before-commit');
    assert.ok(existsSync(stagingPath(vol)), 'the kill left staging');
    assert.equal(existsSync(journalPath(vol)), false, 'and no journal');
    // What the agent runs when it starts again.
    const recovered = await recoverVolumes(join(dir, 'site-a', 'volumes'));
    assert.deepEqual(recovered, [{ volume: vol, outcome: 'discarded' }]);
    assert.equal(existsSync(stagingPath(vol)), false);
    // The journal's temporary file (written and fsynced beside staging, never renamed) is gone too.
    assert.deepEqual(readdirSync(join(dir, 'site-a', 'volumes')).filter((n) => n.includes('.tmp-')), []);
    assert.equal(await rootOf(vol, dir), v1.rootHash, 'the volume is the old image');
    assert.equal(readImageRecord(vol)?.root, v1.rootHash);
    // And the next round patches from it.
    const store = await ChunkStore.open(storeDir);
    try {
      const r = await extractVolume(store, v2, vol);
      assert.equal(r.method, 'patch', `patched (fallback: ${r.fallback})`);
      assert.equal(await rootOf(vol, dir), v2.rootHash);
    } finally {
      await store.close();
    }
  });

  it('(b) in the middle of the apply: the new volume, journal finished', async () => {
    const vol = await volumeWithV1('site-b');
    await killedAt(vol, 'mid-apply');
    assert.ok(existsSync(journalPath(vol)), 'the kill left the committed journal');
    const torn = await rootOf(vol, dir);
    assert.ok(torn !== v1.rootHash && torn !== v2.rootHash, 'the kill left the volume half patched (neither image)');
    const recovered = await recoverVolumes(join(dir, 'site-b', 'volumes'));
    assert.deepEqual(recovered, [{ volume: vol, outcome: 'redone' }]);
    assert.equal(existsSync(journalPath(vol)), false);
    assert.equal(existsSync(stagingPath(vol)), false);
    assert.equal(await rootOf(vol, dir), v2.rootHash, 'the volume is the new image');
    assert.equal(readImageRecord(vol)?.root, v2.rootHash, 'and its record says so');
    // A second recovery (a crash during the first) finds nothing to do; the record still holds.
    assert.deepEqual(await recoverVolumes(join(dir, 'site-b', 'volumes')), []);
    const store = await ChunkStore.open(storeDir);
    try {
      const r = await extractVolume(store, v2, vol);
      assert.equal(r.method, 'patch');
      assert.equal(r.bytesWritten, 0, 'already the new image: nothing to write');
    } finally {
      await store.close();
    }
  });

  describe('(c) the agent itself, started again after the kill', () => {
    let env: TestWorkflowEnvironment;
    let agent: WorkerProcess | undefined;
    before(async () => {
      env = await startTestServer();
    });
    after(async () => {
      if (agent) await killHard(agent);
      await env?.teardown();
    });

    it('finishes the committed patch before it serves: the new volume', async () => {
      const home = join(dir, 'home');
      mkdirSync(home, { recursive: true });
      const config = {
        federation: 'patchcrash',
        sites: [
          { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 1 } },
          { id: 'dc:frankfurt', provider: 'local', trust: 'trusted', capacity: { instances: 1 } },
        ],
      };
      writeFileSync(join(home, 'federation.json'), JSON.stringify(config));
      // The target agent's own volume directory, as its provider lays it out.
      const vol = await volumeWithV1('home', join(siteDir('dc:frankfurt', home), 'volumes'));
      await killedAt(vol, 'mid-apply');
      assert.ok(existsSync(journalPath(vol)));
      const torn = await rootOf(vol, dir);
      assert.ok(torn !== v1.rootHash && torn !== v2.rootHash, 'the kill left the volume half patched');

      agent = spawnWorker({ FEDFLOW_HOME: home, FEDFLOW_CONFIG: join(home, 'federation.json'), TEMPORAL_ADDRESS: env.address, FEDFLOW_SITES: 'dc:frankfurt', FEDFLOW_CONTROL: '0' });
      await agent.ready;
      assert.match(agent.output(), /agent dc:frankfurt: .*vol: interrupted in-place patch redone/);
      assert.equal(existsSync(journalPath(vol)), false);
      assert.equal(await rootOf(vol, dir), v2.rootHash, 'the agent left the new image');
      assert.equal(readImageRecord(vol)?.root, v2.rootHash);
    });
  });
});
