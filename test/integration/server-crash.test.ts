/**
 * Acceptance: kill -9 the Temporal server while a migration's pull is copying, start it again, and
 * the migration completes, with figures that count every attempt of the pull: the bytes on the wire
 * it reports equal what the source agent counted serving, and bytes sent a second time are
 * reported apart (`resentBytes`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalProvider } from '../../adapters/local/provider';
import type { TransferStats } from '../../agent/transfer/server';
import { readAgentUrl } from '../../activities/site';
import { siteDir } from '../../agent/site/home';
import { loadTransferSecret } from '../../agent/transfer/secret';
import { endpointToken } from '../../agent/transfer/token';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { FedflowClient } from '../../client';
import { parseFederationConfig } from '../../core/federation-config';
import { startKillableServer, type KillableServer } from '../helpers/killable-server';
import { killHard, spawnWorker, type WorkerProcess } from '../helpers/worker-process';

// ~38 MB of compressed values at 8 Mbit/s: about 40 s of copying. The server is killed at the
// pull's first heartbeat and kept down past the pull's 15 s heartbeat timeout, so that the server
// gives the attempt up and a second one runs, while the first is still pulling.
const KEYS = Number(process.env.CRASH_KEYS ?? 5000);
const VALUE_BYTES = 10_000;
const OUTAGE_MS = Number(process.env.CRASH_OUTAGE_MS ?? 20_000);
const LINK_MBPS = Number(process.env.CRASH_MBPS ?? 8);
const CONFIG = {
  federation: 'server-crash',
  sites: [
    { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 2 } },
    { id: 'dc:frankfurt', provider: 'local', trust: 'trusted', capacity: { instances: 2 } },
  ],
  links: [{ from: 'dc:paris', to: 'dc:frankfurt', rateMbps: LINK_MBPS }],
};

describe('the Temporal server killed with -9 mid-copy', () => {
  let server: KillableServer;
  let home: string;
  const workers: WorkerProcess[] = [];

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'fedflow-server-crash-'));
    writeFileSync(join(home, 'federation.json'), JSON.stringify(CONFIG));
    server = await startKillableServer(home);
  });
  after(async () => {
    for (const w of workers) await killHard(w);
    const config = parseFederationConfig(CONFIG);
    for (const s of config.sites) {
      const p = new LocalProvider({ site: s.id, dir: siteDir(s.id, home), capacityInstances: 2 });
      for (const ref of p.liveInstances()) await p.stopInstance(ref).catch(() => undefined);
    }
    await server?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  it('completes after a restart, and its figures count the crashed attempt', async () => {
    const base = { FEDFLOW_HOME: home, FEDFLOW_CONFIG: join(home, 'federation.json'), TEMPORAL_ADDRESS: server.address };
    workers.push(spawnWorker({ ...base, FEDFLOW_SITES: 'dc:paris', FEDFLOW_CONTROL: '0' }));
    workers.push(spawnWorker({ ...base, FEDFLOW_SITES: 'dc:frankfurt' }));
    await Promise.all(workers.map((w) => w.ready));
    await deploySampleWorkload({ client: server.client, config: parseFederationConfig(CONFIG), home, keys: KEYS, valueBytes: VALUE_BYTES });

    const c = FedflowClient.fromClient(server.client);
    await c.startMigration({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' });
    const deadline = Date.now() + 120_000;
    let seen = false;
    while (Date.now() < deadline) {
      const p = await c.getProgress('kv-demo');
      if (p.phase === 'syncing' && p.live && p.live.bytesSent > 0) {
        assert.ok(p.live.batchesDone < p.live.batches, `the pull must still be running (batch ${p.live.batchesDone} of ${p.live.batches})`);
        seen = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(seen, 'never saw the pull heartbeat');
    await server.kill();
    const killedAt = Date.now();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    await server.restart();
    console.log(`server down for ${Date.now() - killedAt} ms`);

    const r = await c.waitForResult('kv-demo');
    assert.equal(r.status, 'completed');
    const statsToken = endpointToken(loadTransferSecret(home), 'stats', 'dc:paris', 'test');
    const stats = (await (await fetch(`${readAgentUrl(siteDir('dc:paris', home))}/stats`, { headers: { authorization: `Bearer ${statsToken}` } })).json()) as TransferStats;
    const round1 = r.rounds[0]!;
    const figures = { reported: r.bytesTransferred, resentBytes: r.resentBytes, served: stats.bytesServed, resentServed: stats.resentBytesServed, round1 };
    console.log(`server-crash figures: ${JSON.stringify(figures)}`);

    assert.equal(r.keys, KEYS);
    assert.ok((round1.attempts ?? 1) >= 2, `round 1's pull must have been retried after the outage (attempts ${round1.attempts})`);
    // Bytes on the wire: what the target received over every attempt. The source counts a frame
    // when it writes it, so frames it wrote into the connection of the attempt the server gave up
    // on, after the target stopped reading it (about one per stream, in socket buffers), crossed
    // to the target's kernel but never to the agent: the two may differ by that, and not by more
    // than 2% of the transfer.
    assert.ok(r.bytesTransferred <= stats.bytesServed, `reported ${r.bytesTransferred} B on the wire, more than the ${stats.bytesServed} B the source served`);
    assert.ok(stats.bytesServed - r.bytesTransferred <= 0.02 * stats.bytesServed, `reported ${r.bytesTransferred} B on the wire; the source served ${stats.bytesServed} B`);
    // Sent again: the source marks chunks it serves to the same target a second time.
    if (stats.resentBytesServed > 0) assert.ok((r.resentBytes ?? 0) > 0, `the source re-sent ${stats.resentBytesServed} B; the result says ${r.resentBytes}`);
    assert.ok((r.resentBytes ?? 0) <= stats.resentBytesServed, `resentBytes ${r.resentBytes} is more than the ${stats.resentBytesServed} B the source served twice`);
    // Time counts every attempt too: round 1's bytes over its duration cannot beat the link.
    const linkBytesPerMs = (LINK_MBPS * 1e6) / 8 / 1000;
    assert.ok(round1.wireBytes / round1.durationMs <= 1.25 * linkBytesPerMs, `round 1: ${round1.wireBytes} B in ${round1.durationMs} ms is faster than the ${LINK_MBPS} Mbit/s link`);
  });
});
