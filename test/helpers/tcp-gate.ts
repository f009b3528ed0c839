/**
 * A TCP pass-through on loopback that a test can shut and open: while shut, it cuts every
 * connection it carries and refuses new ones (accepts, then destroys them), as a link that is down
 * would; once open, it carries connections to `to` again.
 *
 * Why: after a restart of the Temporal server, a worker whose activity still runs heartbeats again
 * at once, and whether the server first times out the attempt (its heartbeat timer, overdue since
 * the outage) or first takes the new heartbeat is a race. A test that needs the attempt given up
 * keeps that worker's link shut until the server has done so (test/integration/server-crash.test.ts).
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface TcpGate {
  /** host:port to give the client instead of `to`. */
  address: string;
  /** Cut every connection now and refuse new ones until open(). */
  shut(): void;
  open(): void;
  /** Connections refused while shut. */
  refused(): number;
  close(): Promise<void>;
}

export async function startTcpGate(to: { host: string; port: number }): Promise<TcpGate> {
  let isOpen = true;
  let refused = 0;
  const live = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (!isOpen) {
      refused++;
      client.destroy();
      return;
    }
    const upstream = createConnection(to);
    for (const s of [client, upstream]) {
      live.add(s);
      s.setNoDelay(true);
      s.on('error', () => undefined);
      s.on('close', () => {
        live.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  const cutAll = () => {
    for (const s of live) s.destroy();
    live.clear();
  };
  return {
    address: `127.0.0.1:${port}`,
    shut() {
      isOpen = false;
      cutAll();
    },
    open() {
      isOpen = true;
    },
    refused: () => refused,
    close() {
      cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
