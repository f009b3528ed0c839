/**
 * How a front follows the federation log (agent/front/route-follower.ts, front-set.ts): the log
 * wins, the cut-over's fast path acts at once, a pause is a lease. Real fronts and real backends
 * on loopback; the log is a list the test changes (the worker wires the real federation log in,
 * worker/fronts.ts), and time is a counter the test moves.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { TcpFront } from '../../../agent/front/tcp-front';
import { RouteFollower } from '../../../agent/front/route-follower';
import { FrontSet, type PlacedAddress } from '../../../agent/front/front-set';
import { eventually } from '../../helpers/eventually';
import { echoBackend, lineClient, type TestBackend } from './backends';
import { SourceImages } from '../../../agent/capture/source-images';
import { startTransferServer } from '../../../agent/transfer/server';
import { endpointToken } from '../../../agent/transfer/token';

const cleanup: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function backends(...tags: string[]): Promise<TestBackend[]> {
  const bs = await Promise.all(tags.map((t) => echoBackend(t)));
  cleanup.push(() => Promise.all(bs.map((b) => b.close())).then(() => undefined));
  return bs;
}

/** Sends one line through the front and returns the tagged answer. */
async function ask(address: string, what: string): Promise<string> {
  const c = lineClient(address);
  c.socket.write(`${what}\n`);
  try {
    return await c.line();
  } finally {
    c.socket.destroy();
  }
}

async function follower(leaseMs = 1000) {
  let t = 1000;
  const clock = { now: () => t, advance: (ms: number) => (t += ms) };
  const front = new TcpFront({ workload: 'pg' });
  await front.listen();
  cleanup.push(() => front.close());
  const lines: string[] = [];
  const f = new RouteFollower('pg', front, { leaseMs, now: clock.now, log: (l) => lines.push(l) });
  return { f, front, clock, lines };
}

