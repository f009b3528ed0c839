/**
 * Pid files for what `fedflow up` starts, so `fedflow down` can stop it from another shell.
 *
 * A pid alone is not an identity: once the process exits, the kernel hands its number to the next
 * process, so a pid file left behind names a stranger. Each file therefore records the process's
 * start time (and its command line, for messages), and a pid is signalled only while the process
 * with that number started at that time. A file that no longer names its process is removed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive } from '../adapters/local/provider';

export type Managed = 'server' | 'worker' | 'supervisor' | 'up';

/** What a pid file holds. */
export interface PidRecord {
  pid: number;
  /** From processStart(): the kernel's start time of the process, as recorded when it was started. */
  startTime: string;
  /** The command line then, to say what a refused pid file was about. */
  cmdline: string;
}

const file = (home: string, what: Managed) => join(home, 'run', `${what}.pid`);

/**
 * When the process `pid` started, as a string that differs between two processes that had the same
 * pid: on Linux field 22 of /proc/<pid>/stat (clock ticks since boot); elsewhere `ps -o lstart`.
 * Undefined when no such process exists.
 */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // A zombie (state Z, field 3) has exited; only its entry waits for a parent to reap it. The
    // processes `fedflow up --detach` leaves are reparented when `up` exits, and not every init
    // reaps: it names no running process.
    if (fields[0] === 'Z') return undefined;
    return fields[19]; // field 22 overall; fields here start at field 3
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/self/stat')) return undefined;
  }
  try {
    return execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

export function writePid(home: string, what: Managed, pid: number): void {
  const startTime = processStart(pid);
  // Exited already (a failed start): nothing to record, and the caller reports the exit itself.
  if (!startTime) return clearPid(home, what);
  mkdirSync(join(home, 'run'), { recursive: true });
  const record: PidRecord = { pid, startTime, cmdline: commandLine(pid) };
  writeFileSync(file(home, what), JSON.stringify(record) + '\n');
}

/** The pid file as written, or undefined when there is none; `legacy` for a bare pid from an older fedflow. */
export function readPidRecord(home: string, what: Managed): (PidRecord & { legacy?: boolean }) | undefined {
  const p = file(home, what);
  if (!existsSync(p)) return undefined;
  const text = readFileSync(p, 'utf8').trim();
  if (/^\d+$/.test(text)) return { pid: Number(text), startTime: '', cmdline: '', legacy: true };
  try {
    const r = JSON.parse(text) as Partial<PidRecord>;
    if (Number.isInteger(r.pid) && r.pid! > 0 && typeof r.startTime === 'string') return { pid: r.pid!, startTime: r.startTime, cmdline: r.cmdline ?? '' };
  } catch {
    // Unreadable: treated as naming no process.
  }
  return undefined;
}

/**
 * Whether the record still names the process fedflow started: alive, and started when recorded.
 * A bare pid (no start time) cannot be checked, so it is never trusted.
 */
export function isOurs(record: PidRecord & { legacy?: boolean }): boolean {
  return !record.legacy && running(record.pid) && processStart(record.pid) === record.startTime;
}

/** Whether a process `pid` exists and has not exited (a zombie has; see processStart). */
export function running(pid: number | undefined): boolean {
  return alive(pid) && (!existsSync('/proc/self/stat') || processStart(pid!) !== undefined);
}

/** The pid of the process fedflow started as `what`, if that process still runs; else undefined. */
export function readPid(home: string, what: Managed): number | undefined {
  const r = readPidRecord(home, what);
  return r && isOurs(r) ? r.pid : undefined;
}

/** Whether the process is alive (and not a zombie). */
export const isAlive = running;

export function clearPid(home: string, what: Managed): void {
  rmSync(file(home, what), { force: true });
}

export interface StopOutcome {
  outcome: 'stopped' | 'not-running' | 'not-ours';
  pid?: number;
}

/**
 * Stops the process a pid file names, only if it is still the one fedflow started: SIGTERM, then
 * SIGKILL after `graceMs`. The pid file is removed whatever the outcome: it named our process, or
 * one that is gone, or a stranger that now has the number.
 */
export async function stopPid(home: string, what: Managed, graceMs = 8000): Promise<StopOutcome> {
  const r = readPidRecord(home, what);
  clearPid(home, what);
  if (!r || !running(r.pid)) return { outcome: 'not-running' };
  if (!isOurs(r)) return { outcome: 'not-ours', pid: r.pid };
  process.kill(r.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isOurs(r) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
  if (isOurs(r)) process.kill(r.pid, 'SIGKILL');
  return { outcome: 'stopped', pid: r.pid };
}
