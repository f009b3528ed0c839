/**
 * `--target azure` against the fake ARM server over HTTPS (its deployments route, what-if, and the
 * template functions fedflow's template uses): plan (what-if) on an empty resource group, up and
 * the resources read back, up again with no change, down with nothing left, a failure halfway
 * (a VM size the region lacks, after the network and identity exist) cleaned up with the
 * resource and ARM's reason named, missing credentials naming the chain.
 */
import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { after, before, beforeEach, describe, it } from 'node:test';
import { parseFederationConfig, type FederationConfig } from '../../core/federation-config';
import { AGENT_AZURE_ACTIONS } from '../../infra/azure/template';
import { InfraError, unchanged } from '../../infra/plan';
import { runInfra } from '../../infra/run';
import { siteUserData } from '../../infra/userdata';
import { AZURE_FAKE_TOKEN, startAzureArmFake, type AzureArmFake } from '../fakes/azure-arm-server';
import { staticTokenCredential } from '../fakes/static-auth';
import { makeTestCa, type TestCa } from '../fakes/test-ca';

const SUB = '00000000-0000-4000-8000-000000000016';
const RG = 'fedflow-westeurope';
const ENV = { TEMPORAL_ADDRESS: 'temporal.example.net:7233', TEMPORAL_NAMESPACE: 'fedflow' };
const STACK = 'fedflow-z-westeurope';

