/**
 * Waiting on an Azure VM: first the LRO this process started for it (followed with the SDK's own
 * poller, which reads Azure-AsyncOperation / Location and Retry-After), then the VM's power state
 * from instanceView. Both are bounded by the caller's timeout and stop at once on its AbortSignal.
 */
import type { VirtualMachine } from '@azure/arm-compute';
import type { InstanceRef, InstanceState, InstanceStatus, WaitOptions } from '../common/cloud-provider';
import { ProviderError, ProviderErrorType } from '../common/provider-error';

export interface PendingLro {
  verb: 'create' | 'start' | 'deallocate' | 'delete';
  poller: { pollUntilDone(o?: { abortSignal?: AbortSignal }): PromiseLike<unknown>; onProgress(cb: (s: unknown) => void): () => void };
}

/**
 * What the wait needs of the provider. Declared here rather than importing AzureProvider, so the
 * provider imports its waiter and nothing imports back (AzureProvider satisfies it).
 */
export interface AzureWaitTarget {
  readonly site: string;
  /** LROs this process started, by VM name; the wait follows one and then forgets it. */
  readonly pending: Map<string, PendingLro>;
  call<T>(what: string, fn: () => Promise<T>): Promise<T>;
  getVm(name: string): Promise<VirtualMachine | undefined>;
  toState(vm: VirtualMachine): InstanceState;
}

/** What the VM looks like while each LRO runs, for onPoll heartbeats during the LRO. */
const TRANSITIONAL: Record<PendingLro['verb'], InstanceStatus> = { create: 'pending', start: 'pending', deallocate: 'stopping', delete: 'stopping' };

export function azureStatus(vm: VirtualMachine): InstanceStatus {
  const codes = vm.instanceView?.statuses?.map((s) => s.code ?? '') ?? [];
  const power = codes.find((c) => c.startsWith('PowerState/'))?.slice('PowerState/'.length);
  if (/^deleting$/i.test(vm.provisioningState ?? '')) return 'stopping';
  switch (power) {
    case 'starting':
      return 'pending';
    case 'running':
      return 'running';
    case 'stopping':
    case 'deallocating':
      return 'stopping';
    case 'stopped':
    case 'deallocated':
      return 'stopped';
    default:
      return /^(creating|updating)$/i.test(vm.provisioningState ?? '') ? 'pending' : 'unknown';
  }
}

export async function waitForAzureState(
  provider: AzureWaitTarget,
  ref: InstanceRef,
  state: 'running' | 'stopped' | 'terminated',
  opts: WaitOptions,
): Promise<InstanceState> {
  opts.signal?.throwIfAborted();
  const deadline = AbortSignal.timeout(opts.timeoutMs);
  const both = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  let last: InstanceState | undefined;
  const fail = (err: unknown): never => {
    if (opts.signal?.aborted) throw opts.signal.reason;
    if (deadline.aborted) {
      throw new ProviderError(
        ProviderErrorType.Timeout,
        `azure VM '${ref.id}' on site '${provider.site}' is '${last?.status ?? 'unknown'}', not '${state}', after ${opts.timeoutMs} ms; wait longer or check the VM`,
        'azure',
        { cause: err },
      );
    }
    throw err;
  };

  const lro = provider.pending.get(ref.id);
  if (lro) {
    const off = lro.poller.onProgress(() => opts.onPoll?.({ ref, status: TRANSITIONAL[lro.verb], tags: last?.tags ?? {} }));
    try {
      await provider.call(`wait for ${lro.verb} of ${ref.id}`, async () => {
        await lro.poller.pollUntilDone({ abortSignal: both });
      });
      provider.pending.delete(ref.id);
    } catch (err) {
      fail(err);
    } finally {
      off();
    }
  }

  for (;;) {
    try {
      both.throwIfAborted();
      const vm = await provider.getVm(ref.id);
      if (!vm) {
        if (state === 'terminated') {
          const gone: InstanceState = { ref, status: 'terminated', tags: last?.tags ?? {} };
          opts.onPoll?.(gone);
          return gone;
        }
        throw new ProviderError(ProviderErrorType.NotFound, `azure VM '${ref.id}' does not exist on site '${provider.site}' (waiting for '${state}')`, 'azure');
      }
      last = provider.toState(vm);
      opts.onPoll?.(last);
      if (last.status === state) return last;
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          clearTimeout(t);
          reject(both.reason);
        };
        const t = setTimeout(() => {
          both.removeEventListener('abort', onAbort);
          resolve();
        }, opts.pollMs ?? 5_000);
        both.addEventListener('abort', onAbort, { once: true });
      });
    } catch (err) {
      if (err instanceof ProviderError && !both.aborted) throw err;
      fail(err);
    }
  }
}
