/** The worker as a separate OS process, so a test can kill -9 it as an operator's crash would. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../../agent/site/home';

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
