import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { loadFederationConfig } from '../../agent/site/config-file';
import { REPO_ROOT } from '../../agent/site/home';
import { advertisedAgentUrl, ConfigError, parseFederationConfig } from '../../core/federation-config';

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

  it('takes per-site network settings: listen address, advertised URL, TLS material; mutual TLS by default', () => {
    const cfg = parseFederationConfig({
      federation: 'x',
      tls: { ca: '/etc/fedflow/tls/ca.pem' },
      sites: [
        { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 1 }, listen: { host: '0.0.0.0', port: 7443 }, agentUrl: 'https://10.77.0.2:7443/', tls: { cert: 'tls/paris.pem', key: 'tls/paris.key' } },
        { id: 'dc:berlin', provider: 'local', trust: 'trusted', capacity: { instances: 1 } },
      ],
    });
    assert.deepEqual(cfg.tls, { mode: 'mutual-tls', ca: '/etc/fedflow/tls/ca.pem' });
    assert.deepEqual(cfg.sites[0]!.listen, { host: '0.0.0.0', port: 7443 });
    assert.equal(advertisedAgentUrl(cfg.sites[0]!), 'https://10.77.0.2:7443');
    assert.equal(advertisedAgentUrl(cfg.sites[1]!), undefined);
    assert.equal(parseFederationConfig({ federation: 'x', sites: [{ id: 'dc:a', provider: 'local', trust: 'trusted', capacity: { instances: 1 } }] }).tls.mode, 'mutual-tls');
  });

  it('refuses bad network settings, one line per problem, each saying what would be right', () => {
    const s = (id: string, extra: object) => ({ id, provider: 'local', trust: 'trusted', capacity: { instances: 1 }, ...extra });
    assert.deepEqual(
      problemsOf({
        federation: 'x',
        sites: [
          s('dc:a', { agentUrl: 'http://10.0.0.2:7443' }),
          s('dc:b', { agentUrl: 'https://10.0.0.3:7443/chunks?x=1' }),
          s('dc:c', { listen: { host: 'not a host', port: 70000 } }),
          s('dc:d', { listen: { host: '0.0.0.0', port: 7443 } }),
          s('dc:e', { tls: { cert: '', key: 'k.pem', ca: 'x' } }),
          s('dc:f', { agentUrl: 'not a url' }),
        ],
        tls: { mode: 'tls-please' },
      }),
      [
        'sites.2.listen.host: listen.host must be an IP address or a host name, e.g. 0.0.0.0, 10.0.0.2 or ::',
        'sites.2.listen.port: listen.port must be in 0..65535',
        'sites.4.tls.cert: tls.cert must be the path of a PEM file',
        'sites.4.tls: Unrecognized key: "ca"',
        'sites.5.agentUrl: agentUrl must be a URL such as https://10.0.0.2:7443',
        'tls.mode: Invalid option: expected one of "mutual-tls"|"plain"',
      ],
    );
    // With the fields well formed, the cross-checks: scheme against the mode, a base URL, a wildcard listen needs an agentUrl.
    assert.deepEqual(
      problemsOf({
        federation: 'x',
        sites: [s('dc:a', { agentUrl: 'http://10.0.0.2:7443' }), s('dc:b', { agentUrl: 'https://10.0.0.3:7443/chunks?x=1' }), s('dc:d', { listen: { host: '0.0.0.0', port: 7443 } })],
      }),
      [
        "sites.0.agentUrl: 'http://10.0.0.2:7443' must start with https:// (tls.mode is 'mutual-tls')",
        "sites.1.agentUrl: 'https://10.0.0.3:7443/chunks?x=1' must be a base URL with no path, query or credentials, e.g. https://10.0.0.2:7443",
        'sites.2.agentUrl: required when listen.host is the wildcard \'0.0.0.0\': the URL other sites reach this agent at, e.g. https://10.0.0.2:7443',
      ],
    );
    assert.deepEqual(problemsOf({ federation: 'x', tls: { mode: 'plain' }, sites: [s('dc:a', { agentUrl: 'https://10.0.0.2:7443', tls: { cert: 'c.pem', key: 'k.pem' } })] }), [
      "sites.0.agentUrl: 'https://10.0.0.2:7443' must start with http:// (tls.mode is 'plain')",
      "sites.0.tls: a key and certificate are given but tls.mode is 'plain': set tls.mode to 'mutual-tls' or drop the site's tls",
    ]);
  });
});
