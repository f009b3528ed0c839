/**
 * A Temporal dev server a test can kill -9 and start again on the same port and SQLite file, as
 * an operator's crash and restart would: the same start-up `fedflow up` uses (scripts/dev-server.ts),
 * on free ports, its state in the test's own home.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { LocalProvider } from '../../adapters/local/provider';
import { siteDir } from '../../agent/site/home';
import { parseFederationConfig } from '../../core/federation-config';
import { startDevServer, type DevServerHandle } from '../../scripts/dev-server';
import { killHard, type WorkerProcess } from './worker-process';

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

export interface KillableFederation {
  readonly server: KillableServer;
  /** FEDFLOW_HOME, holding federation.json. */
  readonly home: string;
  /** The environment a worker process or the CLI of this federation needs. */
  readonly workerEnv: Record<string, string>;
  /** Every worker the test spawns goes here: all are killed at the end. */
  readonly workers: WorkerProcess[];
}

/**
 * useProcessFederation (./worker-process.ts) with a server the test can kill -9 and restart: a
 * federation home with `config`, workers as processes. At the end: every worker killed, every
 * instance stopped, the server stopped, the home gone.
 */
export function useKillableFederation(config: object, prefix: string): KillableFederation {
  let server: KillableServer | undefined;
  let home: string | undefined;
  const workers: WorkerProcess[] = [];
  before(async () => {
    home = mkdtempSync(join(tmpdir(), prefix));
    writeFileSync(join(home, 'federation.json'), JSON.stringify(config));
    server = await startKillableServer(home);
  });
  after(async () => {
    for (const w of workers) await killHard(w);
    if (home) {
      for (const s of parseFederationConfig(config).sites) {
        const p = new LocalProvider({ site: s.id, dir: siteDir(s.id, home), capacityInstances: s.capacity.instances });
        for (const ref of p.liveInstances()) await p.stopInstance(ref).catch(() => undefined);
      }
    }
    await server?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });
  return {
    get server() {
      if (!server) throw new Error("the server starts in the suite's before hook");
      return server;
    },
    get home() {
      if (!home) throw new Error("the home is made in the suite's before hook");
      return home;
    },
    get workerEnv() {
      return { FEDFLOW_HOME: this.home, FEDFLOW_CONFIG: join(this.home, 'federation.json'), TEMPORAL_ADDRESS: this.server.address };
    },
    workers,
  };
}
