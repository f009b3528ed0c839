/**
 * A one-way delay on a link, emulated in process: a TCP proxy that holds every chunk of bytes it
 * reads for `delayMs` before it writes it on, in both directions, in order.
 *
 * Why: the hosts tier shapes links with `tc`, and `tbf` gives a rate, but delay is `netem`'s job,
 * and `sch_netem` is not in every kernel (not in this project's test machine's, which has no modules
 * to load: `tc qdisc add dev lo root netem delay 10ms` answers "Error: Specified qdisc kind is
 * unknown."). Without a delay, a bridge between
 * namespaces has a round trip far under a millisecond, which no two sites ever have. So the proxy stands in
 * front of an agent, on the agent's host (its network namespace): the agent listens on its port,
 * the proxy on another one, and the federation config advertises the proxy's port as the site's
 * `agentUrl`. Every connection another site opens to that agent (chunk pulls, federation votes,
 * probes) then crosses a link whose round trip is 2 × `delayMs` longer. TLS passes through
 * untouched: the proxy sees only bytes, so mutual TLS between the two agents is end to end.
 *
 * How: each direction is a FIFO of (due time, chunk). A chunk read at t is written at t + delayMs;
 * one timer waits for the head. End of stream (a FIN) is queued like a chunk, so a half-close is
 * delayed too; a reset (an error) is passed on at once, as a cut link would. Both sockets run with
 * TCP_NODELAY, so Nagle adds nothing to the delay. Bytes waiting for their time are bounded by
 * `maxInFlight` (default 16 MiB, above rate × delay for any link the tests shape), and the proxy
 * also stops reading while the far side does not drain: TCP's own flow control then pushes back on
 * the sender, as a full link queue would. (Without the second bound, a cut far side would let the
 * proxy swallow 16 MiB that the sender counts as sent.)
 * Timers are late under load, never early: the emulated delay is at least `delayMs`.
 *
 * Use it in a test or a benchmark: `startDelayProxy(...)` in this process, or, on a namespace's
 * host, `delayProxyCommand(...)` run by `startCommand(label, cmd, hosts.exec(name))`
 * (test/helpers/units.ts), which runs this file as a program:
 *   node --import tsx test/helpers/delay-proxy.ts --listen 0.0.0.0:7444 --to 127.0.0.1:7443 --delay-ms 15
 * It prints `... ; ready` once it listens, and stops on SIGTERM or SIGINT.
 */
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const REPO = join(__dirname, '..', '..');

export interface DelayProxyOptions {
  /** Where the proxy listens (host; port 0 picks a free one). */
  listen: { host: string; port: number };
  /** Where it forwards every connection. */
  to: { host: string; port: number };
  /** The one-way delay in ms, added in each direction (a round trip gets 2 × delayMs). */
  delayMs: number;
  /** Bytes held in one direction before the proxy stops reading (default 16 MiB). */
  maxInFlight?: number;
}

export interface DelayProxy {
  /** The port it listens on. */
  port: number;
  /** Connections accepted so far. */
  connections(): number;
  /** Stops listening and cuts every open connection. */
  close(): Promise<void>;
}

const DEFAULT_MAX_IN_FLIGHT = 16 * 1024 * 1024;

/**
 * Copies `from` into `to`, every chunk (and the end of stream) `delayMs` late, in order. Two
 * bounds keep what the proxy holds near what a real link holds (rate × delay): it stops reading
 * when `maxInFlight` bytes wait for their time, and when `to` does not drain (a slow or cut far
 * side), so that the sender feels the far side's pace through TCP as it would without the proxy.
 */
