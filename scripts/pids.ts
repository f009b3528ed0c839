/** Pid files for what `fedflow up` starts, so `fedflow down` can stop it from another shell. */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive } from '../adapters/local/provider';

export type Managed = 'server' | 'worker' | 'up';

const file = (home: string, what: Managed) => join(home, 'run', `${what}.pid`);

export function writePid(home: string, what: Managed, pid: number): void {
  mkdirSync(join(home, 'run'), { recursive: true });
  writeFileSync(file(home, what), String(pid));
}

export function readPid(home: string, what: Managed): number | undefined {
  const p = file(home, what);
  if (!existsSync(p)) return undefined;
  const pid = Number(readFileSync(p, 'utf8'));
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Whether the process is alive; the local provider's check, shared. */
export const isAlive = alive;

export function clearPid(home: string, what: Managed): void {
  rmSync(file(home, what), { force: true });
}

/** SIGTERM, then SIGKILL after `graceMs`. Returns whether a live process was stopped. */
export async function stopPid(home: string, what: Managed, graceMs = 8000): Promise<boolean> {
  const pid = readPid(home, what);
  clearPid(home, what);
  if (!isAlive(pid)) return false;
  process.kill(pid!, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(pid)) process.kill(pid!, 'SIGKILL');
  return true;
}
