/**
 * Where the workload runner's commands run: in the spawn helper (./spawn-helper.ts), a small
 * process started once per agent, so that a probe, a verification or a hook does not fork the
 * agent itself. A fork of a process is paid by that process's event loop, in proportion to its
 * memory: 17–33 ms per command in an ~800 MB agent, every one of them inside the cut-over window
 * for PostgreSQL (a start's health probes and its verification, at both ends; docs/workloads.md).
 *
 * The helper runs execWithTimeout (./exec.ts) as it would run here: the same deadline, the
 * process group killed on it, the same output kept. Until the helper is up (its start is ~0.3 s,
 * begun by the first WorkloadRunner), and if it cannot be started, commands run here as before.
 * A helper that dies answers its commands in flight as failed (exit code null, the reason in
 * stderr: a probe then fails once, a hook fails its step) and is started again on the next
 * command; after three deaths within 10 s of their starts it is not started again.
 * FEDFLOW_SPAWN_HELPER=0 runs every command here (the benchmark's comparison, or a fallback).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { execWithTimeout, launchDetached, type ExecOptions, type ExecResult, type LaunchOptions } from './exec';
import type { SpawnRequest } from './spawn-helper';

const HELPER_SCRIPT = join(__dirname, 'spawn-helper.ts');
/** The directory whose node_modules holds tsx, which runs the helper's TypeScript. */
const PACKAGE_ROOT = resolve(__dirname, '..', '..');
/** Beyond a command's own deadline: how long its answer may take before the helper counts as lost. */
const ANSWER_GRACE_MS = 5_000;
/** A helper that dies within this of its start counts as a quick death; this many and it is given up. */
const QUICK_DEATH_MS = 10_000;
const MAX_QUICK_DEATHS = 3;

type Launched = { pid: number } | { error: string };
type Answer = { id: number; result: ExecResult } | { id: number; launched: Launched } | { ready: number };

interface Pending {
  done(r: ExecResult): void;
  /** A launch's answer (a launch's `done` is not called). */
  launched?(r: Launched): void;
  timer: NodeJS.Timeout;
  t0: number;
}

/** How long a launch's answer may take: the spawn itself, not the instance's start. */
const LAUNCH_ANSWER_MS = 10_000;

export class Spawner {
  private child?: ChildProcess;
  private ready = false;
  private startedAt = 0;
  private quickDeaths = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly enabled = process.env.FEDFLOW_SPAWN_HELPER !== '0') {}

  /** Starts the helper now (if it is not running), so that it is up by the first command. */
  warm(): void {
    this.helper();
  }

  /** The helper's pid once it answers, else undefined (commands then run in this process). */
  get helperPid(): number | undefined {
    return this.ready ? this.child?.pid : undefined;
  }

  /** Runs argv as execWithTimeout does: in the helper when it is up, else here. */
  exec(argv: string[], opts: ExecOptions): Promise<ExecResult> {
    const child = this.helper();
    if (!child || !this.ready) return execWithTimeout(argv, opts);
    const id = this.nextId++;
    const { onSpawn: _local, ...sendable } = opts;
    return new Promise<ExecResult>((done) => {
      const t0 = Date.now();
      const timer = setTimeout(() => this.answerLost(id, `no answer from the spawn helper (pid ${child.pid}) within ${opts.timeoutMs + ANSWER_GRACE_MS} ms`), opts.timeoutMs + ANSWER_GRACE_MS);
      this.pending.set(id, { done, timer, t0 });
      this.refWhileBusy();
      const req: SpawnRequest = { id, argv, opts: sendable };
      child.send(req, (err) => {
        if (!err) return;
        // Not sent, so not started: run it here instead.
        const p = this.take(id);
        if (p) execWithTimeout(argv, opts).then(p.done, () => undefined);
      });
    });
  }

  /**
   * Starts an instance as launchDetached does: in the helper when it is up, else here. If the
   * helper is lost before it answers, the instance may or may not run: the answer says so, and the
   * runner's start fails (its record holds no pid, so the next start finds the port or the data
   * directory taken, as after an agent crash in the middle of a start).
   */
  launch(argv: string[], opts: LaunchOptions): Promise<Launched> {
    const child = this.helper();
    if (!child || !this.ready) return launchDetached(argv, opts);
    const id = this.nextId++;
    return new Promise<Launched>((launched) => {
      const t0 = Date.now();
      const lost = (why: string) => launched({ error: `${why}; the instance may have started` });
      const timer = setTimeout(() => this.answerLost(id, `no answer from the spawn helper (pid ${child.pid}) within ${LAUNCH_ANSWER_MS} ms`), LAUNCH_ANSWER_MS);
      this.pending.set(id, { done: (r) => lost(r.stderr.trim()), launched, timer, t0 });
      this.refWhileBusy();
      const req: SpawnRequest = { id, argv, launch: opts };
      child.send(req, (err) => {
        if (!err) return;
        const p = this.take(id);
        if (p) launchDetached(argv, opts).then(launched, (e: Error) => launched({ error: e.message }));
      });
    });
  }

  private helper(): ChildProcess | undefined {
    if (!this.enabled || this.quickDeaths >= MAX_QUICK_DEATHS) return undefined;
    if (this.child?.connected) return this.child;
    if (this.child) return undefined; // going: its exit answers what it still had
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, ['--import', 'tsx', HELPER_SCRIPT], { cwd: PACKAGE_ROOT, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    } catch {
      this.quickDeaths++;
      return undefined;
    }
    this.child = child;
    this.ready = false;
    this.startedAt = Date.now();
    child.on('message', (m: Answer) => {
      if ('ready' in m) {
        this.ready = true;
        return;
      }
      const p = this.take(m.id);
      if (!p) return;
      if ('launched' in m) p.launched?.(m.launched);
      else p.done(m.result);
    });
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.ready = false;
      if (Date.now() - this.startedAt < QUICK_DEATH_MS) this.quickDeaths++;
      for (const id of [...this.pending.keys()]) this.answerLost(id, `the spawn helper (pid ${child.pid}) ${why} while it ran this command`);
    };
    child.once('error', (err) => gone(`failed: ${err.message}`));
    child.once('exit', (code, sig) => gone(`exited (${sig ?? `code ${code}`})`));
    this.refWhileBusy();
    return child;
  }

  private take(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    this.refWhileBusy();
    return p;
  }

  private answerLost(id: number, why: string): void {
    const p = this.take(id);
    p?.done({ code: null, signal: null, stdout: '', stderr: `${why}\n`, timedOut: false, ms: Date.now() - p.t0 });
  }

  /** The helper keeps this process alive only while a command of it runs there. */
  private refWhileBusy(): void {
    const c = this.child;
    if (!c) return;
    const channel = c.channel as { ref(): void; unref(): void } | undefined;
    if (this.pending.size) {
      c.ref();
      channel?.ref();
    } else {
      c.unref();
      channel?.unref();
    }
  }
}

/** The agent's one spawner. */
export const spawner = new Spawner();
