/**
 * Acceptance: kill -9 the worker process while a migration is copying, start it again, and the
 * migration completes with the data intact: the target's root hash equals the source's, and what
 * crossed the link twice stays within one batch (the pull resumes from its cursor and the store).
 *
 * The source site's agent runs in a process of its own, so its transfer counters survive the kill
 * of the process that runs the control worker and the target's agent.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ChunkStore } from '../../agent/store/chunk-store';
import type { TransferStats } from '../../agent/transfer/server';
import { DEFAULT_PLANS } from '../../core/transfer-plan';
import { siteDir } from '../../agent/site/home';
import { loadTransferSecret } from '../../agent/transfer/secret';
import { endpointToken } from '../../agent/transfer/token';
import { sampleValue } from '../../agent/workload/sample';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { FedflowClient } from '../../client';
import { parseFederationConfig } from '../../core/federation-config';
import { agentGetJson } from '../helpers/agent-fetch';
import { killHard, spawnWorker, useProcessFederation } from '../helpers/worker-process';

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
  const suite = useProcessFederation(CONFIG, 'fedflow-crash-');
  const workers = suite.workers;

  it('completes after a restart, resuming the copy, with every key intact', async () => {
    const { env, home } = suite;
    const base = suite.workerEnv;
    const sourceAgent = spawnWorker({ ...base, FEDFLOW_SITES: 'dc:paris', FEDFLOW_CONTROL: '0' });
    workers.push(sourceAgent);
    const targetEnv = { ...base, FEDFLOW_SITES: 'dc:frankfurt' };
    workers.push(spawnWorker(targetEnv));
    await Promise.all([sourceAgent.ready, workers[1]!.ready]);
    await deploySampleWorkload({ client: env.client, config: parseFederationConfig(CONFIG), home, keys: KEYS, valueBytes: VALUE_BYTES });

    const c = FedflowClient.fromClient(env.client);
    await c.startMigration({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' });
    // Wait for the first round's pull to heartbeat a cursor, then kill the process running it.
    const deadline = Date.now() + 60_000;
    let seen = 0;
    while (Date.now() < deadline) {
      const p = await c.getProgress('kv-demo');
      if (process.env.DEBUG_CRASH) console.log(JSON.stringify({ phase: p.phase, live: p.live, rounds: p.rounds.length }));
      if (p.phase === 'syncing' && p.live && p.live.bytesSent > 0) {
        seen = p.live.bytesSent;
        assert.ok(p.live.batchesDone < p.live.batches, `the pull must still be running (batch ${p.live.batchesDone} of ${p.live.batches})`);
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(seen > 0, 'never saw the pull heartbeat a cursor');
    await killHard(workers[1]!);

    workers.push(spawnWorker(targetEnv));
    await workers[2]!.ready;
    const r = await c.waitForResult('kv-demo');
    assert.equal(r.status, 'completed');
    assert.equal(r.target, 'dc:frankfurt');
    assert.equal(r.keys, KEYS);

    // The target holds exactly the source's final image: its store has the manifest of that root.
    const store = await ChunkStore.open(join(siteDir('dc:frankfurt', home), 'chunks'));
    assert.ok(store.listManifests().some((m) => m.rootHash === r.rootHash), 'target store must hold the final root');
    // Re-sent bytes = raw bytes the source served minus the distinct chunk bytes the target stored.
    const statsToken = endpointToken(loadTransferSecret(home), 'stats', 'dc:paris', 'test');
    const stats = await agentGetJson<TransferStats>({ home, config: parseFederationConfig(CONFIG), site: 'dc:paris', path: '/stats', token: statsToken });
    const resent = stats.rawBytesServed - store.stats().bytes;
    assert.ok(resent >= 0, `resent ${resent}`);
    assert.ok(resent <= DEFAULT_PLANS.datacenter.batchBytes, `re-sent ${resent} bytes after the crash; at most one batch (${DEFAULT_PLANS.datacenter.batchBytes}) allowed`);
    console.log(`crash test: resent ${resent} bytes; served ${stats.rawBytesServed}; volume ${r.volumeBytes}`);
    // The figures count the killed attempt too. Its last half-second of counts may die with it
    // (the ledger is written every 500 ms), so the reported bytes are checked loosely here; what
    // was sent twice is marked by the source and counted by the attempt that received it.
    console.log(`crash test: reported ${r.bytesTransferred} B on the wire, ${r.resentBytes} B sent again; the source served ${stats.bytesServed} B, ${stats.resentBytesServed} B twice`);
    assert.ok((r.rounds[0]!.attempts ?? 1) >= 2, 'round 1 took two attempts');
    assert.ok(r.bytesTransferred <= stats.bytesServed && r.bytesTransferred >= 0.8 * stats.bytesServed, `reported ${r.bytesTransferred} B; the source served ${stats.bytesServed} B`);
    if (stats.resentBytesServed > 0) assert.ok((r.resentBytes ?? 0) > 0 && (r.resentBytes ?? 0) <= stats.resentBytesServed, `resentBytes ${r.resentBytes}; the source served ${stats.resentBytesServed} B twice`);

    const all = (await (await fetch(`${r.address}/kv`)).json()) as Record<string, string>;
    assert.equal(Object.keys(all).length, KEYS);
    for (let i = 0; i < KEYS; i += 1) assert.equal(all[`key-${String(i).padStart(6, '0')}`], sampleValue(i, VALUE_BYTES));
  });
});
