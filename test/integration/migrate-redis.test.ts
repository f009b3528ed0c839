/**
 * A live Redis migration under load (issue 14, items 3, 4 and 6): Debian's unmodified
 * redis-server with AOF on (every write fsynced before it is acknowledged), added from
 * workloads/redis.yaml, moves from dc:paris to dc:frankfurt while redis-benchmark writes through
 * its stable address and a writer of ours sets one key after another over a persistent
 * connection, reconnecting when it ends. At the freeze Redis stops cleanly (SIGTERM: the AOF is
 * flushed), both ends verify to the same DEBUG DIGEST, and every write acknowledged before,
 * during and after the cut-over is on the target, reached through the same address.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, siteDir } from '../../agent/site/home';
import { WorkloadRunner } from '../../agent/workload/runner';
import { FedflowClient } from '../../client';
import { CONTROL_TASK_QUEUE, migrationWorkflowId } from '../../core/contracts/task-queues';
import type { MigrationResult } from '../../core/migration';
import { eventually } from '../helpers/eventually';
import { useServerAndFederation } from '../helpers/federation';
import { RedisWire } from '../helpers/wire-clients';

describe('Redis migrates live under redis-benchmark', () => {
  const suite = useServerAndFederation({ fronts: { intervalMs: 60_000 } });

  it('every acknowledged write is on the target, the digests match, clients keep the same address', async (t) => {
    const { env, fed } = suite;
    const sdk = FedflowClient.fromClient(env.client);
    const added = await sdk.addWorkload(readFileSync(join(REPO_ROOT, 'workloads', 'redis.yaml'), 'utf8'), { config: fed.config, home: fed.home, site: 'dc:paris', source: 'workloads/redis.yaml' });
    const fronts = fed.runtime.fronts!;
    const front = await eventually('a front for redis', async () => (await fronts.sync(), fronts.address('redis')));
    const [host, port] = [front.slice(0, front.lastIndexOf(':')), front.slice(front.lastIndexOf(':') + 1)];

    // Some data first (4 MiB), so pre-copy has a volume to copy.
    const seed = await RedisWire.connect(front);
    for (let i = 0; i < 64; i++) await seed.command('SET', `seed:${i}`, 'x'.repeat(64 << 10));
    seed.close();

    // redis-benchmark: SETs of random keys through the front, until the freeze ends its connections.
    const bench = spawn('redis-benchmark', ['-h', host, '-p', port, '-t', 'set', '-n', '100000000', '-r', '100000', '-d', '256', '-c', '2', '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
    bench.stderr.resume();
    // Our writer: one SET after another, reconnecting at once when the connection ends.
    const acked = new Map<number, number>();
    let failures = 0;
    let stop = false;
    const writer = (async () => {
      let c: RedisWire | undefined;
      for (let n = 1; !stop; ) {
        try {
          c ??= await RedisWire.connect(front, { timeoutMs: 10_000 });
          await c.command('SET', `acked:${n}`, `value-${n}`);
          acked.set(n++, Date.now());
        } catch {
          failures++;
          c?.close();
          c = undefined;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      c?.close();
    })();

    try {
      await eventually('the writer to be acknowledged', () => acked.size > 200, 30_000);
      const startedAt = Date.now();
      const handle = await env.client.workflow.start('migrateWorkload', {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: migrationWorkflowId('redis'),
        args: [{ workloadId: 'redis', targetSite: 'dc:frankfurt' }],
      });
      const result = (await handle.result()) as MigrationResult;
      const afterSwitch = acked.size;
      await eventually('writes acknowledged by the target', () => acked.size > afterSwitch + 50, 30_000);
      stop = true;
      await writer;
      bench.kill('SIGKILL');

      assert.equal(result.status, 'completed');
      assert.equal(result.target, 'dc:frankfurt');
      assert.match(result.digest ?? '', /^[0-9a-f]{64}$/);
      assert.ok(result.precopyRounds >= 1, 'pre-copy ran under the load');

      const check = await RedisWire.connect(front);
      try {
        const info = (await check.command('INFO', 'server')) as string;
        assert.match(info, new RegExp(`tcp_port:${new URL(result.address).port}\\r\\n`), 'the same address reaches the target');
        const ns = [...acked.keys()];
        const missing: number[] = [];
        for (let i = 0; i < ns.length; i += 1000) {
          const part = ns.slice(i, i + 1000);
          const got = (await check.command('MGET', ...part.map((n) => `acked:${n}`))) as (string | null)[];
          part.forEach((n, k) => got[k] !== `value-${n}` && missing.push(n));
        }
        assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${ns.length} acknowledged writes missing on the target`);
        assert.equal(await check.command('GET', 'seed:63'), 'x'.repeat(64 << 10));
        const times = [...acked.values()].sort((a, b) => a - b);
        let gap = 0;
        for (let i = 1; i < times.length; i++) if (times[i]! > startedAt) gap = Math.max(gap, times[i]! - times[i - 1]!);
        t.diagnostic(`${ns.length} writes acknowledged (${failures} failed and retried); longest gap ${gap} ms; reported downtime ${result.downtimeMs} ms; ${result.precopyRounds} pre-copy rounds; volume ${result.volumeBytes} bytes`);
      } finally {
        check.close();
      }
      const runner = (site: string) => new WorkloadRunner({ site, siteDir: siteDir(site, fed.home), fedflowRoot: REPO_ROOT });
      assert.equal(runner('dc:paris').installed('redis'), false, 'the source was decommissioned');
      assert.equal(runner('dc:frankfurt').info('redis').running, true);
      assert.equal((await fed.workload('redis'))?.site, 'dc:frankfurt');
      assert.notEqual(new URL(result.address).port, String(added.port));
    } finally {
      stop = true;
      await writer;
      if (bench.exitCode === null) bench.kill('SIGKILL');
    }
  });
});
