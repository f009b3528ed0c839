/**
 * A kill -9 inside the cut-over (issue 14, item 7): the process running the control worker and the
 * source's agent dies after the source is frozen, while the freeze-and-capture runs. Once it is
 * back, the cut-over goes on within seconds (the capture's heartbeat timeout is 10 s, not 2
 * minutes), writes resume, and the reported downtime counts from the first freeze: it agrees with
 * the longest gap a client saw between acknowledged writes. No acknowledged write is lost.
 *
 * The target's agent runs in a process of its own and survives. The writer follows the route the
 * way a client without a stable address would: it keeps reading the workload's address from the
 * federation log in the background, and writes where the log last placed it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { FedflowClient } from '../../client';
import { FederationLog } from '../../client/federation';
import { parseFederationConfig } from '../../core/federation-config';
import { assertCaptureRetriedAndResumed, followPlacement } from '../helpers/cutover-crash';
import { eventually } from '../helpers/eventually';
import { killHard, spawnWorker, useProcessFederation } from '../helpers/worker-process';

// ~100 MB: the final capture (archive, chunk, hash) takes long enough to be killed in.
const KEYS = 4000;
const VALUE_BYTES = 25_000;
const CONFIG = {
  federation: 'cutcrash',
  sites: [
    { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 2 } },
    { id: 'dc:frankfurt', provider: 'local', trust: 'trusted', capacity: { instances: 2 } },
  ],
};

/** Writes small keys one after another to wherever the log says the workload runs; keeps every ack. */
class Writer {
  readonly acks: { key: string; value: string; atMs: number }[] = [];
  private stopped = false;
  private readonly route: ReturnType<typeof followPlacement>;
  readonly done: Promise<void>;

  constructor(log: FederationLog, first: string) {
    this.route = followPlacement(log, 'kv-demo', first);
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      const key = `w-${String(n).padStart(6, '0')}`;
      const value = `v${n}`;
      for (;;) {
        if (this.stopped) return;
        const ok = await fetch(`${this.route.address()}/kv/${key}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(2_000) }).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) {
          this.acks.push({ key, value, atMs: Date.now() });
          break;
        }
        // Refused (frozen, or the process is gone): try again where the log places it by then.
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    await this.route.stop();
  }

  longestGap(): { ms: number; afterMs: number } {
    let best = { ms: 0, afterMs: 0 };
    for (let i = 1; i < this.acks.length; i++) {
      const ms = this.acks[i]!.atMs - this.acks[i - 1]!.atMs;
      if (ms > best.ms) best = { ms, afterMs: this.acks[i]!.atMs };
    }
    return best;
  }
}

describe('a worker killed with -9 inside the cut-over', () => {
  const suite = useProcessFederation(CONFIG, 'fedflow-cutcrash-');
  const workers = suite.workers;

  it('goes on within 15 s of the restart; downtime counts from the first freeze; no acknowledged write lost', async () => {
    const { env, home } = suite;
    const base = suite.workerEnv;
    const sourceEnv = { ...base, FEDFLOW_SITES: 'dc:paris' };
    const source = spawnWorker(sourceEnv);
    const target = spawnWorker({ ...base, FEDFLOW_SITES: 'dc:frankfurt', FEDFLOW_CONTROL: '0' });
    workers.push(source, target);
    await Promise.all([source.ready, target.ready]);
    const config = parseFederationConfig(CONFIG);
    const sample = await deploySampleWorkload({ client: env.client, config, home, keys: KEYS, valueBytes: VALUE_BYTES });
    const log = new FederationLog(env.client, config.federation);
    const writer = new Writer(log, sample.address);

    const c = FedflowClient.fromClient(env.client);
    await c.startMigration({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' });
    // Kill the source's process the moment its workload reports frozen: the capture is running.
    const deadline = Date.now() + 120_000;
    let frozen = false;
    while (!frozen && Date.now() < deadline) {
      const h = (await fetch(`${sample.address}/health`).then((r) => r.json(), () => undefined)) as { frozen?: boolean } | undefined;
      frozen = h?.frozen === true;
      if (!frozen) await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(frozen, 'never saw the source frozen');
    await killHard(source);
    const killedAtMs = Date.now();

    const again = spawnWorker(sourceEnv);
    workers.push(again);
    await again.ready;
    const backAtMs = Date.now();
    const r = await c.waitForResult('kv-demo');
    // The writer finds the target on its own (through the log): wait for its first write there.
    await eventually('a write acknowledged after the crash', () => writer.acks.some((a) => a.atMs > killedAtMs), 30_000);
    await writer.stop();
    assert.equal(r.status, 'completed');
    assert.equal(r.target, 'dc:frankfurt');

    // The crash landed inside the freeze-and-capture (a second attempt ran); writes resumed (on
    // the target) within 15 s of the process being back.
    const resumeMs = await assertCaptureRetriedAndResumed(env, 'kv-demo', writer.acks, killedAtMs, backAtMs);

    // The downtime counts from the first freeze, across the retry: it agrees with the client's
    // longest gap between acknowledged writes within 10%.
    const gap = writer.longestGap();
    console.log(`cut-over crash: the process was back after ${backAtMs - killedAtMs} ms; writes resumed ${resumeMs} ms after that; reported downtime ${r.downtimeMs} ms; client's longest gap ${gap.ms} ms; ${writer.acks.length} acknowledged writes`);
    assert.ok(Math.abs(r.downtimeMs - gap.ms) <= 0.1 * gap.ms, `reported downtime ${r.downtimeMs} ms vs the client's longest gap ${gap.ms} ms: more than 10% apart`);

    // Every acknowledged write is on the target.
    const all = (await (await fetch(`${r.address}/kv`)).json()) as Record<string, string>;
    const lost = writer.acks.filter((a) => all[a.key] !== a.value);
    assert.deepEqual(lost.slice(0, 5), [], `${lost.length} acknowledged writes lost`);
  });
});
