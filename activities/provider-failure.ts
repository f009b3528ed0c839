/**
 * The one place where a provider's error classification becomes Temporal's retry decision.
 * Activities call `throw toActivityFailure(err)` (or wrap their body in `withProviderFailures`),
 * so a non-retryable ProviderError stops Temporal's retries at once instead of burning the
 * retry policy on an auth error or a bad image id.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { ProviderError } from '../adapters/common/provider-error';

/**
 * Maps a ProviderError to an ApplicationFailure whose `type` is the ProviderErrorType (so retry
 * policies may list types in `nonRetryableErrorTypes` too) and whose `nonRetryable` flag follows
 * the classification. Anything else, cancellation included, is returned unchanged.
 */
export function toActivityFailure(err: unknown): unknown {
  if (err instanceof CancelledFailure || !(err instanceof ProviderError)) return err;
  const details = [{ provider: err.provider, type: err.type }];
  // The message already names the call, the site and what would be right; details carry the class.
  if (!err.retryable) return ApplicationFailure.nonRetryable(err.message, err.type, ...details);
  return ApplicationFailure.create({ message: err.message, type: err.type, nonRetryable: false, details, cause: err });
}

/** Runs an activity body and rethrows its errors through toActivityFailure. */
export async function withProviderFailures<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toActivityFailure(err);
  }
}
