/**
 * The network facts the runner needs: a free port for a new instance, whether a port is still
 * free, and a TCP health check.
 */
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { TcpCheck } from '../../core/workload-spec';

/** Linux's default ephemeral range (net.ipv4.ip_local_port_range), when /proc cannot be read. */
const DEFAULT_EPHEMERAL: readonly [number, number] = [32768, 60999];
/** The lowest port handed to an instance: above the well-known and most registered services' ports. */
const INSTANCE_PORT_FLOOR = 20000;
/** The highest below the ephemeral range: under Kubernetes' NodePorts (30000-32767), which kube-proxy catches on a node. */
const INSTANCE_PORT_CEILING = 29999;

/** The kernel's ephemeral port range: every outgoing connection takes its local port from it. */
export function ephemeralRange(text?: string): [number, number] {
  try {
    const [lo, hi] = (text ?? readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi) && lo! >= 1 && lo! <= hi! && hi! <= 65535) return [lo!, hi!];
  } catch {
    // No /proc (not Linux): the default range.
  }
  return [...DEFAULT_EPHEMERAL];
}

/**
 * Where instance ports come from: outside the ephemeral range. A port is chosen when the target's
 * standby is prepared (the placement names it) and listened on only at the cut-over; any outgoing
 * connection made in between may take an ephemeral port as its own, and a connection's port,
 * open or in TIME_WAIT (60 s), blocks a listen on it even with SO_REUSEADDR. The same reasoning
 * keeps Kubernetes' NodePorts (30000-32767) below Linux's default range, and this range below
 * them: 20000-29999 with the default range. Below the ephemeral range when there is room, else
 * above it; `undefined` when neither has 1000 ports.
 */
export function instancePortRange(ephemeral: [number, number] = ephemeralRange()): [number, number] | undefined {
  const [lo, hi] = ephemeral;
  const top = Math.min(lo - 1, INSTANCE_PORT_CEILING);
  if (top - INSTANCE_PORT_FLOOR + 1 >= 1000) return [INSTANCE_PORT_FLOOR, top];
  // Above it: never in the NodePorts either.
  const bottom = Math.max(hi + 1, INSTANCE_PORT_FLOOR, hi + 1 <= 32767 ? 32768 : 0);
  if (65535 - bottom + 1 >= 1000) return [bottom, 65535];
  return undefined;
}

/**
 * Ports this process handed out: two runners in one process (sites of a local federation) never
 * get the same one, however long a standby waits before it listens. Bounded: past half the range,
 * the oldest are forgotten (a standby that old has long been started or removed).
 */
const handedOut = new Set<number>();

/**
 * A port nobody listens on now, for a new instance; kept in the record so restarts reuse it.
 * Drawn at random from {@link instancePortRange} (random, so that agents on one host rarely try
 * the same one); the kernel's pick only when no range outside the ephemeral one is left.
 */
export async function freePort(host: string, range: [number, number] | undefined = instancePortRange()): Promise<number> {
  // Bounded by the process's own range (a call with a narrower one must not empty the map).
  const own = instancePortRange();
  const bound = own ? Math.floor((own[1] - own[0] + 1) / 2) : 1000;
  for (const p of handedOut) {
    if (handedOut.size <= bound) break;
    handedOut.delete(p);
  }
  if (range) {
    const [lo, hi] = range;
    const size = hi - lo + 1;
    const start = Math.floor(Math.random() * size);
    for (let i = 0, tried = 0; i < size && tried < 200; i++) {
      const port = lo + ((start + i) % size);
      if (handedOut.has(port)) continue;
      tried++;
      // Reserved before the check, so that two calls at once never both take it.
      handedOut.add(port);
      if (await portFree(host, port)) return port;
      handedOut.delete(port);
    }
  }
  const port = await kernelPort(host);
  handedOut.add(port);
  return port;
}

/** The kernel's pick of a free port (from the ephemeral range). */
function kernelPort(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolvePort(port));
    });
  });
}

/**
 * A TCP health check: a connection accepted within the timeout; with an exchange, also an answer
 * that begins with `expect` (read until it has as many bytes, or differs).
 */
export function tcpCheck(host: string, port: number, timeoutMs: number, exchange: TcpExchange = {}): Promise<{ ok: boolean; detail: string }> {
  const at = `TCP ${host}:${port}`;
  const expect = exchange.expect;
  return new Promise((done) => {
    const s = connect({ host, port });
    let answer = Buffer.alloc(0);
    let settled = false;
    const finish = (r: { ok: boolean; detail: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      // A half-close, so the service reads an orderly end (PostgreSQL logs a reset, not an end,
      // at LOG level); the socket is destroyed once the peer closes too, or a second later.
      s.end();
      setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
      done(r);
    };
    let connected = false;
    const t = setTimeout(() => {
      finish({ ok: false, detail: `no ${expect && connected ? 'answer' : 'connection'} from ${at} within ${timeoutMs} ms${answer.length ? ` (so far: ${printable(answer)})` : ''}` });
      s.destroy();
    }, timeoutMs);
    s.once('connect', () => {
      connected = true;
      if (!expect) return finish({ ok: true, detail: `${at} accepts` });
      if (exchange.send?.length) s.write(exchange.send);
    });
    s.on('data', (d: Buffer) => {
      if (settled || !expect) return;
      answer = Buffer.concat([answer, d]);
      if (answer.length < expect.length && answer.equals(expect.subarray(0, answer.length))) return;
      const ok = answer.subarray(0, expect.length).equals(expect);
      finish({ ok, detail: ok ? `${at} answered as expected` : `${at} answered ${printable(answer)}, not ${printable(expect)}…` });
    });
    s.once('end', () => finish({ ok: false, detail: `${at} closed the connection after ${answer.length ? printable(answer) : 'no answer'}${expect ? `, expected ${printable(expect)}…` : ''}` }));
    s.on('error', (err) => finish({ ok: false, detail: `${at}: ${err.message}` }));
  });
}

/** A TCP check's exchange: bytes to send once connected, and the bytes its answer must begin with. */
export interface TcpExchange {
  send?: Buffer;
  expect?: Buffer;
}

/** A spec's TCP check as the bytes it sends and expects. */
export function tcpExchange(t: TcpCheck): TcpExchange {
  const bytes = (text?: string, hex?: string) => (hex !== undefined ? Buffer.from(hex, 'hex') : text !== undefined ? Buffer.from(text, 'utf8') : undefined);
  const send = bytes(t.send, t.sendHex);
  const expect = bytes(t.expect, t.expectHex);
  return { ...(send ? { send } : {}), ...(expect ? { expect } : {}) };
}

/** How long a check's socket waits, half-closed, for the service to close its end. */
const CLOSE_GRACE_MS = 1_000;

/** At most 80 bytes of `b` as text, with anything not printable ASCII as \xNN. */
export function printable(b: Buffer): string {
  let out = '';
  for (const c of b.subarray(0, 80)) out += c >= 0x20 && c < 0x7f && c !== 0x5c && c !== 0x22 ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  return `"${out}${b.length > 80 ? '…' : ''}"`;
}

/** Whether `port` can be listened on now (the instance's last port, before reusing it). */
export async function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const srv = createServer();
    srv.once('error', () => done(false));
    srv.listen(port, host, () => srv.close(() => done(true)));
  });
}
