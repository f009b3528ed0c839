/**
 * A kill -9 inside the cut-over of a real service (issue 14, item 7, for a workload added from a
 * spec): PostgreSQL 15 from workloads/postgres.yaml, about 80 MB on disk, moves dc:paris ->
 * dc:frankfurt while a client inserts one row after another. The process running the control
 * worker and the source's agent is killed the moment the source's freeze has stopped PostgreSQL
 * (the capture then runs). Once it is back the capture is retried: the workload is found frozen,
 * the hook does not run again, the frozen data is captured and verified, and the cut-over goes on.
 * Writes resume on the target within 15 s of the restart, the reported downtime agrees with the
 * client's longest gap between acknowledged inserts within 10%, and no acknowledged insert is lost.
 * The client follows the route as one without a stable address would: it keeps reading the
 * workload's address from the federation log in the background and reconnects there.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, siteDir } from '../../agent/site/home';
import { FedflowClient } from '../../client';
import { FederationLog } from '../../client/federation';
import { parseFederationConfig } from '../../core/federation-config';
import { assertCaptureRetriedAndResumed, followPlacement } from '../helpers/cutover-crash';
import { eventually } from '../helpers/eventually';
import { PgWire } from '../helpers/wire-clients';
import { killHard, spawnWorker, useProcessFederation } from '../helpers/worker-process';

const CONFIG = {
  federation: 'pgcrash',
  sites: [
    { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 2 } },
    { id: 'dc:frankfurt', provider: 'local', trust: 'trusted', capacity: { instances: 2 } },
  ],
};

const hostPort = (address: string) => new URL(address.replace(/^postgresql:/, 'http:')).host;

describe('a worker killed with -9 inside the cut-over of PostgreSQL', () => {
  const suite = useProcessFederation(CONFIG, 'fedflow-pgcrash-');
  const workers = suite.workers;

  it('goes on within 15 s of the restart; downtime counts from the first freeze; no acknowledged insert lost', async (t) => {
    const { env, home } = suite;
    // PostgreSQL runs as `nobody` (the agent is root): it must pass through the home.
    chmodSync(home, 0o711);
    const base = suite.workerEnv;
    const sourceEnv = { ...base, FEDFLOW_SITES: 'dc:paris' };
    const source = spawnWorker(sourceEnv);
    const target = spawnWorker({ ...base, FEDFLOW_SITES: 'dc:frankfurt', FEDFLOW_CONTROL: '0' });
    workers.push(source, target);
    await Promise.all([source.ready, target.ready]);
    const config = parseFederationConfig(CONFIG);
    const c = FedflowClient.fromClient(env.client);
    const added = await c.addWorkload(readFileSync(join(REPO_ROOT, 'workloads', 'postgres.yaml'), 'utf8'), { config, home, site: 'dc:paris' });
    const seed = await PgWire.connect(hostPort(added.address));
    await seed.query('CREATE TABLE acked (n bigint PRIMARY KEY)');
    await seed.query('CREATE TABLE filler (id bigint PRIMARY KEY, pad text NOT NULL)');
    await seed.query('ALTER TABLE filler ALTER COLUMN pad SET STORAGE EXTERNAL');
    await seed.query("INSERT INTO filler SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, 16000) g");
    seed.close();

    const log = new FederationLog(env.client, config.federation);
    const acks: { n: number; atMs: number }[] = [];
    let stop = false;
    const route = followPlacement(log, 'postgres', added.address);
    const writer = (async () => {
      let conn: PgWire | undefined;
      let at = hostPort(route.address());
      for (let n = 1; !stop; n++) {
        // A number per attempt: an insert that committed without its acknowledgement reaching us
        // must not make the next one a duplicate key.
        try {
          conn ??= await PgWire.connect(at, { timeoutMs: 2000 });
          await conn.query(`INSERT INTO acked VALUES (${n})`);
          acks.push({ n, atMs: Date.now() });
        } catch {
          conn?.close();
          conn = undefined;
          at = hostPort(route.address());
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      conn?.close();
      await route.stop();
    })();
    // Stopped however the test ends: a writer left running after a failed assertion keeps the file from ending.
    t.after(() => {
      stop = true;
      return writer;
    });

    await eventually('the writer going', () => acks.length > 50, 30_000);
    await c.startMigration({ workloadId: 'postgres', targetSite: 'dc:frankfurt' });
    // Kill the source's process the moment the freeze has stopped PostgreSQL: the capture runs.
    const record = join(siteDir('dc:paris', home), 'workloads', 'postgres', 'instance.json');
    await eventually('the source frozen', () => existsSync(record) && (JSON.parse(readFileSync(record, 'utf8')) as { status: string }).status === 'frozen', 180_000);
    await killHard(source);
    const killedAtMs = Date.now();

    const again = spawnWorker(sourceEnv);
    workers.push(again);
    await again.ready;
    const backAtMs = Date.now();
    const r = await c.waitForResult('postgres');
    await eventually('an insert acknowledged after the crash', () => acks.some((a) => a.atMs > killedAtMs), 30_000);
    stop = true;
    await writer;
    assert.equal(r.status, 'completed');
    assert.equal(r.target, 'dc:frankfurt');

    const resumeMs = await assertCaptureRetriedAndResumed(env, 'postgres', acks, killedAtMs, backAtMs);
    let gap = 0;
    for (let i = 1; i < acks.length; i++) gap = Math.max(gap, acks[i]!.atMs - acks[i - 1]!.atMs);
    console.log(`postgres cut-over crash: back after ${backAtMs - killedAtMs} ms; writes resumed ${resumeMs} ms after that; reported downtime ${r.downtimeMs} ms; client's longest gap ${gap} ms; ${acks.length} acknowledged inserts`);
    assert.ok(Math.abs(r.downtimeMs - gap) <= 0.1 * gap, `reported downtime ${r.downtimeMs} ms vs the client's longest gap ${gap} ms: more than 10% apart`);

    const check = await PgWire.connect(hostPort(r.address));
    try {
      const there = new Set((await check.query('SELECT n FROM acked')).map((row) => Number(row[0])));
      const lost = acks.filter((a) => !there.has(a.n));
      assert.deepEqual(lost.slice(0, 5), [], `${lost.length} acknowledged inserts lost`);
    } finally {
      check.close();
    }
  });
});
