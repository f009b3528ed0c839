/**
 * The supervisor `fedflow up --detach` leaves running in the background: it starts the worker
 * process and starts it again whenever it dies (a crash, an OOM kill, `kill -9`), as the
 * foreground `fedflow up` does in its own process. Temporal resumes the dead worker's activities
 * from their last heartbeat once the new one polls.
 *
 *   node --import tsx scripts/supervisor.ts        (FEDFLOW_HOME and TEMPORAL_ADDRESS from `fedflow up`)
 *
 * Restarts back off: 1 s after the first death, doubled after each death that follows a short run,
 * at most 30 s; a worker that stayed up 60 s has its next restart after 1 s again. Every start,
 * exit (exit code or signal, and how long it ran), restart delay and readiness is a line of
 * <home>/supervisor.log; the worker's own output goes to <home>/worker.log as before.
 *
 * Pid files (scripts/pids.ts): `fedflow up` writes supervisor.pid; this process writes worker.pid
 * at each start and removes it when that worker exits. On SIGTERM (from `fedflow down`) it stops
 * restarting and exits, and leaves the worker to `fedflow down`, which stops it next through its
 * checked pid file. A worker already running when the supervisor starts (its pid file names a live
 * process fedflow started) is adopted: watched by its pid, and replaced once it is gone.
 * If the very first worker exits before it is ready, the supervisor exits 1 instead of retrying:
 * that is a set-up problem, and `fedflow up` reports it with the worker's log.
 */
import type { ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { fedflowHome } from '../agent/site/home';
import { clearPid, isOurs, readPidRecord, type Managed } from './pids';
import { spawnWorker, waitWorkerReady, workerLogOffset, workerLogPath } from './worker-process';

export const supervisorLogPath = (home: string) => join(home, 'supervisor.log');

export interface BackoffPolicy {
  /** The delay before the first restart, and after a worker that stayed up `stableMs`. */
  initialMs: number;
  maxMs: number;
  stableMs: number;
}
export const BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 30_000, stableMs: 60_000 };

/** Restart delays: `initialMs`, doubled after each short-lived worker, at most `maxMs`. */
export class Backoff {
  private shortRuns = 0;
  constructor(private readonly policy: BackoffPolicy = BACKOFF) {}

  /** The delay before starting again a worker that had run for `uptimeMs`. */
  next(uptimeMs: number): number {
    if (uptimeMs >= this.policy.stableMs) this.shortRuns = 0;
    const delay = Math.min(this.policy.maxMs, this.policy.initialMs * 2 ** this.shortRuns);
    this.shortRuns++;
    return delay;
  }
}

export const exitOf = (code: number | null, signal: NodeJS.Signals | null) => (signal ? `signal ${signal}` : `exit code ${code}`);
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Removes the pid file of `what` if it names `pid` (a newer process may have written it since). */
function clearIfMine(home: string, what: Managed, pid: number | undefined): void {
  if (pid !== undefined && readPidRecord(home, what)?.pid === pid) clearPid(home, what);
}

function supervise(): void {
  const home = fedflowHome();
  const address = process.env.TEMPORAL_ADDRESS;
  const say = (line: string) => appendFileSync(supervisorLogPath(home), `${new Date().toISOString()} ${line}\n`);
  if (!address) {
    say('TEMPORAL_ADDRESS is not set: `fedflow up --detach` starts the supervisor with it; exiting');
    process.exit(2);
  }
  const backoff = new Backoff();
  let stopping = false;
  let everReady = false;
  let restarts = 0;
  let timer: NodeJS.Timeout | undefined;
  let current: { pid: number; running: () => boolean } | undefined;

  const stop = (signal: NodeJS.Signals) => {
    stopping = true;
    clearTimeout(timer);
    const left = current?.running() ? `the worker (pid ${current.pid}) is left running, for \`fedflow down\` to stop` : 'no worker running';
    say(`supervisor pid ${process.pid} stopping (${signal}): no more restarts; ${left}`);
    clearIfMine(home, 'supervisor', process.pid);
    process.exit(0);
  };
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, () => stop(s));

  /** `ran`: how long it ran as this supervisor saw it ("after 12.0 s"). */
  const restartLater = (pid: number, how: string, uptimeMs: number, ran = `after ${secs(uptimeMs)}`) => {
    const delay = backoff.next(uptimeMs);
    restarts++;
    say(`worker pid ${pid} exited (${how}) ${ran}; restart ${restarts} in ${secs(delay)}`);
    timer = setTimeout(start, delay);
  };

  function start(): void {
    if (stopping) return;
    const offset = workerLogOffset(home);
    const child: ChildProcess = spawnWorker(home, address!, false);
    const pid = child.pid!;
    const startedAt = Date.now();
    current = { pid, running: () => child.exitCode === null && child.signalCode === null };
    say(restarts ? `worker restarted (pid ${pid}), restart ${restarts}` : `worker started (pid ${pid})`);
    child.once('exit', (code, signal) => {
      clearIfMine(home, 'worker', pid);
      if (stopping) return;
      if (!everReady) {
        say(`the first worker (pid ${pid}) exited (${exitOf(code, signal)}) before it was ready: not restarting it; see ${workerLogPath(home)}`);
        clearIfMine(home, 'supervisor', process.pid);
        process.exit(1);
      }
      restartLater(pid, exitOf(code, signal), Date.now() - startedAt);
    });
    waitWorkerReady(home, child, offset).then(
      () => {
        everReady = true;
        say(`worker pid ${pid} ready`);
      },
      (err: unknown) => {
        if (stopping || !current?.running() || current.pid !== pid) return; // its exit is handled above
        say(`worker pid ${pid}: ${(err as Error).message}; killing it`);
        child.kill('SIGKILL');
      },
    );
  }

  /** A worker fedflow started before this supervisor: watched by its pid file's record until it is gone. */
  function adopt(): boolean {
    const record = readPidRecord(home, 'worker');
    if (!record || !isOurs(record)) return false;
    everReady = true;
    const adoptedAt = Date.now();
    current = { pid: record.pid, running: () => isOurs(record) };
    say(`worker pid ${record.pid} adopted (started before this supervisor); ready`);
    const watch = setInterval(() => {
      if (stopping || isOurs(record)) return;
      clearInterval(watch);
      clearIfMine(home, 'worker', record.pid);
      const watched = Date.now() - adoptedAt;
      restartLater(record.pid, "status unknown: not this supervisor's child", watched, `${secs(watched)} after it was adopted`);
    }, 500);
    return true;
  }

  say(`supervisor pid ${process.pid} started; Temporal at ${address}; worker log ${workerLogPath(home)}`);
  if (!adopt()) start();
}

if (require.main === module) supervise();
