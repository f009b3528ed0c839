/**
 * waitExit: the wait behind a freeze that stops the service (`stop: {signal}`, `stopsInstance`).
 * Real processes: a clean stop is seen once the process is gone, a process that outlives the
 * timeout is reported, and a reused pid (another start time) is not taken for the process waited on.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { exitPollMs, processStartTime, signal, stillRunning, waitExit } from '../../../agent/workload/exec';

function start(args: string[]): { pid: number; startTime: number; exited: Promise<void> } {
  const child = spawn('sleep', args, { stdio: 'ignore' });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const startTime = processStartTime(child.pid!);
  assert.ok(startTime !== undefined, 'the child is running');
  return { pid: child.pid!, startTime, exited };
}

describe('waitExit', () => {
  it('is true once a signalled process has exited', async () => {
    const p = start(['30']);
    assert.equal(stillRunning(p.pid, p.startTime), true);
    signal(p.pid, 'SIGINT');
    assert.equal(await waitExit(p.pid, p.startTime, 10_000), true);
    await p.exited;
    assert.equal(stillRunning(p.pid, p.startTime), false);
  });

  it('is false when the process still runs at the deadline, and leaves it running', async () => {
    const p = start(['30']);
    try {
      assert.equal(await waitExit(p.pid, p.startTime, 100), false);
      assert.equal(stillRunning(p.pid, p.startTime), true);
    } finally {
      signal(p.pid, 'SIGKILL');
      await p.exited;
    }
  });

  it('does not take another process with the same pid for the one waited on', async () => {
    const p = start(['30']);
    try {
      // The same pid with another start time: a process that exited, its pid reused.
      assert.equal(await waitExit(p.pid, p.startTime + 1, 1_000), true);
    } finally {
      signal(p.pid, 'SIGKILL');
      await p.exited;
    }
  });

  it('looks often at first, then less often', () => {
    assert.equal(exitPollMs(0), 2);
    assert.equal(exitPollMs(249), 2);
    assert.equal(exitPollMs(250), 10);
    assert.equal(exitPollMs(1_999), 10);
    assert.equal(exitPollMs(2_000), 20);
  });
});
