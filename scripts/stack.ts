/**
 * The embedded stack: the Temporal dev server, the worker process (control worker + one agent per
 * local site), the sample workload, and the workloads added from a spec (started again where the
 * log places them). `fedflow up`, `fedflow down` and `npm start` use it.
 * The foreground `up` restarts a worker that dies itself; `up --detach` leaves a supervisor process
 * (scripts/supervisor.ts) to do it. `down` stops the supervisor, then the worker, the workloads'
 * instances and the dev server, each through its checked pid file (scripts/pids.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LocalProvider } from '../adapters/local/provider';
import { loadFederationConfig } from '../agent/site/config-file';
import { fedflowHome, REPO_ROOT, siteDir } from '../agent/site/home';
import { FederationLog } from '../client/federation';
import { importStateFile, stateFilePath } from '../worker/import-state-file';
import { ensureFederationWorkflow } from '../worker/federation-workflow';
import { deploySampleWorkload, type DeployedSample } from '../worker/deploy-sample';
import { restartSpecWorkloads } from '../worker/restart-workloads';
import { FRONTS_FILE, readFrontAddresses } from '../worker/fronts';
import { WorkloadRunner } from '../agent/workload/runner';
import { ensureLocalCerts } from '../agent/transfer/certs';
import type { FederationConfig } from '../core/federation-config';
import { startDevServer, DEV_SERVER_PORT, DEV_UI_PORT, type DevServerHandle } from './dev-server';
import { clearPid, isAlive, isOurs, readPid, readPidRecord, stopPid, writePid, type Managed, type StopOutcome } from './pids';
import { Backoff, exitOf, supervisorLogPath } from './supervisor';
import { spawnWorker, waitWorkerReady, workerLogOffset, workerLogPath } from './worker-process';

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

/** Reads `path` from byte `offset` on ('' when there is no such file). */
function readFrom(path: string, offset: number): string {
  return existsSync(path) ? readFileSync(path).subarray(offset).toString('utf8') : '';
}

const fileSize = (path: string) => (existsSync(path) ? statSync(path).size : 0);

/**
 * `up --detach`: a supervisor process (scripts/supervisor.ts) that outlives this command starts the
 * worker and restarts it when it dies. Returns once the worker it runs is ready. A foreground
 * `fedflow up` already running supervises its own worker, and a supervisor already running is kept.
 */
