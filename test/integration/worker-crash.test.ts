/**
 * Acceptance: kill -9 the worker process while a migration is copying, start it again, and the
 * migration completes with the data intact, the copy resuming from its heartbeat cursor.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { LocalProvider } from '../../adapters/local';
import { siteDir } from '../../agent/home';
import { deploySampleWorkload, sampleValue } from '../../agent/sample-workload';
import { FedflowClient } from '../../client';
import { parseFederationConfig } from '../../core/federation-config';
import { startTestServer } from '../helpers/temporal';
import { killHard, spawnWorker, type WorkerProcess } from '../helpers/worker-process';

const KEYS = 3000;
const VALUE_BYTES = 10_000;
const CONFIG = {
  federation: 'crash',
  sites: [
    { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 2 } },
    { id: 'dc:frankfurt', provider: 'local', trust: 'trusted', capacity: { instances: 2 } },
  ],
  // ~30 MB at 64 Mbit/s: about 4 s of copying, long enough to kill the worker in the middle.
  links: [{ from: 'dc:paris', to: 'dc:frankfurt', rateMbps: 64 }],
};

describe('a worker killed with -9 mid-copy', () => {
  let env: TestWorkflowEnvironment;
  let home: string;
  const workers: WorkerProcess[] = [];

  before(async () => {
    env = await startTestServer();
    home = mkdtempSync(join(tmpdir(), 'fedflow-crash-'));
    writeFileSync(join(home, 'federation.json'), JSON.stringify(CONFIG));
  });
  after(async () => {
    for (const w of workers) await killHard(w);
    const config = parseFederationConfig(CONFIG);
    for (const s of config.sites) {
      const p = new LocalProvider({ site: s.id, dir: siteDir(s.id, home), capacityInstances: 2 });
      for (const ref of p.liveInstances()) await p.stopInstance(ref).catch(() => undefined);
    }
    rmSync(home, { recursive: true, force: true });
    await env?.teardown();
  });

  it('completes after a restart, resuming the copy, with every key intact', async () => {
    const workerEnv = { FEDFLOW_HOME: home, FEDFLOW_CONFIG: join(home, 'federation.json'), TEMPORAL_ADDRESS: env.address };
    workers.push(spawnWorker(workerEnv));
    await workers[0]!.ready;
    await deploySampleWorkload({ config: parseFederationConfig(CONFIG), home, keys: KEYS, valueBytes: VALUE_BYTES });

    const c = FedflowClient.fromClient(env.client);
    await c.startMigration({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' });
    // Wait for the copy's first heartbeat cursor, then kill the worker in the middle of the copy.
    const deadline = Date.now() + 60_000;
    let seen = 0;
    while (Date.now() < deadline) {
      const p = await c.getProgress('kv-demo');
      if (p.phase === 'copying' && p.liveBytes > 0) {
        seen = p.liveBytes;
        assert.ok(p.bytesTotal && seen < p.bytesTotal, `the copy must still be running (cursor ${seen} of ${p.bytesTotal})`);
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(seen > 0, 'never saw the copy heartbeat a cursor');
    await killHard(workers[0]!);

    workers.push(spawnWorker(workerEnv));
    await workers[1]!.ready;
    const r = await c.waitForResult('kv-demo');
    assert.equal(r.status, 'completed');
    assert.equal(r.target, 'dc:frankfurt');
    assert.equal(r.keys, KEYS);
    assert.equal(r.copyResumes, 1, 'the copy must have resumed from its cursor');
    assert.ok(r.copyResumedAtByte >= seen, `resumed at ${r.copyResumedAtByte}, cursor seen ${seen}`);
    // Only what was past the cursor crossed the link again.
    assert.equal(r.bytesTransferred, r.snapshotBytes - r.copyResumedAtByte);

    const all = (await (await fetch(`${r.address}/kv`)).json()) as Record<string, string>;
    assert.equal(Object.keys(all).length, KEYS);
    for (let i = 0; i < KEYS; i += 1) assert.equal(all[`key-${String(i).padStart(6, '0')}`], sampleValue(i, VALUE_BYTES));
  });
});
