/**
 * Classifies errors from @aws-sdk/client-ec2 into ProviderErrors. EC2 answers with a code in the
 * error's `name` (e.g. `InvalidInstanceID.NotFound`) and an HTTP status in `$metadata`; the code is
 * the more precise of the two, so it is checked first and the status is the fallback.
 */
import { ProviderError, ProviderErrorType } from '../common/provider-error';

const THROTTLE_CODES = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestThrottled', 'SlowDown']);
const UNAVAILABLE_CODES = new Set(['ServiceUnavailable', 'Unavailable', 'InternalError', 'InternalFailure', 'InsufficientInstanceCapacity', 'InsufficientCapacity']);
const AUTH_CODES = new Set([
  'AuthFailure', 'UnauthorizedOperation', 'InvalidClientTokenId', 'SignatureDoesNotMatch', 'AccessDenied',
  'AccessDeniedException', 'OptInRequired', 'Blocked', 'ExpiredToken', 'CredentialsProviderError',
]);
const CONFLICT_CODES = new Set(['IncorrectInstanceState', 'IncorrectState', 'IdempotentParameterMismatch', 'InvalidInstanceID.NotLinkable']);
const TIMEOUT_CODES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'ETIMEDOUT']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND']);

const HINTS: Record<ProviderErrorType, string> = {
  ProviderThrottled: 'EC2 is throttling this account; the call is retried with backoff',
  ProviderUnavailable: 'EC2 or its endpoint is unavailable; the call is retried',
  ProviderTimeout: 'the EC2 request timed out; the call is retried',
  ProviderAuthError: 'check the credentials the AWS default chain resolves (env, profile, instance role) and that their IAM policy allows this EC2 action',
  ProviderQuotaExceeded: 'raise the EC2 service quota for this region or free capacity on the site',
  ProviderInvalidParameter: 'check the site settings (imageId, instanceType, subnetId, securityGroupIds) and the instance spec',
  ProviderNotFound: 'the resource does not exist in this region (wrong id, wrong region, or already deleted)',
  ProviderConflict: 'the resource is in a state that does not allow this action',
};

interface AwsLikeError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: 'client' | 'server';
}

export function classifyAwsCode(code: string, status: number | undefined): ProviderErrorType {
  if (THROTTLE_CODES.has(code) || status === 429) return ProviderErrorType.Throttled;
  if (TIMEOUT_CODES.has(code)) return ProviderErrorType.Timeout;
  if (UNAVAILABLE_CODES.has(code) || NETWORK_CODES.has(code)) return ProviderErrorType.Unavailable;
  if (AUTH_CODES.has(code) || code.startsWith('UnauthorizedOperation')) return ProviderErrorType.Auth;
  if (CONFLICT_CODES.has(code)) return ProviderErrorType.Conflict;
  // *LimitExceeded is a quota, except RequestLimitExceeded which is API throttling (handled above).
  if (/LimitExceeded$|QuotaExceeded$|^MaxSpotInstanceCountExceeded$/.test(code)) return ProviderErrorType.Quota;
  // moto reports an unknown instance type as InvalidInstanceType.NotFound while EC2 says
  // InvalidParameterValue; either way the caller asked for a size that does not exist.
  if (code.startsWith('InvalidInstanceType')) return ProviderErrorType.InvalidParameter;
  if (code.endsWith('.NotFound') || code.endsWith('NotFound')) return ProviderErrorType.NotFound;
  if (/^Invalid|^MissingParameter|\.Malformed$|^ValidationError$|^UnknownParameter$/.test(code)) return ProviderErrorType.InvalidParameter;
  if (status === 401 || status === 403) return ProviderErrorType.Auth;
  if (status === 404) return ProviderErrorType.NotFound;
  if (status !== undefined && status >= 500) return ProviderErrorType.Unavailable;
  if (status !== undefined && status >= 400) return ProviderErrorType.InvalidParameter;
  return ProviderErrorType.Unavailable;
}

/** Wraps any error thrown by an EC2 call; `what` names the call and its target for the message. */
export function toAwsProviderError(err: unknown, site: string, what: string): ProviderError {
  if (err instanceof ProviderError) return err;
  const e = (err ?? {}) as AwsLikeError;
  const code = e.name && e.name !== 'Error' ? e.name : e.code ?? 'UnknownError';
  const status = e.$metadata?.httpStatusCode;
  const type = classifyAwsCode(code, status);
  const statusText = status ? ` (HTTP ${status})` : '';
  return new ProviderError(type, `aws ${what} on site '${site}' failed: ${code}${statusText}: ${e.message ?? String(err)}; ${HINTS[type]}`, 'aws', { cause: err });
}
