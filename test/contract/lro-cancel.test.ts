/**
 * Cancelling and timing out a wait while the cloud's own long-running operation is still going:
 * the Azure SDK poller and GCP's zoneOperations.wait must both give way to the AbortSignal at once
 * (the generic contract cancels only the status-polling phase, after the LRO has finished).
 */
import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { AzureProvider } from '../../adapters/azure/provider';
import { ProviderError, ProviderErrorType } from '../../adapters/common/provider-error';
import { GcpProvider } from '../../adapters/gcp/provider';
import type { CloudProvider, InstanceSpec } from '../../adapters/common/cloud-provider';
import { AZURE_FAKE_TOKEN, startAzureArmFake, type AzureArmFake } from '../fakes/azure-arm-server';
import { GCP_FAKE_TOKEN, startGcpComputeFake, type GcpComputeFake } from '../fakes/gcp-compute-server';
import { staticGoogleAuth, staticTokenCredential } from '../fakes/static-auth';
import { makeTestCa, type TestCa } from '../fakes/test-ca';

const SUB = '00000000-0000-4000-8000-000000000003';
/** Long enough that only cancellation or the wait's timeout can end the wait. */
const NEVER_MS = 120_000;

function cancelSuite(name: string, setup: () => Promise<{ provider: CloudProvider; spec: InstanceSpec; close(): Promise<void> }>) {
  describe(`${name}: a wait on a running LRO`, () => {
    let env: Awaited<ReturnType<typeof setup>>;
    before(async () => {
      env = await setup();
    });
    after(async () => env?.close());

    it('ends at once with the signal reason when cancelled, heartbeating meanwhile', async () => {
      const ref = await env.provider.createInstance(env.spec, `${name}-cancel`);
      const ctl = new AbortController();
      const reason = new Error('activity cancelled');
      const polls: string[] = [];
      const t0 = Date.now();
      setTimeout(() => ctl.abort(reason), 400);
      await assert.rejects(env.provider.waitFor(ref, 'running', { timeoutMs: 60_000, pollMs: 50, signal: ctl.signal, onPoll: (s) => polls.push(s.status) }), (e) => e === reason);
      const took = Date.now() - t0;
      assert.ok(took < 1_500, `cancellation took ${took} ms`);
      assert.ok(polls.length >= 2, `onPoll was called ${polls.length} times during the LRO; the activity could not heartbeat`);
      assert.ok(polls.every((s) => s === 'pending'), polls.join());
    });

    it('ends with a retryable ProviderTimeout at timeoutMs', async () => {
      const ref = await env.provider.createInstance(env.spec, `${name}-timeout`);
      const t0 = Date.now();
      await assert.rejects(env.provider.waitFor(ref, 'running', { timeoutMs: 500, pollMs: 50 }), (e: unknown) => {
        assert.ok(e instanceof ProviderError, String(e));
        assert.equal(e.type, ProviderErrorType.Timeout);
        assert.equal(e.retryable, true);
        return true;
      });
      assert.ok(Date.now() - t0 < 2_000);
    });
  });
}

cancelSuite('azure', async () => {
  const tls: TestCa = makeTestCa();
  const fake: AzureArmFake = await startAzureArmFake({ tls, subscriptionId: SUB, resourceGroup: 'rg', location: 'westeurope', lroDelayMs: NEVER_MS });
  const agent = new Agent({ ca: tls.ca });
  const provider = new AzureProvider({
    site: 'azure:westeurope', subscriptionId: SUB, resourceGroup: 'rg', location: 'westeurope', vmSize: 'Standard_B1s',
    networkInterfaceId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic0`,
    endpoint: fake.endpoint, credential: staticTokenCredential(AZURE_FAKE_TOKEN), agent, capacityInstances: 4, lroPollMs: 50, requestTimeoutMs: 2_000,
  });
  return {
    provider,
    spec: { name: 'slow-vm', image: 'Canonical:ubuntu-24_04-lts:server:latest' },
    close: async () => {
      agent.destroy();
      await fake.close();
      tls.cleanup();
    },
  };
});

cancelSuite('gcp', async () => {
  const fake: GcpComputeFake = await startGcpComputeFake({ project: 'fedflow-test', zone: 'europe-west1-b', opDelayMs: NEVER_MS });
  const provider = new GcpProvider({
    site: 'gcp:europe-west1-b', project: 'fedflow-test', zone: 'europe-west1-b', machineType: 'e2-small', endpoint: fake.endpoint,
    authClient: staticGoogleAuth(GCP_FAKE_TOKEN), capacityInstances: 4, requestTimeoutMs: 5_000,
  });
  return {
    provider,
    spec: { name: 'slow-vm', image: 'projects/debian-cloud/global/images/family/debian-12' },
    close: async () => {
      await provider.close();
      await fake.close();
    },
  };
});
