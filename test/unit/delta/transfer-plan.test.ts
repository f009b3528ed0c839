/**
 * Transfer chunk sizes beyond core/chunking's presets: valid FASTCDC_V1 parameters, cut exactly as
 * the one-byte reference cuts, and the sizes the modes' plans and the policy's classes pick.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkParams, cutAll } from '../../../core/chunking';
import { DEFAULT_PLANS, planFromDecision, TRANSFER_CHUNK_PRESETS } from '../../../core/transfer-plan';
import { referenceCuts } from './fastcdc-reference';
import { mixedBytes, seededBytes } from './seeded-bytes';

test('every transfer chunk preset is valid and cuts as the one-byte reference does', () => {
  for (const [name, p] of Object.entries(TRANSFER_CHUNK_PRESETS)) {
    assert.deepEqual(checkParams(p), [], `preset ${name}`);
    for (const data of [seededBytes(700_000, 21), mixedBytes(900_000, 22)]) {
      const cuts = cutAll(data, p);
      assert.deepEqual(cuts, referenceCuts(data, p), `preset ${name}`);
      const avg = data.length / cuts.length;
      assert.ok(avg > p.minSize && avg < p.maxSize, `preset ${name}: average chunk ${avg}`);
    }
  }
});

test('the modes plan the chunk sizes the policy classes map to', () => {
  assert.equal(DEFAULT_PLANS.datacenter.chunkPreset, 'internet');
  assert.equal(DEFAULT_PLANS.internet.chunkPreset, 'fine');
  assert.equal(planFromDecision('datacenter', { codec: 'lz4', level: 1, streams: 2, chunkPreset: 'large', estimatedSeconds: 1 } as never).chunkPreset, DEFAULT_PLANS.datacenter.chunkPreset);
  assert.equal(planFromDecision('internet', { codec: 'zstd', level: 3, streams: 8, chunkPreset: 'small', estimatedSeconds: 1 } as never).chunkPreset, DEFAULT_PLANS.internet.chunkPreset);
});
