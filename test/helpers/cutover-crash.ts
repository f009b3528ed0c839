/** What both cut-over crash tests check once the migration is done (issue 14, item 7). */
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { migrationWorkflowId } from '../../core/contracts/task-queues';

/**
 * The crash landed inside the freeze-and-capture (its last `captureImage` ran a second attempt),
 * and the first acknowledged write after the kill came within 15 s of the process being back.
 * Returns that delay (ms).
 */
export async function assertCaptureRetriedAndResumed(env: TestWorkflowEnvironment, workloadId: string, acks: { atMs: number }[], killedAtMs: number, backAtMs: number): Promise<number> {
  const events = (await env.client.workflow.getHandle(migrationWorkflowId(workloadId)).fetchHistory()).events ?? [];
  const captures = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'captureImage').map((e) => Number(e.eventId));
  const started = events.find((e) => Number(e.activityTaskStartedEventAttributes?.scheduledEventId) === captures.at(-1));
  assert.ok((started?.activityTaskStartedEventAttributes?.attempt ?? 1) >= 2, 'the freeze-and-capture ran once: the kill missed it');
  const firstAfter = acks.find((a) => a.atMs > killedAtMs);
  assert.ok(firstAfter, 'no write succeeded after the crash');
  const resumeMs = firstAfter.atMs - backAtMs;
  assert.ok(resumeMs <= 15_000, `writes resumed ${resumeMs} ms after the restart; at most 15 s allowed`);
  return resumeMs;
}

/**
 * Where the log places `workloadId` now, read again and again in the background, as a client
 * without a stable address would keep its route fresh: a read starts every 50 ms (at most 8 at
 * once), and the answer of the latest-started read that has come back wins, so one read slowed by
 * a worker's restart does not hold the route back.
 */
export function followPlacement(log: { workloads(): Promise<{ id: string; address: string }[]> }, workloadId: string, first: string): { address: () => string; stop: () => Promise<void> } {
  let address = first;
  let appliedFrom = 0;
  let inFlight = 0;
  // A query sent while the control worker is dead can wait for it (on the dead worker's sticky
  // queue, until the server gives that up): with a cap of 8, a few such queries could stop the
  // polling, and the client would learn the new placement late, against the migration in the
  // comparison with its reported downtime. The likely cause, not observed, of one CI rehearsal's
  // failure (2026-12-04: client gap 12.7 s against 11.4 s reported). Room for 20 s of polls, so
  // later queries still go out every 50 ms.
  const timer = setInterval(() => {
    if (inFlight >= 400) return;
    const startedAt = performance.now();
    inFlight++;
    log
      .workloads()
      .then((ws) => {
        const at = ws.find((w) => w.id === workloadId)?.address;
        if (at && startedAt > appliedFrom) {
          appliedFrom = startedAt;
          address = at;
        }
      })
      .catch(() => undefined)
      .finally(() => inFlight--);
  }, 50);
  return {
    address: () => address,
    stop: async () => {
      clearInterval(timer);
      while (inFlight > 0) await new Promise((r) => setTimeout(r, 20));
    },
  };
}
