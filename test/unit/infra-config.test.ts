import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { loadFederationConfig } from '../../agent/site/config-file';
import { REPO_ROOT } from '../../agent/site/home';
import { cidrContains, cidrsOverlap, parseCidr } from '../../core/cidr';
import { ConfigError, parseFederationConfig } from '../../core/federation-config';
import { peerIngressCidrs, stackName } from '../../core/infra-config';

function problemsOf(raw: unknown): string[] {
  try {
    parseFederationConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

const aws = { region: 'us-east-1', imageId: 'ami-0abcdef1234567890', instanceType: 't3.micro' };

describe('infra config', () => {
  it('the multicloud example has an infra section; each site admits the others only', () => {
    const cfg = loadFederationConfig(join(REPO_ROOT, 'config', 'federation.multicloud.yaml'));
    assert.equal(stackName(cfg.federation, cfg.infra), 'fedflow-multicloud');
    assert.equal(cfg.infra?.agentPort, 7443);
    assert.deepEqual(peerIngressCidrs('aws:us-east-1', cfg.sites), ['10.20.0.0/16', '10.30.0.0/16', '198.51.100.0/28']);
  });

  it('CIDR arithmetic', () => {
    assert.equal(parseCidr('10.0.0.1/16'), undefined, 'host bits set');
    assert.equal(parseCidr('10.0.0.0/33'), undefined);
    assert.equal(parseCidr('256.0.0.0/8'), undefined);
    const a = parseCidr('10.0.0.0/16')!;
    assert.ok(cidrContains(a, parseCidr('10.0.255.0/24')!));
    assert.ok(!cidrContains(a, parseCidr('10.1.0.0/24')!));
    assert.ok(cidrsOverlap(a, parseCidr('10.0.128.0/17')!));
    assert.ok(!cidrsOverlap(a, parseCidr('10.1.0.0/16')!));
  });

  it('an invalid infra section gets one message per problem', () => {
    const problems = problemsOf({
      federation: 'x',
      infra: { stack: 'Bad_Stack', agentPort: 80, temporal: { namespace: 'ok-ns', retentionDays: 400 }, extra: 1 },
      sites: [
        { id: 'aws:us-east-1', provider: 'aws', trust: 'trusted', capacity: { instances: 1 }, settings: aws, infra: { cidr: '10.0.0.1/16' } },
        { id: 'aws:us-west-2', provider: 'aws', trust: 'trusted', capacity: { instances: 1 }, settings: { ...aws, region: 'us-west-2' }, infra: { cidr: '10.0.0.0/16', subnetCidr: '10.9.0.0/24' } },
      ],
    });
    assert.deepEqual(problems, [
      'sites.0.infra.cidr: must be an IPv4 CIDR block with its host bits zero, such as 10.10.0.0/16',
      'infra.stack: must be 2-32 lowercase letters, digits and dashes, starting with a letter (it prefixes every resource name: GCP and Azure names allow no more)',
      'infra.agentPort: must be 1024-65535',
      'infra.temporal.retentionDays: must be 1-90',
      'infra: Unrecognized key: "extra"',
      'sites.1.infra.subnetCidr: 10.9.0.0/24 is not inside infra.cidr 10.0.0.0/16',
    ]);
  });

  it('cross-site problems: overlaps, a subnet outside its network, a site without a range', () => {
    const problems = problemsOf({
      federation: 'x',
      infra: { controlWorker: { site: 'gcp:europe-west1-b', codeBucket: 'b-fedflow', codeKey: 'k.zip' } },
      sites: [
        { id: 'aws:us-east-1', provider: 'aws', trust: 'trusted', capacity: { instances: 1 }, settings: aws, infra: { cidr: '10.0.0.0/16' } },
        { id: 'aws:us-west-2', provider: 'aws', trust: 'trusted', capacity: { instances: 1 }, settings: { ...aws, region: 'us-west-2' }, infra: { cidr: '10.0.128.0/17', subnetCidr: '10.9.0.0/24' } },
        { id: 'aws:eu-west-1', provider: 'aws', trust: 'trusted', capacity: { instances: 1 }, settings: { ...aws, region: 'eu-west-1' } },
        { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 1 }, infra: { cidr: '10.50.0.0/16' } },
      ],
    });
    assert.deepEqual(problems, [
      'sites.1.infra.subnetCidr: 10.9.0.0/24 is not inside infra.cidr 10.0.128.0/17',
      "sites.1.infra.cidr: 10.0.128.0/17 overlaps 10.0.0.0/16 of site 'aws:us-east-1': sites' networks must not overlap, so their agents can reach each other",
      "sites.2.infra: site 'aws:eu-west-1' needs infra.cidr (its network range, e.g. 10.12.0.0/16) when the federation has an infra section",
      "sites.3.infra: site 'dc:paris' is a local site: infra makes no network there, so give only infra.egressCidrs",
      'sites.3.infra.egressCidrs: is required for a local site: the addresses its agent connects from',
      "infra.controlWorker.site: 'gcp:europe-west1-b' is not an aws site of this federation (aws sites: aws:us-east-1, aws:us-west-2, aws:eu-west-1)",
    ]);
  });

  it('a config without an infra section is unchanged by it', () => {
    const cfg = parseFederationConfig({ federation: 'x', sites: [{ id: 'dc:a', provider: 'local', trust: 'trusted', capacity: { instances: 1 } }] });
    assert.equal(cfg.infra, undefined);
  });
});
