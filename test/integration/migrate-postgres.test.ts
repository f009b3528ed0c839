/**
 * A live PostgreSQL 15 migration under pgbench (issue 14, items 3, 4 and 6): the unmodified
 * Debian server, added from workloads/postgres.yaml, moves from dc:paris to dc:frankfurt while
 * pgbench writes through its stable address and pre-copy runs under that load. At the freeze the
 * server stops cleanly (its spec's hook), both ends verify to the same query digest, and:
 * - every pgbench transaction that pgbench logged as done is in the target's pgbench_history;
 * - every row a second client saw acknowledged, before, during and after the cut-over, is on the target;
 * - a client that reconnects through the same address reaches the target, without being told;
 * - exactly one site runs it afterwards, and the log places it on the target.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, siteDir } from '../../agent/site/home';
import { WorkloadRunner } from '../../agent/workload/runner';
import { FedflowClient } from '../../client';
import { CONTROL_TASK_QUEUE, migrationWorkflowId } from '../../core/contracts/task-queues';
import type { MigrationResult } from '../../core/migration';
import { eventually } from '../helpers/eventually';
import { useServerAndFederation } from '../helpers/federation';

/** psql through `address` (host:port) as the spec's superuser; rejects with psql's stderr. */
function psql(address: string, sql: string): Promise<string> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    execFile('psql', ['-h', address.slice(0, i), '-p', address.slice(i + 1), '-U', 'postgres', '-d', 'postgres', '-AtX', '-v', 'ON_ERROR_STOP=1', '-c', sql], { timeout: 60_000, env: { ...process.env, PGCONNECT_TIMEOUT: '30' } }, (err, stdout, stderr) =>
      err ? reject(new Error(`psql ${address}: ${stderr.trim() || err.message}`)) : resolve(stdout.trim()),
    );
  });
}

