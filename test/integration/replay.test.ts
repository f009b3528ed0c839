/**
 * Determinism guard: every recorded migrateWorkload history in test/histories must replay against
 * the current workflow code. A failure here means a shipped workflow shape changed without patched().
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { workflowBundle } from '../helpers/temporal';

const dir = join(__dirname, '..', 'histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

describe('recorded histories replay cleanly', () => {
  it('has recorded histories to replay', () => {
    assert.ok(files.length >= 2, `expected recorded histories in ${dir}`);
  });
  for (const f of files) {
    it(f, async () => {
      const history = historyFromJSON(JSON.parse(readFileSync(join(dir, f), 'utf8')));
      // Files are named <workflowId>.<tag>-<case>.json; the migration checks its id against the workload.
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle({ production: true }) }, history, f.split('.')[0]);
    });
  }
});
