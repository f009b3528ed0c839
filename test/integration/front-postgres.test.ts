/**
 * A stable address for an unmodified PostgreSQL 15 (issue 14, item 4): clients use one address,
 * the workload's front, and find their data on the target after the switch without being told a
 * new address. Two real clusters on loopback: the source, and the target, a copy of the source's
 * data directory taken after a clean fast shutdown. psql is the client. The front set follows a
 * log the test keeps (the worker wires the real federation log in: worker/fronts.ts); the
 * cut-over's fast path (freezing, switched) is called as the migration calls it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FrontSet, type PlacedAddress } from '../../agent/front/front-set';
import { eventually } from '../helpers/eventually';
import { PgCluster, pgScratch, psql, psqlChild, removeScratch } from '../helpers/pg-cluster';

describe('PostgreSQL behind a workload front', () => {
  let dir: string;
  let source: PgCluster;
  let target: PgCluster | undefined;
  let set: FrontSet;
  let log: PlacedAddress[];
  const lines: string[] = [];

  before(async () => {
    dir = pgScratch('fedflow-front-pg-');
    source = await PgCluster.init(join(dir, 'source'), dir);
    await source.start();
    log = [{ id: 'pg', address: `tcp://${source.address}` }];
    set = new FrontSet({ read: () => Promise.resolve(log), intervalMs: 200, log: (l) => lines.push(`${new Date().toISOString()} ${l}`) });
    await set.start();
  });
  after(async () => {
    await set?.close();
    await source?.kill();
    await target?.kill();
    if (dir) removeScratch(dir);
  });

  it('a client reconnecting through the same address after the switch finds its data on the target', async () => {
    const front = set.address('pg')!;
    assert.match(front, /^127\.0\.0\.1:\d+$/);

    // Data written through the front lands on the source.
    await psql(front, "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL); INSERT INTO accounts SELECT g, 'owner-' || g, g * 100 FROM generate_series(1, 5000) g;");
    const digestSql = "SELECT count(*) || ':' || md5(string_agg(id || '/' || owner || '/' || balance, ',' ORDER BY id)) FROM accounts";
    const digest = await psql(front, digestSql);
    assert.match(digest, /^5000:[0-9a-f]{32}$/);
    assert.equal(await psql(front, 'SELECT inet_server_port()'), String(source.port), 'the front forwards to the source');

    // A session open through the front when the cut-over starts.
    const longSession = psqlChild(front, 'SELECT pg_sleep(60)');
    // Asked of the source directly, not through the front: the session runs there.
    await eventually('the long session to run on the source', async () => (await psql(source.address, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'")) === '1', 10_000);

    // The freeze: the front holds new connections, then the source stops cleanly. Its fast
    // shutdown ends the open session: the client sees its connection end, as with any restart.
    set.freezing(`tcp://${source.address}`);
    assert.equal(set.stats().pg!.state, 'paused');
    await source.stop('fast');
    const ended = await longSession.done;
    assert.notEqual(ended.code, 0, 'the session open on the old placement was ended');
    assert.match(ended.stderr, /terminating connection|server closed the connection|connection to server was lost/i);

    // A client connecting during the cut-over is held, not refused.
    const duringCutover = psqlChild(front, 'SELECT owner || \'=\' || balance FROM accounts WHERE id = 4242');
    await eventually('the new client to be held', () => set.stats().pg!.held === 1, 10_000);
    assert.equal(duringCutover.child.exitCode, null, 'the held client is still waiting');

    // The target: a copy of the source's data directory after the clean stop, on another port.
    target = await source.copyTo(join(dir, 'target'));
    await target.start();
    assert.notEqual(target.port, source.port);

    // The placement commits (the log names the target), then the route switches.
    log = [{ id: 'pg', address: `tcp://${target.address}` }];
    set.switched('pg', `tcp://${target.address}`);

    const held = await duringCutover.done;
    assert.equal(held.code, 0, `the held client succeeded on the target: ${held.stderr}`);
    assert.equal(held.stdout, 'owner-4242=424200');

    // Reconnecting through the same address: the target, with the same data.
    assert.equal(await psql(front, 'SELECT inet_server_port()'), String(target.port), 'the same address now reaches the target');
    assert.equal(await psql(front, digestSql), digest, 'the target holds exactly what the source held');
    await psql(front, "INSERT INTO accounts VALUES (5001, 'after-switch', 1)");
    assert.equal(await psql(front, 'SELECT count(*) FROM accounts'), '5001');

    // The log agrees with the fast path: a later read leaves the route where it is.
    await set.sync();
    assert.equal(set.stats().pg!.backend, target.address);
    const s = set.stats().pg!;
    const seen = `front stats ${JSON.stringify(s)}; front log:\n${lines.join('\n')}`;
    assert.equal(s.released, 1, seen);
    assert.equal(s.refused, 0, seen);
    assert.equal(s.expired, 0, seen);
    assert.ok(s.bytesIn > 0 && s.bytesOut > 0);
    assert.equal(source.logTail().includes('database system is shut down'), true, source.logTail());
  });
});
