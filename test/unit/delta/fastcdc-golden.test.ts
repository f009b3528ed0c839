import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHUNKER_PRESETS, ChunkerPreset, cutAll, paramsId, Chunker } from '../../../core/chunking';
import { mixedBytes, seededBytes } from './seeded-bytes';
import { referenceCuts } from './fastcdc-reference';

interface Golden {
  vectors: { preset: ChunkerPreset; paramsId: string; input: string; cuts: [number, number, string][] }[];
}
const golden = JSON.parse(readFileSync(join(__dirname, 'golden', 'fastcdc-v1.json'), 'utf8')) as Golden;
const inputs: Record<string, Uint8Array> = {
  'seededBytes(1048576, 0x9e3779b9)': seededBytes(1 << 20, 0x9e3779b9),
  'mixedBytes(2500000, 42)': mixedBytes(2_500_000, 42),
};
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('golden vectors cover every preset on every input', () => {
  assert.equal(golden.vectors.length, Object.keys(CHUNKER_PRESETS).length * Object.keys(inputs).length);
});

for (const v of golden.vectors) {
  test(`FASTCDC_V1 golden cuts: ${v.preset} on ${v.input}`, () => {
    const params = CHUNKER_PRESETS[v.preset];
    assert.equal(paramsId(params), v.paramsId, `preset '${v.preset}' changed its sizes; publish a new preset name instead`);
    const data = inputs[v.input];
    assert.ok(data, `golden input '${v.input}' has no generator in this test`);
    const got = cutAll(data, params).map((c): [number, number, string] => [c.offset, c.length, sha(data.subarray(c.offset, c.offset + c.length))]);
    assert.deepEqual(got, v.cuts);
  });
}

test('the fast finder agrees with the one-byte reference on the golden inputs', () => {
  for (const [name, p] of Object.entries(CHUNKER_PRESETS)) {
    for (const data of Object.values(inputs)) {
      assert.deepEqual(cutAll(data, p), referenceCuts(data, p), `preset ${name}`);
    }
  }
});

test('the streaming chunker reproduces the golden cuts when fed 65536-byte blocks', () => {
  const v = golden.vectors.find((x) => x.preset === 'datacenter' && x.input.startsWith('mixed'))!;
  const data = inputs[v.input]!;
  const chunker = new Chunker(CHUNKER_PRESETS.datacenter);
  const got: [number, number, string][] = [];
  for (let i = 0; i < data.length; i += 65_536) {
    for (const c of chunker.push(data.subarray(i, i + 65_536))) got.push([c.offset, c.length, sha(c.bytes)]);
  }
  for (const c of chunker.finish()) got.push([c.offset, c.length, sha(c.bytes)]);
  assert.deepEqual(got, v.cuts);
});

test('all-zero and every other constant input is cut into maxSize chunks (documented in fastcdc.ts)', () => {
  for (const [name, p] of Object.entries(CHUNKER_PRESETS)) {
    for (let b = 0; b < 256; b++) {
      const data = new Uint8Array(2 * p.maxSize + 5).fill(b);
      const lengths = cutAll(data, p).map((c) => c.length);
      assert.deepEqual(lengths, [p.maxSize, p.maxSize, 5], `preset ${name}, byte 0x${b.toString(16)}`);
    }
  }
});

test('inputs of at most minSize bytes are one chunk; an empty input has none', () => {
  const p = CHUNKER_PRESETS.internet;
  assert.deepEqual(cutAll(new Uint8Array(0), p), []);
  assert.deepEqual(cutAll(seededBytes(p.minSize, 7), p), [{ offset: 0, length: p.minSize }]);
});