describe('PostgreSQL migrates live under pgbench', () => {
  const suite = useServerAndFederation({ fronts: { intervalMs: 60_000 } });

  it('acknowledged transactions survive, the digests match, a client reconnects through the stable address', async (t) => {
    const { env, fed } = suite;
    // PostgreSQL runs as `nobody` (the agent is root): it must pass through the home to its site.
    chmodSync(fed.home, 0o711);
    const sdk = FedflowClient.fromClient(env.client);
    const added = await sdk.addWorkload(readFileSync(join(REPO_ROOT, 'workloads', 'postgres.yaml'), 'utf8'), { config: fed.config, home: fed.home, site: 'dc:paris', source: 'workloads/postgres.yaml' });
    const fronts = fed.runtime.fronts!;
    // A read of the log already under way when the workload was added does not show it: read until one does.
    const front = await eventually('a front for postgres', async () => (await fronts.sync(), fronts.address('postgres')));
    assert.match(front, /^127\.0\.0\.1:\d+$/);
    assert.equal(await psql(front, 'SELECT inet_server_port()'), String(added.port), 'the front reaches the source');

    // pgbench's tables at scale 2 (200 000 accounts, ~30 MB), then pgbench through the front.
    const work = mkdtempSync(join(tmpdir(), 'fedflow-pgbench-'));
    const [host, port] = [front.slice(0, front.lastIndexOf(':')), front.slice(front.lastIndexOf(':') + 1)];
    await new Promise<void>((resolve, reject) =>
      execFile('pgbench', ['-i', '-s', '2', '-q', '-h', host, '-p', port, '-U', 'postgres', 'postgres'], { timeout: 120_000 }, (err, _o, stderr) => (err ? reject(new Error(`pgbench -i: ${stderr}`)) : resolve())),
    );
    await psql(front, 'CREATE TABLE acked (n int PRIMARY KEY, at timestamptz DEFAULT now())');
    // Runs until the freeze ends its sessions (pgbench then reports its clients aborted) or 10 min.
    const bench = spawn('pgbench', ['-c', '2', '-j', '1', '-T', '600', '-n', '-l', '--log-prefix', join(work, 'tx'), '-h', host, '-p', port, '-U', 'postgres', 'postgres'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let benchErr = '';
    bench.stderr.on('data', (d: Buffer) => (benchErr += d.toString()));
    const benchDone = new Promise<number | null>((resolve) => bench.once('close', resolve));

    // A second client: one connection per insert through the front, recording what was acknowledged.
    const acked: number[] = [];
    let failedInserts = 0;
    let stop = false;
    const writer = (async () => {
      for (let n = 1; !stop; n++) {
        try {
          await psql(front, `INSERT INTO acked (n) VALUES (${n})`);
          acked.push(n);
        } catch {
          failedInserts++;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    try {
      await eventually('pgbench to commit transactions', async () => Number(await psql(front, 'SELECT count(*) FROM pgbench_history')) > 50, 60_000);
      const handle = await env.client.workflow.start('migrateWorkload', {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: migrationWorkflowId('postgres'),
        args: [{ workloadId: 'postgres', targetSite: 'dc:frankfurt' }],
      });
      const result = (await handle.result()) as MigrationResult;
      const afterSwitch = acked.length;
      await eventually('the writer to be acknowledged on the target', () => acked.length > afterSwitch + 5, 60_000);
      stop = true;
      await writer;
      const benchCode = await Promise.race([benchDone, new Promise<'running'>((r) => setTimeout(() => r('running'), 30_000))]);
      if (benchCode === 'running') bench.kill('SIGINT');

      assert.equal(result.status, 'completed');
      assert.equal(result.target, 'dc:frankfurt');
      assert.equal(result.keys, undefined, 'a spec workload has no keys, only its digest');
      assert.match(result.digest ?? '', /^[0-9a-f]{64}$/);
      assert.ok(result.precopyRounds >= 1, 'pre-copy ran');
      assert.ok(result.rounds[0]!.bytesScanned > 20e6, `the first round copied the database (${result.rounds[0]!.bytesScanned} bytes)`);

      // The final capture (frozen) took the previous round's chunks for what it could prove
      // unchanged by stat, and read only the rest (agent/capture/dir-capture.ts).
      const events = (await handle.fetchHistory()).events ?? [];
      // The pre-copy rounds run in the sync's child workflow: its captures are in its own history.
      const children = events.map((e) => e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId).filter((id): id is string => !!id);
      const childEvents = (await Promise.all(children.map(async (id) => (await env.client.workflow.getHandle(id).fetchHistory()).events ?? []))).flat();
      const results = [...events, ...childEvents]
        .map((e) => e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data)
        .filter((d): d is Uint8Array => !!d && d.length > 0)
        .map((d) => {
          try {
            return JSON.parse(Buffer.from(d).toString('utf8')) as {
              manifest?: { rootHash?: string };
              frozenAtMs?: number;
              flush?: { ms: number } | { error: string };
              reuse?: { filesRead: number; filesReused: number; bytesRead: number; chunksHashed: number; chunksReused: number };
            } | null;
          } catch {
            return null; // a result that is not JSON (not a capture's)
          }
        });
      const captures = results.filter((r) => r?.frozenAtMs !== undefined && r.reuse);
      // Every pre-copy capture ran the spec's flush hook (CHECKPOINT) first; the cut-over's did not.
      const precopyCaptures = results.filter((r) => r?.manifest?.rootHash && r.frozenAtMs === undefined);
      assert.equal(precopyCaptures.length, result.precopyRounds, 'one capture per pre-copy round');
      for (const c of precopyCaptures) assert.ok(c!.flush && 'ms' in c!.flush, `a pre-copy capture ran the flush hook: ${JSON.stringify(c!.flush)}`);
      assert.equal(captures.at(-1)?.flush, undefined, 'the freeze, not a flush, precedes the final capture');
      // The source's capture files (kept across rounds for the next capture's reuse) left with the volume.
      const sourceImages = join(siteDir('dc:paris', fed.home), 'images');
      assert.deepEqual(readdirSync(sourceImages).filter((n) => n.endsWith('.img')), [], `no capture file is left at the source: ${JSON.stringify(readdirSync(sourceImages, { recursive: true }))}`);
      assert.ok(!existsSync(join(sourceImages, 'reuse', 'postgres.pin.json')), 'nor the reuse record that pinned them');
      const reuse = captures.at(-1)?.reuse;
      assert.ok(reuse, 'the final capture reports what it reused');
      t.diagnostic(`final capture: read ${reuse.bytesRead} bytes of a ${result.volumeBytes}-byte volume; ${reuse.filesRead} files read, ${reuse.filesReused} reused; ${reuse.chunksHashed} chunks hashed, ${reuse.chunksReused} reused`);
      assert.ok(reuse.filesReused > reuse.filesRead, 'most files were not read again');
      assert.ok(reuse.chunksReused > 0 && reuse.bytesRead < result.volumeBytes, 'the final capture did not read the whole volume');

      // The stable address now reaches the target, which holds everything acknowledged.
      const targetPort = new URL(result.address).port;
      assert.notEqual(targetPort, String(added.port));
      assert.equal(await psql(front, 'SELECT inet_server_port()'), targetPort, 'a client reconnecting through the front reaches the target');
      const onTarget = new Set((await psql(front, 'SELECT n FROM acked')).split('\n').filter(Boolean).map(Number));
      const lost = acked.filter((n) => !onTarget.has(n));
      assert.deepEqual(lost, [], `acknowledged inserts missing on the target (of ${acked.length}; ${failedInserts} refused or failed)`);
      // Each pgbench transaction inserts one pgbench_history row; pgbench logs a line per transaction done.
      const logged = readdirSync(work)
        .filter((f) => f.startsWith('tx'))
        .reduce((a, f) => a + readFileSync(join(work, f), 'utf8').split('\n').filter((l) => /^\d+ \d+ \d+ 0 /.test(l)).length, 0);
      const history = Number(await psql(front, 'SELECT count(*) FROM pgbench_history'));
      assert.ok(logged > 50, `pgbench logged ${logged} transactions (stderr: ${benchErr.slice(-400)})`);
      t.diagnostic(`pgbench ${logged} transactions logged, ${history} on the target; ${acked.length} inserts acknowledged (${failedInserts} refused); downtime ${result.downtimeMs} ms; ${result.precopyRounds} pre-copy rounds; volume ${result.volumeBytes} bytes`);
      assert.ok(history >= logged, `the target holds ${history} pgbench transactions, pgbench saw ${logged} done`);

      // Exactly one site runs it: the target's runner; the source's instance and volume are gone.
      const runner = (site: string) => new WorkloadRunner({ site, siteDir: siteDir(site, fed.home), fedflowRoot: REPO_ROOT });
      assert.equal(runner('dc:paris').installed('postgres'), false, 'the source was decommissioned');
      assert.equal(runner('dc:frankfurt').info('postgres').running, true);
      const placed = await fed.workload('postgres');
      assert.equal(placed?.site, 'dc:frankfurt');
      assert.equal(placed?.address, result.address);
      assert.equal(placed?.spec?.id, 'postgres', 'the spec stays with the placement');

    } finally {
      stop = true;
      await writer;
      if (bench.exitCode === null) bench.kill('SIGKILL');
      rmSync(work, { recursive: true, force: true });
    }
  });
});
