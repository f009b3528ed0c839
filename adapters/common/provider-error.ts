/**
 * Provider failures, classified once at the adapter boundary. Activities turn a non-retryable
 * one into `ApplicationFailure.nonRetryable(message, type)` so Temporal stops retrying it.
 */
export const ProviderErrorType = {
  Throttled: 'ProviderThrottled',
  Unavailable: 'ProviderUnavailable',
  Timeout: 'ProviderTimeout',
  Auth: 'ProviderAuthError',
  Quota: 'ProviderQuotaExceeded',
  InvalidParameter: 'ProviderInvalidParameter',
  NotFound: 'ProviderNotFound',
  Conflict: 'ProviderConflict',
} as const;
export type ProviderErrorType = (typeof ProviderErrorType)[keyof typeof ProviderErrorType];

const RETRYABLE: ReadonlySet<ProviderErrorType> = new Set([
  ProviderErrorType.Throttled,
  ProviderErrorType.Unavailable,
  ProviderErrorType.Timeout,
]);

export class ProviderError extends Error {
  readonly retryable: boolean;
  constructor(
    readonly type: ProviderErrorType,
    message: string,
    readonly provider: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProviderError';
    this.retryable = RETRYABLE.has(type);
  }
}