describe('infra --target azure (fake ARM deployments)', () => {
  let tls: TestCa;
  let fake: AzureArmFake;
  let agent: Agent;
  const config = (over: { vmSize?: string; sshPublicKey?: string | null } = {}): FederationConfig =>
    parseFederationConfig({
      federation: 'z',
      infra: { agentPort: 7443, temporal: { namespace: 'fedflow' } },
      sites: [
        {
          id: 'azure:westeurope',
          provider: 'azure',
          trust: 'trusted',
          capacity: { instances: 2 },
          settings: {
            subscriptionId: SUB, resourceGroup: RG, location: 'westeurope', image: 'Canonical:ubuntu-24_04-lts:server:latest', vmSize: over.vmSize ?? 'Standard_B2s',
            subnetId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/virtualNetworks/${STACK}-vnet/subnets/agents`, adminUsername: 'fedflow',
            ...(over.sshPublicKey === null ? {} : { sshPublicKey: over.sshPublicKey ?? 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFedflowTestKeyOnlyForTheFakeArmServer fedflow' }),
            endpoint: fake.endpoint,
          },
          infra: { cidr: '10.20.0.0/16', subnetCidr: '10.20.1.0/24' },
        },
        { id: 'aws:us-east-1', provider: 'aws', trust: 'trusted', capacity: { instances: 2 }, settings: { region: 'us-east-1', imageId: 'ami-0abcdef1234567890', instanceType: 't3.micro' }, infra: { cidr: '10.10.0.0/16' } },
        { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 2 }, infra: { egressCidrs: ['198.51.100.0/28'] } },
      ],
    });
  const run = (action: 'plan' | 'up' | 'down', cfg: FederationConfig) => runInfra(action, 'azure', cfg, { env: ENV, azureCredential: staticTokenCredential(AZURE_FAKE_TOKEN), azureAgent: agent });
  const inventory = () => ({ resources: [...fake.resources.values()].map((r) => r.type).sort(), vms: [...fake.vms.keys()], deployments: [...fake.deployments.keys()] });
  const empty = { resources: [], vms: [], deployments: [] };

  before(async () => {
    tls = makeTestCa();
    fake = await startAzureArmFake({ tls, subscriptionId: SUB, resourceGroup: RG, location: 'westeurope', lroDelayMs: 20 });
    agent = new Agent({ ca: tls.ca });
  });
  beforeEach(() => {
    fake.resources.clear();
    fake.vms.clear();
    fake.deployments.clear();
  });
  after(async () => {
    agent?.destroy();
    await fake?.close();
    tls?.cleanup();
  });

  it('plan (what-if) on an empty group, up, read back, up again with no change, down with nothing left', async () => {
    const plan = await run('plan', config());
    assert.deepEqual(plan.changes.map((c) => `${c.action} ${c.kind}`), [
      'create Microsoft.Network/networkSecurityGroups',
      'create Microsoft.Network/virtualNetworks',
      'create Microsoft.Network/publicIPAddresses',
      'create Microsoft.Network/networkInterfaces',
      'create Microsoft.ManagedIdentity/userAssignedIdentities',
      'create Microsoft.Authorization/roleDefinitions',
      'create Microsoft.Authorization/roleAssignments',
      'create Microsoft.Compute/virtualMachines',
    ]);
    assert.deepEqual(inventory(), empty, 'what-if creates nothing');

    const up = await run('up', config());
    assert.equal(up.changes.filter((c) => c.action === 'create').length, 8);
    const byType = (t: string) => [...fake.resources.values()].filter((r) => r.type === t);
    const [nsg] = byType('Microsoft.Network/networkSecurityGroups');
    const rules = (nsg!.properties.securityRules as { properties: { sourceAddressPrefix: string; destinationPortRange: string; access: string; direction: string } }[]).map((r) => `${r.properties.direction} ${r.properties.access} ${r.properties.destinationPortRange} from ${r.properties.sourceAddressPrefix}`);
    assert.deepEqual(rules, ['Inbound Allow 7443 from 10.10.0.0/16', 'Inbound Allow 7443 from 198.51.100.0/28']);
    const [vnet] = byType('Microsoft.Network/virtualNetworks');
    assert.deepEqual((vnet!.properties.addressSpace as { addressPrefixes: string[] }).addressPrefixes, ['10.20.0.0/16']);
    assert.equal(vnet!.tags['fedflow-stack'], STACK);
    const [role] = byType('Microsoft.Authorization/roleDefinitions');
    assert.deepEqual((role!.properties.permissions as { actions: string[] }[])[0]!.actions, [...AGENT_AZURE_ACTIONS]);
    const [assignment] = byType('Microsoft.Authorization/roleAssignments');
    const [identity] = byType('Microsoft.ManagedIdentity/userAssignedIdentities');
    assert.equal(assignment!.properties.principalId, identity!.properties.principalId, 'the role is assigned to the agent identity (reference() evaluated)');
    assert.equal(String(assignment!.properties.roleDefinitionId).toLowerCase(), role!.id.toLowerCase());
    const vm = fake.vms.get(`${STACK}-agent`)!;
    assert.equal(Buffer.from(vm.customData!, 'base64').toString('utf8'), siteUserData('azure:westeurope', ENV.TEMPORAL_ADDRESS, 'fedflow'));
    assert.equal((vm.properties.hardwareProfile as { vmSize: string }).vmSize, 'Standard_B2s');

    const again = await run('up', config());
    assert.ok(unchanged(again), JSON.stringify(again.changes));
    const changed = await run('plan', config({ vmSize: 'Standard_D2s_v5' }));
    assert.deepEqual(changed.changes.filter((c) => c.action !== 'keep').map((c) => `${c.action} ${c.name}`), [`update ${STACK}-agent`]);

    const down = await run('down', config());
    assert.equal(down.changes.filter((c) => c.action === 'delete').length, 9);
    assert.deepEqual(inventory(), empty);
    assert.ok(unchanged(await run('down', config())), 'down again finds nothing to do');
  });

  it('a failure halfway (a VM size the region lacks) names the resource and ARM\'s reason; what it made is deleted', async () => {
    await assert.rejects(run('up', config({ vmSize: 'Standard_Z99' })), (err: unknown) => {
      assert.ok(err instanceof InfraError, String(err));
      assert.equal(err.type, 'StackFailed');
      assert.match(err.message, new RegExp(`resource ${STACK}-agent \\(Microsoft.Compute/virtualMachines\\) failed: InvalidParameter: The value 'Standard_Z99' provided for the VM size is not valid`));
      assert.match(err.message, /nothing is left/);
      return true;
    });
    assert.deepEqual(inventory(), empty);
  });

  it('a down interrupted halfway (a refused delete) can be run again and finishes the job', async () => {
    await run('up', config());
    fake.faults.inject({ kind: 'auth', match: `/virtualNetworks/${STACK}-vnet`, times: 1 });
    await assert.rejects(run('down', config()), /DELETE .*virtualNetworks\/fedflow-z-westeurope-vnet .*(403|AuthorizationFailed)/);
    assert.deepEqual(inventory().resources, ['Microsoft.Network/networkSecurityGroups', 'Microsoft.Network/virtualNetworks'], 'what was deleted before the refusal stays deleted');
    await run('down', config());
    assert.deepEqual(inventory(), empty);
  });

  it('settings infra needs are named before any call', async () => {
    await assert.rejects(run('up', config({ sshPublicKey: null })), /settings\.sshPublicKey: is required for infra/);
    assert.deepEqual(inventory(), empty);
  });

  it('missing credentials: the error names the chain that was tried', async () => {
    const saved = { ...process.env };
    try {
      for (const k of ['AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_CLIENT_CERTIFICATE_PATH', 'AZURE_FEDERATED_TOKEN_FILE', 'IDENTITY_ENDPOINT', 'MSI_ENDPOINT']) delete process.env[k];
      process.env.PATH = '/nonexistent'; // no az, pwsh or azd to ask
      process.env.HOME = '/nonexistent';
      await assert.rejects(runInfra('plan', 'azure', config(), { env: ENV, azureAgent: agent }), (err: unknown) => {
        assert.ok(err instanceof InfraError, String(err));
        assert.equal(err.type, 'MissingCredentials', err.message);
        assert.match(err.message, /environment \(AZURE_TENANT_ID.*managed identity.*Azure CLI/);
        return true;
      });
    } finally {
      process.env = saved;
    }
    assert.deepEqual(inventory(), empty);
  });
});
