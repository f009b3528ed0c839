/**
 * The provider contract against the loopback HTTPS fake of Azure Resource Manager. TLS is real:
 * a test CA is made with openssl and only the adapter's https.Agent trusts it. The credential is a
 * static token the fake accepts (production uses DefaultAzureCredential).
 */
import { Agent } from 'node:https';
import { AzureProvider } from '../../adapters/azure/provider';
import { AZURE_FAKE_TOKEN, startAzureArmFake } from '../fakes/azure-arm-server';
import { staticTokenCredential } from '../fakes/static-auth';
import { makeTestCa } from '../fakes/test-ca';
import { providerContract } from './provider-contract';

const SITE = 'azure:westeurope';
const SUB = '00000000-0000-4000-8000-000000000001';

providerContract('azure (fake ARM over TLS)', async () => {
  const tls = makeTestCa();
  const fake = await startAzureArmFake({ tls, subscriptionId: SUB, resourceGroup: 'fedflow-rg', location: 'westeurope', lroDelayMs: 150 });
  const agent = new Agent({ ca: tls.ca, keepAlive: true });
  const provider = new AzureProvider({
    site: SITE,
    subscriptionId: SUB,
    resourceGroup: 'fedflow-rg',
    location: 'westeurope',
    vmSize: 'Standard_B1s',
    subnetId: `/subscriptions/${SUB}/resourceGroups/fedflow-rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default`,
    endpoint: fake.endpoint,
    credential: staticTokenCredential(AZURE_FAKE_TOKEN),
    agent,
    capacityInstances: 8,
    maxRetries: 2,
    retryDelayMs: 20,
    requestTimeoutMs: 1_000,
    lroPollMs: 50,
  });
  return {
    provider,
    spec: {
      name: 'contract-vm',
      image: 'Canonical:ubuntu-24_04-lts:server:latest',
      size: 'Standard_B1s',
      tags: { app: 'kv' },
      userData: '#cloud-config\nruncmd:\n  - [fedflow, agent, --site, azure:westeurope]\n',
    },
    invalidSpec: { name: 'bad-vm', image: 'Canonical:ubuntu-24_04-lts:server:latest', size: 'Standard_Nope' },
    missingRef: { provider: 'azure', site: SITE, id: 'missing-vm-0' },
    pollMs: 100,
    volumeOf: (s) => {
      const v = s.volumes?.[0];
      if (!v) throw new Error(`VM ${s.ref.id} reports no OS disk`);
      return v;
    },
    faults: { plan: fake.faults, describeMatch: /^GET \/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft.Compute\/virtualMachines\/[^/]+$/, slowDelayMs: 1_500 },
    userDataOf: async (ref) => {
      const b64 = fake.vms.get(ref.id.toLowerCase())?.customData;
      return b64 === undefined ? undefined : Buffer.from(b64, 'base64').toString('utf8');
    },
    close: async () => {
      agent.destroy();
      await fake.close();
      tls.cleanup();
    },
  };
});
