/**
 * The in-process delay of the hosts tier (test/helpers/delay-proxy.ts), over real sockets on
 * loopback: a round trip through it takes at least twice its one-way delay, bytes arrive whole and
 * in order (also past its in-flight bound), and an end of stream is delayed and passed on.
 * Only lower bounds on time: timers may be late under load, never early.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy';

function listen(handler: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

function readAll(s: Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (c: Buffer) => parts.push(c));
  return new Promise((resolve, reject) => {
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

describe('delay proxy', () => {
  const closers: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });
  const serve = async (handler: (s: Socket) => void) => {
    const { server, port } = await listen(handler);
    closers.push(() => new Promise<void>((r) => server.close(() => r())));
    return port;
  };
  const proxy = async (port: number, delayMs: number, maxInFlight?: number): Promise<DelayProxy> => {
    const p = await startDelayProxy({ listen: { host: '127.0.0.1', port: 0 }, to: { host: '127.0.0.1', port }, delayMs, ...(maxInFlight ? { maxInFlight } : {}) });
    closers.push(() => p.close());
    return p;
  };

  it('adds its delay each way: every round trip takes at least twice the one-way delay', async () => {
    const echo = await serve((s) => s.pipe(s));
    const p = await proxy(echo, 25);
    const s = await dial(p.port);
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const got = new Promise<Buffer>((r) => s.once('data', r));
      s.write(`ping ${i}`);
      assert.equal((await got).toString(), `ping ${i}`);
      const rtt = performance.now() - t0;
      // libuv's timers count whole ms: allow 1 ms of rounding per direction.
      assert.ok(rtt >= 48, `round trip ${i}: ${rtt.toFixed(1)} ms, at least 2 × 25 ms expected`);
    }
    s.destroy();
    assert.equal(p.connections(), 1);
  });

  it('passes every byte whole and in order, also past its in-flight bound, and the end of stream after the delay', async () => {
    let serverGot: Promise<Buffer> | undefined;
    let endAt = 0;
    const sink = await serve((s) => {
      serverGot = readAll(s).then((b) => {
        endAt = performance.now();
        // Answer with the digest, then close: the answer and the end cross the proxy back.
        s.end(createHash('sha256').update(b).digest('hex'));
        return b;
      });
    });
    // A 256 KiB bound against 8 MiB sent: the proxy must stop reading and resume, losing nothing.
    const p = await proxy(sink, 10, 256 * 1024);
    const data = randomBytes(8 * 1024 * 1024);
    const s = await dial(p.port);
    const answer = readAll(s);
    for (let off = 0; off < data.length; off += 1000 + (off % 7919)) s.write(data.subarray(off, Math.min(data.length, off + 1000 + (off % 7919))));
    const endSent = performance.now();
    s.end();
    const received = await new Promise<Buffer>((resolve) => {
      const wait = () => (serverGot ? void serverGot.then(resolve) : setTimeout(wait, 5));
      wait();
    });
    assert.equal(received.length, data.length);
    assert.ok(received.equals(data), 'the bytes arrived in order, none lost or doubled');
    assert.ok(endAt - endSent >= 9, `the end of stream arrived ${(endAt - endSent).toFixed(1)} ms after it was sent, at least 10 ms expected`);
    assert.equal((await answer).toString(), createHash('sha256').update(data).digest('hex'));
  });

  it('stops reading while the far side does not drain, far below its in-flight bound', async () => {
    // The far side accepts and never reads: only the proxy's drain check keeps it from buffering up
    // to its (here huge) in-flight bound; the sender must then be held back by TCP, near the sockets' buffers.
    const held: Socket[] = [];
    const port = await serve((s) => {
      s.pause();
      held.push(s);
    });
    const p = await proxy(port, 1, 1024 * 1024 * 1024);
    const c = await dial(p.port);
    const piece = Buffer.alloc(1 << 20);
    let written = 0;
    const deadline = performance.now() + 3_000;
    while (performance.now() < deadline && written < 512 * 1024 * 1024) {
      if (c.write(piece)) written += piece.length;
      else {
        written += piece.length;
        const drained = await Promise.race([new Promise<boolean>((r) => c.once('drain', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 1_000))]);
        if (!drained) break;
      }
    }
    c.destroy();
    for (const s of held) s.destroy();
    assert.ok(written < 128 * 1024 * 1024, `the sender wrote ${(written / 1048576).toFixed(0)} MiB into a far side that never reads: the proxy kept reading`);
    assert.ok(written > 0);
  });

  it('passes a close on: when the far side goes away, the near side is told', async () => {
    const goes = await serve((s) => s.once('data', () => s.destroy()));
    const p = await proxy(goes, 5);
    const s = await dial(p.port);
    const told = new Promise<void>((r) => (s.once('end', () => r()), s.once('close', () => r())));
    s.on('error', () => undefined);
    s.write('hello');
    await told;
    s.destroy();
  });

  it('cuts the near side when the far side cannot be reached', async () => {
    const closed = await serve(() => undefined);
    await closers.pop()!();
    const p = await proxy(closed, 5);
    const s = await dial(p.port);
    s.on('error', () => undefined);
    await new Promise<void>((r) => (s.once('end', () => r()), s.once('close', () => r())));
    s.destroy();
  });

  it('refuses a negative delay, naming it', async () => {
    await assert.rejects(
      async () => startDelayProxy({ listen: { host: '127.0.0.1', port: 0 }, to: { host: '127.0.0.1', port: 1 }, delayMs: -5 }),
      /delayMs must be a number of ms ≥ 0 \(got -5\)/,
    );
  });
});