describe('RouteFollower', () => {
  it('forwards where the log places the workload, and moves when the log moves', async () => {
    const [a, b] = await backends('A', 'B');
    const { f, front, clock } = await follower();
    assert.equal(f.observe(a!.address, clock.now()), 'moved');
    assert.equal(f.lastSwitch?.by, 'log');
    assert.equal(await ask(front.address, 'q'), 'A:q');
    assert.equal(f.observe(`tcp://${a!.address}`, clock.now()), 'unchanged', 'the same address written another way is the same backend');
    assert.equal(f.observe(b!.address, clock.now()), 'moved');
    assert.equal(await ask(front.address, 'q'), 'B:q');
  });

  it('fast path: pause holds while the log still names the source; switch forwards to the target at once', async () => {
    const [a, b] = await backends('A', 'B');
    const { f, front, clock } = await follower();
    f.observe(a!.address, clock.now());
    clock.advance(10);
    f.pause();
    const held = lineClient(front.address);
    held.socket.write('during\n');
    await eventually('held', () => front.stats().held === 1, 5000);
    clock.advance(10);
    assert.equal(f.observe(a!.address, clock.now()), 'held', 'a read naming the source keeps the pause');
    assert.equal(front.stats().state, 'paused');
    clock.advance(10);
    const switchedAt = clock.now();
    f.switchTo(b!.address);
    assert.equal(await held.line(), 'B:during');
    held.socket.destroy();
    // Told again later (a retried route step): the route is where it is, and the record keeps when it moved.
    clock.advance(5);
    f.switchTo(b!.address);
    assert.deepEqual(f.lastSwitch, { by: 'route step', atMs: switchedAt });
    // A read begun before the switch (it may predate the commit) must not move the route back.
    assert.equal(f.observe(a!.address, clock.now() - 5), 'stale');
    assert.equal(await ask(front.address, 'q'), 'B:q');
    clock.advance(10);
    assert.equal(f.observe(b!.address, clock.now()), 'unchanged', 'the log confirms the switch');
  });

  it('the log wins over a fast-path switch it does not back', async () => {
    const [a, b] = await backends('A', 'B');
    const { f, front, clock, lines } = await follower();
    f.observe(a!.address, clock.now());
    clock.advance(10);
    f.switchTo(b!.address);
    assert.equal(await ask(front.address, 'q'), 'B:q');
    clock.advance(10);
    assert.equal(f.observe(a!.address, clock.now()), 'moved');
    assert.equal(await ask(front.address, 'q'), 'A:q');
    assert.ok(lines.some((l) => /the log says .*; the log wins/.test(l)), lines.join('\n'));
  });

  it('a paused front whose switch call was lost follows the log to the target', async () => {
    const [a, b] = await backends('A', 'B');
    const { f, front, clock } = await follower();
    f.observe(a!.address, clock.now());
    clock.advance(10);
    f.pause();
    const held = lineClient(front.address);
    held.socket.write('x\n');
    await eventually('held', () => front.stats().held === 1, 5000);
    clock.advance(10);
    assert.equal(f.observe(b!.address, clock.now()), 'moved');
    assert.equal(await held.line(), 'B:x');
    held.socket.destroy();
  });

  it('a pause whose lease runs out (the cut-over never came back) follows the log again', async () => {
    const [a] = await backends('A');
    const { f, front, clock, lines } = await follower(500);
    f.observe(a!.address, clock.now());
    f.pause();
    const held = lineClient(front.address);
    held.socket.write('x\n');
    await eventually('held', () => front.stats().held === 1, 5000);
    clock.advance(400);
    f.expire();
    assert.equal(front.stats().state, 'paused', 'within the lease the pause holds');
    clock.advance(200);
    f.expire();
    assert.equal(await held.line(), 'A:x');
    assert.ok(lines.some((l) => /pause lease of 500 ms ran out/.test(l)));
    held.socket.destroy();
  });

  it('resume (a rolled-back cut-over) releases the held connections to the source', async () => {
    const [a] = await backends('A');
    const { f, front, clock } = await follower();
    f.observe(a!.address, clock.now());
    f.pause();
    const held = lineClient(front.address);
    held.socket.write('x\n');
    await eventually('held', () => front.stats().held === 1, 5000);
    f.resume();
    assert.equal(await held.line(), 'A:x');
    held.socket.destroy();
  });

  it('an address the front cannot use is reported and changes nothing', async () => {
    const [a] = await backends('A');
    const { f, front, clock, lines } = await follower();
    f.observe(a!.address, clock.now());
    assert.equal(f.observe('not an address', clock.now()), 'bad-address');
    assert.equal(await ask(front.address, 'q'), 'A:q');
    assert.ok(lines.some((l) => /cannot be forwarded to/.test(l)));
  });
});

