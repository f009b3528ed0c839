/**
 * The Temporal target against a real dev server started with no search attributes: plan, up
 * twice (the second changes nothing), listSearchAttributes shows the four, down removes what up
 * made and nothing else.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { temporalTarget, type TemporalTargetOptions } from '../../infra/temporal/namespace';
import { unchanged } from '../../infra/plan';
import { findTemporalCli } from '../../scripts/temporal-cli';
import { quietRuntime } from '../helpers/temporal';
import { eventually } from '../helpers/eventually';
import { runCli } from '../helpers/cli';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FOUR = SEARCH_ATTRIBUTES.map((k) => k.name).sort();

describe('infra --target temporal (dev server)', () => {
  let env: TestWorkflowEnvironment;
  const opts = (namespace: string): TemporalTargetOptions => ({ connection: env.connection, namespace, retentionDays: 3 });
  const custom = async (namespace: string) => Object.keys((await env.connection.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {}).sort();

  before(async () => {
    quietRuntime();
    // No --search-attribute flags: the server starts as a fresh cluster would, without fedflow's four.
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: findTemporalCli().path }, ip: '127.0.0.1', extraArgs: ['--log-level', 'error'] },
    });
  });
  after(async () => {
    await env?.teardown();
  });

  it('plan on an empty server, up twice, the four attributes listed, down removes the namespace', async () => {
    const ns = 'fedflow-infra-test';
    const plan = await temporalTarget('plan', opts(ns));
    assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.name}`), ['create fedflow-infra-test', ...SEARCH_ATTRIBUTES.map((k) => `create ${k.name}`)]);
    await assert.rejects(env.connection.workflowService.describeNamespace({ namespace: ns }), /not found/i, 'plan must create nothing');

    const first = await temporalTarget('up', opts(ns));
    assert.equal(first.changes.filter((c) => c.action === 'create').length, 5);
    const described = await env.connection.workflowService.describeNamespace({ namespace: ns });
    assert.equal(Number(described.config?.workflowExecutionRetentionTtl?.seconds), 3 * 86_400);
    assert.deepEqual(await custom(ns), FOUR);

    const second = await temporalTarget('up', opts(ns));
    assert.ok(unchanged(second), JSON.stringify(second.changes));
    assert.deepEqual(await custom(ns), FOUR);
    assert.ok(unchanged(await temporalTarget('plan', opts(ns))));

    const down = await temporalTarget('down', opts(ns));
    assert.equal(down.changes.find((c) => c.kind === 'namespace')?.action, 'delete');
    // Deletion runs as a system workflow: the namespace is renamed and removed shortly after.
    await eventually('namespace deleted', async () => {
      try {
        const d = await env.connection.workflowService.describeNamespace({ namespace: ns });
        return d.namespaceInfo?.state === 3;
      } catch (err) {
        return /not found/i.test((err as Error).message);
      }
    }, 60_000);
    // A rerun of down (an interrupted one, say) finishes without error and changes nothing.
    assert.ok(unchanged(await temporalTarget('down', opts(ns))));
  });

  it('on a namespace that existed before, down removes only the attributes up added', async () => {
    const ns = 'default';
    // One attribute was there before fedflow: it must survive down.
    await env.connection.operatorService.addSearchAttributes({ namespace: ns, searchAttributes: { FedMode: 2 } });
    const up = await temporalTarget('up', opts(ns));
    assert.deepEqual(up.changes.filter((c) => c.action === 'create').map((c) => c.name).sort(), ['FedPhase', 'FedSource', 'FedTarget']);
    assert.ok(unchanged(await temporalTarget('up', opts(ns))));
    assert.deepEqual((await custom(ns)).filter((n) => n.startsWith('Fed')), FOUR);

    const down = await temporalTarget('down', opts(ns));
    assert.deepEqual(down.changes.filter((c) => c.action === 'delete').map((c) => c.name).sort(), ['FedPhase', 'FedSource', 'FedTarget']);
    assert.deepEqual((await custom(ns)).filter((n) => n.startsWith('Fed')), ['FedMode']);
    await env.connection.workflowService.describeNamespace({ namespace: ns });
    assert.ok(unchanged(await temporalTarget('down', opts(ns))));
  });

  it('an attribute of the wrong type is named, with the fix, and nothing is created', async () => {
    const ns = 'default';
    await env.connection.operatorService.addSearchAttributes({ namespace: ns, searchAttributes: { FedTarget: 1 } });
    try {
      await assert.rejects(temporalTarget('up', opts(ns)), /FedTarget exists as Text, fedflow needs Keyword/);
      assert.deepEqual((await custom(ns)).filter((n) => n.startsWith('Fed')), ['FedMode', 'FedTarget']);
    } finally {
      await env.connection.operatorService.removeSearchAttributes({ namespace: ns, searchAttributes: ['FedTarget'] });
    }
  });

  it('the CLI: fedflow infra up --target temporal twice, then a bad config is refused before any call', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedflow-infra-cli-'));
    try {
      const good = join(dir, 'federation.yaml');
      const site = { id: 'dc:a', provider: 'local', trust: 'trusted', capacity: { instances: 1 }, infra: { egressCidrs: ['198.51.100.0/28'] } };
      writeFileSync(good, JSON.stringify({ federation: 'cli', infra: { temporal: { namespace: 'fedflow-cli', retentionDays: 2 } }, sites: [site] }));
      const cliEnv = { TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: 'default' };
      const first = await runCli(cliEnv, 'infra', 'up', '--target', 'temporal', '--config', good, '--json');
      assert.equal(first.code, 0, first.stderr + first.stdout);
      assert.equal((JSON.parse(first.stdout) as { changes: { action: string }[] }).changes.filter((c) => c.action === 'create').length, 5);
      const second = await runCli(cliEnv, 'infra', 'up', '--target', 'temporal', '--config', good);
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stdout, /^temporal up: no changes/);
      assert.deepEqual(await custom('fedflow-cli'), FOUR);

      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, JSON.stringify({ federation: 'cli', infra: { agentPort: 22, temporal: { namespace: 'fedflow-bad' } }, sites: [{ ...site, infra: {} }] }));
      const refused = await runCli(cliEnv, 'infra', 'up', '--target', 'temporal', '--config', bad);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /infra\.agentPort: must be 1024-65535/);
      assert.match(refused.stderr, /sites\.0\.infra\.egressCidrs: is required for a local site/);
      await assert.rejects(env.connection.workflowService.describeNamespace({ namespace: 'fedflow-bad' }), /not found/i, 'a refused config creates nothing');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
