/**
 * Waiting for an EC2 instance state with the SDK's own waiters. The waiter is given a thin view of
 * the client whose `send` reports every DescribeInstances answer to `onPoll`, so the activity can
 * heartbeat on each poll without a second polling loop.
 */
import {
  DescribeInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
  waitUntilInstanceTerminated,
  type DescribeInstancesCommandOutput,
  type EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import type { InstanceRef, InstanceState, WaitOptions } from '../common/cloud-provider';
import { ProviderError, ProviderErrorType } from '../common/provider-error';
import { toAwsProviderError } from './errors';

/**
 * What the wait needs of the provider. Declared here rather than importing AwsProvider, so the
 * provider imports its waiter and nothing imports back (AwsProvider satisfies it).
 */
export interface Ec2WaitTarget {
  readonly site: string;
  readonly client: EC2Client;
  toState(inst: Instance): InstanceState;
  describeInstance(ref: InstanceRef): Promise<InstanceState>;
}

const WAITERS = {
  running: waitUntilInstanceRunning,
  stopped: waitUntilInstanceStopped,
  terminated: waitUntilInstanceTerminated,
} as const;

export async function waitForEc2State(
  provider: Ec2WaitTarget,
  ref: InstanceRef,
  state: 'running' | 'stopped' | 'terminated',
  opts: WaitOptions,
): Promise<InstanceState> {
  opts.signal?.throwIfAborted();
  const real = provider.client;
  let last: InstanceState | undefined;
  const observing = Object.create(real) as EC2Client;
  observing.send = (async (cmd: unknown, ...rest: unknown[]) => {
    const out = await (real.send as (c: unknown, ...r: unknown[]) => Promise<unknown>)(cmd, ...rest);
    if (cmd instanceof DescribeInstancesCommand) {
      const inst = (out as DescribeInstancesCommandOutput).Reservations?.[0]?.Instances?.[0];
      if (inst) {
        last = provider.toState(inst);
        opts.onPoll?.(last);
      }
    }
    return out;
  }) as EC2Client['send'];

  // Waiter delays are in seconds; the wait must end by timeoutMs, so maxWaitTime rounds down.
  const pollSec = Math.max(0.1, (opts.pollMs ?? 5_000) / 1000);
  const maxWaitTime = Math.max(pollSec + 0.001, opts.timeoutMs / 1000);
  try {
    await WAITERS[state](
      { client: observing, maxWaitTime, minDelay: pollSec, maxDelay: Math.max(pollSec, Math.min(pollSec * 4, 30)), ...(opts.signal ? { abortSignal: opts.signal } : {}) },
      { InstanceIds: [ref.id] },
    );
  } catch (err) {
    // Cancellation: rethrow the signal's own reason (a CancelledFailure inside an activity).
    if (opts.signal?.aborted) throw opts.signal.reason;
    const name = (err as Error).name;
    if (name === 'TimeoutError') {
      throw new ProviderError(
        ProviderErrorType.Timeout,
        `aws instance '${ref.id}' on site '${provider.site}' is '${last?.status ?? 'unknown'}', not '${state}', after ${opts.timeoutMs} ms; wait longer or check the instance`,
        'aws',
        { cause: err },
      );
    }
    if (err instanceof ProviderError || (err as { $metadata?: unknown }).$metadata) throw toAwsProviderError(err, provider.site, `wait for ${ref.id} ${state}`);
    // The waiter's FAILURE state: the instance went somewhere it cannot come back from.
    throw new ProviderError(
      ProviderErrorType.Conflict,
      `aws instance '${ref.id}' on site '${provider.site}' reached '${last?.status ?? 'unknown'}' while waiting for '${state}'`,
      'aws',
      { cause: err },
    );
  }
  return provider.describeInstance(ref);
}
