/**
 * Classification tables for the three cloud adapters: the codes each cloud documents for each
 * class. The contract suites exercise the same paths end to end; these pin the codes the fakes
 * and moto do not produce (quota, conflicts, identity errors).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyAwsCode, toAwsProviderError } from '../../adapters/aws/errors';
import { classifyAzureError } from '../../adapters/azure/errors';
import { ProviderErrorType as T } from '../../adapters/common/provider-error';
import { classifyGcpError } from '../../adapters/gcp/errors';

describe('aws error classes', () => {
  const table: [string, number | undefined, T][] = [
    ['RequestLimitExceeded', 503, T.Throttled],
    ['Throttling', 400, T.Throttled],
    ['InternalError', 500, T.Unavailable],
    ['InsufficientInstanceCapacity', 500, T.Unavailable],
    ['TimeoutError', undefined, T.Timeout],
    ['AuthFailure', 401, T.Auth],
    ['UnauthorizedOperation', 403, T.Auth],
    ['InstanceLimitExceeded', 400, T.Quota],
    ['VcpuLimitExceeded', 400, T.Quota],
    ['InvalidParameterValue', 400, T.InvalidParameter],
    ['InvalidAMIID.Malformed', 400, T.InvalidParameter],
    ['InvalidInstanceType.NotFound', 400, T.InvalidParameter],
    ['InvalidInstanceID.NotFound', 400, T.NotFound],
    ['InvalidVolume.NotFound', 400, T.NotFound],
    ['IncorrectInstanceState', 400, T.Conflict],
    ['SomethingNew', 502, T.Unavailable],
    ['SomethingNew', 400, T.InvalidParameter],
  ];
  for (const [code, status, want] of table) it(`${code} (${status}) → ${want}`, () => assert.equal(classifyAwsCode(code, status), want));

  it('the message names the call, the site, the code and a hint', () => {
    const e = toAwsProviderError({ name: 'AuthFailure', message: 'AWS was not able to validate the provided access credentials', $metadata: { httpStatusCode: 401 } }, 'aws:us-east-1', 'RunInstances');
    assert.match(e.message, /^aws RunInstances on site 'aws:us-east-1' failed: AuthFailure \(HTTP 401\): AWS was not able.*default chain/);
    assert.equal(e.retryable, false);
  });
});

describe('azure error classes', () => {
  const table: [Record<string, unknown>, T][] = [
    [{ statusCode: 429, code: 'TooManyRequests' }, T.Throttled],
    [{ statusCode: 500, code: 'InternalServerError' }, T.Unavailable],
    [{ statusCode: 503 }, T.Unavailable],
    [{ name: 'AbortError', message: 'The operation was aborted.' }, T.Timeout],
    [{ statusCode: 401, code: 'InvalidAuthenticationToken' }, T.Auth],
    [{ statusCode: 403, code: 'AuthorizationFailed' }, T.Auth],
    [{ name: 'CredentialUnavailableError', message: 'no credential' }, T.Auth],
    [{ statusCode: 409, code: 'OperationNotAllowed', message: 'results in exceeding approved Total Regional Cores quota' }, T.Quota],
    [{ statusCode: 409, code: 'OperationNotAllowed', message: 'VM is marked for deletion' }, T.Conflict],
    [{ statusCode: 400, code: 'InvalidParameter' }, T.InvalidParameter],
    [{ statusCode: 404, code: 'ResourceNotFound' }, T.NotFound],
    [{ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }, T.Auth],
  ];
  for (const [err, want] of table) it(`${JSON.stringify(err)} → ${want}`, () => assert.equal(classifyAzureError(err), want));
});

describe('gcp error classes', () => {
  const http = (status: number, reason: string, message = reason) => ({ status, response: { status, data: { error: { code: status, message, errors: [{ reason }] } } } });
  const table: [Record<string, unknown>, T][] = [
    [http(429, 'rateLimitExceeded'), T.Throttled],
    [http(403, 'userRateLimitExceeded'), T.Throttled],
    [http(403, 'quotaExceeded', "Quota 'CPUS' exceeded. Limit: 24.0 in region europe-west1."), T.Quota],
    [http(403, 'forbidden'), T.Auth],
    [http(401, 'authError'), T.Auth],
    [http(400, 'invalid'), T.InvalidParameter],
    [http(404, 'notFound'), T.NotFound],
    [http(409, 'alreadyExists'), T.Conflict],
    [http(503, 'backendError'), T.Unavailable],
    [http(504, 'timeout'), T.Timeout],
    [{ code: 8, message: 'RESOURCE_EXHAUSTED' }, T.Throttled],
    [{ code: 4, message: 'deadline' }, T.Timeout],
    [{ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' }, T.Unavailable],
  ];
  for (const [err, want] of table) it(`${JSON.stringify(err).slice(0, 80)} → ${want}`, () => assert.equal(classifyGcpError(err), want));
});
