/**
 * gRPC failures that mean "nobody is there", said in one line with what to start: the SDK's own
 * error is a ServiceError ("Failed to query Workflow") with the reason two causes down and a stack
 * that tells an operator nothing they can act on.
 */
import { CONTROL_TASK_QUEUE } from '../core/contracts/task-queues';
import { FedflowError } from './federation';

/** gRPC status codes (grpc/status.proto) that mean the server or the workers are not there. */
const UNAVAILABLE = 14;
const DEADLINE_EXCEEDED = 4;
const FAILED_PRECONDITION = 9;

function grpcCause(err: unknown): { code: number; details: string } | undefined {
  for (let cur: unknown = err, depth = 0; cur && typeof cur === 'object' && depth < 6; cur = (cur as { cause?: unknown }).cause, depth++) {
    const { code, details, message } = cur as { code?: unknown; details?: unknown; message?: unknown };
    if (typeof code === 'number') return { code, details: String(details ?? message ?? '') };
  }
  return undefined;
}

/** The one line for "no worker polls the migration's task queue", with what to start. */
export function noWorker(taskQueue = CONTROL_TASK_QUEUE, address?: string): FedflowError {
  return new FedflowError(
    `no fedflow worker is running: nothing polls task queue '${taskQueue}' on Temporal${address ? ` at ${address}` : ''}; start the workers with \`fedflow up\` (or \`fedflow worker\` against your own cluster)`,
    'NoWorker',
  );
}

/** Whether `err` is one of the one-line errors that say Temporal or its workers cannot be reached (and may come back). */
export function isUnreachable(err: unknown): err is FedflowError {
  return err instanceof FedflowError && (err.type === 'NoWorker' || err.type === 'TemporalUnavailable');
}

/**
 * The one-line FedflowError for an error that says Temporal or the workers cannot be reached, or
 * undefined for any other error (the caller rethrows it as it is).
 */
export function unreachable(err: unknown, where: { address?: string; taskQueue?: string } = {}): FedflowError | undefined {
  if (err instanceof FedflowError) return undefined;
  const g = grpcCause(err);
  if (!g) return undefined;
  const at = where.address ? ` at ${where.address}` : '';
  // A query is answered by a worker replaying the workflow. The server says "no poller seen for
  // task queue recently" when its workers went away, and times the query out ("before a worker
  // could process it") when none ever polled.
  if ((g.code === FAILED_PRECONDITION && /no poller/i.test(g.details)) || (g.code === DEADLINE_EXCEEDED && /worker/i.test(g.details))) {
    return noWorker(where.taskQueue, where.address);
  }
  if (g.code === UNAVAILABLE || g.code === DEADLINE_EXCEEDED) {
    return new FedflowError(`cannot reach Temporal${at} (${g.details.split('\n')[0]}); start it with \`fedflow up\`, or set TEMPORAL_ADDRESS to your cluster`, 'TemporalUnavailable');
  }
  return undefined;
}
