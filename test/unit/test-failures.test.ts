/**
 * What `npm test` repeats at its end of each tier's failures, read from the real output of node's
 * spec reporter (a tier of two files, two tests failing, one passing), not from a copy of it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { failureDigest } from '../../scripts/test-failures';
import { tempDir } from '../helpers/tmp';

function specOutput(files: Record<string, string>): string {
  const dir = tempDir('fedflow-test-failures-');
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), body);
  // A runner of its own: without NODE_TEST_CONTEXT (set for this file by the runner running it),
  // which would make the child report to that runner instead of printing its spec output.
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...Object.keys(files)], { cwd: dir, encoding: 'utf8', env });
  return r.stdout;
}

describe("npm test's digest of failures", () => {
  it("names each failed test of a tier with its file and the start of its error, and nothing that passed", () => {
    const out = specOutput({
      'a.test.js': `const { it } = require('node:test');
const assert = require('node:assert');
it('adds up', () => assert.equal(1 + 1, 2));
it('finds the button', () => { throw new Error('locator.click: Timeout 30000ms exceeded'); });
`,
      'b.test.js': `const { it } = require('node:test');
const assert = require('node:assert');
it('resumes within 15 s', () => assert.ok(false, 'writes resumed 16000 ms after the restart'));
`,
    });
    const digest = failureDigest(out).join('\n');
    assert.match(digest, /test at .*a\.test\.js/);
    assert.match(digest, /finds the button/);
    assert.match(digest, /Timeout 30000ms exceeded/);
    assert.match(digest, /test at .*b\.test\.js/);
    assert.match(digest, /writes resumed 16000 ms after the restart/);
    assert.doesNotMatch(digest, /adds up/);
  });

  it('keeps at most the given number of lines per failed test', () => {
    const out = specOutput({
      'deep.test.js': `const { it } = require('node:test');
function down(n) { if (n === 0) throw new Error('deep'); return down(n - 1); }
it('a long stack', () => down(30));
`,
    });
    const full = failureDigest(out, 1000);
    const short = failureDigest(out, 3);
    assert.ok(full.length > 3, `the whole block has more than 3 lines: ${full.length}`);
    assert.equal(short.length, 3);
    assert.match(short[0]!, /^test at .*deep\.test\.js/);
  });

  it('is empty for a tier that passed', () => {
    const out = specOutput({ 'ok.test.js': `require('node:test').it('fine', () => {});\n` });
    assert.match(out, /ℹ pass 1/);
    assert.deepEqual(failureDigest(out), []);
  });
});
