/**
 * The embedded stack: the Temporal dev server, the worker process (control worker + one agent per
 * local site) and the sample workload. `fedflow up`, `fedflow down` and `npm start` use it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LocalProvider } from '../adapters/local/provider';
import { loadFederationConfig } from '../agent/site/config-file';
import { fedflowHome, REPO_ROOT, siteDir } from '../agent/site/home';
import { FederationLog } from '../client/federation';
import { importStateFile, stateFilePath } from '../worker/import-state-file';
import { ensureFederationWorkflow } from '../worker/federation-workflow';
import { deploySampleWorkload, type DeployedSample } from '../worker/deploy-sample';
import { FRONTS_FILE, readFrontAddresses } from '../worker/fronts';
import type { FederationConfig } from '../core/federation-config';
import { startDevServer, DEV_SERVER_PORT, DEV_UI_PORT, type DevServerHandle } from './dev-server';
import { clearPid, isAlive, isOurs, readPid, readPidRecord, stopPid, writePid, type Managed, type StopOutcome } from './pids';

export interface UpOptions {
  detach?: boolean;
  sample?: boolean;
  sampleKeys?: number;
  sampleValueBytes?: number;
  log?: (line: string) => void;
}

export interface Stack {
  home: string;
  config: FederationConfig;
  server: DevServerHandle;
  sample?: DeployedSample;
  /** The sample's stable address (its front, host:port): it follows the workload from site to site. */
  sampleFront?: string;
  uiUrl: string;
  address: string;
  /** Stops what this `up` started (foreground mode). */
  stop(): Promise<void>;
}

function spawnWorker(home: string, address: string, detached: boolean): ChildProcess {
  const logPath = join(home, 'worker.log');
  const fd = openSync(logPath, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'worker', 'main.ts')], {
    cwd: REPO_ROOT,
    detached,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, FEDFLOW_HOME: home, TEMPORAL_ADDRESS: process.env.TEMPORAL_ADDRESS ?? address },
  });
  closeSync(fd);
  if (detached) child.unref();
  writePid(home, 'worker', child.pid!);
  return child;
}

async function waitWorkerReady(home: string, child: ChildProcess, fromOffset: number): Promise<void> {
  const logPath = join(home, 'worker.log');
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const text = existsSync(logPath) ? readFileSync(logPath, 'utf8').slice(fromOffset) : '';
    if (/\] .*; ready/.test(text)) return;
    if (child.exitCode !== null) throw new Error(`the worker exited with code ${child.exitCode} while starting:\n${text.slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the worker did not become ready within 120 s; see ${logPath}`);
}

