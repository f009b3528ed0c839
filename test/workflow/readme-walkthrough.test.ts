/**
 * The README's UI walkthrough ("Starting a migration from the Temporal Web UI") quotes what the UI
 * shows. This test reads that section and runs the real migrateWorkload (mocked activities, the
 * time-skipping server) with the form's own values, then checks each quote against the run:
 *   - every `"<activityType> • <summary>"` quote is the type and summary of an activity the run or
 *     its child scheduled (the UI's timeline shows exactly these two, from the history);
 *   - the form's Workflow ID, Task Queue, Workflow Type and Data start a run that completes;
 *   - the child is `syncVolume`, the query is `progress`, the search attributes and modes named exist;
 *   - the malformed input quoted fails with the quoted message.
 * Editing a summary in workflows/ without the README (or the README without the code) fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { REPO_ROOT } from '../../agent/site/home';
import { CONTROL_TASK_QUEUE, siteTaskQueue } from '../../core/contracts/task-queues';
import { progressQuery } from '../../core/contracts/migration-messages';
import { MODES, type MigrationResult } from '../../core/migration';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { startTimeSkippingServer } from '../helpers/time-skipping';
import { workflowBundle } from '../helpers/temporal';
import { MockWorld, SOURCE, TARGET } from './mock-world';

const T = { timeout: 60_000 };
const HEADING = '## Starting a migration from the Temporal Web UI';

/** The walkthrough: from its heading to the next level-2 heading. */
function walkthrough(): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(HEADING);
  assert.ok(start >= 0, `README.md has no section '${HEADING}'`);
  const end = readme.indexOf('\n## ', start + HEADING.length);
  // Line breaks inside a quote are Markdown's, not the UI's.
  return readme.slice(start, end < 0 ? undefined : end).replace(/\s*\n\s*/g, ' ');
}

/** The code span after `**<label>**` (e.g. the form's `**Task Queue**: `fedflow``). */
function field(text: string, label: string): string {
  const m = new RegExp(`\\*\\*${label}\\*\\*[^\`]*\`([^\`]+)\``).exec(text);
  assert.ok(m, `the walkthrough names no ${label}`);
  return m[1]!;
}

interface Scheduled {
  workflowType: string;
  activityType: string;
  summary: string;
}

/** Each activity a run scheduled (local ones too: their marker), with the summary the UI shows. */
async function scheduled(handle: WorkflowHandle): Promise<Scheduled[]> {
  const workflowType = (await handle.describe()).type;
  const summaryOf = (p: unknown) => (p ? defaultPayloadConverter.fromPayload<string>(p as Payload) : '');
  const out: Scheduled[] = [];
  for (const e of (await handle.fetchHistory()).events ?? []) {
    const a = e.activityTaskScheduledEventAttributes;
    if (a) out.push({ workflowType, activityType: a.activityType?.name ?? '?', summary: summaryOf(e.userMetadata?.summary) });
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName === 'core_local_activity') {
      const data = defaultPayloadConverter.fromPayload<{ activity_type: string }>(marker.details!.data!.payloads![0] as Payload);
      out.push({ workflowType, activityType: data.activity_type, summary: summaryOf(e.userMetadata?.summary) });
    }
  }
  return out;
}

