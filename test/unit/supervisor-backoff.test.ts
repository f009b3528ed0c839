/**
 * The supervisor's restart delays (scripts/supervisor.ts): 1 s after a death, doubled after each
 * worker that died young, at most 30 s; a worker that stayed up a minute starts the series over.
 * The restart itself, with a real kill -9, is test/integration/up-detach-supervisor.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff, BACKOFF, exitOf } from '../../scripts/supervisor';

describe('the supervisor back-off', () => {
  it('doubles after each short run up to the cap, and starts over after a stable run', () => {
    const b = new Backoff();
    const short = 2_000;
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(() => b.next(short)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.equal(b.next(BACKOFF.stableMs), 1000, 'a worker that stayed up a minute is restarted after 1 s');
    assert.equal(b.next(short), 2000, 'and the series goes on from there');
    assert.equal(b.next(BACKOFF.stableMs - 1), 4000, 'just under a minute is still a short run');
  });

  it('says how the worker ended: a signal, or an exit code', () => {
    assert.equal(exitOf(null, 'SIGKILL'), 'signal SIGKILL');
    assert.equal(exitOf(1, null), 'exit code 1');
  });
});
