/**
 * Classifies errors from @azure/arm-compute (RestError from @azure/core-rest-pipeline, failed LROs,
 * @azure/identity credential errors) into ProviderErrors. ARM's error `code` is the precise signal;
 * the HTTP status is the fallback.
 */
import { ProviderError, ProviderErrorType } from '../common/provider-error';

const HINTS: Record<ProviderErrorType, string> = {
  ProviderThrottled: 'Azure Resource Manager is throttling this subscription; the call is retried with backoff',
  ProviderUnavailable: 'Azure Resource Manager is unavailable; the call is retried',
  ProviderTimeout: 'Azure Resource Manager did not answer in time; the call is retried',
  ProviderAuthError: 'check what DefaultAzureCredential resolves (environment, workload or managed identity named by credentialRef, Azure CLI) and its role assignment on the resource group',
  ProviderQuotaExceeded: 'raise the vCPU / VM quota for this region or choose a VM size with free quota',
  ProviderInvalidParameter: 'check the site settings (subscriptionId, resourceGroup, location, image, vmSize, networkInterfaceId or subnetId) and the instance spec',
  ProviderNotFound: 'the resource does not exist in this resource group (wrong name, or already deleted)',
  ProviderConflict: 'the resource exists with other settings or is busy with another operation',
};

const THROTTLE = new Set(['TooManyRequests', 'SubscriptionRequestsThrottled', 'ResourceRequestsThrottled', 'RetryableError']);
const AUTH = new Set([
  'AuthenticationFailed', 'InvalidAuthenticationToken', 'InvalidAuthenticationTokenTenant', 'ExpiredAuthenticationToken',
  'AuthorizationFailed', 'LinkedAuthorizationFailed', 'Unauthorized', 'Forbidden', 'CredentialUnavailableError', 'AuthenticationRequiredError',
]);
const QUOTA = new Set(['QuotaExceeded', 'OperationNotAllowedQuota', 'SkuNotAvailable', 'ZonalAllocationFailed', 'AllocationFailed', 'OverconstrainedAllocationRequest']);
const NOT_FOUND = new Set(['ResourceNotFound', 'NotFound', 'ResourceGroupNotFound', 'SubscriptionNotFound', 'ParentResourceNotFound']);
const INVALID = new Set([
  'InvalidParameter', 'BadRequest', 'InvalidRequestContent', 'InvalidResourceName', 'InvalidApiVersionParameter',
  'MissingApiVersionParameter', 'InvalidRequestFormat', 'LinkedInvalidPropertyId', 'InvalidResourceReference', 'PropertyChangeNotAllowed',
]);
const CONFLICT = new Set(['Conflict', 'OperationNotAllowed', 'AnotherOperationInProgress', 'OperationPreempted']);
/** TLS verification failures: retrying cannot help, the endpoint or its CA is wrong. */
const TLS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const UNAVAILABLE = new Set(['InternalServerError', 'ServiceUnavailable', 'InternalOperationError', 'GatewayTimeout', 'REQUEST_SEND_ERROR']);

interface AzureLikeError {
  name?: string;
  code?: string;
  statusCode?: number;
  message?: string;
}

/** core-rest-pipeline wraps socket errors as REQUEST_SEND_ERROR; the TLS code survives in the message. */
function tlsCodeIn(message: string | undefined): string {
  return [...TLS].find((c) => message?.includes(c) || (c === 'DEPTH_ZERO_SELF_SIGNED_CERT' && /self[- ]signed certificate/i.test(message ?? ''))) ?? '';
}

export function classifyAzureError(e: AzureLikeError): ProviderErrorType {
  const code = e.code ?? '';
  if (TLS.has(code) || TLS.has(tlsCodeIn(e.message))) return ProviderErrorType.Auth;
  // identity errors carry their kind in `name`, not in `code`.
  if (AUTH.has(code) || AUTH.has(e.name ?? '') || e.name === 'AuthenticationError') return ProviderErrorType.Auth;
  if (THROTTLE.has(code) || e.statusCode === 429) return ProviderErrorType.Throttled;
  // A request aborted by the pipeline's own timeout (not by the caller) is a timeout.
  if (e.name === 'AbortError' || code === 'ETIMEDOUT' || (code === 'REQUEST_SEND_ERROR' && /timed? ?out|aborted/i.test(e.message ?? ''))) return ProviderErrorType.Timeout;
  // "OperationNotAllowed ... exceeding approved quota" is ARM's usual quota answer.
  if (QUOTA.has(code) || (code === 'OperationNotAllowed' && /quota/i.test(e.message ?? ''))) return ProviderErrorType.Quota;
  if (NOT_FOUND.has(code)) return ProviderErrorType.NotFound;
  if (INVALID.has(code)) return ProviderErrorType.InvalidParameter;
  if (CONFLICT.has(code)) return ProviderErrorType.Conflict;
  if (UNAVAILABLE.has(code)) return ProviderErrorType.Unavailable;
  const s = e.statusCode;
  if (s === 401 || s === 403) return ProviderErrorType.Auth;
  if (s === 404) return ProviderErrorType.NotFound;
  if (s === 409 || s === 412) return ProviderErrorType.Conflict;
  if (s === 408 || s === 504) return ProviderErrorType.Timeout;
  if (s !== undefined && s >= 500) return ProviderErrorType.Unavailable;
  if (s !== undefined && s >= 400) return ProviderErrorType.InvalidParameter;
  return ProviderErrorType.Unavailable;
}

export function toAzureProviderError(err: unknown, site: string, what: string): ProviderError {
  if (err instanceof ProviderError) return err;
  const e = (err ?? {}) as AzureLikeError;
  const type = classifyAzureError(e);
  const tls = TLS.has(e.code ?? '') || tlsCodeIn(e.message) ? "the endpoint's TLS certificate is not trusted: check the endpoint setting and the CA this worker trusts; " : '';
  const detail = [e.statusCode ? `HTTP ${e.statusCode}` : '', e.code ?? (e.name && e.name !== 'Error' && e.name !== 'RestError' ? e.name : '')].filter(Boolean).join(', ');
  return new ProviderError(type, `azure ${what} on site '${site}' failed${detail ? ` (${detail})` : ''}: ${e.message ?? String(err)}; ${tls || HINTS[type]}`, 'azure', { cause: err });
}