function delayedPipe(from: Socket, to: Socket, delayMs: number, maxInFlight: number): void {
  // null stands for the end of stream, delayed like data.
  const queue: { due: number; chunk: Buffer | null }[] = [];
  let held = 0;
  let timer: NodeJS.Timeout | undefined;
  const relieve = () => {
    if (from.isPaused() && held < maxInFlight / 2 && !to.writableNeedDrain) from.resume();
  };
  const schedule = () => {
    // With `to` full, its 'drain' flushes next.
    if (timer || !queue.length || to.writableNeedDrain) return;
    timer = setTimeout(flush, Math.max(0, queue[0]!.due - performance.now()));
  };
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const now = performance.now();
    while (queue.length && queue[0]!.due <= now && !to.writableNeedDrain) {
      const { chunk } = queue.shift()!;
      if (to.destroyed) return;
      if (chunk === null) {
        to.end();
        return;
      }
      held -= chunk.length;
      to.write(chunk);
    }
    relieve();
    schedule();
  };
  from.on('data', (chunk: Buffer) => {
    queue.push({ due: performance.now() + delayMs, chunk });
    held += chunk.length;
    if (held >= maxInFlight || to.writableNeedDrain) from.pause();
    schedule();
  });
  from.on('end', () => {
    queue.push({ due: performance.now() + delayMs, chunk: null });
    schedule();
  });
  to.on('drain', flush);
  from.on('close', () => {
    // Closed without an end of stream: a reset, passed on now (as a cut link would).
    if (!from.readableEnded) {
      if (timer) clearTimeout(timer);
      queue.length = 0;
      to.destroy();
    }
  });
}

export function startDelayProxy(opts: DelayProxyOptions): Promise<DelayProxy> {
  if (!Number.isFinite(opts.delayMs) || opts.delayMs < 0) throw new Error(`delay proxy: delayMs must be a number of ms ≥ 0 (got ${opts.delayMs})`);
  const maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  const open = new Set<Socket>();
  let accepted = 0;
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    accepted++;
    const upstream = createConnection({ host: opts.to.host, port: opts.to.port, allowHalfOpen: true, noDelay: true });
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      // An error on one side cuts the other: the peer sees a reset, not a hang.
      s.on('error', () => (client.destroy(), upstream.destroy()));
    }
    delayedPipe(client, upstream, opts.delayMs, maxInFlight);
    delayedPipe(upstream, client, opts.delayMs, maxInFlight);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listen.port, opts.listen.host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve({
        port: typeof address === 'object' && address ? address.port : opts.listen.port,
        connections: () => accepted,
        close: () =>
          new Promise<void>((done) => {
            for (const s of open) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/**
 * The command line that runs this file as a program (for `startCommand(label, cmd, hosts.exec(host))`,
 * so the proxy runs on a namespace's host): ready once it prints `; ready`.
 */
export function delayProxyCommand(opts: DelayProxyOptions): { argv: string[]; env: Record<string, string> } {
  return {
    // tsx by its path, as bin/fedflow loads it: the command runs from any working directory.
    argv: [process.execPath, '--import', pathToFileURL(join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href, join(__dirname, 'delay-proxy.ts'), '--listen', `${opts.listen.host}:${opts.listen.port}`, '--to', `${opts.to.host}:${opts.to.port}`, '--delay-ms', String(opts.delayMs)],
    env: {},
  };
}

function hostPort(flag: string, value: string | undefined): { host: string; port: number } {
  const m = value ? /^(.+):(\d{1,5})$/.exec(value) : null;
  if (!m || Number(m[2]) > 65535) throw new Error(`${flag} takes host:port, e.g. 127.0.0.1:7443 (got ${value ?? 'nothing'})`);
  return { host: m[1]!, port: Number(m[2]) };
}

async function main(argv: string[]): Promise<void> {
  const arg = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const delay = arg('--delay-ms');
  if (delay === undefined || !/^\d+(\.\d+)?$/.test(delay)) throw new Error(`--delay-ms takes the one-way delay in ms, e.g. --delay-ms 15 (got ${delay ?? 'nothing'})`);
  const opts = { listen: hostPort('--listen', arg('--listen')), to: hostPort('--to', arg('--to')), delayMs: Number(delay) };
  const proxy = await startDelayProxy(opts);
  const stop = () => void proxy.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  console.log(`delay proxy on ${opts.listen.host}:${proxy.port} to ${opts.to.host}:${opts.to.port}, ${opts.delayMs} ms each way; ready`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
