/**
 * The worker process of the embedded stack (worker/main.ts: the control worker and one agent per
 * local site), as `fedflow up` and the supervisor start it: output appended to <home>/worker.log,
 * its pid file written (scripts/pids.ts), and ready once it logs `pid <pid>; ready`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../agent/site/home';
import { writePid } from './pids';

export const workerLogPath = (home: string) => join(home, 'worker.log');

/** Where the worker log ends now: a readiness wait reads only what comes after it. */
export function workerLogOffset(home: string): number {
  const p = workerLogPath(home);
  return existsSync(p) ? statSync(p).size : 0;
}

export function spawnWorker(home: string, address: string, detached: boolean): ChildProcess {
  const fd = openSync(workerLogPath(home), 'a');
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

/** Resolves once the worker `child` logged that it is ready; throws if it exits first, or after `timeoutMs`. */
export async function waitWorkerReady(home: string, child: ChildProcess, fromOffset: number, timeoutMs = 120_000): Promise<void> {
  const logPath = workerLogPath(home);
  const deadline = Date.now() + timeoutMs;
  const ready = new RegExp(`pid ${child.pid}; ready`);
  while (Date.now() < deadline) {
    const text = existsSync(logPath) ? readFileSync(logPath).subarray(fromOffset).toString('utf8') : '';
    if (ready.test(text)) return;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the worker exited (${child.signalCode ?? `code ${child.exitCode}`}) while starting:\n${text.slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the worker did not become ready within ${timeoutMs / 1000} s; see ${logPath}`);
}
