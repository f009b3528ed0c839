/**
 * What the contract cannot express generically: the fakes' auth and TLS are real (a wrong token
 * is refused with 401, an untrusted CA fails the handshake, both non-retryable), and quota
 * answers surface as ProviderQuotaExceeded.
 */
import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { AzureProvider, type AzureProviderOptions } from '../../adapters/azure/provider';
import { ProviderError, ProviderErrorType } from '../../adapters/common/provider-error';
import { GcpProvider, type GcpProviderOptions } from '../../adapters/gcp/provider';
import { AZURE_FAKE_TOKEN, startAzureArmFake, type AzureArmFake } from '../fakes/azure-arm-server';
import { GCP_FAKE_TOKEN, startGcpComputeFake, type GcpComputeFake } from '../fakes/gcp-compute-server';
import { makeTestCa, type TestCa } from '../fakes/test-ca';
import { staticGoogleAuth, staticTokenCredential } from '../fakes/static-auth';

const SUB = '00000000-0000-4000-8000-000000000002';

async function rejectsType(p: Promise<unknown>, type: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ProviderError, String(err));
    assert.equal(err.type, type, err.message);
    assert.equal(err.retryable, false);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

describe('azure fake: auth, TLS and quota', () => {
  let tls: TestCa;
  let fake: AzureArmFake;
  let agent: Agent;
  const make = (over: Partial<AzureProviderOptions>) =>
    new AzureProvider({
      site: 'azure:westeurope', subscriptionId: SUB, resourceGroup: 'rg', location: 'westeurope', vmSize: 'Standard_B1s',
      networkInterfaceId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic0`,
      endpoint: fake.endpoint, credential: staticTokenCredential(AZURE_FAKE_TOKEN), agent, capacityInstances: 4,
      maxRetries: 1, retryDelayMs: 10, requestTimeoutMs: 2_000, lroPollMs: 20, ...over,
    });

  before(async () => {
    tls = makeTestCa();
    fake = await startAzureArmFake({ tls, subscriptionId: SUB, resourceGroup: 'rg', location: 'westeurope', vmQuota: 1 });
    agent = new Agent({ ca: tls.ca });
  });
  after(async () => {
    agent.destroy();
    await fake.close();
    tls.cleanup();
  });

  it('reports usage and limit from the usage API', async () => {
    const cap = await make({}).describeSite();
    assert.equal(cap.source, 'provider');
    assert.deepEqual(cap.instances, { limit: 1, used: 0 });
  });

  it('without a VM-count usage, the limit is the configured capacity and usage is counted from the resource group', async () => {
    const fake2 = await startAzureArmFake({ tls, subscriptionId: SUB, resourceGroup: 'rg', location: 'westeurope', reportVmUsage: false, lroDelayMs: 10 });
    try {
      const p = make({ endpoint: fake2.endpoint });
      await p.createInstance({ name: 'count-me', image: 'Canonical:ubuntu-24_04-lts:server:latest' }, 'count-1');
      const cap = await p.describeSite();
      assert.equal(cap.source, 'config');
      assert.deepEqual(cap.instances, { limit: 4, used: 1 });
      assert.deepEqual(cap.vcpus, { limit: 100, used: 2 });
    } finally {
      await fake2.close();
    }
  });

  it('a wrong bearer token is a non-retryable auth error (401)', async () => {
    await rejectsType(make({ credential: staticTokenCredential('not-the-token') }).describeSite(), ProviderErrorType.Auth, /HTTP 401, InvalidAuthenticationToken/);
  });

  it('an endpoint whose CA is not trusted fails the TLS handshake, non-retryably', async () => {
    await rejectsType(make({ agent: new Agent() }).describeSite(), ProviderErrorType.Auth, /TLS certificate is not trusted/);
  });

  it('a VM over quota is ProviderQuotaExceeded', async () => {
    const p = make({});
    await p.createInstance({ name: 'q1', image: 'Canonical:ubuntu-24_04-lts:server:latest' }, 'quota-1');
    await rejectsType(p.createInstance({ name: 'q2', image: 'Canonical:ubuntu-24_04-lts:server:latest' }, 'quota-2'), ProviderErrorType.Quota, /quota/);
  });

  it('an image that is neither URN nor id is refused before any call', async () => {
    await rejectsType(make({}).createInstance({ name: 'x', image: 'ubuntu' }, 'bad-image'), ProviderErrorType.InvalidParameter, /publisher:offer:sku:version/);
  });
});

describe('gcp fake: auth and quota', () => {
  let fake: GcpComputeFake;
  const make = (over: Partial<GcpProviderOptions>) =>
    new GcpProvider({
      site: 'gcp:europe-west1-b', project: 'fedflow-test', zone: 'europe-west1-b', machineType: 'e2-small', endpoint: fake.endpoint,
      authClient: staticGoogleAuth(GCP_FAKE_TOKEN), capacityInstances: 4, maxAttempts: 2, retryBaseMs: 10, requestTimeoutMs: 2_000, ...over,
    });
  before(async () => {
    fake = await startGcpComputeFake({ project: 'fedflow-test', zone: 'europe-west1-b', instanceQuota: 1, opDelayMs: 20 });
  });
  after(async () => {
    await fake.close();
  });

  it('reports the INSTANCES quota of the region', async () => {
    const p = make({});
    const cap = await p.describeSite();
    assert.equal(cap.source, 'provider');
    assert.deepEqual(cap.instances, { limit: 1, used: 0 });
    await p.close();
  });

  it('a wrong access token is a non-retryable auth error (401)', async () => {
    const p = make({ authClient: staticGoogleAuth('not-the-token') });
    await rejectsType(p.describeSite(), ProviderErrorType.Auth, /HTTP 401/);
    await p.close();
  });

  it('an instance over quota is ProviderQuotaExceeded', async () => {
    const p = make({});
    await p.createInstance({ name: 'q1', image: 'projects/debian-cloud/global/images/family/debian-12' }, 'quota-1');
    await rejectsType(p.createInstance({ name: 'q2', image: 'projects/debian-cloud/global/images/family/debian-12' }, 'quota-2'), ProviderErrorType.Quota, /Quota 'INSTANCES' exceeded/);
    await p.close();
  });

  it('insert with the same requestId returns the first operation (server-side idempotency)', async () => {
    const p = make({});
    const req = { project: 'fedflow-test', zone: 'europe-west1-b', requestId: '6f1c2b7e-0000-5000-8000-000000000001', instanceResource: { name: 'dup-a', machineType: 'zones/europe-west1-b/machineTypes/e2-small', disks: [{ boot: true, initializeParams: { sourceImage: 'projects/debian-cloud/global/images/family/debian-12' } }] } };
    fake.instances.clear();
    const [a] = await p.instances.insert(req);
    const [b] = await p.instances.insert({ ...req, instanceResource: { ...req.instanceResource, name: 'dup-b' } });
    assert.equal(b.latestResponse?.name, a.latestResponse?.name);
    assert.deepEqual([...fake.instances.keys()], ['dup-a']);
    await p.close();
  });
});
