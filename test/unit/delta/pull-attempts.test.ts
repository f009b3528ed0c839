/**
 * The pull activity's figures over attempts (activities/sync.ts, agent/transfer/pull-ledger.ts):
 * the attempt that finishes reports what every attempt before it received, from the target's
 * ledger, or from the last heartbeat that reached the server when the ledger has no record.
 * The activity runs in Temporal's mock activity environment against a real chunk endpoint.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createSyncActivities, type PullArgs, type PullHeartbeat, type RoundFigures } from '../../../activities/sync';
import { SourceImages } from '../../../agent/capture/source-images';
import { ChunkStore } from '../../../agent/store/chunk-store';
import { diskPullLedger, memoryPullLedger, parseTotals, totalsOf, type AttemptRecord, type PullLedger } from '../../../agent/transfer/pull-ledger';
import { newTransferStats, startTransferServer, type TransferStats } from '../../../agent/transfer/server';
import { newPullCounters } from '../../../agent/transfer/client';
import { seededBytes } from './seeded-bytes';

const SECRET = Buffer.alloc(32, 9);
const PARAMS = { minSize: 4096, avgSize: 16384, maxSize: 65536 };
const INFO = { workflowExecution: { workflowId: 'migrate-kv-demo-sync', runId: 'run-1' }, activityId: '7' };

describe('pull figures over attempts', () => {
  let dir: string;
  let images: SourceImages;
  let stats: TransferStats;
  let server: Awaited<ReturnType<typeof startTransferServer>>;
  let root: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedflow-pull-attempts-'));
    const file = join(dir, 'vol.img');
    writeFileSync(file, Buffer.from(seededBytes(2_000_000, 21)));
    images = new SourceImages(join(dir, 'images'));
    const { manifest } = await images.capture('vol', file, PARAMS, { inPlace: true });
    root = manifest.rootHash;
    stats = newTransferStats();
    server = await startTransferServer({ site: 'src', images, secret: SECRET, stats });
  });
  after(async () => {
    await server?.close();
    await images?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let targets = 0;
  /** A target site of its own each time: the source counts a chunk it serves a site twice as sent again. */
  async function target(ledger: PullLedger) {
    const storeDir = mkdtempSync(join(dir, 'store-'));
    const store = await ChunkStore.open(storeDir);
    // A pre-copy round also lays its image down in the target's volume directory: one per target.
    const provider = { volumePath: (id: string) => join(storeDir, 'volumes', id) };
    const acts = createSyncActivities({ site: `dst-${++targets}`, provider: provider as never, workloads: {} as never, images: {} as never, store: async () => store, secret: SECRET, endpointUrl: () => 'unused', ledger });
    const pull = (env: MockActivityEnvironment) => env.run(acts.pullDelta, args()) as Promise<RoundFigures>;
    return { pull, store };
  }

  const args = (): PullArgs => ({
    endpoint: server.url,
    source: 'src',
    root,
    // Two streams of small batches: when the first attempt is cancelled, a batch is in flight.
    plan: { mode: 'datacenter', codec: 'none', streams: 2, batchBytes: 128 << 10, chunkPreset: 'internet' },
    round: 1,
    kind: 'precopy',
    ttlSeconds: 600,
  });

  it('a retry reports the cancelled attempt too: bytes on the wire, bytes sent again, time, attempts', async () => {
    const ledger = memoryPullLedger();
    const { pull, store } = await target(ledger);
    const before = { ...stats };
    // Attempt 1: cancelled at its second heartbeat, as the server does when it gave the attempt up.
    const first = new MockActivityEnvironment({ ...INFO, attempt: 1 } as never);
    let beats = 0;
    let lastBeat: PullHeartbeat | undefined;
    first.on('heartbeat', (d: PullHeartbeat) => {
      lastBeat = d;
      if (++beats === 2) first.cancel();
    });
    await assert.rejects(pull(first));
    assert.ok(lastBeat?.totals && lastBeat.totals.wireBytes > 0, 'the first attempt heartbeated its running totals');
    const held = store.stats().chunks;
    assert.ok(held > 0, 'the first attempt stored chunks');

    const second = new MockActivityEnvironment({ ...INFO, attempt: 2, heartbeatDetails: lastBeat } as never);
    const r = await pull(second);
    const served = stats.bytesServed - before.bytesServed;
    const resentServed = stats.resentBytesServed - before.resentBytesServed;

    assert.equal(r.attempts, 2);
    assert.equal(r.bytesSent, store.stats().bytes, 'raw bytes over both attempts: each chunk once');
    assert.equal(r.resentBytes, resentServed, 'sent again: what the source marked');
    // Received over both attempts; the source also counted frames written into the cancelled
    // attempt's connection that were never read, each of them sent again.
    assert.ok(r.wireBytes <= served && served - r.wireBytes <= resentServed, `reported ${r.wireBytes}, served ${served}, resent ${resentServed}`);
    assert.equal(r.chunksSent, store.stats().chunks, 'every stored chunk counted as sent, once');
    assert.equal(r.chunksReused, 0, "the first attempt's chunks were sent, not reused");
    assert.ok(r.durationMs >= (lastBeat!.totals!.durationMs | 0), 'time counts the first attempt');
  });

  it('without a ledger record, a retry starts from the totals of the last heartbeat that reached the server', async () => {
    const { pull, store } = await target(memoryPullLedger());
    const carried = { attempts: 1, wireBytes: 5_000_000, rawBytes: 4_000_000, chunks: 300, storedChunks: 0, resentBytes: 1234, durationMs: 60_000 };
    const beat: PullHeartbeat = { root, cursor: 0, batches: 10, chunksDone: 0, queued: 10, rawBytes: carried.rawBytes, wireBytes: carried.wireBytes, totals: carried };
    const env = new MockActivityEnvironment({ ...INFO, attempt: 2, heartbeatDetails: beat } as never);
    const r = await pull(env);
    assert.equal(r.attempts, 2);
    assert.equal(r.bytesSent, carried.rawBytes + store.stats().bytes);
    assert.ok(r.wireBytes > carried.wireBytes + store.stats().bytes, `${r.wireBytes}`);
    assert.equal(r.resentBytes, carried.resentBytes);
    assert.ok(r.durationMs >= carried.durationMs);
    // A heartbeat for another image, or of an older version without totals, carries nothing over.
    for (const other of [{ ...beat, root: 'f'.repeat(64) }, { ...beat, totals: undefined }]) {
      const fresh = await target(memoryPullLedger());
      const again = await fresh.pull(new MockActivityEnvironment({ ...INFO, attempt: 2, heartbeatDetails: other } as never));
      assert.equal(again.bytesSent, fresh.store.stats().bytes);
    }
  });

  it('the disk ledger keeps one record per attempt, survives a reopen, and ignores what it cannot read', () => {
    const ledgerDir = join(dir, 'pulls');
    const rec = (attempt: number, wire: number, stored: number): AttemptRecord => ({ ...newPullCounters(), attempt, wireBytes: wire, storedWireBytes: stored, durationMs: 10 * attempt, ended: true });
    const a = diskPullLedger(ledgerDir);
    a.write('key1', rec(1, 1000, 900));
    a.write('key1', rec(2, 500, 500));
    a.write('key2', rec(1, 7, 7));
    writeFileSync(join(ledgerDir, 'key1.3.json'), '{"torn');
    const b = diskPullLedger(ledgerDir);
    assert.deepEqual(
      b.records('key1').map((r) => r.attempt),
      [1, 2],
    );
    // From an agent that does not mark what it sends twice, the target's own estimate: attempt 1's
    // 100 bytes received but never durable were asked for again.
    const t = totalsOf(b.records('key1'));
    assert.deepEqual({ attempts: t.attempts, wireBytes: t.wireBytes, resentBytes: t.resentBytes, durationMs: t.durationMs }, { attempts: 2, wireBytes: 1500, resentBytes: 100, durationMs: 30 });
    assert.ok(!readdirSync(ledgerDir).some((n) => n.endsWith('.tmp')));
  });

  it('totals from a heartbeat are taken only when every figure is a non-negative number', () => {
    const good = { attempts: 1, wireBytes: 1, rawBytes: 1, chunks: 1, storedChunks: 1, resentBytes: 0, durationMs: 1 };
    assert.deepEqual(parseTotals({ ...good, extra: 'x' }), good);
    for (const bad of [undefined, null, 'x', { ...good, wireBytes: -1 }, { ...good, rawBytes: '1' }, { ...good, durationMs: Infinity }, { attempts: 1 }]) assert.equal(parseTotals(bad), undefined, JSON.stringify(bad));
  });
});
