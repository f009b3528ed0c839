/**
 * `fedflow migrate --wait` through a Temporal outage: the server is killed with -9 while the CLI
 * (a child process, as a user runs it) follows a migration, and started again. The CLI says once
 * that Temporal cannot be reached and what to start, says when it answers again, follows the
 * migration on, and exits 0 with the result.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../../agent/site/home';
import { FedflowClient } from '../../client';
import { parseFederationConfig } from '../../core/federation-config';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { useKillableFederation } from '../helpers/killable-server';
import { spawnWorker } from '../helpers/worker-process';

const KEYS = 2000;
const VALUE_BYTES = 10_000;
const OUTAGE_MS = 10_000;
const CONFIG = {
  federation: 'wait-outage',
  sites: [
    { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 2 } },
    { id: 'dc:frankfurt', provider: 'local', trust: 'trusted', capacity: { instances: 2 } },
  ],
  // ~15 MB of compressed values at 16 Mbit/s: the copy takes about 8 s, so the outage falls inside the run.
  links: [{ from: 'dc:paris', to: 'dc:frankfurt', rateMbps: 16 }],
};

describe('migrate --wait while the Temporal server is killed and restarted', () => {
  const fed = useKillableFederation(CONFIG, 'fedflow-wait-outage-');

  it('says once that Temporal cannot be reached, then follows the migration to its end, exit 0', async () => {
    const { server, home } = fed;
    const env = fed.workerEnv;
    const worker = spawnWorker(env);
    fed.workers.push(worker);
    await worker.ready;
    await deploySampleWorkload({ client: server.client, config: parseFederationConfig(CONFIG), home, keys: KEYS, valueBytes: VALUE_BYTES });

    const child = spawn(join(REPO_ROOT, 'bin', 'fedflow'), ['migrate', 'kv-demo', '--to', 'dc:frankfurt', '--wait'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      // Kill the server once the copy runs (seen by the test's own client), with the CLI following it.
      const c = FedflowClient.fromClient(server.client);
      const deadline = Date.now() + 120_000;
      for (;;) {
        const p = await c.getProgress('kv-demo').catch(() => undefined);
        if (p?.phase === 'syncing' && p.live && p.live.batchesDone < p.live.batches) break;
        assert.ok(Date.now() < deadline && p?.status !== 'COMPLETED', `the copy was never seen running; CLI output:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const before = out.length;
      await server.kill();
      // Down for at least OUTAGE_MS, and until the CLI has said so (its calls give up after 5 s, on
      // a loaded machine later): the test is of what it says during an outage, not of how fast.
      const downAt = Date.now();
      while (Date.now() - downAt < OUTAGE_MS || (!/cannot reach Temporal/.test(out.slice(before)) && Date.now() - downAt < 90_000)) {
        await new Promise((r) => setTimeout(r, 200));
      }
      const during = out.slice(before);
      await server.restart();

      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 180_000)))]);
      clearTimeout(timer);
      assert.equal(code, 0, `the CLI must complete with exit 0; output:\n${out}`);
      const down = out.split('\n').filter((l) => /^fedflow: cannot reach Temporal at 127\.0\.0\.1:\d+ .*start it with `fedflow up`/.test(l));
      assert.equal(down.length, 1, `the unreachable line once per outage, not once per poll; output:\n${out}`);
      assert.ok(during.includes(down[0]!), `the line appears while the server is down; output during the outage:\n${during}`);
      assert.match(out, /^fedflow: Temporal and the workers answer again; following the migration$/m);
      assert.match(out, /^migrated kv-demo: dc:paris -> dc:frankfurt$/m);
      assert.doesNotMatch(out, /ServiceError|\n\s+at /);
      console.log(`migrate --wait said:\n${out.split('\n').filter((l) => l.startsWith('fedflow:')).join('\n')}`);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