export async function up(opts: UpOptions = {}): Promise<Stack> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const home = fedflowHome();
  const config = loadFederationConfig();
  const server = await startDevServer({ home, detached: opts.detach, log });
  const address = process.env.TEMPORAL_ADDRESS ?? server.address;

  let worker: ChildProcess | undefined;
  let stopping = false;
  const existingWorker = readPid(home, 'worker');
  if (isAlive(existingWorker)) {
    log(`worker already running (pid ${existingWorker}); using it`);
  } else {
    const logPath = join(home, 'worker.log');
    const offset = existsSync(logPath) ? statSync(logPath).size : 0;
    worker = spawnWorker(home, address, !!opts.detach);
    log(`worker starting (pid ${worker.pid}), log ${logPath}`);
    await waitWorkerReady(home, worker, offset);
    if (!opts.detach) {
      // Supervise: a worker that dies (even kill -9) is started again, and Temporal resumes its
      // activities from their last heartbeat. This is what a process manager does in production.
      const supervise = (child: ChildProcess) =>
        child.once('exit', (code, signal) => {
          if (stopping) return;
          log(`worker exited (${signal ?? `code ${code}`}); restarting it in 1 s`);
          setTimeout(() => {
            if (stopping) return;
            worker = spawnWorker(home, address, false);
            log(`worker restarted (pid ${worker.pid})`);
            supervise(worker);
          }, 1000);
        });
      supervise(worker);
    }
  }
  writePid(home, 'up', process.pid);

  let sample: DeployedSample | undefined;
  let sampleFront: string | undefined;
  if (opts.sample !== false) {
    const connection = await Connection.connect({ address });
    try {
      const client = new Client({ connection });
      // A home from before the log was the one record: its workloads enter the log first.
      if (existsSync(stateFilePath(home))) {
        const fedLog = new FederationLog(client, await ensureFederationWorkflow({ client, config, home }));
        await importStateFile(home, fedLog, log);
      }
      sample = await deploySampleWorkload({ client, config, home, keys: opts.sampleKeys, valueBytes: opts.sampleValueBytes });
    } finally {
      await connection.close();
    }
    log(`sample workload ${sample.workloadId}: ${sample.keys} keys on ${sample.site} at ${sample.address}${sample.created ? ' (deployed now)' : ''}`);
    sampleFront = await waitFrontAddress(home, sample.workloadId);
    log(
      sampleFront
        ? `stable address of ${sample.workloadId}: ${sampleFront} (clients use this; it follows the workload when it moves, e.g. curl http://${sampleFront}/kv/key-000001)`
        : `no front for ${sample.workloadId} in ${join(home, FRONTS_FILE)} after 15 s: the worker runs fronts unless FEDFLOW_FRONTS=0; see ${join(home, 'worker.log')}`,
    );
  }
  return {
    home,
    config,
    server,
    sample,
    sampleFront,
    uiUrl: server.uiUrl,
    address,
    async stop() {
      stopping = true;
      clearPid(home, 'up');
      if (worker && worker.exitCode === null) {
        worker.kill('SIGTERM');
        await new Promise((r) => worker!.once('exit', r));
      }
      await stopInstances(home, config);
      if (server.child && server.child.exitCode === null) {
        server.child.kill('SIGTERM');
        await new Promise((r) => server.child!.once('exit', r));
      }
      await server.stopInProcess?.();
    },
  };
}

/** The worker opens a workload's front on its next read of the log (every second): wait for it. */
async function waitFrontAddress(home: string, workloadId: string): Promise<string | undefined> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const a = readFrontAddresses(home)[workloadId];
    if (a) return a;
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

async function stopInstances(home: string, config: FederationConfig): Promise<number> {
  let n = 0;
  for (const site of config.sites) {
    // Every site has a local side here: a cloud site's agent runs its workload's stand-in.
    const p = new LocalProvider({ site: site.id, dir: siteDir(site.id, home), capacityInstances: site.capacity.instances });
    for (const ref of p.liveInstances()) {
      const st = await p.describeInstance(ref);
      if (st.status === 'running') {
        await p.stopInstance(ref);
        n++;
      }
    }
  }
  return n;
}

/** Stops everything `fedflow up` started, from any shell. State (SQLite, volumes) is kept. */
export async function down(log: (l: string) => void = console.log): Promise<void> {
  const home = fedflowHome();
  const config = loadFederationConfig();
  const up = readPidRecord(home, 'up');
  if (up && up.pid !== process.pid) {
    // Checked like every pid: a stale up.pid may name whatever process has that number now.
    if (isOurs(up)) {
      process.kill(up.pid, 'SIGTERM');
      log(`asked the foreground \`fedflow up\` (pid ${up.pid}) to stop`);
    } else if (isAlive(up.pid)) log(notOurs('up', up.pid));
  }
  clearPid(home, 'up');
  log(said('worker', await stopPid(home, 'worker'), 'worker stopped', 'worker was not running'));
  const n = await stopInstances(home, config);
  log(`${n} workload instance(s) stopped (their volumes are kept)`);
  log(said('server', await stopPid(home, 'server'), 'Temporal dev server stopped', 'Temporal dev server was not running (or not started by fedflow)'));
}

function notOurs(what: Managed, pid: number): string {
  return `the ${what} pid file named pid ${pid}, which is now another process (not the one fedflow started): left it alone and removed the stale pid file`;
}

function said(what: Managed, r: StopOutcome, stopped: string, notRunning: string): string {
  return r.outcome === 'stopped' ? stopped : r.outcome === 'not-ours' ? notOurs(what, r.pid!) : notRunning;
}

export { DEV_SERVER_PORT, DEV_UI_PORT };
