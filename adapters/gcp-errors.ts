/**
 * Classifies errors from @google-cloud/compute (google-gax over REST) into ProviderErrors. gax turns
 * the HTTP answer into a gRPC status code; the error's `reason` (or the compute `errors[].reason`)
 * tells a quota apart from plain rate limiting, which share RESOURCE_EXHAUSTED / 429 / 403.
 */
import { ProviderError, ProviderErrorType } from './errors';

/** gRPC status codes, as google-gax reports them. */
const Code = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const HINTS: Record<ProviderErrorType, string> = {
  ProviderThrottled: 'the Compute API is rate limiting this project; the call is retried with backoff',
  ProviderUnavailable: 'the Compute API is unavailable; the call is retried',
  ProviderTimeout: 'the Compute API did not answer in time; the call is retried',
  ProviderAuthError: 'check the Application Default Credentials (or the credentialRef key file) and that the account has compute.instances.* permissions in the project',
  ProviderQuotaExceeded: 'raise the Compute Engine quota for this region or free capacity on the site',
  ProviderInvalidParameter: 'check the site settings (project, zone, image, machineType, network) and the instance spec; names and labels must be lowercase letters, digits and dashes',
  ProviderNotFound: 'the resource does not exist in this project and zone (wrong name or zone, or already deleted)',
  ProviderConflict: 'the resource exists already or is in a state that does not allow this action',
};

const QUOTA_REASONS = /quota|QUOTA_EXCEEDED|ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS/i;
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'UND_ERR_SOCKET']);

interface GaxLikeError {
  code?: number | string;
  reason?: string;
  message?: string;
  name?: string;
  cause?: { code?: string };
}

export function classifyGcpError(err: GaxLikeError): ProviderErrorType {
  const reason = `${err.reason ?? ''} ${err.message ?? ''}`;
  if (typeof err.code === 'string') return NETWORK_CODES.has(err.code) ? ProviderErrorType.Unavailable : ProviderErrorType.Unavailable;
  if (err.cause?.code && NETWORK_CODES.has(err.cause.code)) return ProviderErrorType.Unavailable;
  switch (err.code) {
    case Code.RESOURCE_EXHAUSTED:
      return QUOTA_REASONS.test(reason) ? ProviderErrorType.Quota : ProviderErrorType.Throttled;
    case Code.UNAVAILABLE:
    case Code.INTERNAL:
    case Code.UNKNOWN:
    case Code.ABORTED:
      return ProviderErrorType.Unavailable;
    case Code.DEADLINE_EXCEEDED:
      return ProviderErrorType.Timeout;
    case Code.UNAUTHENTICATED:
      return ProviderErrorType.Auth;
    case Code.PERMISSION_DENIED:
      // Compute answers some quota problems with 403 + reason quotaExceeded.
      return QUOTA_REASONS.test(reason) ? ProviderErrorType.Quota : ProviderErrorType.Auth;
    case Code.NOT_FOUND:
      return ProviderErrorType.NotFound;
    case Code.ALREADY_EXISTS:
    case Code.FAILED_PRECONDITION:
      return ProviderErrorType.Conflict;
    case Code.INVALID_ARGUMENT:
    case Code.OUT_OF_RANGE:
    case Code.UNIMPLEMENTED:
      return ProviderErrorType.InvalidParameter;
    default:
      return ProviderErrorType.Unavailable;
  }
}

export function toGcpProviderError(err: unknown, site: string, what: string): ProviderError {
  if (err instanceof ProviderError) return err;
  const e = (err ?? {}) as GaxLikeError;
  const type = classifyGcpError(e);
  const code = e.code !== undefined ? ` (code ${e.code}${e.reason ? `, ${e.reason}` : ''})` : '';
  return new ProviderError(type, `gcp ${what} on site '${site}' failed${code}: ${e.message ?? String(err)}; ${HINTS[type]}`, 'gcp', { cause: err });
}