describe('FrontSet', () => {
  it('opens a front per workload in the log, keeps its address across restarts, and closes it when the workload leaves', async () => {
    const [a, b] = await backends('A', 'B');
    const dir = mkdtempSync(join(tmpdir(), 'fedflow-fronts-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'fronts.json');
    let log: PlacedAddress[] = [{ id: 'pg', address: a!.address }];
    const open = () => new FrontSet({ read: () => Promise.resolve(log), addressesFile: file, intervalMs: 50 });
    let set = open();
    await set.start();
    const address = set.address('pg')!;
    assert.ok(address);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { pg: address });
    assert.equal(await ask(address, 'q'), 'A:q');

    // The poll follows the log.
    log = [{ id: 'pg', address: b!.address }];
    await eventually('the front to follow the log', async () => (await ask(address, 'q')) === 'B:q', 5000);

    await set.close();
    set = open();
    cleanup.push(() => set.close());
    await set.start();
    assert.equal(set.address('pg'), address, 'the same address after a restart');
    assert.equal(await ask(address, 'q'), 'B:q');

    log = [];
    await eventually('the front to close', () => set.address('pg') === undefined, 5000);
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), {});
  });

  it('the cut-over hooks: freezing holds the fronts of the source, switched moves one, thawed releases to the source', async () => {
    const [a, b] = await backends('A', 'B');
    const log: PlacedAddress[] = [{ id: 'pg', address: `http://${a!.address}` }];
    const set = new FrontSet({ read: () => Promise.resolve(log), intervalMs: 60_000 });
    cleanup.push(() => set.close());
    await set.start();
    const address = set.address('pg')!;

    set.freezing(`http://${a!.address}`);
    const held = lineClient(address);
    held.socket.write('1\n');
    await eventually('held', () => set.stats().pg!.held === 1, 5000);
    set.thawed(a!.address);
    assert.equal(await held.line(), 'A:1', 'thawed: the held connection goes to the source');
    held.socket.destroy();

    set.freezing(a!.address);
    const held2 = lineClient(address);
    held2.socket.write('2\n');
    await eventually('held', () => set.stats().pg!.held === 1, 5000);
    set.switched('pg', b!.address);
    assert.equal(await held2.line(), 'B:2', 'switched: the held connection goes to the target');
    held2.socket.destroy();
    assert.equal(set.stats().pg!.backend, b!.address);

    // The placement committed: the log names the target, and the front has read it.
    log[0] = { id: 'pg', address: b!.address };
    await set.sync();
    // By workload id, as a workload run from its spec freezes and thaws (activities/workload.ts).
    set.freezingWorkload('pg');
    const held3 = lineClient(address);
    held3.socket.write('3\n');
    await eventually('held', () => set.stats().pg!.held === 1, 5000);
    set.thawedWorkload('pg');
    assert.equal(await held3.line(), 'B:3', 'thawed: the held connection goes where the log places the workload');
    held3.socket.destroy();
  });

  it('a log that cannot be read leaves the fronts as they are', async () => {
    const [a] = await backends('A');
    let fail = false;
    const lines: string[] = [];
    const set = new FrontSet({ read: () => (fail ? Promise.reject(new Error('federation not running')) : Promise.resolve([{ id: 'pg', address: a!.address }])), intervalMs: 60_000, log: (l) => lines.push(l) });
    cleanup.push(() => set.close());
    await set.start();
    fail = true;
    await assert.rejects(set.sync(), /federation not running/);
    assert.equal(await ask(set.address('pg')!, 'q'), 'A:q');
    assert.ok(lines.some((l) => /cannot read the federation log \(federation not running\)/.test(l)));
  });
});

describe("the agent's /stats", () => {
  it("serves the fronts' counters beside the transfer counters, to a token scoped to stats", async () => {
    const [a] = await backends('A');
    const set = new FrontSet({ read: () => Promise.resolve([{ id: 'pg', address: a!.address }]), intervalMs: 60_000 });
    cleanup.push(() => set.close());
    await set.start();
    assert.equal(await ask(set.address('pg')!, 'q'), 'A:q');
    const dir = mkdtempSync(join(tmpdir(), 'fedflow-front-stats-'));
    const images = new SourceImages(join(dir, 'images'));
    const secret = Buffer.alloc(32, 7);
    const endpoint = await startTransferServer({ site: 'dc:a', images, secret, fronts: () => set.stats() });
    cleanup.push(async () => {
      await endpoint.close();
      await images.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const res = await fetch(`${endpoint.url}/stats`, { headers: { authorization: `Bearer ${endpointToken(secret, 'stats', 'dc:a', 'operator')}` } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { chunksServed: number; fronts: Record<string, { connections: number; bytesIn: number; bytesOut: number; held: number; refused: number; backend: string }> };
    assert.equal(body.chunksServed, 0);
    const pg = body.fronts.pg!;
    assert.equal(pg.backend, a!.address);
    assert.equal(pg.connections, 1);
    assert.equal(pg.bytesIn, 2);
    assert.equal(pg.bytesOut, 4);
    assert.equal(pg.held, 0);
    assert.equal(pg.refused, 0);
    assert.equal((await fetch(`${endpoint.url}/stats`)).status, 401, 'not without a token');
  });
});
