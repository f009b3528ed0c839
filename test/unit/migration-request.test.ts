import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { FedflowClient, FedflowError } from '../../client';
import { parseMigrationRequest } from '../../core/migration';
import { startTestServer } from '../helpers/temporal';

function problems(input: unknown): string[] {
  const r = parseMigrationRequest(input);
  assert.equal(r.ok, false);
  return r.ok ? [] : r.problems;
}

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
      '\'workloadId\' "KV demo" must be lowercase letters, digits and dashes, starting with a letter or digit',
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

describe('parseMigrationRequest names the actual problem', () => {
  it('tells a 10,000-character lowercase id about the 63-character limit, echoing only a prefix', () => {
    const id = 'a'.repeat(10_000);
    const [p, ...rest] = problems({ workloadId: id, targetSite: 'dc:frankfurt' });
    assert.deepEqual(rest, []);
    assert.equal(p, `'workloadId' "${'a'.repeat(40)}…(10000 chars)" is too long: at most 63 characters`);
  });

  it('takes 63 characters and refuses 64 for the length, not the pattern', () => {
    assert.equal(parseMigrationRequest({ workloadId: 'a'.repeat(63), targetSite: 'dc:frankfurt' }).ok, true);
    assert.match(problems({ workloadId: 'a'.repeat(64), targetSite: 'dc:frankfurt' })[0]!, /is too long: at most 63 characters$/);
  });

  it('says a number is not a string rather than missing', () => {
    assert.deepEqual(problems({ workloadId: 42, targetSite: 'dc:frankfurt' }), ['\'workloadId\' must be a string, got number (the id of the workload to move, e.g. "kv-demo")']);
    assert.match(problems({ workloadId: 'kv-demo', targetSite: ['dc:x'] })[0]!, /^'targetSite' must be a string, got an array/);
    assert.match(problems({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt', sourceSite: 7 })[0]!, /^'sourceSite' must be a string, got number/);
    assert.match(problems({ targetSite: 'dc:frankfurt' })[0]!, /^'workloadId' is required/);
  });

  it('echoes at most a short prefix of any bad value', () => {
    const blob = 'X'.repeat(5000);
    for (const input of [
      { workloadId: blob, targetSite: 'dc:frankfurt' },
      { workloadId: 'kv-demo', targetSite: blob },
      { workloadId: 'kv-demo', targetSite: 'dc:frankfurt', sourceSite: blob },
      { workloadId: 'kv-demo', targetSite: 'dc:frankfurt', mode: blob },
      { workloadId: 'kv-demo', targetSite: 'dc:frankfurt', [blob]: 1 },
    ]) {
      const [p] = problems(input);
      assert.ok(p!.length < 200, `message is ${p!.length} chars: ${p!.slice(0, 120)}`);
      assert.match(p!, /…\(5000 chars\)/);
    }
  });
});

describe('the SDK carries the server\'s reason in its start errors', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await startTestServer();
  });
  after(async () => {
    await env?.teardown();
  });

  it('a start the server refuses says why, not only "Failed to start Workflow"', async () => {
    // A real refusal from a real server: the namespace does not exist.
    const c = FedflowClient.fromClient(new Client({ connection: env.connection, namespace: 'no-such-namespace' }));
    await assert.rejects(c.startMigration({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' }), (err: unknown) => {
      assert.ok(err instanceof FedflowError, String(err));
      assert.equal(err.type, 'StartFailed');
      assert.match(err.message, /^cannot start migration migrate-kv-demo: .*no-such-namespace/);
      return true;
    });
  });

  it('a server that went away: the gRPC reason follows "Failed to start Workflow"', async () => {
    const gone = await startTestServer();
    // Our own connection, so the teardown stops the server but leaves the channel open.
    const connection = await Connection.connect({ address: gone.address });
    const client = new Client({ connection, namespace: gone.namespace ?? 'default' });
    await gone.teardown();
    after(() => connection.close());
    const c = FedflowClient.fromClient(client);
    await assert.rejects(c.startMigration({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' }), (err: unknown) => {
      assert.ok(err instanceof FedflowError, String(err));
      assert.equal(err.type, 'StartFailed');
      assert.match(err.message, /^cannot start migration migrate-kv-demo: Failed to start Workflow: \d+ [A-Z_]+: ./);
      return true;
    });
  });
});
