/**
 * The migration's activity proxies: which worker runs each call (the control worker, the worker
 * running this workflow, or a site's agent) and with which named timeout set.
 */
import { proxyActivities, proxyLocalActivities, type ActivityOptions } from '@temporalio/workflow';
import type { ControlActivities } from '../../activities/control';
import type { SiteActivities } from '../../activities/site';
import type { SyncActivities } from '../../activities/sync';
import { CONTROL_TASK_QUEUE, siteTaskQueue } from '../../core/contracts/task-queues';

/** Named timeout sets, one per kind of step. */
export const TIMEOUTS = {
  quick: { startToCloseTimeout: '1 minute' },
  start: { startToCloseTimeout: '2 minutes', heartbeatTimeout: '20 seconds' },
  capture: { startToCloseTimeout: '30 minutes', heartbeatTimeout: '2 minutes' },
  // The cut-over's capture: the source is frozen, so a crashed attempt is retried within seconds.
  // The activity heartbeats throughout; site workers send heartbeats at least every 2 s
  // (maxHeartbeatThrottleInterval), which leaves 8 s of margin.
  freeze: { startToCloseTimeout: '30 minutes', heartbeatTimeout: '10 seconds' },
  pull: { startToCloseTimeout: '6 hours', heartbeatTimeout: '15 seconds' },
} as const satisfies Record<string, ActivityOptions>;

const RETRY = { initialInterval: '200 milliseconds', maximumInterval: '10 seconds', backoffCoefficient: 2 } as const;

/** How long the fast path of a federation commit waits for the log's answer by update. */
export const FAST_COMMIT_WAIT_MS = 2_000;

/** How long the second send of a proposal (v4) waits for the answer, when the first gave none. */
export const COMMIT_REPOLL_WAIT_MS = 10_000;
/** From the third send on (quorum missing for a while), each waits this long, as a task-queue activity. */
export const LONG_WAIT_MS = 5 * 60_000;

/**
 * A federation proposal: one local activity that proposes by update and waits `waitMs` at most,
 * with no retries (the caller sends the same request again: in v4 itself, in v3 by signal).
 */
export function controlFast(summary: string, waitMs = FAST_COMMIT_WAIT_MS) {
  return proxyLocalActivities<ControlActivities>({ startToCloseTimeout: waitMs + 5_000, retry: { maximumAttempts: 1 }, summary });
}

/** A long wait for a proposal's answer (v4): a task-queue activity that heartbeats, so its wait adds a few events however long it is. */
export function controlWait(summary: string, waitMs: number) {
  return proxyActivities<ControlActivities>({ taskQueue: CONTROL_TASK_QUEUE, startToCloseTimeout: waitMs + 30_000, heartbeatTimeout: '30 seconds', retry: { maximumAttempts: 1 }, summary });
}

export function control(summary: string) {
  return proxyActivities<ControlActivities>({ taskQueue: CONTROL_TASK_QUEUE, ...TIMEOUTS.quick, retry: RETRY, summary });
}

/**
 * A control activity run by the worker that runs this workflow, without a trip through the task
 * queue: used inside the downtime window, where each hop through the server costs tens of ms.
 */
export function controlLocal(summary: string) {
  return proxyLocalActivities<ControlActivities>({ ...TIMEOUTS.quick, retry: RETRY, summary });
}

export function atSite(siteId: string, summary: string, timeouts: ActivityOptions = TIMEOUTS.quick) {
  return proxyActivities<SiteActivities>({ taskQueue: siteTaskQueue(siteId), ...timeouts, retry: RETRY, summary });
}

export function atSync(siteId: string, summary: string, timeouts: ActivityOptions) {
  return proxyActivities<SyncActivities>({ taskQueue: siteTaskQueue(siteId), ...timeouts, retry: RETRY, summary });
}
