/**
 * The downtime benchmark's client in a process of its own (./client-child.ts), as a real client
 * is: not inside the process that runs the agents, the fronts and the workers. There its writes
 * (and, while the source is frozen, its retries every few ms) took the agents' event loop: a CPU
 * profile of `--workload kv` cut-overs gave the writer ~26 ms of the main thread's time per
 * cut-over window (docs/workloads.md, "Since 2026-12-03 20:30 UTC"). `--client in-process` keeps
 * the old arrangement, to compare.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../agent/site/home';
import type { WriterLog } from '../test/helpers/writer';
import { startWriter } from '../test/helpers/writer';
import { SERVICES, startServiceWriter, type ServiceName, type ServiceWriterLog } from './service-clients';

export type ClientSpec = { kind: 'kv'; address: string } | { kind: ServiceName; hostPort: string };
export type ClientPlacement = 'process' | 'in-process';

/** What the child sends back: the writer's log, its maps as entry lists. */
export type ClientLog =
  | ({ kind: 'kv'; acked: [string, number][]; cpuMs: number } & Omit<WriterLog, 'acked'>)
  | { kind: 'service'; acked: [number, number][]; failed: number; cpuMs: number };

export interface BenchClient<L> {
  /** Stops once `after` more writes are acknowledged (a few on the target), and gives the log, and the client process's CPU time (ms, while its writers ran) when it has one. */
  stop(after: number): Promise<L & { cpuMs?: number }>;
}

export function startKvClient(address: string, where: ClientPlacement): Promise<BenchClient<WriterLog>> {
  if (where === 'in-process') {
    const w = startWriter(address);
    return Promise.resolve({ stop: async (after) => (await waitAcked(() => w.log.acked.size, after), await w.stop(), w.log) });
  }
  return startChild({ kind: 'kv', address }, (l) => {
    if (l.kind !== 'kv') throw new Error(`the client process answered a ${l.kind} log for the sample`);
    const { kind: _kind, acked, ...rest } = l;
    return { ...rest, acked: new Map(acked) };
  });
}

export function startServiceClient(name: ServiceName, hostPort: string, where: ClientPlacement): Promise<BenchClient<ServiceWriterLog>> {
  if (where === 'in-process') {
    const w = startServiceWriter(SERVICES[name], hostPort);
    return Promise.resolve({ stop: async (after) => (await waitAcked(() => w.log.acked.size, after), await w.stop(), w.log) });
  }
  return startChild({ kind: name, hostPort }, (l) => {
    if (l.kind !== 'service') throw new Error(`the client process answered a ${l.kind} log for ${name}`);
    return { acked: new Map(l.acked), failed: l.failed, cpuMs: l.cpuMs };
  });
}

/** How long a stop waits for its last acknowledgements before it stops anyway (a failed migration may leave none). */
const STOP_WAIT_MS = 30_000;
/** Beyond that, how long the client process may take to stop its writers and report. */
const STOP_GRACE_MS = 30_000;

/** Resolves once `n` more writes are acknowledged, or after STOP_WAIT_MS. */
export async function waitAcked(size: () => number, n: number): Promise<void> {
  const from = size();
  const until = Date.now() + STOP_WAIT_MS;
  while (size() < from + n && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
}

/** Starts the client process and resolves once its writers run. */
function startChild<L>(spec: ClientSpec, decode: (l: ClientLog) => L & { cpuMs: number }): Promise<BenchClient<L>> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'client-child.ts')], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`the benchmark's client process ended (${signal ?? `code ${code}`}) before it reported`)));
    // It could not start, or a message could not be sent to it (it had ended).
    child.on('error', (err) => reject(new Error(`the benchmark's client process failed: ${err.message}`)));
  });
  exited.catch(() => undefined);
  const message = <T>(pick: (m: Record<string, unknown>) => T | undefined): Promise<T> =>
    Promise.race([
      exited,
      new Promise<T>((resolve) => {
        const on = (m: Record<string, unknown>) => {
          const v = pick(m);
          if (v === undefined) return;
          child.off('message', on);
          resolve(v);
        };
        child.on('message', on);
      }),
    ]);
  const started = message((m) => (m.started ? true : undefined));
  child.send({ start: spec });
  return started.then(() => ({
    stop: async (after) => {
      const log = message((m) => m.log as ClientLog | undefined);
      child.send({ stopAfter: after });
      // The child stops by itself after STOP_WAIT_MS at most; one stuck past that (a write that
      // never returns) is killed, and the run fails.
      let timer: NodeJS.Timeout | undefined;
      const stuck = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`the benchmark's client process did not report within ${(STOP_WAIT_MS + STOP_GRACE_MS) / 1000} s of its stop; killed`));
        }, STOP_WAIT_MS + STOP_GRACE_MS);
      });
      try {
        return decode(await Promise.race([log, stuck]));
      } finally {
        clearTimeout(timer);
      }
    },
  }));
}
