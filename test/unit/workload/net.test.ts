/**
 * Instance ports come from outside the kernel's ephemeral range: a port chosen at the standby and
 * listened on only at the cut-over must not be taken meanwhile by an outgoing connection.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';
import { ephemeralRange, freePort, instancePortRange, portFree, printable, tcpCheck, tcpExchange } from '../../../agent/workload/net';

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

/** A loopback server that answers each connection with `answer(firstBytes, socket)`; the bytes it received, per connection. */
async function service(answer: (got: Buffer, c: import('node:net').Socket) => void): Promise<{ port: number; received: Buffer[]; ends: number; close(): Promise<void> }> {
  const received: Buffer[] = [];
  const state = { ends: 0 };
  const open = new Set<import('node:net').Socket>();
  const srv = createServer((c) => {
    open.add(c);
    c.on('close', () => open.delete(c));
    const i = received.push(Buffer.alloc(0)) - 1;
    c.on('error', () => undefined);
    c.on('end', () => state.ends++);
    c.on('data', (d) => {
      received[i] = Buffer.concat([received[i]!, d]);
      answer(received[i]!, c);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as { port: number }).port,
    received,
    get ends() {
      return state.ends;
    },
    close: () => new Promise<void>((r) => (open.forEach((c) => c.destroy()), srv.close(() => r()))),
  };
}

describe('the TCP health check', () => {
  const ping = tcpExchange({ send: 'PING\r\n', expect: '+PONG' });

  it('without an exchange: a connection accepted; refused says so', async (t) => {
    const s = await service(() => undefined);
    t.after(() => s.close());
    assert.deepEqual(await tcpCheck('127.0.0.1', s.port, 1000), { ok: true, detail: `TCP 127.0.0.1:${s.port} accepts` });
    await s.close();
    const r = await tcpCheck('127.0.0.1', s.port, 1000);
    assert.equal(r.ok, false);
    assert.match(r.detail, /ECONNREFUSED/);
  });

  it('sends its bytes, and passes only on an answer that begins with expect, also one that comes in pieces', async (t) => {
    let loading = true;
    const s = await service((got, c) => {
      if (!got.toString().endsWith('\r\n')) return;
      if (loading) return void c.write('-LOADING Redis is loading the dataset in memory\r\n');
      c.write('+PO');
      setTimeout(() => c.write('NG\r\n'), 20);
    });
    t.after(() => s.close());
    const r = await tcpCheck('127.0.0.1', s.port, 1000, ping);
    assert.deepEqual(r, { ok: false, detail: `TCP 127.0.0.1:${s.port} answered "-LOADING Redis is loading the dataset in memory\\x0d\\x0a", not "+PONG"…` });
    loading = false;
    assert.deepEqual(await tcpCheck('127.0.0.1', s.port, 1000, ping), { ok: true, detail: `TCP 127.0.0.1:${s.port} answered as expected` });
    assert.deepEqual(s.received.map(String), ['PING\r\n', 'PING\r\n'], 'the bytes of send, once a connection');
    // The check half-closes at once: the service reads an orderly end well before the socket's
    // one-second destroy (which would also end it).
    for (let i = 0; i < 20 && s.ends < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(s.ends, 2, 'both connections ended within 200 ms');
  });

  it('a short answer, a closed connection and a silent service fail, each naming what it got', async (t) => {
    const short = await service((_g, c) => c.end('+PO'));
    const silent = await service(() => undefined);
    t.after(() => Promise.all([short.close(), silent.close()]));
    assert.deepEqual(await tcpCheck('127.0.0.1', short.port, 1000, ping), { ok: false, detail: `TCP 127.0.0.1:${short.port} closed the connection after "+PO", expected "+PONG"…` });
    const t0 = Date.now();
    assert.deepEqual(await tcpCheck('127.0.0.1', silent.port, 150, ping), { ok: false, detail: `no answer from TCP 127.0.0.1:${silent.port} within 150 ms` });
    assert.ok(Date.now() - t0 >= 140, 'waited its timeout');
  });

  it('expect alone: a service that speaks first', async (t) => {
    const srv = createServer((c) => c.end('220 ready\r\n'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => srv.close());
    const port = (srv.address() as { port: number }).port;
    assert.equal((await tcpCheck('127.0.0.1', port, 1000, tcpExchange({ expect: '220 ' }))).ok, true);
    assert.equal((await tcpCheck('127.0.0.1', port, 1000, tcpExchange({ expectHex: '323230' }))).ok, true);
    assert.equal((await tcpCheck('127.0.0.1', port, 1000, tcpExchange({ expect: '421' }))).ok, false);
  });

  it('hex and text give the same bytes; printable escapes what is not', () => {
    assert.deepEqual(tcpExchange({ sendHex: '50494e470d0a', expectHex: '2b504f4e47' }), ping);
    assert.deepEqual(tcpExchange({}), {});
    assert.equal(printable(Buffer.from([0x45, 0, 0, 0, 0x5c, 0x22, 0x7f, 0x41])), '"E\\x00\\x00\\x00\\x5c\\x22\\x7fA"');
    assert.equal(printable(Buffer.alloc(81, 0x61)), `"${'a'.repeat(80)}…"`);
  });
});
