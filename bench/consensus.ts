/**
 * Consensus benchmark: what a federation commit costs next to the cost of one bare activity,
 * measured in one run on a local dev server this process starts, with four site agents in this
 * process (three trusted: the CFT quorum; plus one untrusted: the BFT quorum of four). Prints
 * JSON lines:
 *   - activityRtt: one no-op activity on a site's task queue, awaited by a workflow, one after another;
 *   - cft / bft:   commit latency of one proposal at a time (the federation's own clock, from the
 *                  proposal's arrival to its commit, the same clock as activityRtt), and the
 *                  client-observed round trip of the `propose` update next to it; then batched
 *                  throughput: many proposals in flight at once, commits per second of wall time.
 *
 *   npm run bench -- consensus [--rtt-samples=200] [--latency-samples=200] [--throughput=3000] [--batch=250] [--concurrency=8] [--per-update=300]
 *   node --import tsx bench/consensus.ts [same flags]
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { foundingSites } from '../activities/consensus-keys';
import type { FederationEntry } from '../core/consensus/entries';
import type { Protocol } from '../core/consensus/types';
import { CONTROL_TASK_QUEUE } from '../core/contracts/task-queues';
import { consensusStatusQuery, proposeBatchUpdate, proposeUpdate, type FederationInput, type ProposeInput } from '../core/contracts/federation';
import { federationWorkflowId } from '../core/contracts/task-queues';
import { startTestFederation, type TestFederation } from '../test/helpers/federation';
import { startTestServer } from '../test/helpers/temporal';

interface Args {
  rttSamples: number;
  latencySamples: number;
  /** Proposals in the batched-throughput run. */
  throughput: number;
  /** Proposals per proposeBatch update, and such updates in flight at once. */
  batch: number;
  concurrency: number;
  /** Proposals in the one-update-per-proposal throughput run. */
  perUpdate: number;
}

const TARGETS = { cft: { ratio: 1.5, commitsPerSec: 500 }, bft: { ratio: 3.5, commitsPerSec: 200 } } as const;

const CONFIG = {
  federation: 'bench',
  sites: [
    { id: 'dc:frankfurt', provider: 'local', trust: 'trusted', capacity: { instances: 1_000_000 } },
    { id: 'dc:london', provider: 'local', trust: 'trusted', capacity: { instances: 1_000_000 } },
    { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 1_000_000 } },
    { id: 'edge:lisbon', provider: 'local', trust: 'untrusted', capacity: { instances: 1_000_000 } },
  ],
};

function parseArgs(argv: string[]): Args {
  const a: Args = { rttSamples: 200, latencySamples: 200, throughput: 3_000, batch: 250, concurrency: 8, perUpdate: 300 };
  const names: Record<string, keyof Args> = {
    'rtt-samples': 'rttSamples', 'latency-samples': 'latencySamples', throughput: 'throughput', batch: 'batch', concurrency: 'concurrency', 'per-update': 'perUpdate',
  };
  for (const arg of argv) {
    if (arg === 'consensus') continue; // the dispatcher may pass the bench's own name through
    const m = /^--([a-z-]+)=(\d+)$/.exec(arg);
    const key = m && names[m[1]!];
    if (!m || !key || Number(m[2]) < 1) {
      throw new Error(`unknown argument '${arg}'; expected --rtt-samples=N, --latency-samples=N, --throughput=N, --batch=N, --concurrency=N or --per-update=N (N ≥ 1)`);
    }
    a[key] = Number(m[2]);
  }
  return a;
}

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** One workload moved back and forth, so the committed state stays small however many commits run. */
function proposal(protocol: Protocol, i: number): ProposeInput {
  const sites = ['dc:paris', 'dc:frankfurt'];
  const entries: FederationEntry[] = [{ kind: 'placement', workload: `bench-${protocol}`, site: sites[i % 2]! }];
  // A proposal that touches the untrusted site runs in BFT.
  return protocol === 'bft' ? { entries, touches: ['edge:lisbon'] } : { entries };
}

