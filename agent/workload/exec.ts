/**
 * Running a spec's commands (hooks, probes, verification, volume init) with a deadline, as the
 * spec's user, with their output kept for the error message. And the process facts the runner
 * needs: whether a pid is still the process it started, signalling it and waiting for its exit,
 * and which uid a user name is.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Who a command runs as: the agent's own user, or (agent running as root) the spec's user. */
export interface RunAs {
  uid: number;
  gid: number;
  name: string;
}

export interface ExecOptions {
  timeoutMs: number;
  env: Record<string, string>;
  cwd?: string;
  as?: RunAs;
  /** Told the child's pid (its process group) once it runs. */
  onSpawn?: (pid: number) => void;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
  /** The child's pid, when it started. */
  pid?: number;
}

/** The most output kept per stream: a digest or a tail for an error message, never a dump. */
const MAX_OUTPUT = 64 * 1024;

/** A command string runs through /bin/sh -c; an argv array runs as is. */
export function argvOf(command: string | string[]): string[] {
  return typeof command === 'string' ? ['/bin/sh', '-c', command] : command;
}

/**
 * Runs argv to its end or its deadline. On the deadline the whole process group is killed (a shell
 * and what it started), so a hung hook leaves nothing behind. Never rejects: a command that cannot
 * start answers with code 127 and the reason in stderr.
 */
export function execWithTimeout(argv: string[], opts: ExecOptions): Promise<ExecResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(argv[0]!, argv.slice(1), {
        cwd: opts.cwd,
        env: opts.env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(opts.as ? { uid: opts.as.uid, gid: opts.as.gid } : {}),
      });
    } catch (err) {
      // Refused before any process existed (an argument with a NUL byte, an argument list too long).
      resolve({ code: 127, signal: null, stdout: '', stderr: `${(err as Error).message}\n`, timedOut: false, ms: Date.now() - t0 });
      return;
    }
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (b: Buffer) => {
      if (stdout.length < MAX_OUTPUT) stdout += b.toString('utf8');
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString('utf8')).slice(-MAX_OUTPUT);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, opts.timeoutMs);
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - t0, ...(child.pid !== undefined ? { pid: child.pid } : {}) });
    };
    child.once('error', (err) => {
      stderr += `${err.message}\n`;
      done(127, null);
    });
    child.once('close', done);
  });
}

/** A long-running process to start (a workload's instance), its output appended to `logPath`. */
export interface LaunchOptions {
  env: Record<string, string>;
  cwd?: string;
  as?: RunAs;
  logPath: string;
}

/**
 * Starts argv detached, in a session of its own (the instance outlives whoever started it, as a
 * VM outlives its control plane), stdout and stderr appended to the log. Resolves once the process
 * runs, with its pid, or with the reason it could not start (no such command, say); never rejects.
 * `onSpawn` hears the pid as soon as the process exists.
 */
export function launchDetached(argv: string[], opts: LaunchOptions, onSpawn?: (pid: number) => void): Promise<{ pid: number } | { error: string }> {
  return new Promise((resolve) => {
    let child;
    let logFd: number | undefined;
    try {
      logFd = openSync(opts.logPath, 'a');
      child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', logFd, logFd], cwd: opts.cwd, env: opts.env, ...(opts.as ? { uid: opts.as.uid, gid: opts.as.gid } : {}) });
    } catch (err) {
      resolve({ error: (err as Error).message });
      return;
    } finally {
      if (logFd !== undefined) closeSync(logFd);
    }
    child.unref();
    if (child.pid !== undefined) onSpawn?.(child.pid);
    child.once('spawn', () => resolve({ pid: child.pid! }));
    child.once('error', (err) => resolve({ error: err.message }));
  });
}

export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/**
 * The start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or
 * undefined when it is gone or a zombie (`zombies`: also of a zombie, until it is reaped).
 */
export function processStartTime(pid: number, opts: { zombies?: boolean } = {}): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its end.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (!opts.zombies && (rest[0] === 'Z' || rest[0] === 'X')) return undefined;
  return Number(rest[19]);
}

/**
 * The live processes whose environment holds `name=value`, less those whose parent holds it too:
 * the roots of what one launch spawned (its children inherit the variable). Reads /proc; a process
 * that goes meanwhile, or whose environment this user may not read, is skipped.
 */
export function launchedWith(name: string, value: string): { pid: number; procStart: number; sid: number }[] {
  const needle = Buffer.from(`\0${name}=${value}\0`);
  const hits = new Map<number, { ppid: number; procStart: number; sid: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${d}/environ`)]).indexOf(needle) < 0) continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z' || rest[0] === 'X') continue;
      hits.set(Number(d), { ppid: Number(rest[1]), procStart: Number(rest[19]), sid: Number(rest[3]) });
    } catch {
      // Gone, or not ours to read.
    }
  }
  return [...hits].filter(([, h]) => !hits.has(h.ppid)).map(([pid, h]) => ({ pid, procStart: h.procStart, sid: h.sid }));
}

/**
 * Kills the process group of `pid` with SIGKILL and waits until the process is reaped, not only
 * dead: a zombie still answers kill(pid, 0), which is how PostgreSQL tells whether the postmaster
 * its lock file names still runs, so a server started on the same data before the reaping refuses
 * to start ("lock file postmaster.pid already exists"). False if it is still there at the deadline.
 */
export async function killAndReap(pid: number | undefined, procStart: number | undefined, timeoutMs: number): Promise<boolean> {
  if (!pid) return true;
  killGroup(pid, 'SIGKILL');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const at = processStartTime(pid, { zombies: true });
    if (at === undefined || (procStart !== undefined && at !== procStart)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(2);
  }
}

/** Whether `pid` is still the process that was started at `startTime` (a reused pid is not). */
export function stillRunning(pid: number | undefined, startTime: number | undefined): boolean {
  if (!pid) return false;
  const now = processStartTime(pid);
  return now !== undefined && (startTime === undefined || now === startTime);
}

/** A user of this machine by name, from /etc/passwd; undefined when there is none. */
export function lookupUser(name: string): RunAs | undefined {
  let passwd: string;
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) return { name, uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

/** The last `n` characters of some output, on one line, for an error message. */
export function tail(text: string, n = 300): string {
  const t = text.trim().replace(/\s*\n\s*/g, ' | ');
  return t.length > n ? `…${t.slice(-n)}` : t;
}

/** Sends a signal; a process that exited a moment ago is not an error (the wait after it sees it gone). */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Waits until the process is gone; false if it still runs at the deadline. */
export async function waitExit(pid: number, procStart: number | undefined, timeoutMs: number): Promise<boolean> {
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  while (stillRunning(pid, procStart)) {
    const now = Date.now();
    if (now >= deadline) return false;
    await sleep(exitPollMs(now - t0));
  }
  return true;
}

/**
 * How long waitExit sleeps between two looks (a read of /proc/<pid>/stat, a few µs), `waitedMs`
 * into the wait: a clean stop usually ends within tens of ms, and at a cut-over every ms of it is
 * downtime, so the first 250 ms are looked at every 2 ms; then every 10 ms, and from 2 s every 20 ms.
 */
export function exitPollMs(waitedMs: number): number {
  return waitedMs < 250 ? 2 : waitedMs < 2_000 ? 10 : 20;
}

/** `p`, or `onTimeout()`'s error once `timeoutMs` passed (`p` itself goes on). */
export function withTimeout<T>(p: Promise<T>, timeoutMs: number, onTimeout: () => Error): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(onTimeout()), timeoutMs)))]).finally(() => clearTimeout(t));
}
