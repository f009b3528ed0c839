import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { loadFederationConfig } from '../../agent/site/config-file';
import { REPO_ROOT } from '../../agent/site/home';
import { ConfigError, parseFederationConfig } from '../../core/federation-config';

function problemsOf(raw: unknown): string[] {
  try {
    parseFederationConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

describe('federation config', () => {
  it('the default config has four local sites, one of them untrusted', () => {
    const cfg = loadFederationConfig(join(REPO_ROOT, 'config', 'federation.yaml'));
    assert.equal(cfg.sites.length, 4);
    assert.deepEqual(cfg.sites.filter((s) => s.trust === 'untrusted').map((s) => s.id), ['edge:lisbon']);
    assert.ok(cfg.sites.every((s) => s.provider === 'local'));
  });

  it('the multicloud example validates', () => {
    const cfg = loadFederationConfig(join(REPO_ROOT, 'config', 'federation.multicloud.yaml'));
    assert.deepEqual(cfg.sites.map((s) => s.provider).sort(), ['aws', 'azure', 'gcp', 'local']);
  });

  it('an invalid file gets one clear message per problem', () => {
    const problems = problemsOf({
      federation: 'x',
      sites: [
        { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 1 } },
        { id: 'paris', provider: 'vmware', trust: 'maybe', capacity: { instances: -1 } },
        { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 1 } },
      ],
    });
    assert.deepEqual(problems, [
      'sites.1.id: site id must look like <kind>:<name>, e.g. dc:paris or aws:us-east-1',
      'sites.1.provider: Invalid option: expected one of "local"|"aws"|"azure"|"gcp"',
      'sites.1.trust: Invalid option: expected one of "trusted"|"untrusted"',
      'sites.1.capacity.instances: capacity.instances must be 0 or more',
    ]);
  });

  it('reports duplicate ids, links to unknown sites and bad provider settings', () => {
    const problems = problemsOf({
      federation: 'x',
      sites: [
        { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 1 } },
        { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 1 } },
        { id: 'aws:us-east-1', provider: 'aws', trust: 'trusted', capacity: { instances: 1 }, settings: { region: 'us-east-1', imageId: 'ami-12345678', instanceType: 't3.micro', secretAccessKey: 'x' } },
      ],
      links: [{ from: 'dc:paris', to: 'dc:mars', rateMbps: 10 }],
    });
    assert.ok(problems.includes("sites.1.id: duplicate site id 'dc:paris'"), problems.join('\n'));
    assert.ok(problems.some((p) => /^sites\.2: settings\.secretAccessKey: looks like a secret/.test(p)), problems.join('\n'));
    assert.ok(problems.includes("links.0.to: link to 'dc:mars' is not a site of this federation (known: dc:paris, aws:us-east-1)"), problems.join('\n'));
  });
});
