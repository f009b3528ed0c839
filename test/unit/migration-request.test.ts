import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMigrationRequest } from '../../core/migration';

describe('parseMigrationRequest', () => {
  it('accepts a request typed into the UI, as an object or a JSON string', () => {
    assert.deepEqual(parseMigrationRequest({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' }), { ok: true, value: { workloadId: 'kv-demo', targetSite: 'dc:frankfurt' } });
    assert.deepEqual(parseMigrationRequest('{"workloadId":"kv-demo","targetSite":"dc:frankfurt","mode":"internet"}'), {
      ok: true,
      value: { workloadId: 'kv-demo', targetSite: 'dc:frankfurt', mode: 'internet' },
    });
  });

  it('lists every problem at once, each naming what would be right', () => {
    const r = parseMigrationRequest({ workloadId: 'KV demo', targetSite: 'frankfurt', mode: 'fast', extra: 1 });
    assert.equal(r.ok, false);
    assert.deepEqual(!r.ok && r.problems, [
      "unknown field 'extra' (accepted: workloadId, targetSite, sourceSite, mode)",
      '\'workloadId\' "KV demo" must be lowercase letters, digits and dashes',
      '\'targetSite\' "frankfurt" is not a site id; expected <kind>:<name>, e.g. "dc:frankfurt"',
      '\'mode\' "fast" is not a mode (accepted: datacenter, internet, hybrid)',
    ]);
  });

  it('refuses what is not an object', () => {
    for (const [input, want] of [
      [null, /got null/],
      [[1], /got an array/],
      [42, /got number/],
      ['{oops', /input is not valid JSON/],
    ] as const) {
      const r = parseMigrationRequest(input);
      assert.equal(r.ok, false);
      assert.match(!r.ok ? r.problems[0]! : '', want);
    }
  });
});
