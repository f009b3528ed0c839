/**
 * A Temporal dev server a test can kill -9 and start again on the same port and SQLite file, as
 * an operator's crash and restart would: the same start-up `fedflow up` uses (scripts/dev-server.ts),
 * on free ports, its state in the test's own home.
 */
import { createServer } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { startDevServer, type DevServerHandle } from '../../scripts/dev-server';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface KillableServer {
  address: string;
  /** A client of its own, which reconnects by itself once the server is back. */
  client: Client;
  /** kill -9 the server process and wait for it to exit. */
  kill(): Promise<void>;
  /** Start it again on the same port and state. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startKillableServer(home: string): Promise<KillableServer> {
  const port = await freePort();
  const uiPort = await freePort();
  const start = () => startDevServer({ home, port, uiPort, log: () => undefined });
  let handle: DevServerHandle = await start();
  if (!handle.child) throw new Error('the test server must be a child of this process (a dev server was already listening)');
  const address = handle.address;
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  const kill = async () => {
    const child = handle.child!;
    if (child.exitCode !== null || child.signalCode) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  return {
    address,
    client,
    kill,
    async restart() {
      handle = await start();
      if (!handle.child) throw new Error(`port ${port} was taken while the test server was down`);
    },
    async stop() {
      await connection.close().catch(() => undefined);
      await kill();
    },
  };
}
