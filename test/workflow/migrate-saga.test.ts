/**
 * migrateWorkload on Temporal's time-skipping test server, with mocked activities and a fake
 * federation (./workflows.ts): no agents, no volumes, no consensus. What it shows:
 *   - each step's failure runs exactly the compensations pushed before it, in reverse;
 *   - a pause holds the migration before its next step, until resume;
 *   - a compensation the federation never answers holds the saga only for its bound, in skipped
 *     time.
 * The real workflow and its child run on the control queue `fedflow`; each site's activities on
 * `fedflow-site-<site>`, as in production; only the activities behind the names are mocks.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { MigrationResult, StepId } from '../../core/migration';
import { CONTROL_TASK_QUEUE, migrationWorkflowId, siteTaskQueue } from '../../core/contracts/task-queues';
import { pauseSignal, progressQuery, resumeSignal } from '../../core/contracts/migration-messages';
import { FailureType } from '../../core/contracts/failures';
import { startTimeSkippingServer } from '../helpers/time-skipping';
import { workflowBundle } from '../helpers/temporal';
import { eventually } from '../helpers/eventually';
import { FINAL_ROOT, INJECTED, MockWorld, SOURCE, TARGET, type Script } from './mock-world';

/** A hung migration fails its test instead of the run: each takes about a second. */
const T = { timeout: 60_000 };

const world = new MockWorld();
let env: TestWorkflowEnvironment;
let workers: Worker[] = [];
let running: Promise<unknown>;

before(async () => {
  // The bundle takes longer than the server (a few seconds each): build it meanwhile.
  const bundling = workflowBundle({ workflowsPath: require.resolve('./workflows') });
  env = await startTimeSkippingServer();
  const connection = env.nativeConnection;
  const bundle = await bundling;
  workers = [
    await Worker.create({ connection, taskQueue: CONTROL_TASK_QUEUE, workflowBundle: bundle, activities: world.control() }),
    // Heartbeats go out at once, so a cancelled activity (the target's wait) learns of it at once.
    ...(await Promise.all([SOURCE, TARGET].map((site) => Worker.create({ connection, taskQueue: siteTaskQueue(site), activities: world.site(site), maxHeartbeatThrottleInterval: '50 milliseconds' })))),
  ];
  running = Promise.all(workers.map((w) => w.run()));
});

after(async () => {
  for (const w of workers) w.shutdown();
  await running;
  await env?.teardown();
});

function start(workloadId: string, script: Script = {}) {
  const run = world.script(workloadId, script);
  const handle = env.client.workflow.start('migrateWorkload', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: migrationWorkflowId(workloadId),
    args: [{ workloadId, targetSite: TARGET }],
  });
  return { run, handle };
}

/** The failure at the bottom of a failed run's chain of causes. */
function rootCause(err: unknown): Error {
  assert.ok(err instanceof WorkflowFailedError, `expected the migration to fail, got ${String(err)}`);
  let e: Error = err;
  while ((e as { cause?: Error }).cause) e = (e as { cause: Error }).cause;
  return e;
}

/** The compensations, in the order the saga must run them, named by the calls they make. */
const undo = {
  lock: 'control releaseMigration',
  reservation: `federation release ${TARGET}`,
  thaw: `${SOURCE} thawWorkload`,
  finalImage: `${SOURCE} releaseImage ${FINAL_ROOT}`,
  targetCopy: `${TARGET} removeTargetCopy`,
};

interface FailureCase {
  step: StepId;
  variant?: string;
  /** The call that fails (a federation line: the log rejects that proposal). */
  failOn: string;
  /** The calls after the failure, exactly, in order. */
  compensations: string[];
  /** The failure type the run ends with. */
  type: string;
  /** Calls started beside the failing one that may be dispatched after it fails; cancelled, not compensations. */
  concurrent?: string[];
}

const CASES: FailureCase[] = [
  { step: 'validate', failOn: 'control validateMigration', compensations: [], type: INJECTED },
  // The release is pushed before the reserve is proposed: a reserve that commits late is still freed.
  { step: 'reserve', failOn: `federation reserve ${TARGET}`, compensations: [undo.reservation, undo.lock], type: FailureType.FederationChangeRejected },
  { step: 'measure', failOn: `${TARGET} predictLink`, compensations: [undo.reservation, undo.lock], type: INJECTED },
  // From here on the target's copy, the final image (none yet: no call) and the source's thaw are pushed.
  { step: 'start', failOn: `${TARGET} startInstance`, compensations: [undo.targetCopy, undo.thaw, undo.reservation, undo.lock], type: INJECTED },
  { step: 'sync', failOn: `${SOURCE} captureImage`, compensations: [undo.targetCopy, undo.thaw, undo.reservation, undo.lock], type: INJECTED },
  {
    step: 'cutover',
    variant: 'the freeze fails (no image: the placement was never proposed)',
    failOn: `${SOURCE} captureImage (freeze)`,
    compensations: [undo.targetCopy, undo.thaw, undo.reservation, undo.lock],
    type: INJECTED,
    concurrent: [`${TARGET} cutoverTarget`],
  },
  {
    step: 'cutover',
    variant: 'the target fails holding the image (its placement is settled, then reverted)',
    failOn: `${TARGET} cutoverTarget: image received`,
    compensations: [`federation place ${TARGET}`, `federation place ${SOURCE}`, undo.targetCopy, undo.finalImage, undo.thaw, undo.reservation, undo.lock],
    type: INJECTED,
  },
  {
    step: 'commit',
    variant: 'the log rejects the placement (the settle is answered "rejected", so no revert)',
    failOn: `federation place ${TARGET}`,
    compensations: [`federation place ${TARGET} (resent)`, undo.targetCopy, undo.finalImage, undo.thaw, undo.reservation, undo.lock],
    type: FailureType.FederationChangeRejected,
  },
];

