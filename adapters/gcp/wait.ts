/**
 * Waiting on Compute Engine: first the instance's pending zone operation through
 * zoneOperations.wait (which blocks server-side until DONE or about two minutes), then the
 * instance's status through instances.get. Both are bounded by the caller's timeout and end at
 * once when the caller's AbortSignal fires.
 */
import type { ZoneOperationsClient } from '@google-cloud/compute';
import type { InstanceRef, InstanceState, InstanceStatus, WaitOptions } from '../common/cloud-provider';
import { ProviderError, ProviderErrorType } from '../common/provider-error';

/** The zone operation an instance has in flight, started by this process. */
export interface PendingOperation {
  name: string;
  verb: 'insert' | 'start' | 'stop' | 'delete';
}

/**
 * What the waits need of the provider. Declared here rather than importing GcpProvider, so the
 * provider imports its waiter and nothing imports back (GcpProvider satisfies it).
 */
export interface GceWaitTarget {
  readonly site: string;
  readonly opts: { readonly project: string; readonly zone: string };
  readonly operations: Pick<ZoneOperationsClient, 'wait'>;
  /** The zone operation each instance has in flight, by instance name; the wait forgets it when DONE. */
  readonly pendingOps: Map<string, PendingOperation>;
  call<T>(what: string, fn: () => Promise<T>): Promise<T>;
  describeInstance(ref: InstanceRef): Promise<InstanceState>;
}

export function gceStatus(s: string | null | undefined): InstanceStatus {
  switch (s) {
    case 'PROVISIONING':
    case 'STAGING':
    case 'REPAIRING':
      return 'pending';
    case 'RUNNING':
      return 'running';
    case 'STOPPING':
    case 'SUSPENDING':
      return 'stopping';
    // GCE calls a stopped instance TERMINATED; a deleted one is simply gone (404).
    case 'TERMINATED':
    case 'SUSPENDED':
      return 'stopped';
    default:
      return 'unknown';
  }
}

class Deadline {
  private readonly end: number;
  constructor(
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
  ) {
    this.end = Date.now() + timeoutMs;
  }
  get left(): number {
    return this.end - Date.now();
  }
  /** Resolves with `p`, or rejects with the signal's reason / a timeout marker, whichever is first. */
  race<T>(p: Promise<T>, onTimeout: () => Error): Promise<T> {
    this.signal?.throwIfAborted();
    if (this.left <= 0) return Promise.reject(onTimeout());
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => done(() => reject(onTimeout())), this.left);
      const onAbort = () => done(() => reject(this.signal?.reason));
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.signal?.removeEventListener('abort', onAbort);
        f();
      };
      this.signal?.addEventListener('abort', onAbort, { once: true });
      p.then(
        (v) => done(() => resolve(v)),
        (e: unknown) => done(() => reject(e)),
      );
    });
  }
  sleep(ms: number, onTimeout: () => Error): Promise<void> {
    return this.race(new Promise<void>((r) => setTimeout(r, Math.min(ms, Math.max(0, this.left)))), onTimeout);
  }
}

export async function waitForOperation(provider: GceWaitTarget, operation: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
  const dl = new Deadline(opts.timeoutMs, opts.signal);
  const timeout = () =>
    new ProviderError(ProviderErrorType.Timeout, `gcp operation '${operation}' on site '${provider.site}' was not DONE after ${opts.timeoutMs} ms`, 'gcp');
  const { project, zone } = provider.opts;
  for (;;) {
    const [op] = await dl.race(
      provider.call(`zoneOperations.wait(${operation})`, () => provider.operations.wait({ project, zone, operation })),
      timeout,
    );
    if (op.status === 'DONE') {
      const first = op.error?.errors?.[0];
      if (first) {
        // An operation's error carries a string code such as QUOTA_EXCEEDED or RESOURCE_NOT_FOUND.
        const code = first.code ?? 'UNKNOWN';
        const type = /QUOTA/.test(code)
          ? ProviderErrorType.Quota
          : /NOT_FOUND/.test(code)
            ? ProviderErrorType.NotFound
            : /INVALID|BAD_REQUEST/.test(code)
              ? ProviderErrorType.InvalidParameter
              : /PERMISSION|FORBIDDEN/.test(code)
                ? ProviderErrorType.Auth
                : ProviderErrorType.Unavailable;
        throw new ProviderError(type, `gcp operation '${operation}' (${op.operationType ?? '?'} ${op.targetLink ?? ''}) on site '${provider.site}' failed: ${code}: ${first.message ?? ''}`, 'gcp');
      }
      return;
    }
  }
}

export async function waitForGceState(
  provider: GceWaitTarget,
  ref: InstanceRef,
  state: 'running' | 'stopped' | 'terminated',
  opts: WaitOptions,
): Promise<InstanceState> {
  const dl = new Deadline(opts.timeoutMs, opts.signal);
  let last: InstanceState | undefined;
  const timeout = () =>
    new ProviderError(
      ProviderErrorType.Timeout,
      `gcp instance '${ref.id}' on site '${provider.site}' is '${last?.status ?? 'unknown'}', not '${state}', after ${opts.timeoutMs} ms; wait longer or check the instance`,
      'gcp',
    );
  const pending = provider.pendingOps.get(ref.id);
  if (pending) {
    // zoneOperations.wait long-polls (up to ~2 min on GCE), longer than a heartbeat timeout, so
    // the caller hears from us every pollMs while the operation runs.
    const during: InstanceStatus = pending.verb === 'insert' || pending.verb === 'start' ? 'pending' : 'stopping';
    const beat = setInterval(() => opts.onPoll?.({ ref, status: during, tags: {} }), opts.pollMs ?? 5_000);
    try {
      await waitForOperation(provider, pending.name, { timeoutMs: Math.max(1, dl.left), ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (err) {
      if (err instanceof ProviderError && err.type === ProviderErrorType.Timeout) throw timeout();
      throw err;
    } finally {
      clearInterval(beat);
    }
    provider.pendingOps.delete(ref.id);
  }
  for (;;) {
    try {
      last = await dl.race(provider.describeInstance(ref), timeout);
    } catch (err) {
      if (state === 'terminated' && err instanceof ProviderError && err.type === ProviderErrorType.NotFound) {
        const gone: InstanceState = { ref, status: 'terminated', tags: last?.tags ?? {} };
        opts.onPoll?.(gone);
        return gone;
      }
      throw err;
    }
    opts.onPoll?.(last);
    if (last.status === state) return last;
    await dl.sleep(opts.pollMs ?? 5_000, timeout);
  }
}
