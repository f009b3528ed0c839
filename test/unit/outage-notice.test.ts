/**
 * What `migrate --wait` says while Temporal or the workers do not answer (cli/progress.ts): the
 * one line `status` prints, once per outage, and one line when they answer again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutageNotice } from '../../cli/progress';
import { FedflowError } from '../../client';
import { noWorker } from '../../client/unreachable';

const down = () => new FedflowError('cannot reach Temporal at 127.0.0.1:7233 (no answer within 5 s); start it with `fedflow up`, or set TEMPORAL_ADDRESS to your cluster', 'TemporalUnavailable');

describe('OutageNotice', () => {
  it('one line per outage, however many polls fail, and one when Temporal answers again', () => {
    const lines: string[] = [];
    const n = new OutageNotice((l) => lines.push(l));
    n.answered();
    for (let i = 0; i < 5; i++) n.failed(down());
    n.answered();
    n.answered();
    n.failed(down());
    n.answered();
    assert.deepEqual(lines, [
      `fedflow: ${down().message}`,
      'fedflow: Temporal and the workers answer again; following the migration',
      `fedflow: ${down().message}`,
      'fedflow: Temporal and the workers answer again; following the migration',
    ]);
  });

  it('other failures stay silent (the next poll catches up)', () => {
    const lines: string[] = [];
    const n = new OutageNotice((l) => lines.push(l));
    n.failed(new Error('query failed: workflow task in progress'));
    n.failed(new FedflowError('no migration of workload x was found', 'MigrationNotFound'));
    n.answered();
    assert.deepEqual(lines, []);
  });

  it('workers said missing only once none has polled for the grace period; Temporal down, then workers missing, are two lines', async () => {
    const lines: string[] = [];
    const n = new OutageNotice((l) => lines.push(l), 50);
    n.failed(down());
    n.failed(noWorker('fedflow', '127.0.0.1:7233'));
    assert.equal(lines.length, 1, 'right after Temporal comes back, its workers have not polled yet');
    await new Promise((r) => setTimeout(r, 60));
    n.failed(noWorker('fedflow', '127.0.0.1:7233'));
    n.failed(noWorker('fedflow', '127.0.0.1:7233'));
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, /^fedflow: no fedflow worker is running: nothing polls task queue 'fedflow' on Temporal at 127\.0\.0\.1:7233; start the workers with `fedflow up`/);
    assert.equal(n.last?.message, noWorker('fedflow', '127.0.0.1:7233').message);
    n.answered();
    assert.equal(lines.length, 3);
    assert.equal(n.last, undefined);
  });
});
