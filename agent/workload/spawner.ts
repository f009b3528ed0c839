/**
 * Where the workload runner's commands run: in the spawn helper (./spawn-helper.ts), a small
 * process started once per agent, so that a probe, a verification or a hook does not fork the
 * agent itself. A fork of a process is paid by that process's event loop, in proportion to its
 * memory: 17–33 ms per command in an ~800 MB agent, every one of them inside the cut-over window
 * for PostgreSQL (a start's health probes and its verification, at both ends; docs/workloads.md).
 *
 * The helper runs execWithTimeout (./exec.ts) as it would run here: the same deadline, the
 * process group killed on it, the same output kept. Until the helper is up (its start takes
 * 0.1–0.3 s, begun by the agent at its start: worker/federation-runtime.ts; a process that never
 * warms it, like the CLI, runs everything here), and if it cannot be started, commands run here
 * as before. A helper that dies (or stops answering, then it is killed) has its commands in flight
 * killed from here (it says each one's pid as it starts it) and answered as failed (exit code
 * null, the reason in stderr: a probe then fails once, a hook fails its step); an instance it
 * started is answered with its pid, and runs on. The helper is started again on the next command;
 * after three deaths within 10 s of their starts it is not started again.
 * FEDFLOW_SPAWN_HELPER=0 runs every command here (the benchmark's comparison, or a fallback).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../site/home';
import { execWithTimeout, killGroup, launchDetached, type ExecOptions, type ExecResult, type LaunchOptions } from './exec';
import type { SpawnRequest } from './spawn-helper';

const HELPER_SCRIPT = join(__dirname, 'spawn-helper.ts');
/** Beyond a command's own deadline: how long its answer may take before the helper counts as lost. */
const ANSWER_GRACE_MS = 5_000;
/** A helper that dies within this of its start counts as a quick death; this many and it is given up. */
const QUICK_DEATH_MS = 10_000;
const MAX_QUICK_DEATHS = 3;

type Launched = { pid: number } | { error: string };
type Answer = { id: number; result: ExecResult } | { id: number; launched: Launched } | { id: number; spawned: number } | { ready: number };

interface Pending {
  /** A command's answer. */
  done?(r: ExecResult): void;
  /** A launch's answer. */
  launched?(r: Launched): void;
  /** What the helper started for it, once it says. */
  pid?: number;
  timer?: NodeJS.Timeout;
  t0: number;
}

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

  /** Runs argv as execWithTimeout does: in the helper when it is up, else here. Never rejects. */
  exec(argv: string[], opts: ExecOptions): Promise<ExecResult> {
    const child = this.helper();
    if (!child || !this.ready) return execWithTimeout(argv, opts);
    const id = this.nextId++;
    const { onSpawn: _local, ...sendable } = opts;
    return new Promise<ExecResult>((done) => {
      // The helper kills the command at its deadline and answers; no answer well after it means
      // the helper is stuck: it is killed, which answers (and kills) everything it had. The check
      // waits one turn of the loop, so an answer already arrived is read first.
      const timer = setTimeout(() => setImmediate(() => this.pending.has(id) && this.child === child && this.kill(child)), opts.timeoutMs + ANSWER_GRACE_MS);
      this.pending.set(id, { done, timer, t0: Date.now() });
      this.refWhileBusy();
      const req: SpawnRequest = { id, argv, opts: sendable };
      child.send(req, (err) => {
        if (!err) return;
        // Not sent, so not started: run it here instead.
        if (this.take(id)) void execWithTimeout(argv, opts).then(done);
      });
    });
  }

  /**
   * Starts an instance as launchDetached does: in the helper when it is up, else here. Never
   * rejects. A helper that dies before it answers still gives the instance's pid if it had said it
   * (the runner then sees whether it runs); only one that dies between the spawn and that word
   * leaves an instance nobody knows of (then the answer says it may have started).
   */
  launch(argv: string[], opts: LaunchOptions): Promise<Launched> {
    const child = this.helper();
    if (!child || !this.ready) return launchDetached(argv, opts);
    const id = this.nextId++;
    return new Promise<Launched>((launched) => {
      // No deadline: a spawn answers at once, and a helper that dies answers through its exit.
      this.pending.set(id, { launched, t0: Date.now() });
      this.refWhileBusy();
      const req: SpawnRequest = { id, argv, launch: opts };
      child.send(req, (err) => {
        if (!err) return;
        if (this.take(id)) void launchDetached(argv, opts).then(launched);
      });
    });
  }

  private helper(): ChildProcess | undefined {
    if (!this.enabled || this.quickDeaths >= MAX_QUICK_DEATHS) return undefined;
    if (this.child?.connected) return this.child;
    if (this.child) return undefined; // going: its close answers what it still had
    let child: ChildProcess;
    // Not the agent's NODE_OPTIONS: an --inspect port or a preload is the agent's own.
    const { NODE_OPTIONS: _agentOnly, ...env } = process.env;
    try {
      // From the repository root, whose node_modules holds tsx, which runs the helper's TypeScript.
      child = spawn(process.execPath, ['--import', 'tsx', HELPER_SCRIPT], { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    } catch {
      this.quickDeaths++;
      return undefined;
    }
    this.child = child;
    this.ready = false;
    this.startedAt = Date.now();
    child.on('message', (m: Answer) => {
      if (this.child !== child) return;
      if ('ready' in m) {
        this.ready = true;
        return;
      }
      if ('spawned' in m) {
        const p = this.pending.get(m.id);
        if (p) p.pid = m.spawned;
        return;
      }
      const p = this.take(m.id);
      if (!p) return;
      if ('launched' in m) p.launched?.(m.launched);
      else p.done?.(m.result);
    });
    let over = false;
    const gone = (why: string) => {
      if (over) return;
      over = true;
      if (this.child === child) {
        this.child = undefined;
        this.ready = false;
      }
      if (Date.now() - this.startedAt < QUICK_DEATH_MS) this.quickDeaths++;
      for (const [id, p] of [...this.pending]) {
        this.take(id);
        if (p.launched) {
          p.launched(p.pid !== undefined ? { pid: p.pid } : { error: `the spawn helper (pid ${child.pid}) ${why} before it said whether the instance started; it may have started` });
        } else {
          // Its deadline was the helper's to keep: a command it leaves is killed here.
          if (p.pid !== undefined) killGroup(p.pid, 'SIGKILL');
          p.done?.({ code: null, signal: null, stdout: '', stderr: `the spawn helper (pid ${child.pid}) ${why} while it ran this command${p.pid !== undefined ? ' (killed)' : ''}\n`, timedOut: false, ms: Date.now() - p.t0 });
        }
      }
    };
    child.once('error', (err) => gone(`failed: ${err.message}`));
    // 'close', not 'exit': every message it sent has been read by then.
    child.once('close', (code, sig) => gone(`exited (${sig ?? `code ${code}`})`));
    this.refWhileBusy();
    return child;
  }

  private kill(child: ChildProcess): void {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone already: its close answers */
    }
  }

  private take(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    this.refWhileBusy();
    return p;
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
