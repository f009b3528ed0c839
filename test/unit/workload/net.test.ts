/**
 * Instance ports come from outside the kernel's ephemeral range: a port chosen at the standby and
 * listened on only at the cut-over must not be taken meanwhile by an outgoing connection.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';
import { ephemeralRange, freePort, instancePortRange, portFree } from '../../../agent/workload/net';

const listen = (port: number): Promise<Server> =>
  new Promise((done, fail) => {
    const s = createServer((c) => c.resume());
    s.once('error', fail);
    s.listen(port, '127.0.0.1', () => done(s));
  });

describe('instance ports', () => {
  it('reads the ephemeral range, and falls back to Linux default on nonsense', () => {
    assert.deepEqual(ephemeralRange('32768\t60999\n'), [32768, 60999]);
    assert.deepEqual(ephemeralRange('1024 65535'), [1024, 65535]);
    assert.deepEqual(ephemeralRange('50000 40000'), [32768, 60999], 'low above high');
    assert.deepEqual(ephemeralRange('garbage'), [32768, 60999]);
  });

  it('places the instance range below the ephemeral range, else above it, else nowhere', () => {
    assert.deepEqual(instancePortRange([32768, 60999]), [20000, 29999], 'below the ephemeral range and below Kubernetes\' NodePorts');
    assert.deepEqual(instancePortRange([25000, 60999]), [20000, 24999]);
    assert.deepEqual(instancePortRange([15000, 40000]), [40001, 65535]);
    assert.deepEqual(instancePortRange([1024, 20000]), [32768, 65535], 'above it, never in the NodePorts');
    assert.equal(instancePortRange([1024, 65000]), undefined);
  });

  it('the reason: a connection\'s local port blocks a listen on it, open and after it closes (TIME_WAIT)', async (t) => {
    const srv = await listen(0);
    t.after(() => srv.close());
    const c = connect((srv.address() as { port: number }).port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    const local = c.localPort!;
    const [lo, hi] = ephemeralRange();
    assert.ok(local >= lo && local <= hi, `the connection's port ${local} is in the ephemeral range ${lo}-${hi}`);
    assert.equal(await portFree('127.0.0.1', local), false, 'listen on an open connection\'s port');
    c.end();
    await new Promise((r) => c.once('close', r));
    assert.equal(await portFree('127.0.0.1', local), false, 'listen on a closed connection\'s port (TIME_WAIT)');
  });

  it('draws a free port outside the ephemeral range, skipping one that is taken, never the same twice', async (t) => {
    const range = instancePortRange();
    assert.ok(range, 'this machine leaves room outside its ephemeral range');
    const got = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const p = await freePort('127.0.0.1');
      assert.ok(p >= range[0] && p <= range[1], `${p} within ${range[0]}-${range[1]}`);
      assert.ok(!got.has(p), `${p} handed out twice`);
      got.add(p);
    }
    // A two-port range whose first port this test holds (the kernel's pick, never handed out by
    // freePort) and whose second is free: the second.
    let held = await listen(0);
    let first = (held.address() as { port: number }).port;
    while (first === 65535 || !(await portFree('127.0.0.1', first + 1))) {
      held.close();
      held = await listen(0);
      first = (held.address() as { port: number }).port;
    }
    t.after(() => held.close());
    assert.equal(await freePort('127.0.0.1', [first, first + 1]), first + 1);
  });
});