async function measure(handle: WorkflowHandle, protocol: Protocol, sites: number, activityRttMs: number, a: Args): Promise<Record<string, unknown>> {
  // Warm-up: the leader's first round also wins its term; JIT and connections settle.
  for (let i = 0; i < 10; i++) await handle.executeUpdate(proposeUpdate, { args: [proposal(protocol, i)] });

  const waited: number[] = [];
  const client: number[] = [];
  for (let i = 0; i < a.latencySamples; i++) {
    const t0 = performance.now();
    const r = await handle.executeUpdate(proposeUpdate, { args: [proposal(protocol, i)] });
    client.push(performance.now() - t0);
    if (r.protocol !== protocol) throw new Error(`expected a ${protocol} round, the federation ran ${r.protocol}`);
    waited.push(r.waitedMs);
  }

  // Batched: proposeBatch updates of `batch` proposals, `concurrency` of them in flight.
  const roundsBefore = (await handle.query(consensusStatusQuery)).rounds;
  const seconds = await drive(a.throughput, a.concurrency, async (from, n) => {
    const rs = await handle.executeUpdate(proposeBatchUpdate, { args: [Array.from({ length: n }, (_, k) => proposal(protocol, from + k))] });
    if (rs.length !== n) throw new Error(`proposeBatch answered ${rs.length} results for ${n} proposals`);
  }, a.batch);
  const rounds = (await handle.query(consensusStatusQuery)).rounds - roundsBefore;
  // One update per proposal, as many in flight as the server admits (history.maxInFlightUpdates, 10 by default).
  const perUpdateSeconds = await drive(a.perUpdate, 10, async (from) => {
    await handle.executeUpdate(proposeUpdate, { args: [proposal(protocol, from)] });
  }, 1);
  const p50Ms = percentile(waited, 50);
  const commitsPerSec = Math.round(a.throughput / seconds);
  return {
    bench: 'consensus',
    protocol,
    sites,
    p50Ms,
    p99Ms: percentile(waited, 99),
    commitsPerSec,
    ratioToActivityRtt: Number((p50Ms / activityRttMs).toFixed(2)),
    clientP50Ms: Number(percentile(client, 50).toFixed(1)),
    clientP99Ms: Number(percentile(client, 99).toFixed(1)),
    latencySamples: a.latencySamples,
    throughputProposals: a.throughput,
    proposalsPerUpdate: a.batch,
    updatesInFlight: a.concurrency,
    perUpdateCommitsPerSec: Math.round(a.perUpdate / perUpdateSeconds),
    throughputRounds: rounds,
    meanBatch: Number((a.throughput / Math.max(1, rounds)).toFixed(1)),
    target: { ratioToActivityRtt: TARGETS[protocol].ratio, commitsPerSec: TARGETS[protocol].commitsPerSec },
    meetsTarget: { latency: p50Ms / activityRttMs <= TARGETS[protocol].ratio, throughput: commitsPerSec >= TARGETS[protocol].commitsPerSec },
  };
}

/** Runs `total` proposals through `send`, `size` per call, `parallel` calls at a time; returns the wall seconds. */
async function drive(total: number, parallel: number, send: (from: number, n: number) => Promise<void>, size: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(parallel, Math.ceil(total / size))) }, async () => {
      while (next < total) {
        const from = next;
        const n = Math.min(size, total - from);
        next += n;
        await send(from, n);
      }
    }),
  );
  return (performance.now() - t0) / 1000;
}

export async function run(argv: string[]): Promise<void> {
  const a = parseArgs(argv);
  const print = (line: Record<string, unknown>) => console.log(JSON.stringify(line));
  let env: TestWorkflowEnvironment | undefined;
  let fed: TestFederation | undefined;
  let handle: WorkflowHandle | undefined;
  try {
    env = await startTestServer();
    fed = await startTestFederation(env, { config: CONFIG, federationWorkflow: false });
    const rtts = (await env.client.workflow.execute('federationActivityRtt', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: `bench-activity-rtt-${Date.now()}`,
      args: [{ site: 'dc:paris', count: a.rttSamples }],
    })) as number[];
    const activityRttMs = percentile(rtts.slice(Math.min(10, rtts.length - 1)), 50); // first few are warm-up
    print({ bench: 'consensus', what: 'activityRtt', activityRttMs, p99Ms: percentile(rtts, 99), samples: rtts.length, site: 'dc:paris' });

    const input: FederationInput = { name: 'bench', sites: foundingSites(fed.config, fed.home) };
    handle = await env.client.workflow.start('federation', { taskQueue: CONTROL_TASK_QUEUE, workflowId: federationWorkflowId('bench'), args: [input] });
    print(await measure(handle, 'cft', 3, activityRttMs, a));
    print(await measure(handle, 'bft', 4, activityRttMs, a));
  } catch (err) {
    if (handle) {
      const desc = await handle.describe().catch(() => undefined);
      console.error(`federation workflow: ${desc?.status.name}, ${desc?.historyLength} events`);
    }
    throw err;
  } finally {
    await handle?.terminate('benchmark over').catch(() => undefined);
    await fed?.stop();
    await env?.teardown();
  }
}

if (require.main === module) {
  run(process.argv.slice(2)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
