/**
 * Classifies errors from @google-cloud/compute (google-gax over REST) into ProviderErrors. gax turns
 * the HTTP answer into a gRPC status code; the error's `reason` (or the compute `errors[].reason`)
 * tells a quota apart from plain rate limiting, which share RESOURCE_EXHAUSTED / 429 / 403.
 */
import { ProviderError, ProviderErrorType } from '../common/provider-error';

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
  /** HTTP status: set by gaxios (google-auth-library's fetch) on a non-2xx answer. */
  status?: number;
  reason?: string;
  message?: string;
  name?: string;
  cause?: { code?: string };
  response?: { status?: number; data?: unknown };
}

interface GoogleErrorBody {
  error?: { code?: number; message?: string; status?: string; errors?: { reason?: string; message?: string }[] };
}

/** The facts that decide the class, from either a gax GoogleError or a gaxios HTTP error. */
export interface GcpErrorFacts {
  http?: number;
  grpc?: number;
  statusName?: string;
  reason?: string;
  message: string;
  sys?: string;
}

export function gcpErrorFacts(err: GaxLikeError): GcpErrorFacts {
  let data = err.response?.data;
  if (typeof data === 'string') {
    try {
      data = JSON.parse(data);
    } catch {
      // not JSON: keep the text as the message
    }
  }
  const body = (data && typeof data === 'object' ? (data as GoogleErrorBody).error : undefined) ?? undefined;
  const sys = typeof err.code === 'string' ? err.code : err.cause?.code;
  const http = err.response?.status ?? err.status ?? body?.code;
  return {
    ...(http !== undefined ? { http } : {}),
    ...(typeof err.code === 'number' && !err.response ? { grpc: err.code } : {}),
    ...(body?.status ? { statusName: body.status } : {}),
    ...(body?.errors?.[0]?.reason ?? err.reason ? { reason: body?.errors?.[0]?.reason ?? err.reason } : {}),
    message: body?.message ?? err.message ?? String(err),
    ...(sys && !/^\d+$/.test(sys) ? { sys } : {}),
  };
}

const RATE_REASONS = /rateLimitExceeded|userRateLimitExceeded|RATE_LIMIT_EXCEEDED/;

export function classifyGcpError(err: GaxLikeError): ProviderErrorType {
  const f = gcpErrorFacts(err);
  const text = `${f.reason ?? ''} ${f.message}`;
  if (f.sys === 'ETIMEDOUT') return ProviderErrorType.Timeout;
  if (f.sys && NETWORK_CODES.has(f.sys)) return ProviderErrorType.Unavailable;
  if (f.http !== undefined) {
    const h = f.http;
    if (h === 429) return QUOTA_REASONS.test(f.reason ?? '') ? ProviderErrorType.Quota : ProviderErrorType.Throttled;
    if (h === 408 || h === 504) return ProviderErrorType.Timeout;
    if (h >= 500) return ProviderErrorType.Unavailable;
    if (h === 401) return ProviderErrorType.Auth;
    // Compute uses 403 for permissions, for quotas and for some rate limits: the reason decides.
    if (h === 403) return RATE_REASONS.test(text) ? ProviderErrorType.Throttled : QUOTA_REASONS.test(text) ? ProviderErrorType.Quota : ProviderErrorType.Auth;
    if (h === 404) return ProviderErrorType.NotFound;
    if (h === 409 || h === 412) return ProviderErrorType.Conflict;
    if (h >= 400) return ProviderErrorType.InvalidParameter;
  }
  if (typeof err.code === 'string') return ProviderErrorType.Unavailable;
  switch (f.grpc) {
    case Code.RESOURCE_EXHAUSTED:
      return QUOTA_REASONS.test(text) ? ProviderErrorType.Quota : ProviderErrorType.Throttled;
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
      return QUOTA_REASONS.test(text) ? ProviderErrorType.Quota : ProviderErrorType.Auth;
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
  const f = gcpErrorFacts(e);
  const code = [f.http !== undefined ? `HTTP ${f.http}` : '', f.grpc !== undefined ? `code ${f.grpc}` : '', f.statusName ?? '', f.reason ?? '', f.sys ?? ''].filter(Boolean).join(', ');
  return new ProviderError(type, `gcp ${what} on site '${site}' failed${code ? ` (${code})` : ''}: ${f.message}; ${HINTS[type]}`, 'gcp', { cause: err });
}
