/**
 * Starts (or finds running) the embedded Temporal dev server: SQLite state under the fedflow
 * home, frontend on 7233 and Web UI on 8233 (FEDFLOW_DEV_SERVER_PORT, FEDFLOW_DEV_UI_PORT), and the
 * search attributes of DESIGN.md registered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { devServerSearchAttributeArgs } from '../core/search-attributes';
import { findTemporalCli, TemporalCliNotFound } from './temporal-cli';
import { writePid } from './pids';

export const DEV_SERVER_PORT = 7233;
export const DEV_UI_PORT = 8233;

/** A port from the environment (`FEDFLOW_DEV_SERVER_PORT`, `FEDFLOW_DEV_UI_PORT`), or `fallback`. */
export function portFromEnv(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${name} is '${v.slice(0, 20)}'; expected a port number, 1 to 65535`);
  return n;
}

export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Extra `temporal server start-dev` flags from `FEDFLOW_DEV_SERVER_ARGS` (split on spaces), for the
 * embedded server and the tests' servers alike, e.g. dynamic config:
 *   FEDFLOW_DEV_SERVER_ARGS="--dynamic-config-value history.transferProcessorMaxPollRPS=2000"
 * (the dev server's single history shard polls its transfer queue at most 20 times a second by
 * default, which puts ~50 ms on every activity and workflow task dispatch once a burst is used up;
 * see docs/consensus.md).
 */
export function extraDevServerArgs(): string[] {
  return (process.env.FEDFLOW_DEV_SERVER_ARGS ?? '').split(' ').filter(Boolean);
}

export async function waitForPort(port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await portOpen(port)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not open port ${port} within ${timeoutMs / 1000} s`);
}

export interface DevServerHandle {
  /** Present when this call started it. */
  child?: ChildProcess;
  reused: boolean;
  address: string;
  uiUrl: string;
  /** An in-process server from @temporalio/testing's download (machines with internet but no Go). */
  stopInProcess?: () => Promise<void>;
}

export interface DevServerOptions {
  home: string;
  detached?: boolean;
  port?: number;
  uiPort?: number;
  log?: (line: string) => void;
}

export async function startDevServer(opts: DevServerOptions): Promise<DevServerHandle> {
  const port = opts.port ?? portFromEnv('FEDFLOW_DEV_SERVER_PORT', DEV_SERVER_PORT);
  const uiPort = opts.uiPort ?? portFromEnv('FEDFLOW_DEV_UI_PORT', DEV_UI_PORT);
  const log = opts.log ?? ((l: string) => console.log(l));
  const address = `127.0.0.1:${port}`;
  const uiUrl = `http://localhost:${uiPort}`;
  if (await portOpen(port)) {
    log(`Temporal dev server already listening on ${address}; using it`);
    return { reused: true, address, uiUrl };
  }
  mkdirSync(opts.home, { recursive: true });
  let cliPath: string;
  try {
    cliPath = findTemporalCli({ log }).path;
  } catch (err) {
    if (err instanceof TemporalCliNotFound && !err.tried.some((t) => t.startsWith('Go build: exit'))) {
      return startWithSdkDownload(opts.home, port, uiPort, log, err);
    }
    throw err;
  }
  const args = [
    'server', 'start-dev',
    '--db-filename', join(opts.home, 'temporal.db'),
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--ui-port', String(uiPort),
    '--namespace', 'default',
    '--log-level', 'warn',
    ...devServerSearchAttributeArgs(),
    ...extraDevServerArgs(),
  ];
  const logPath = join(opts.home, 'temporal-server.log');
  const fd = openSync(logPath, 'a');
  const child = spawn(cliPath, args, { detached: !!opts.detached, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (opts.detached) child.unref();
  writePid(opts.home, 'server', child.pid!);
  log(`Temporal dev server starting (${cliPath}), state ${join(opts.home, 'temporal.db')}, log ${logPath}`);
  try {
    await waitForPort(port, 60_000, 'the Temporal dev server');
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; see ${logPath}`);
  }
  return { child, reused: false, address, uiUrl };
}

/** Last resort on a machine with internet but no Go: @temporalio/testing downloads a dev server. */
async function startWithSdkDownload(home: string, port: number, uiPort: number, log: (l: string) => void, why: TemporalCliNotFound): Promise<DevServerHandle> {
  log(`${why.message}\nTrying @temporalio/testing's own download of the dev server (needs internet) ...`);
  let mod: typeof import('@temporalio/testing');
  try {
    mod = await import('@temporalio/testing');
  } catch {
    throw why;
  }
  const { SEARCH_ATTRIBUTES } = await import('../core/search-attributes');
  try {
    const env = await mod.TestWorkflowEnvironment.createLocal({
      server: { port, ui: true, uiPort, dbFilename: join(home, 'temporal.db'), searchAttributes: [...SEARCH_ATTRIBUTES], ip: '127.0.0.1' },
    });
    return { reused: false, address: `127.0.0.1:${port}`, uiUrl: `http://localhost:${uiPort}`, stopInProcess: () => env.teardown() };
  } catch (err) {
    throw new TemporalCliNotFound([...why.tried, `@temporalio/testing download: ${(err as Error).message}`]);
  }
}
