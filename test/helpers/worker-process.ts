/** The worker as a separate OS process, so a test can kill -9 it as an operator's crash would. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { LocalProvider } from '../../adapters/local/provider';
import { REPO_ROOT, siteDir } from '../../agent/site/home';
import { WorkloadRunner } from '../../agent/workload/runner';
import { parseFederationConfig } from '../../core/federation-config';
import { startTestServer } from './temporal';

export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves once the worker logged that it is ready. */
  ready: Promise<void>;
}

export function spawnWorker(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'worker', 'main.ts')], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready within 90 s:\n${out}`)), 90_000);
    const check = () => {
      if (/; ready/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${sig ?? code}) before it was ready:\n${out}`));
    });
  });
  ready.catch(() => undefined);
  return { child, output: () => out, ready };
}

export async function killHard(w: WorkerProcess): Promise<void> {
  if (w.child.exitCode !== null || w.child.signalCode) return;
  const exited = new Promise((r) => w.child.once('exit', r));
  w.child.kill('SIGKILL');
  await exited;
}

export interface ProcessFederation {
  readonly env: TestWorkflowEnvironment;
  /** FEDFLOW_HOME, holding federation.json. */
  readonly home: string;
  /** The environment a worker process of this federation needs (add FEDFLOW_SITES, FEDFLOW_CONTROL). */
  readonly workerEnv: Record<string, string>;
  /** Every worker the test spawns goes here: all are killed at the end. */
  readonly workers: WorkerProcess[];
}

/**
 * A dev server and a federation home with `config`, for a suite whose workers run as processes
 * (to be killed with -9). At the end: every worker killed, every instance stopped, the home gone.
 */
export function useProcessFederation(config: object, prefix: string): ProcessFederation {
  let env: TestWorkflowEnvironment | undefined;
  let home: string | undefined;
  const workers: WorkerProcess[] = [];
  before(async () => {
    env = await startTestServer();
    home = mkdtempSync(join(tmpdir(), prefix));
    writeFileSync(join(home, 'federation.json'), JSON.stringify(config));
  });
  after(async () => {
    for (const w of workers) await killHard(w);
    if (home) {
      for (const s of parseFederationConfig(config).sites) {
        const p = new LocalProvider({ site: s.id, dir: siteDir(s.id, home), capacityInstances: 2 });
        for (const ref of p.liveInstances()) await p.stopInstance(ref).catch(() => undefined);
        // And the workloads added from a spec, which the site's runner started.
        const runner = new WorkloadRunner({ site: s.id, siteDir: siteDir(s.id, home), fedflowRoot: REPO_ROOT });
        for (const id of runner.installedIds()) await runner.stop(id).catch(() => undefined);
      }
      rmSync(home, { recursive: true, force: true });
    }
    await env?.teardown();
  });
  return {
    get env() {
      if (!env) throw new Error('the dev server starts in the suite\'s before hook');
      return env;
    },
    get home() {
      if (!home) throw new Error('the home is made in the suite\'s before hook');
      return home;
    },
    get workerEnv() {
      return { FEDFLOW_HOME: this.home, FEDFLOW_CONFIG: join(this.home, 'federation.json'), TEMPORAL_ADDRESS: this.env.address };
    },
    workers,
  };
}