describe("the README's UI walkthrough against the workflow code", () => {
  const world = new MockWorld();
  let env: TestWorkflowEnvironment;
  let workers: Worker[] = [];
  let running: Promise<unknown>;
  const text = walkthrough();

  before(async () => {
    const bundling = workflowBundle({ workflowsPath: require.resolve('./workflows') });
    env = await startTimeSkippingServer();
    const bundle = await bundling;
    const connection = env.nativeConnection;
    workers = [
      await Worker.create({ connection, taskQueue: CONTROL_TASK_QUEUE, workflowBundle: bundle, activities: world.control() }),
      ...(await Promise.all([SOURCE, TARGET].map((site) => Worker.create({ connection, taskQueue: siteTaskQueue(site), activities: world.site(site) })))),
    ];
    running = Promise.all(workers.map((w) => w.run()));
  });

  after(async () => {
    for (const w of workers) w.shutdown();
    await running;
    await env?.teardown();
  });

  /** Starts the migration the way the walkthrough's form does. */
  async function startFromForm(input: string): Promise<WorkflowHandle> {
    return env.client.workflow.start(field(text, 'Workflow Type'), {
      taskQueue: field(text, 'Task Queue'),
      workflowId: field(text, 'Workflow ID'),
      args: [JSON.parse(input) as unknown],
    });
  }

  test('the form starts a migration, and every quoted "<activity> • <summary>" is one it schedules', T, async () => {
    const input = field(text, 'Data');
    const { workloadId, targetSite } = JSON.parse(input) as { workloadId: string; targetSite: string };
    // The mocked federation places every workload on SOURCE; the README's quotes name real sites.
    assert.equal(targetSite, TARGET, 'the walkthrough migrates to the mock world target');
    world.script(workloadId);
    const handle = await startFromForm(input);
    const result: MigrationResult = await handle.result();
    assert.equal(result.status, 'completed');

    const history = await handle.fetchHistory();
    const child = history.events?.find((e) => e.startChildWorkflowExecutionInitiatedEventAttributes)?.startChildWorkflowExecutionInitiatedEventAttributes;
    assert.ok(child, 'the migration started no child');
    assert.match(text, new RegExp(`\\*\\*Relationships\\*\\* shows the \`${child.workflowType!.name}\` child`), `the child is ${child.workflowType!.name}`);
    const activities = [...(await scheduled(handle)), ...(await scheduled(env.client.workflow.getHandle(child.workflowId!)))];

    const quotes = [...text.matchAll(/"(\w+) • ([^"]+)"/g)].map((m) => ({ activityType: m[1]!, summary: m[2]! }));
    assert.ok(quotes.length >= 3, `expected the walkthrough to quote at least 3 activity summaries, found ${quotes.length}`);
    const shown = activities.map((a) => `${a.activityType} • ${a.summary}  (${a.workflowType})`).join('\n  ');
    for (const q of quotes) {
      assert.ok(
        activities.some((a) => a.activityType === q.activityType && a.summary === q.summary),
        `README quotes "${q.activityType} • ${q.summary}", which this migration never shows. It shows:\n  ${shown}`,
      );
    }

    // What else the paragraph names: the query, the search attributes, the optional modes.
    assert.match(text, new RegExp(`\\*\\*Queries\\*\\* runs \`${progressQuery.name}\``));
    const attributes = [...text.matchAll(/`(Fed\w+)`/g)].map((m) => m[1]!);
    assert.deepEqual([...attributes].sort(), SEARCH_ATTRIBUTES.map((k) => k.name).sort());
    const set = (await handle.describe()).typedSearchAttributes;
    for (const k of SEARCH_ATTRIBUTES) assert.ok(set.get(k) !== undefined, `the run sets ${k.name}`);
    const modes = /`"mode"` \(([^)]*)\)/.exec(text)?.[1];
    assert.deepEqual(modes?.match(/`(\w+)`/g)?.map((m) => m.slice(1, -1)), [...MODES]);
  });

  test('the quoted malformed input fails with the quoted message', T, async () => {
    const m = /A malformed or incomplete input \(say `([^`]+)`\) fails the run at once with `([^`]+)`/.exec(text);
    assert.ok(m, 'the walkthrough quotes no malformed input and its failure');
    const [, input, quoted] = m;
    const err = await (await startFromForm(input!)).result().then(
      () => assert.fail('the malformed input completed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError);
    const cause = err.cause as Error & { type?: string };
    assert.equal(`${cause.type}: ${cause.message}`, quoted);
  });
});
