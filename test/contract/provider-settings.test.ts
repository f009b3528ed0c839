/** The per-provider settings schemas, and the example multi-cloud federation config. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseFederationConfig } from '../../core/federation-config';
import { parseProviderSettings, validateProviderSettings } from '../../core/provider-settings';

const good = {
  aws: { region: 'us-east-1', imageId: 'ami-0abcdef1234567890', instanceType: 't3.micro' },
  azure: {
    subscriptionId: '11111111-2222-4333-8444-555555555555',
    resourceGroup: 'rg',
    location: 'westeurope',
    image: 'Canonical:ubuntu-24_04-lts:server:latest',
    vmSize: 'Standard_B2s',
    networkInterfaceId: '/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic',
  },
  gcp: { project: 'fedflow-demo-123', zone: 'europe-west1-b', image: 'projects/debian-cloud/global/images/family/debian-12', machineType: 'e2-small' },
  local: {},
};

describe('provider settings', () => {
  it('config/federation.multicloud.yaml is a valid federation with valid settings on every site', () => {
    const raw = parse(readFileSync(join(__dirname, '..', '..', 'config', 'federation.multicloud.yaml'), 'utf8'));
    const cfg = parseFederationConfig(raw, 'federation.multicloud.yaml');
    assert.deepEqual([...new Set(cfg.sites.map((s) => s.provider))].sort(), ['aws', 'azure', 'gcp', 'local']);
    for (const s of cfg.sites) assert.deepEqual(validateProviderSettings(s.provider, s.settings), [], `site ${s.id}`);
  });

  for (const [kind, settings] of Object.entries(good)) {
    it(`accepts minimal ${kind} settings`, () => {
      assert.deepEqual(validateProviderSettings(kind, settings), []);
    });
  }

  it('gives one message per problem, naming the field and what would be right', () => {
    const problems = validateProviderSettings('aws', { region: 'Virginia', imageId: 'ubuntu', instanceType: 't3.micro', colour: 'blue' });
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('settings.region:') && p.includes('us-east-1')));
    assert.ok(problems.some((p) => p.startsWith('settings.imageId:') && p.includes('ami-')));
    assert.ok(problems.some((p) => p.startsWith('settings.colour:') && p.includes('known: region')));
  });

  it('names missing required settings', () => {
    const problems = validateProviderSettings('gcp', { project: 'fedflow-demo-123' });
    assert.deepEqual(problems.map((p) => p.split(':')[0]).sort(), ['settings.image', 'settings.machineType', 'settings.zone']);
    assert.ok(problems.every((p) => p.includes('is required for provider gcp')));
  });

  it('refuses secrets in settings with a pointer to the credential chain', () => {
    const problems = validateProviderSettings('aws', { ...good.aws, secretAccessKey: 'x' });
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /settings\.secretAccessKey: looks like a secret.*profile or credentialRef/);
    assert.equal(validateProviderSettings('azure', { ...good.azure, clientSecret: 'x' }).length, 1);
  });

  it('azure needs exactly one of networkInterfaceId and subnetId', () => {
    const { networkInterfaceId: _, ...none } = good.azure;
    assert.match(validateProviderSettings('azure', none).join(), /exactly one of networkInterfaceId .* or subnetId/);
  });

  it('local takes no settings, and unknown providers are named', () => {
    assert.match(validateProviderSettings('local', { dir: '/tmp' })[0]!, /settings\.dir: is not a local setting/);
    assert.match(validateProviderSettings('openstack', {})[0]!, /provider 'openstack' is unknown \(known: local, aws, azure, gcp\)/);
  });

  it('parseProviderSettings returns typed settings or throws listing every problem', () => {
    assert.equal(parseProviderSettings('aws', good.aws).region, 'us-east-1');
    assert.throws(() => parseProviderSettings('aws', {}, 'aws:x'), /invalid aws settings for site 'aws:x':\n  - settings\.region/);
  });
});
