/** ProviderError → Temporal ApplicationFailure: the retry decision follows the classification. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { toActivityFailure, withProviderFailures } from '../../activities/provider-failure';
import { ProviderError, ProviderErrorType } from '../../adapters/common/provider-error';

describe('toActivityFailure', () => {
  for (const type of Object.values(ProviderErrorType)) {
    it(`${type} becomes an ApplicationFailure of that type with the right retry flag`, () => {
      const err = new ProviderError(type, `gcp instances.get(x) failed: ${type}`, 'gcp');
      const f = toActivityFailure(err);
      assert.ok(f instanceof ApplicationFailure);
      assert.equal(f.type, type);
      assert.equal(f.message, err.message);
      assert.equal(f.nonRetryable, !err.retryable);
      const retryable: string[] = [ProviderErrorType.Throttled, ProviderErrorType.Unavailable, ProviderErrorType.Timeout];
      assert.equal(f.nonRetryable, !retryable.includes(type));
    });
  }

  it('leaves other errors and cancellation alone', () => {
    const plain = new Error('boom');
    assert.equal(toActivityFailure(plain), plain);
    const cancelled = new CancelledFailure('activity cancelled');
    assert.equal(toActivityFailure(cancelled), cancelled);
  });

  it('withProviderFailures rethrows through the mapping', async () => {
    await assert.rejects(
      withProviderFailures(async () => {
        throw new ProviderError(ProviderErrorType.Auth, 'aws DescribeInstances failed: AuthFailure', 'aws');
      }),
      (e) => e instanceof ApplicationFailure && e.nonRetryable === true && e.type === 'ProviderAuthError',
    );
    assert.equal(await withProviderFailures(async () => 7), 7);
  });
});
