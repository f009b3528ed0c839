/**
 * Shows a migration's progress: a live bar (steps and bytes) on a terminal, one line per step
 * change otherwise (logs, CI, pipes).
 */
import { SingleBar } from 'cli-progress';
import type { FedflowClient, LiveProgress } from '../client';
import { isUnreachable } from '../client/unreachable';
import { MIGRATION_STEPS } from '../core/migration';

/**
 * While a command waits on a migration: one line when Temporal or the workers stop answering
 * (the line `fedflow status` prints, with what to start), once per outage, and one when they
 * answer again. Other failed polls stay silent: the next poll catches up.
 */
export class OutageNotice {
  private down: string | undefined;
  private noWorkerSince: number | undefined;
  /** The error of the outage going on, if any. */
  last: Error | undefined;

  constructor(
    private readonly say: (line: string) => void,
    /**
     * Workers are said missing only once none has polled for this long: right after Temporal
     * restarts it knows no poller until the workers' next polls, seconds later.
     */
    private readonly noWorkerGraceMs = 10_000,
  ) {}

  failed(err: unknown): void {
    if (!isUnreachable(err)) return;
    this.last = err;
    if (err.type === 'NoWorker') {
      this.noWorkerSince ??= Date.now();
      if (Date.now() - this.noWorkerSince < this.noWorkerGraceMs) return;
    } else this.noWorkerSince = undefined;
    // Temporal back but its workers not polling is news too; the same condition again is not.
    if (this.down === err.type) return;
    this.down = err.type;
    this.say(`fedflow: ${err.message}`);
  }

  answered(): void {
    this.last = undefined;
    this.noWorkerSince = undefined;
    if (this.down === undefined) return;
    this.down = undefined;
    this.say('fedflow: Temporal and the workers answer again; following the migration');
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function stepIndex(p: LiveProgress): number {
  const running = p.steps.findIndex((s) => s.status === 'running');
  if (running >= 0) return running + 1;
  return p.steps.filter((s) => s.status === 'done').length;
}

export function describeStep(p: LiveProgress): string {
  const i = stepIndex(p);
  const step = p.steps[Math.max(0, i - 1)];
  return `${p.paused ? '[paused] ' : ''}step ${i}/${MIGRATION_STEPS.length} ${step?.title ?? ''}`;
}

/** Polls progress until the workflow closes. Resolves with the last progress seen. */
export async function watchProgress(client: FedflowClient, workloadId: string, tty: boolean, out: NodeJS.WritableStream = process.stderr): Promise<LiveProgress | undefined> {
  const bar = tty
    ? new SingleBar({ format: ' {bar} {percentage}% | {step} | {bytes}', barsize: 28, hideCursor: true, clearOnComplete: false, stream: out as never }, undefined)
    : undefined;
  let last: LiveProgress | undefined;
  let lastLine = '';
  // Over the bar's line, when there is one: it redraws itself below on its next update.
  const notice = new OutageNotice((line) => out.write(`${bar ? '\r\x1b[2K' : ''}${line}\n`));
  bar?.start(100, 0, { step: 'starting', bytes: '' });
  try {
    for (;;) {
      try {
        last = await client.getProgress(workloadId);
        notice.answered();
      } catch (err) {
        // Said once per outage; a query that misses while a worker restarts is caught up by the next poll.
        notice.failed(err);
      }
      if (last) {
        const r = last.rounds.at(-1);
        const bytes = last.live
          ? `round ${last.live.round}: ${formatBytes(last.live.bytesSent)} sent (${last.live.batchesDone}/${last.live.batches} batches)`
          : r
            ? `round ${r.round} ${r.kind}: ${formatBytes(r.bytesSent)} of ${formatBytes(r.bytesScanned)} sent, ${r.chunksReused} chunks reused`
            : '';
        // Weight: each step is an equal share, the copy step filled in by bytes.
        const steps = MIGRATION_STEPS.length;
        const done = last.steps.filter((s) => s.status === 'done').length;
        const copyFrac = last.steps.find((s) => s.id === 'sync')?.status === 'running' && last.live?.batches ? Math.min(1, last.live.batchesDone / last.live.batches) : 0;
        const pct = Math.min(100, Math.round(((done + copyFrac) / steps) * 100));
        const step = describeStep(last);
        if (bar) bar.update(pct, { step, bytes });
        else {
          // Without a terminal: a line per step, and per tenth of the copy.
          const key = `${step}|${last.rounds.length}|${Math.floor(copyFrac * 10)}`;
          if (key !== lastLine) {
            out.write(`${step}${bytes ? ` (${bytes})` : ''}\n`);
            lastLine = key;
          }
        }
        if (last.status !== 'RUNNING') break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    bar?.stop();
  }
  return last;
}
