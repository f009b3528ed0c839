/**
 * The workload front (agent/front/tcp-front.ts) with real sockets on loopback: real TCP backends
 * that tag their answers, real clients. Nothing is mocked.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { TcpFront } from '../../../agent/front/tcp-front';
import { BackendAddressError, parseBackend } from '../../../agent/front/backend-address';
import { eventually } from '../../helpers/eventually';
import { connected, echoBackend, floodBackend, halfCloseBackend, lineClient, type TestBackend } from './backends';

const cleanup: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function front(opts: Partial<ConstructorParameters<typeof TcpFront>[0]> = {}): Promise<TcpFront> {
  const f = new TcpFront({ workload: 'w1', ...opts });
  await f.listen();
  cleanup.push(() => f.close());
  return f;
}

async function backend<B extends TestBackend>(make: Promise<B>): Promise<B> {
  const b = await make;
  cleanup.push(() => b.close());
  return b;
}

describe('backend addresses', () => {
  it('reads host:port, [v6]:port and scheme://host:port', () => {
    assert.deepEqual(parseBackend('127.0.0.1:5432'), { host: '127.0.0.1', port: 5432 });
    assert.deepEqual(parseBackend('tcp://db.internal:6379'), { host: 'db.internal', port: 6379 });
    assert.deepEqual(parseBackend('http://127.0.0.1:41234'), { host: '127.0.0.1', port: 41234 });
    assert.deepEqual(parseBackend('[::1]:5432'), { host: '::1', port: 5432 });
    // A connection URL, as a database workload's record may hold it: only host and port count.
    assert.deepEqual(parseBackend('postgres://fedflow@127.0.0.1:5433/postgres'), { host: '127.0.0.1', port: 5433 });
    assert.deepEqual(parseBackend('redis://127.0.0.1:6380'), { host: '127.0.0.1', port: 6380 });
  });
  it('names what is wrong with a bad address', () => {
    assert.throws(() => parseBackend('127.0.0.1'), (e: Error) => e instanceof BackendAddressError && /names no port/.test(e.message) && /127\.0\.0\.1:5432/.test(e.message));
    assert.throws(() => parseBackend(''), /non-empty string/);
    assert.throws(() => parseBackend('127.0.0.1:99999'), /is not host:port|no port in 1\.\.65535/);
  });
});

describe('TcpFront', () => {
  it('forwards both ways and counts connections and bytes', async () => {
    const a = await backend(echoBackend('A'));
    const f = await front();
    f.forwardTo(a.address);
    const c = lineClient(f.address);
    c.socket.write('hello\n');
    assert.equal(await c.line(), 'A:hello');
    c.socket.write('again\n');
    assert.equal(await c.line(), 'A:again');
    const s = f.stats();
    assert.equal(s.connections, 1);
    assert.equal(s.active, 1);
    assert.equal(s.bytesIn, 'hello\nagain\n'.length);
    assert.equal(s.bytesOut, 'A:hello\nA:again\n'.length);
    assert.equal(s.state, 'forwarding');
    assert.equal(s.backend, a.address);
    c.socket.destroy();
    await eventually('the pair to be closed', () => f.stats().active === 0, 5000);
  });

  it('holds new connections while paused, with what they sent, and the switch releases them to the new backend', async () => {
    const a = await backend(echoBackend('A'));
    const b = await backend(echoBackend('B'));
    const f = await front();
    f.forwardTo(a.address);
    const before = lineClient(f.address);
    before.socket.write('one\n');
    assert.equal(await before.line(), 'A:one');

    f.pause();
    const held = lineClient(f.address);
    await connected(held);
    // Accepted, not refused: the client is connected and may already send.
    held.socket.write('while-paused\n');
    await eventually('the connection to be held', () => f.stats().held === 1, 5000);
    assert.equal(b.accepted.length, 0, 'nothing reaches the new backend before the switch');
    assert.equal(a.accepted.length, 1, 'nothing new reaches the old backend once paused');

    f.forwardTo(b.address);
    assert.equal(await held.line(), 'B:while-paused', 'the held connection goes to the new backend, with the bytes it sent while held');
    // The connection piped to the old backend was closed at the switch.
    assert.deepEqual(await before.closed, { error: 'ECONNRESET' });
    const after = lineClient(f.address);
    after.socket.write('later\n');
    assert.equal(await after.line(), 'B:later');
    const s = f.stats();
    assert.equal(s.heldTotal, 1);
    assert.equal(s.released, 1);
    assert.equal(s.closedAtSwitch, 1);
    assert.equal(s.switches, 1);
    assert.equal(s.held, 0);
    held.socket.destroy();
    after.socket.destroy();
  });

  it('a pause ended by forwarding to the same backend (a rolled-back cut-over) keeps its connections and releases the held ones to it', async () => {
    const a = await backend(echoBackend('A'));
    const f = await front();
    f.forwardTo(a.address);
    const live = lineClient(f.address);
    live.socket.write('x\n');
    assert.equal(await live.line(), 'A:x');
    f.pause();
    const held = lineClient(f.address);
    held.socket.write('y\n');
    await eventually('held', () => f.stats().held === 1, 5000);
    f.forwardTo(a.address);
    assert.equal(await held.line(), 'A:y');
    live.socket.write('z\n');
    assert.equal(await live.line(), 'A:z', 'the connection piped before the pause is still up');
    assert.equal(f.stats().closedAtSwitch, 0);
    live.socket.destroy();
    held.socket.destroy();
  });

  it('holds at most maxHeld connections: one more is reset, and counted as refused', async () => {
    const a = await backend(echoBackend('A'));
    const f = await front({ maxHeld: 2 });
    f.pause();
    const h1 = lineClient(f.address);
    const h2 = lineClient(f.address);
    await eventually('two held', () => f.stats().held === 2, 5000);
    const third = lineClient(f.address);
    assert.deepEqual(await third.closed, { error: 'ECONNRESET' });
    const s = f.stats();
    assert.equal(s.refused, 1);
    assert.match(s.lastRefusal ?? '', /held queue full \(2 of 2 held while paused/);
    f.forwardTo(a.address);
    h1.socket.write('1\n');
    h2.socket.write('2\n');
    assert.equal(await h1.line(), 'A:1');
    assert.equal(await h2.line(), 'A:2');
    h1.socket.destroy();
    h2.socket.destroy();
  });

  it('resets a connection held past holdTimeoutMs', async () => {
    const f = await front({ holdTimeoutMs: 200 });
    f.pause();
    const h = lineClient(f.address);
    assert.deepEqual(await h.closed, { error: 'ECONNRESET' });
    const s = f.stats();
    assert.equal(s.expired, 1);
    assert.equal(s.held, 0);
    assert.match(s.lastRefusal ?? '', /held 200 ms without a route/);
  });

  // A FIN alone cannot tell a client that left from one that half-closed and awaits its answer
  // (the half-close tests below): such a connection stays held until released or expired.
  it('a client that resets while held leaves the queue', async () => {
    const f = await front();
    f.pause();
    const h = lineClient(f.address);
    await eventually('held', () => f.stats().held === 1, 5000);
    h.socket.resetAndDestroy();
    await eventually('the queue to empty', () => f.stats().held === 0, 5000);
  });

  it('carries a half-close: the client FIN reaches the backend, and its answer still comes back', async () => {
    const a = await backend(halfCloseBackend('H'));
    const f = await front();
    f.forwardTo(a.address);
    const s = connect({ host: '127.0.0.1', port: Number(f.address.split(':')[1]), allowHalfOpen: true });
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    const ended = new Promise<void>((resolve) => s.once('end', () => resolve()));
    s.end('twelve bytes');
    await ended;
    assert.equal(got, 'H:12');
    s.destroy();
  });

  it('carries a half-close sent while held', async () => {
    const a = await backend(halfCloseBackend('H'));
    const f = await front();
    f.pause();
    const s = connect({ host: '127.0.0.1', port: Number(f.address.split(':')[1]), allowHalfOpen: true });
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    const ended = new Promise<void>((resolve) => s.once('end', () => resolve()));
    s.end('held then closed');
    await eventually('held', () => f.stats().held === 1, 5000);
    f.forwardTo(a.address);
    await ended;
    assert.equal(got, 'H:16');
    s.destroy();
  });

  it('a backend that is down: the client sees its connection closed, and it is counted', async () => {
    const gone = await echoBackend('gone');
    const address = gone.address;
    await gone.close();
    const f = await front();
    f.forwardTo(address);
    const c = lineClient(f.address);
    c.socket.write('anyone?\n');
    const closed = await c.closed;
    assert.ok(closed.error === 'ECONNRESET' || closed.error === undefined, `closed: ${JSON.stringify(closed)}`);
    await assert.rejects(c.line(), /closed before a line came/);
    assert.equal(f.stats().backendErrors, 1);
    assert.match(f.stats().lastRefusal ?? '', /ECONNREFUSED/);
  });

  it('a backend that dies mid-stream closes the client', async () => {
    const a = await backend(echoBackend('A'));
    const f = await front();
    f.forwardTo(a.address);
    const c = lineClient(f.address);
    c.socket.write('hi\n');
    assert.equal(await c.line(), 'A:hi');
    a.accepted[0]!.resetAndDestroy();
    await c.closed;
    await eventually('the pair gone', () => f.stats().active === 0, 5000);
  });

  it('keeps backpressure: a client that does not read stops the backend, and then gets every byte', async () => {
    const total = 64 << 20;
    const block = randomBytes(1 << 16);
    const a = await backend(floodBackend('F', total, block));
    const f = await front();
    f.forwardTo(a.address);
    const s = connect({ host: '127.0.0.1', port: Number(f.address.split(':')[1]) });
    s.pause();
    // Let the flood fill every buffer on the way, then check it stopped well short of the total:
    // the front read only as fast as the silent client took.
    let last = -1;
    await eventually('the flood to stall', async () => {
      await new Promise((r) => setTimeout(r, 200));
      const now = f.stats().bytesOut;
      const stalled = now === last && now > 0;
      last = now;
      return stalled;
    }, 20_000);
    assert.ok(f.stats().bytesOut < total / 2, `the front forwarded ${f.stats().bytesOut} of ${total} bytes to a client that read nothing`);
    assert.ok(a.written() < total, 'the backend was held back too');
    const hash = createHash('sha256');
    let got = 0;
    s.on('data', (d: Buffer) => {
      got += d.length;
      hash.update(d);
    });
    s.resume();
    await new Promise((resolve) => s.once('end', resolve));
    const want = createHash('sha256');
    for (let n = 0; n < total; n += block.length) want.update(block.subarray(0, Math.min(block.length, total - n)));
    assert.equal(got, total);
    assert.equal(hash.digest('hex'), want.digest('hex'));
    s.destroy();
  });

  it('refuses a bad route with a clear error and keeps its state', async () => {
    const a = await backend(echoBackend('A'));
    const f = await front();
    f.forwardTo(a.address);
    assert.throws(() => f.forwardTo('nowhere'), /workload address 'nowhere' names no port/);
    assert.equal(f.stats().backend, a.address);
  });

  it('refuses bad bounds at construction', () => {
    assert.throws(() => new TcpFront({ workload: 'w', maxHeld: -1 }), /maxHeld must be a whole number ≥ 0; got -1/);
    assert.throws(() => new TcpFront({ workload: 'w', holdTimeoutMs: 0 }), /holdTimeoutMs must be > 0/);
  });
});
