/**
 * `--target gcp` against the fake compute/v1 server over REST (the SDK's fallback transport):
 * plan on an empty project, up and the resources read back, up again with no change, a changed
 * config patched in place, down with nothing left (and resources not of this stack left alone),
 * a failure halfway undone, missing credentials naming the chain. The agent's identity (a
 * service account bound to a custom role of the adapter's calls) goes to the IAM fake over the
 * IAM v1 and Resource Manager v1 REST shapes. The fakes lag a new account's propagation as IAM
 * does: up waits it out, or, when it does not come in time, keeps the identity for the next up.
 * An instance from before running as another account is changed in place and keeps its disk.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { InstancesClient } from '@google-cloud/compute';
import { parseFederationConfig, type FederationConfig } from '../../core/federation-config';
import { gcpIdentityDesired, type PropagationWait } from '../../infra/gcp/identity';
import { GCP_AGENT_PERMISSIONS } from '../../infra/permissions';
import { InfraError, unchanged } from '../../infra/plan';
import { runInfra } from '../../infra/run';
import { siteUserData } from '../../infra/userdata';
import { GCP_FAKE_TOKEN, startGcpComputeFake, type GcpComputeFake } from '../fakes/gcp-compute-server';
import { startGcpIamFake, type GcpIamFake } from '../fakes/gcp-iam-server';
import { staticGoogleAuth } from '../fakes/static-auth';

const ENV = { TEMPORAL_ADDRESS: 'temporal.example.net:7233', TEMPORAL_NAMESPACE: 'fedflow' };
const STACK = 'fedflow-g-europe-west1-b';
const ID = gcpIdentityDesired('fedflow-test', STACK, 'gcp:europe-west1-b');

describe('infra --target gcp (fake compute/v1)', () => {
  let fake: GcpComputeFake;
  let iam: GcpIamFake;
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
  const endpoints = () => ({ iam: iam.endpoint, resourceManager: iam.endpoint });
  /** Propagation retries scaled down from about 90 s: a test that lets IAM lag sets its own. */
  const FAST_PROPAGATION = { timeoutMs: 30_000, firstDelayMs: 100, maxDelayMs: 1_000 };
  const run = (action: 'plan' | 'up' | 'down', cfg: FederationConfig, propagation: PropagationWait = FAST_PROPAGATION) =>
    runInfra(action, 'gcp', cfg, { env: ENV, pollMs: 20, gcpAuthClient: auth(), gcpIamEndpoints: endpoints(), gcpPropagation: propagation });
  const inventory = () => ({
    networks: [...fake.networks.keys()],
    subnetworks: [...fake.subnetworks.keys()],
    firewalls: [...fake.firewalls.keys()],
    instances: [...fake.instances.keys()],
    disks: [...fake.disks.keys()],
    serviceAccounts: [...iam.serviceAccounts.keys()],
    roles: [...iam.roles.values()].filter((r) => !r.deleted).map((r) => r.name),
    bindings: iam.policy.bindings.map((b) => `${b.role} ${b.members.join(',')}`),
  });
  const empty = { networks: [], subnetworks: [], firewalls: [], instances: [], disks: [], serviceAccounts: [], roles: [], bindings: ['roles/owner user:owner@example.com'] };

  before(async () => {
    iam = await startGcpIamFake({ project: 'fedflow-test', token: GCP_FAKE_TOKEN });
    fake = await startGcpComputeFake({ project: 'fedflow-test', zone: 'europe-west1-b', opDelayMs: 30, serviceAccountExists: (email) => iam.serviceAccounts.has(email), serviceAccountPropagated: (email) => iam.propagated(email, 'compute') });
  });
  beforeEach(() => {
    for (const m of [fake.networks, fake.subnetworks, fake.firewalls, fake.instances, fake.disks, iam.serviceAccounts, iam.roles]) m.clear();
    iam.policy.bindings = [{ role: 'roles/owner', members: ['user:owner@example.com'] }];
    Object.assign(iam.propagation, { resourceManagerMs: 0, computeMs: 0 });
    Object.assign(iam.unpropagatedRefusals, { resourceManager: 0, compute: 0 });
  });
  after(async () => {
    await fake?.close();
    await iam?.close();
  });

  it('plan on an empty project, up, read back, up again with no change, down with nothing left', async () => {
    const plan = await run('plan', config());
    assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.kind} ${c.name}`), [
      `create compute#network ${STACK}-net`,
      `create compute#subnetwork ${STACK}-subnet`,
      `create compute#firewall ${STACK}-agent-port`,
      `create iam#role ${ID.roleName}`,
      `create iam#serviceAccount ${ID.email}`,
      `create cloudresourcemanager#binding ${ID.roleName} → ${ID.member}`,
      `create compute#instance ${STACK}-agent`,
    ]);
    assert.deepEqual(inventory(), empty, 'plan creates nothing');

    const up = await run('up', config());
    assert.equal(up.changes.filter((c) => c.action === 'create').length, 7);
    // The identity: an account of this stack, bound to a role of exactly the adapter's calls, and the instance runs as it.
    const sa = iam.serviceAccounts.get(ID.email);
    assert.match(String(sa?.description), /fedflow-stack=fedflow-g-europe-west1-b/);
    const role = iam.roles.get(ID.roleName);
    assert.deepEqual([...(role?.includedPermissions ?? [])].sort(), [...GCP_AGENT_PERMISSIONS].sort());
    assert.equal(role?.stage, 'GA');
    assert.deepEqual(iam.policy.bindings.filter((b) => b.role === ID.roleName), [{ role: ID.roleName, members: [`serviceAccount:${ID.email}`] }]);
    assert.deepEqual(fake.instances.get(`${STACK}-agent`)?.serviceAccounts, [{ email: ID.email, scopes: ['https://www.googleapis.com/auth/cloud-platform'] }]);
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
    assert.deepEqual(down.changes.map((c) => `${c.action} ${c.kind}`), ['compute#instance', 'compute#firewall', 'compute#subnetwork', 'compute#network', 'cloudresourcemanager#binding', 'iam#serviceAccount', 'iam#role'].map((k) => `delete ${k}`));
    assert.deepEqual(inventory(), empty);
    assert.ok(unchanged(await run('down', config())), 'down again finds nothing to do');

    // IAM keeps a deleted custom role (and its id) for a while: up after down undeletes it.
    assert.equal(iam.roles.get(ID.roleName)?.deleted, true);
    const back = await run('up', config());
    assert.equal(back.changes.find((c) => c.kind === 'iam#role')?.detail?.startsWith('undelete'), true);
    assert.ok(iam.roles.get(ID.roleName) && !iam.roles.get(ID.roleName)!.deleted);
    assert.equal(fake.instances.get(`${STACK}-agent`)?.status, 'RUNNING');
    assert.ok(unchanged(await run('up', config())));
    await run('down', config());
    assert.deepEqual(inventory(), empty);
  });

  it('a failure halfway in IAM (the policy binding refused) is undone: account, role and network are removed', async () => {
    iam.faults.inject({ kind: 'auth', match: 'POST /v1/projects/fedflow-test:setIamPolicy', times: 1 });
    await assert.rejects(run('up', config()), (err: unknown) => {
      assert.ok(err instanceof InfraError, String(err));
      assert.match(err.message, /projects\.setIamPolicy for site 'gcp:europe-west1-b' failed: 403 PERMISSION_DENIED: Permission denied/);
      assert.match(err.message, /rolled back what this run created, nothing is left/);
      return true;
    });
    assert.deepEqual(inventory(), empty);
  });

  it('a new account IAM propagates late (to Resource Manager, later to Compute Engine): up waits it out and succeeds', async () => {
    // For 1 s after its creation setIamPolicy refuses the account as not existing; for 6 s the
    // instance's insert operation fails with EXTERNAL_RESOURCE_NOT_FOUND.
    Object.assign(iam.propagation, { resourceManagerMs: 1_000, computeMs: 6_000 });
    const up = await run('up', config());
    assert.deepEqual(up.changes.map((c) => c.action), Array(7).fill('create'));
    assert.ok(iam.unpropagatedRefusals.resourceManager >= 1, 'setIamPolicy was refused at least once, and retried');
    assert.ok(iam.unpropagatedRefusals.compute >= 1, 'instances.insert failed at least once, and was retried');
    assert.deepEqual(iam.policy.bindings.filter((b) => b.role === ID.roleName), [{ role: ID.roleName, members: [`serviceAccount:${ID.email}`] }]);
    const inst = fake.instances.get(`${STACK}-agent`)!;
    assert.equal(inst.status, 'RUNNING');
    assert.equal(inst.serviceAccounts?.[0]?.email, ID.email);
    assert.deepEqual(fake.disks.size, 1, 'one boot disk: the failed inserts made none');
    assert.ok(unchanged(await run('up', config())));
    await run('down', config());
    assert.deepEqual(inventory(), empty);
  });

  it('an account still unknown after the retries: the rest is rolled back, the identity kept, and the next up goes on from it', async () => {
    iam.propagation.resourceManagerMs = 600_000;
    await assert.rejects(run('up', config(), { timeoutMs: 500, firstDelayMs: 100 }), (err: unknown) => {
      assert.ok(err instanceof InfraError, String(err));
      assert.match(err.message, /projects\.setIamPolicy for site 'gcp:europe-west1-b' failed: 400 INVALID_ARGUMENT: Service account fedflow-agent-[0-9a-f]{12}@fedflow-test\.iam\.gserviceaccount\.com does not exist\./);
      assert.match(err.message, /created by this run, was still unknown to it after \d+ s of retries/);
      assert.match(err.message, /rolled back what this run created, kept role projects\/fedflow-test\/roles\/\S+, service account \S+ for the next up to go on from \(down removes them\)/);
      return true;
    });
    assert.deepEqual(inventory(), { ...empty, serviceAccounts: [ID.email], roles: [ID.roleName] }, 'the network is rolled back; the account and role stay');
    assert.ok(iam.unpropagatedRefusals.resourceManager >= 2, 'retried before giving up');

    // IAM has propagated it since: the next up keeps the account and role, and makes the rest.
    iam.propagation.resourceManagerMs = 0;
    const again = await run('up', config());
    assert.deepEqual(again.changes.map((c) => `${c.action} ${c.kind}`), [
      'create compute#network', 'create compute#subnetwork', 'create compute#firewall',
      'keep iam#role', 'keep iam#serviceAccount', 'create cloudresourcemanager#binding', 'create compute#instance',
    ]);
    assert.equal(fake.instances.get(`${STACK}-agent`)?.serviceAccounts?.[0]?.email, ID.email);
    await run('down', config());
    assert.deepEqual(inventory(), empty);
  });

  it('an instance from before with another service account is changed in place (stop, setServiceAccount, start): same id, same boot disk', async () => {
    await run('up', config());
    const inst = fake.instances.get(`${STACK}-agent`)!;
    const { id } = inst;
    const disk = `${STACK}-agent-boot`;
    assert.ok(fake.disks.has(disk));
    // As an earlier fedflow left it: running as another account (Compute Engine's default one).
    const old = '123456789-compute@developer.gserviceaccount.com';
    inst.serviceAccounts = [{ email: old, scopes: ['https://www.googleapis.com/auth/cloud-platform'] }];

    // Compute Engine changes the account of a stopped instance only: the fake refuses a running one.
    const client = new InstancesClient({ fallback: true, apiEndpoint: '127.0.0.1', port: Number(new URL(fake.endpoint).port), protocol: 'http', authClient: auth() } as ConstructorParameters<typeof InstancesClient>[0]);
    try {
      await assert.rejects(client.setServiceAccount({ project: 'fedflow-test', zone: 'europe-west1-b', instance: `${STACK}-agent`, instancesSetServiceAccountRequestResource: { email: ID.email, scopes: [] } }), /can only be changed while it is stopped \(TERMINATED\)/);
    } finally {
      await client.close();
    }

    const plan = await run('plan', config());
    assert.deepEqual(plan.changes.filter((c) => c.action !== 'keep').map((c) => `${c.action} ${c.name}: ${c.detail}`), [
      `update ${STACK}-agent: service account ${old} -> ${ID.email}: in place (instances.stop, setServiceAccount, start; the boot disk is kept)`,
    ]);
    assert.equal(fake.instances.get(`${STACK}-agent`)?.serviceAccounts?.[0]?.email, old, 'plan changes nothing');

    const up = await run('up', config());
    assert.deepEqual(up.changes.filter((c) => c.action !== 'keep').map((c) => c.name), [`${STACK}-agent`]);
    const changed = fake.instances.get(`${STACK}-agent`)!;
    assert.equal(changed.id, id, 'the same instance');
    assert.ok(fake.disks.has(disk), 'its boot disk (and /var/lib/fedflow on it) is still there');
    assert.deepEqual(changed.disks.map((d) => d.source.split('/').pop()), [disk]);
    assert.deepEqual(changed.serviceAccounts, [{ email: ID.email, scopes: ['https://www.googleapis.com/auth/cloud-platform'] }]);
    assert.equal(changed.status, 'RUNNING', 'started again');
    assert.ok(unchanged(await run('up', config())));
    await run('down', config());
    assert.deepEqual(inventory(), empty);
  });

  it('an account of the same id that this stack did not make is named, and nothing is created', async () => {
    iam.serviceAccounts.set(ID.email, { name: `projects/fedflow-test/serviceAccounts/${ID.email}`, projectId: 'fedflow-test', uniqueId: '1', email: ID.email, description: 'made by hand', etag: 'x', oauth2ClientId: '1' });
    await assert.rejects(run('plan', config()), /service account fedflow-agent-[0-9a-f]{12}@fedflow-test\.iam\.gserviceaccount\.com exists but was not made by stack/);
    const down = await run('down', config());
    assert.deepEqual(down.changes.find((c) => c.kind === 'iam#serviceAccount')?.detail, `not made by stack ${STACK}`);
    assert.ok(iam.serviceAccounts.has(ID.email), 'down leaves it');
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
    assert.deepEqual(inventory(), { ...empty, networks: [`${STACK}-net`], serviceAccounts: [ID.email], roles: [ID.roleName], bindings: [...empty.bindings, `${ID.roleName} serviceAccount:${ID.email}`] }, 'the network stays, and the identity (removed after it)');
    const again = await run('down', config());
    assert.deepEqual(again.changes.map((c) => `${c.action} ${c.kind}`), ['keep compute#instance', 'keep compute#firewall', 'keep compute#subnetwork', 'delete compute#network', 'delete cloudresourcemanager#binding', 'delete iam#serviceAccount', 'delete iam#role']);
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