describe('migrateWorkload saga (time-skipping server, mocked activities)', () => {
  test('a migration with nothing failing runs every step once and compensates nothing', T, async () => {
    const { run, handle } = start('kv-happy');
    const result: MigrationResult = await (await handle).result();
    assert.equal(result.status, 'completed');
    assert.equal(result.target, TARGET);
    assert.equal(result.rootHash, FINAL_ROOT);
    // The target's wait and the source's freeze start together: their order is the servers'.
    const together = [`${TARGET} cutoverTarget`, `${SOURCE} captureImage (freeze)`];
    assert.deepEqual(
      run.lines.filter((l) => !together.includes(l)),
      [
        'control validateMigration',
        `federation reserve ${TARGET}`,
        `${SOURCE} agentEndpoint`,
        `${TARGET} probeLink`,
        `${TARGET} predictLink`,
        `${TARGET} startInstance`,
        `${SOURCE} captureImage`,
        `${TARGET} pullDelta`,
        `${SOURCE} releaseImage precopy-image`,
        `${SOURCE} agentEndpoint`,
        `${TARGET} cutoverTarget: image received`,
        // Proposed once, by the target holding the image; the commit step takes its answer.
        `federation place ${TARGET}`,
        'control switchRoute',
        undo.finalImage,
        `${SOURCE} decommission`,
      ],
    );
    for (const l of together) assert.ok(run.lines.includes(l), `${l} ran`);
  });

  for (const c of CASES) {
    test(`a failure in '${c.step}'${c.variant ? ` (${c.variant})` : ''} runs exactly [${c.compensations.join(', ')}]`, T, async () => {
      const workloadId = `kv-fail-${c.step}${c.variant ? `-${CASES.filter((x) => x.step === c.step).indexOf(c) + 1}` : ''}`;
      const { run, handle } = start(workloadId, { failOn: c.failOn });
      const h = await handle;
      const err = await h.result().then(
        () => assert.fail('the migration completed; it should have failed'),
        (e: unknown) => e,
      );
      const cause = rootCause(err);
      assert.ok(cause instanceof ApplicationFailure, `root cause ${String(cause)}`);
      assert.equal(cause.type, c.type);
      assert.ok(run.lines.includes(`✗ ${c.failOn}`), `the failure was injected at ${c.failOn}: ${run.lines.join(' | ')}`);
      assert.deepEqual(
        run.afterFailure().filter((l) => !c.concurrent?.includes(l)),
        c.compensations,
      );
      // The run stopped at the failing step: it shows failed (or compensated, when a compensation
      // is filed under it), and no later step ran (compensations pushed early are filed under
      // later steps, so those may show compensated).
      const progress = await h.query(progressQuery);
      assert.equal(progress.phase, 'failed');
      const at = progress.steps.findIndex((s) => s.id === c.step);
      assert.ok(['failed', 'compensated'].includes(progress.steps[at]!.status), `'${c.step}' is ${progress.steps[at]!.status}`);
      assert.deepEqual(
        progress.steps.slice(at + 1).filter((s) => ['running', 'done', 'failed'].includes(s.status)),
        [],
      );
    });
  }

  test('a placement without quorum waits in the commit step, saying why, and completes once answered', T, async () => {
    const { run, handle } = start('kv-wait-quorum', { holdOn: `federation place ${TARGET}` });
    const h = await handle;
    await run.seen(`federation place ${TARGET}`);
    // The target's proposal got no answer: the commit step sends the same request again and
    // puts the federation's status line in progress while it waits.
    await eventually('the commit step to report the wait for quorum', async () => {
      const p = await h.query(progressQuery);
      return p.steps.find((s) => s.id === 'commit')?.status === 'running' && /waiting for quorum: 1 of 3/.test(p.consensus?.status ?? '');
    });
    assert.ok(!run.lines.includes('control switchRoute'), 'the route switched before the placement committed');
    run.restoreQuorum();
    const result: MigrationResult = await h.result();
    assert.equal(result.status, 'completed');
    // One proposal of the placement, answered once the quorum came back; no other path sent it.
    assert.deepEqual(
      run.lines.filter((l) => l.startsWith('federation place')),
      [`federation place ${TARGET}`],
    );
    assert.match((await h.query(progressQuery)).steps.find((s) => s.id === 'commit')?.detail ?? '', /waited for quorum/);
  });

  test('a proposal the federation\'s validator refuses fails the step at once as rejected (not sent again), and the saga runs', T, async () => {
    const { run, handle } = start('kv-refused', { refuseOn: `federation reserve ${TARGET}` });
    const err = await (await handle).result().then(
      () => assert.fail('the migration completed; it should have failed'),
      (e: unknown) => e,
    );
    const cause = rootCause(err) as ApplicationFailure;
    assert.equal(cause.type, FailureType.FederationChangeRejected);
    assert.match(cause.message, /was not taken: the federation refused the proposal: injected/);
    assert.equal(run.lines.filter((l) => l.startsWith(`✗ federation reserve`)).length, 1, run.lines.join(' | '));
    assert.deepEqual(run.afterFailure(), [undo.reservation, undo.lock]);
  });

  test('a mode switch between pre-copy rounds keeps the volume\'s chunking (only codec and streams follow the mode)', T, async () => {
    // Rounds 1 and 2 send a lot (no convergence); from the second prediction on the link is slow
    // and far, so after two agreeing evaluations the policy switches to internet for round 3.
    const { run, handle } = start('kv-mode-switch', { slowLinkFrom: 2, preCopyBytes: [64 << 20, 32 << 20, 4096] });
    const result: MigrationResult = await (await handle).result();
    assert.equal(result.status, 'completed');
    assert.equal(result.modeSwitches.length, 1, JSON.stringify(result.modeSwitches));
    const [sw] = result.modeSwitches;
    assert.equal(sw!.to, 'internet');
    assert.notEqual(sw!.from, 'internet');
    // The rounds after the switch ran in the new mode...
    assert.deepEqual(
      result.rounds.map((r) => r.mode),
      [sw!.from, sw!.from, 'internet', 'internet'],
    );
    // ...on the chunks the target already holds: every capture, the final one too, cut the same way.
    assert.equal(run.presets.length, 4);
    assert.deepEqual(new Set(run.presets).size, 1, `presets ${run.presets.join(', ')}`);
  });

  test('a pause holds the migration before its next step until resume', T, async () => {
    const { run, handle } = start('kv-pause', { gateOn: `${TARGET} startInstance` });
    const h = await handle;
    // Pause while 'start' runs: a running step finishes first, then the migration holds.
    await run.seen(`${TARGET} startInstance`);
    await h.signal(pauseSignal);
    await eventually('the pause to be taken', async () => (await h.query(progressQuery)).paused);
    run.release();
    await eventually("'start' to finish while paused", async () => (await h.query(progressQuery)).steps.find((s) => s.id === 'start')?.status === 'done');
    // The workflow task that saw 'start' finish is the one that would have started the sync
    // child: its commands are in the history now, so its absence is a fact, not a wait.
    const holds = async () => {
      const events = (await h.fetchHistory()).events ?? [];
      assert.ok(!events.some((e) => e.startChildWorkflowExecutionInitiatedEventAttributes), 'the sync child was started while paused');
      assert.ok(!run.lines.includes(`${SOURCE} captureImage`), 'the sync step captured while paused');
      const p = await h.query(progressQuery);
      assert.equal(p.paused, true);
      assert.equal(p.phase, 'starting');
      assert.equal(p.steps.find((s) => s.id === 'sync')?.status, 'pending');
    };
    await holds();
    // A paused migration has no timer: an hour of skipped time does not move it.
    await env.sleep('1 hour');
    await holds();
    run.record('test: resume');
    await h.signal(resumeSignal);
    const result: MigrationResult = await h.result();
    assert.equal(result.status, 'completed');
    assert.ok(run.lines.indexOf(`${SOURCE} captureImage`) > run.lines.indexOf('test: resume'), `the sync ran after resume: ${run.lines.join(' | ')}`);
  });

  test('a release the federation never answers holds the saga for its 30 s bound only (skipped time)', T, async () => {
    const t0 = Date.now();
    const { run, handle } = start('kv-no-quorum', { failOn: `${TARGET} startInstance`, holdOn: undo.reservation });
    const err = await (await handle).result().then(
      () => assert.fail('the migration completed; it should have failed'),
      (e: unknown) => e,
    );
    assert.equal((rootCause(err) as ApplicationFailure).type, INJECTED);
    // The release timed out (FederationCommitTimeout, logged and swallowed); the lock is still dropped after it.
    assert.deepEqual(run.afterFailure(), [undo.targetCopy, undo.thaw, undo.reservation, undo.lock]);
    const progress = await (await handle).query(progressQuery);
    assert.match(progress.steps.find((s) => s.id === 'reserve')?.detail ?? '', /compensation failed: .*did not commit within 30 seconds/);
    assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms of wall time for a 30 s bound: time was not skipped`);
  });
});
