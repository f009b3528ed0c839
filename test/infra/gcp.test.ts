/**
 * `--target gcp` against the fake compute/v1 server over REST (the SDK's fallback transport):
 * plan on an empty project, up and the resources read back, up again with no change, a changed
 * config patched in place, down with nothing left (and resources not of this stack left alone),
 * a failure halfway undone, missing credentials naming the chain.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { parseFederationConfig, type FederationConfig } from '../../core/federation-config';
import { InfraError, unchanged } from '../../infra/plan';
import { runInfra } from '../../infra/run';
import { siteUserData } from '../../infra/userdata';
import { GCP_FAKE_TOKEN, startGcpComputeFake, type GcpComputeFake } from '../fakes/gcp-compute-server';
import { staticGoogleAuth } from '../fakes/static-auth';

const ENV = { TEMPORAL_ADDRESS: 'temporal.example.net:7233', TEMPORAL_NAMESPACE: 'fedflow' };
const STACK = 'fedflow-g-europe-west1-b';

describe('infra --target gcp (fake compute/v1)', () => {
  let fake: GcpComputeFake;
  const auth = () => staticGoogleAuth(GCP_FAKE_TOKEN);
  const config = (over: { machineType?: string; peer?: string } = {}): FederationConfig =>
    parseFederationConfig({
      federation: 'g',
      infra: { agentPort: 7443, temporal: { namespace: 'fedflow' } },
      sites: [
        { id: 'gcp:europe-west1-b', provider: 'gcp', trust: 'trusted', capacity: { instances: 2 }, settings: { project: 'fedflow-test', zone: 'europe-west1-b', image: 'projects/debian-cloud/global/images/family/debian-12', machineType: over.machineType ?? 'e2-small', endpoint: fake.endpoint }, infra: { cidr: '10.30.0.0/16', subnetCidr: '10.30.1.0/24' } },
        { id: 'aws:us-east-1', provider: 'aws', trust: 'trusted', capacity: { instances: 2 }, settings: { region: 'us-east-1', imageId: 'ami-0abcdef1234567890', instanceType: 't3.micro' }, infra: { cidr: '10.10.0.0/16' } },
        { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 2 }, infra: { egressCidrs: [over.peer ?? '198.51.100.0/28'] } },
      ],
    });
  const run = (action: 'plan' | 'up' | 'down', cfg: FederationConfig) => runInfra(action, 'gcp', cfg, { env: ENV, pollMs: 20, gcpAuthClient: auth() });
  const inventory = () => ({ networks: [...fake.networks.keys()], subnetworks: [...fake.subnetworks.keys()], firewalls: [...fake.firewalls.keys()], instances: [...fake.instances.keys()], disks: [...fake.disks.keys()] });
  const empty = { networks: [], subnetworks: [], firewalls: [], instances: [], disks: [] };

  before(async () => {
    fake = await startGcpComputeFake({ project: 'fedflow-test', zone: 'europe-west1-b', opDelayMs: 30 });
  });
  beforeEach(() => {
    for (const m of [fake.networks, fake.subnetworks, fake.firewalls, fake.instances, fake.disks]) m.clear();
  });
  after(async () => {
    await fake?.close();
  });

  it('plan on an empty project, up, read back, up again with no change, down with nothing left', async () => {
    const plan = await run('plan', config());
    assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.kind} ${c.name}`), [
      `create compute#network ${STACK}-net`,
      `create compute#subnetwork ${STACK}-subnet`,
      `create compute#firewall ${STACK}-agent-port`,
      `create compute#instance ${STACK}-agent`,
    ]);
    assert.deepEqual(inventory(), empty, 'plan creates nothing');

    const up = await run('up', config());
    assert.equal(up.changes.filter((c) => c.action === 'create').length, 4);
    const net = fake.networks.get(`${STACK}-net`)!;
    assert.equal(net.autoCreateSubnetworks, false);
    assert.match(String(net.description), /fedflow-stack=fedflow-g-europe-west1-b/);
    const sub = fake.subnetworks.get(`${STACK}-subnet`)!;
    assert.equal(sub.ipCidrRange, '10.30.1.0/24');
    assert.match(String(sub.network), /networks\/fedflow-g-europe-west1-b-net$/);
    const fw = fake.firewalls.get(`${STACK}-agent-port`)!;
    assert.deepEqual([fw.direction, fw.allowed, [...(fw.sourceRanges as string[])].sort(), fw.targetTags], ['INGRESS', [{ IPProtocol: 'tcp', ports: ['7443'] }], ['10.10.0.0/16', '198.51.100.0/28'], [`${STACK}-agent`]]);
    const inst = fake.instances.get(`${STACK}-agent`)!;
    assert.equal(inst.status, 'RUNNING');
    assert.deepEqual(inst.labels, { 'fedflow-stack': STACK, 'fedflow-site': 'gcp_europe-west1-b' });
    assert.equal(inst.metadata?.items?.find((i) => i.key === 'user-data')?.value, siteUserData('gcp:europe-west1-b', ENV.TEMPORAL_ADDRESS, 'fedflow'));
    assert.match(String((inst.networkInterfaces[0] as { subnetwork?: string }).subnetwork), /subnetworks\/fedflow-g-europe-west1-b-subnet$/);

    const again = await run('up', config());
    assert.ok(unchanged(again), JSON.stringify(again.changes));
    assert.equal(fake.instances.get(`${STACK}-agent`)?.id, inst.id, 'the same instance');

    const down = await run('down', config());
    assert.deepEqual(down.changes.map((c) => c.action), ['delete', 'delete', 'delete', 'delete']);
    assert.deepEqual(inventory(), empty);
    assert.ok(unchanged(await run('down', config())), 'down again finds nothing to do');
  });

  it('a changed peer range is patched on the firewall in place; a new machine type replaces the instance', async () => {
    await run('up', config());
    const plan = await run('plan', config({ peer: '203.0.113.0/24' }));
    assert.deepEqual(plan.changes.filter((c) => c.action !== 'keep').map((c) => `${c.action} ${c.name}`), [`update ${STACK}-agent-port`]);
    await run('up', config({ peer: '203.0.113.0/24' }));
    assert.deepEqual([...(fake.firewalls.get(`${STACK}-agent-port`)!.sourceRanges as string[])].sort(), ['10.10.0.0/16', '203.0.113.0/24']);
    const before = fake.instances.get(`${STACK}-agent`)!.id;
    const r = await run('up', config({ peer: '203.0.113.0/24', machineType: 'e2-medium' }));
    assert.deepEqual(r.changes.filter((c) => c.action !== 'keep').map((c) => c.detail), ['machine type e2-small -> e2-medium: replaced']);
    assert.notEqual(fake.instances.get(`${STACK}-agent`)!.id, before);
    await run('down', config());
    assert.deepEqual(inventory(), empty);
  });

  it('a down interrupted halfway (a refused network delete) can be run again and finishes the job', async () => {
    await run('up', config());
    fake.faults.inject({ kind: 'auth', match: `DELETE /compute/v1/projects/fedflow-test/global/networks/${STACK}-net`, times: 1 });
    await assert.rejects(run('down', config()), /networks\.delete\(fedflow-g-europe-west1-b-net\).*Required 'compute\.instances\.get' permission/);
    assert.deepEqual(inventory(), { ...empty, networks: [`${STACK}-net`] }, 'everything but the network is gone');
    const again = await run('down', config());
    assert.deepEqual(again.changes.map((c) => `${c.action} ${c.kind}`), ['keep compute#instance', 'keep compute#firewall', 'keep compute#subnetwork', 'delete compute#network']);
    assert.deepEqual(inventory(), empty);
  });

  it('down leaves a resource of the same name that this stack did not make', async () => {
    fake.networks.set(`${STACK}-net`, { name: `${STACK}-net`, description: 'made by hand', autoCreateSubnetworks: false });
    const down = await run('down', config());
    assert.deepEqual(down.changes.find((c) => c.kind === 'compute#network'), { action: 'keep', kind: 'compute#network', name: `${STACK}-net`, detail: `not made by stack ${STACK}` });
    assert.ok(fake.networks.has(`${STACK}-net`));
    await assert.rejects(run('up', config()), /exists but was not made by stack/);
  });

  it('a failure halfway (a machine type the zone lacks) is undone: the resource and reason are named, nothing is left', async () => {
    await assert.rejects(run('up', config({ machineType: 'zz9-nano' })), (err: unknown) => {
      assert.ok(err instanceof InfraError, String(err));
      assert.match(err.message, /instances\.insert\(fedflow-g-europe-west1-b-agent\) for site 'gcp:europe-west1-b' failed: .*Machine type with name 'zz9-nano' does not exist/);
      assert.match(err.message, /rolled back what this run created, nothing is left/);
      return true;
    });
    assert.deepEqual(inventory(), empty);
  });

  it('a loopback Temporal address is refused before any call: cloud agents could not reach it', async () => {
    await assert.rejects(runInfra('up', 'gcp', config(), { env: { TEMPORAL_ADDRESS: '127.0.0.1:7233' }, gcpAuthClient: auth() }), /agents would connect to Temporal at 127\.0\.0\.1:7233, which is this machine: set TEMPORAL_ADDRESS/);
    assert.deepEqual(inventory(), empty);
  });

  it('missing credentials: the error names the chain that was tried, and nothing is created', async () => {
    const saved = { ...process.env };
    const home = mkdtempSync(join(tmpdir(), 'fedflow-gcp-nocreds-'));
    try {
      delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
      process.env.HOME = home;
      process.env.CLOUDSDK_CONFIG = join(home, 'gcloud');
      process.env.METADATA_SERVER_DETECTION = 'none';
      await assert.rejects(runInfra('up', 'gcp', config(), { env: ENV, pollMs: 20 }), (err: unknown) => {
        assert.ok(err instanceof InfraError, String(err));
        assert.equal(err.type, 'MissingCredentials', err.message);
        assert.match(err.message, /GOOGLE_APPLICATION_CREDENTIALS.*application_default_credentials\.json.*metadata server/);
        return true;
      });
    } finally {
      process.env = saved;
      rmSync(home, { recursive: true, force: true });
    }
    assert.deepEqual(inventory(), empty);
  });
});