async function startSupervisor(home: string, address: string, log: (l: string) => void): Promise<void> {
  const foreground = readPid(home, 'up');
  if (foreground !== undefined && foreground !== process.pid) {
    log(`a foreground \`fedflow up\` (pid ${foreground}) runs the worker and restarts it; using it`);
    return;
  }
  const logPath = supervisorLogPath(home);
  const running = readPid(home, 'supervisor');
  if (running !== undefined) {
    log(`supervisor already running (pid ${running}; worker pid ${readPid(home, 'worker') ?? 'being restarted'}), log ${logPath}; using it`);
    return;
  }
  mkdirSync(home, { recursive: true });
  const offset = fileSize(logPath);
  const fd = openSync(logPath, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'supervisor.ts')], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, FEDFLOW_HOME: home, TEMPORAL_ADDRESS: process.env.TEMPORAL_ADDRESS ?? address },
  });
  closeSync(fd);
  child.unref();
  writePid(home, 'supervisor', child.pid!);
  log(`supervisor starting (pid ${child.pid}): it starts the worker and restarts it when it dies; restarts are logged in ${logPath}`);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const said = readFrom(logPath, offset);
    const ready = /worker pid (\d+) (?:adopted .*; )?ready$/m.exec(said);
    if (ready) return log(`worker running (pid ${ready[1]}), log ${workerLogPath(home)}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the supervisor exited (${exitOf(child.exitCode, child.signalCode)}) before the worker was ready:\n${said.slice(-1000)}\n${workerLogPath(home)} ends:\n${readFrom(workerLogPath(home), 0).slice(-1500)}`);
    }
    if (Date.now() > deadline) throw new Error(`the worker was not ready within 120 s; see ${logPath} and ${workerLogPath(home)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function up(opts: UpOptions = {}): Promise<Stack> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const home = fedflowHome();
  const config = loadFederationConfig();
  // The local federation's CA and site certificates (agents talk mutual TLS): made once, here,
  // before the worker reads them; kept across runs.
  for (const line of ensureLocalCerts(home, config)) log(line);
  const server = await startDevServer({ home, detached: opts.detach, log });
  const address = process.env.TEMPORAL_ADDRESS ?? server.address;

  let worker: ChildProcess | undefined;
  let stopping = false;
  if (opts.detach) {
    await startSupervisor(home, address, log);
  } else {
    const existingWorker = readPid(home, 'worker');
    if (existingWorker !== undefined) {
      log(`worker already running (pid ${existingWorker}); using it`);
    } else {
      const offset = workerLogOffset(home);
      worker = spawnWorker(home, address, false);
      log(`worker starting (pid ${worker.pid}), log ${workerLogPath(home)}`);
      await waitWorkerReady(home, worker, offset);
      // Supervise: a worker that dies (even kill -9) is started again, with the back-off of
      // scripts/supervisor.ts (which does this for `up --detach`), and Temporal resumes its
      // activities from their last heartbeat. This is what a process manager does in production.
      const backoff = new Backoff();
      const supervise = (child: ChildProcess, startedAt: number) =>
        child.once('exit', (code, signal) => {
          if (stopping) return;
          const delay = backoff.next(Date.now() - startedAt);
          log(`worker exited (${exitOf(code, signal)}); restarting it in ${(delay / 1000).toFixed(1)} s`);
          setTimeout(() => {
            if (stopping) return;
            worker = spawnWorker(home, address, false);
            log(`worker restarted (pid ${worker.pid})`);
            supervise(worker, Date.now());
          }, delay);
        });
      supervise(worker, Date.now());
    }
    // Only the foreground `up` stays running, for `down` to stop; a detached one exits now.
    writePid(home, 'up', process.pid);
  }

  let sample: DeployedSample | undefined;
  let sampleFront: string | undefined;
  const connection = await Connection.connect({ address });
  try {
    const client = new Client({ connection });
    const fedLog = async () => new FederationLog(client, await ensureFederationWorkflow({ client, config, home }));
    if (opts.sample !== false) {
      // A home from before the log was the one record: its workloads enter the log first.
      if (existsSync(stateFilePath(home))) await importStateFile(home, await fedLog(), log);
      sample = await deploySampleWorkload({ client, config, home, keys: opts.sampleKeys, valueBytes: opts.sampleValueBytes });
      log(`sample workload ${sample.workloadId}: ${sample.keys} keys on ${sample.site} at ${sample.address}${sample.created ? ' (deployed now)' : ''}`);
      sampleFront = await waitFrontAddress(home, sample.workloadId);
      log(
        sampleFront
          ? `stable address of ${sample.workloadId}: ${sampleFront} (clients use this; it follows the workload when it moves, e.g. curl http://${sampleFront}/kv/key-000001)`
          : `no front for ${sample.workloadId} in ${join(home, FRONTS_FILE)} after 15 s: the worker runs fronts unless FEDFLOW_FRONTS=0; see ${join(home, 'worker.log')}`,
      );
    }
    // Workloads added from a spec (`fedflow workloads add`) run again where the log places them.
    // The stack is up either way: a workload that cannot be started is said, not fatal.
    await fedLog()
      .then((l) => restartSpecWorkloads(l, config, home, log))
      .catch((err: Error) => log(`workloads added from a spec were not started again: ${err.message}`));
  } finally {
    await connection.close();
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
      if (worker && worker.exitCode === null && worker.signalCode === null) {
        worker.kill('SIGTERM');
        await new Promise((r) => worker!.once('exit', r));
      }
      if (worker) clearPid(home, 'worker');
      await stopInstances(home, config);
      if (server.child && server.child.exitCode === null) {
        server.child.kill('SIGTERM');
        await new Promise((r) => server.child!.once('exit', r));
      }
      if (server.child) clearPid(home, 'server');
      await server.stopInProcess?.();
    },
  };
}

/** The worker opens a workload's front on its next read of the log (every second): wait for it. */
export async function waitFrontAddress(home: string, workloadId: string): Promise<string | undefined> {
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
    // Workloads added from a spec: stopped cleanly by their site's runner.
    const runner = new WorkloadRunner({ site: site.id, siteDir: siteDir(site.id, home), fedflowRoot: REPO_ROOT });
    for (const id of runner.installedIds()) {
      if (!runner.info(id).running) continue;
      await runner.stop(id);
      n++;
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
      // It stops what it started (its worker, the instances, the server): wait for it, so that
      // what follows reports what is left, not a race with it.
      const deadline = Date.now() + 30_000;
      while (isOurs(up) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      log(isOurs(up) ? `the foreground \`fedflow up\` (pid ${up.pid}) is still stopping after 30 s; stopping what is left from here` : `the foreground \`fedflow up\` (pid ${up.pid}) has stopped, with what it started`);
    } else if (isAlive(up.pid)) log(notOurs('up', up.pid));
  }
  clearPid(home, 'up');
  // The supervisor of `up --detach` first, so that it does not start the worker again.
  log(said('supervisor', await stopPid(home, 'supervisor'), 'supervisor stopped (it restarts the worker no more)', 'no supervisor was running'));
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
