/**
 * The provider contract against the loopback Compute Engine fake. The SDK runs over its REST
 * transport against http://127.0.0.1; the auth client holds a static access token the fake
 * accepts (in production the adapter uses Application Default Credentials instead).
 */
import { GcpProvider } from '../../adapters/gcp/provider';
import { GCP_FAKE_TOKEN, startGcpComputeFake } from '../fakes/gcp-compute-server';
import { staticGoogleAuth } from '../fakes/static-auth';
import { providerContract } from './provider-contract';

const SITE = 'gcp:europe-west1-b';

providerContract('gcp (fake compute/v1)', async () => {
  const fake = await startGcpComputeFake({ project: 'fedflow-test', zone: 'europe-west1-b', opDelayMs: 150 });
  const provider = new GcpProvider({
    site: SITE,
    project: 'fedflow-test',
    zone: 'europe-west1-b',
    machineType: 'e2-small',
    endpoint: fake.endpoint,
    authClient: staticGoogleAuth(GCP_FAKE_TOKEN),
    capacityInstances: 8,
    maxAttempts: 3,
    retryBaseMs: 20,
    requestTimeoutMs: 1_000,
  });
  return {
    provider,
    spec: {
      name: 'contract-vm',
      image: 'projects/debian-cloud/global/images/family/debian-12',
      size: 'e2-small',
      tags: { app: 'kv' },
      userData: '#cloud-config\nruncmd:\n  - [fedflow, agent, --site, gcp:europe-west1-b]\n',
    },
    invalidSpec: { name: 'bad-vm', image: 'projects/debian-cloud/global/images/family/debian-12', size: 'no-such-type' },
    missingRef: { provider: 'gcp', site: SITE, id: 'missing-instance-0' },
    pollMs: 100,
    volumeOf: (s) => {
      const v = s.volumes?.[0];
      if (!v) throw new Error(`instance ${s.ref.id} reports no disks`);
      return v;
    },
    faults: { plan: fake.faults, describeMatch: /^GET \/compute\/v1\/projects\/[^/]+\/zones\/[^/]+\/instances\/[^/]+$/, slowDelayMs: 1_500 },
    userDataOf: async (ref) => fake.instances.get(ref.id)?.metadata?.items?.find((i) => i.key === 'user-data')?.value,
    close: async () => {
      await provider.close();
      await fake.close();
    },
  };
});
