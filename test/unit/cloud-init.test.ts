/**
 * What agent/site/cloud-init.ts writes, read back as cloud-init reads it (YAML), and the checks on
 * its input and on the config's infra.release. The user-data run for real on a host is
 * test/hosts/userdata-install.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { agentCloudInit, CloudInitError } from '../../agent/site/cloud-init';
import { parseFederationConfig } from '../../core/federation-config';
import { siteUserData } from '../../infra/userdata';

const SHA = 'a'.repeat(64);
const PEM_CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const PEM_KEY = '-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n';

interface Doc {
  write_files: { path: string; permissions: string; content: string }[];
  runcmd: string[][];
}
const read = (text: string) => {
  assert.ok(text.startsWith('#cloud-config\n'), 'cloud-init reads only a #cloud-config first line as cloud-config');
  return parse(text) as Doc;
};

describe('the agent cloud-init', () => {
  it('with a release: fetches it, checks its sha256 and runs its install.sh; the key is written 0600', () => {
    const doc = read(
      agentCloudInit({
        siteId: 'aws:us-east-1',
        workloadId: '',
        temporalAddress: 'temporal.example:7233',
        release: { url: "https://bucket.s3.amazonaws.com/fedflow-0.1.0-linux-x64.tar.gz?X-Amz-Signature=ab'c", sha256: SHA },
        federationConfig: 'federation: demo\n',
        tls: { ca: PEM_CERT, cert: PEM_CERT, key: PEM_KEY },
        transferSecret: 'cd'.repeat(32),
      }),
    );
    const file = (p: string) => doc.write_files.find((f) => f.path === p);
    assert.equal(file('/etc/fedflow/agent.env')?.permissions, '0600');
    assert.match(file('/etc/fedflow/agent.env')!.content, /^FEDFLOW_SITE=aws:us-east-1$/m);
    assert.match(file('/etc/fedflow/agent.env')!.content, /^TEMPORAL_ADDRESS=temporal\.example:7233$/m);
    assert.equal(file('/etc/fedflow/federation.yaml')?.content, 'federation: demo\n');
    assert.equal(file('/var/lib/fedflow/tls/sites/aws_us-east-1/key.pem')?.permissions, '0600');
    assert.equal(file('/var/lib/fedflow/tls/sites/aws_us-east-1/key.pem')?.content, PEM_KEY);
    assert.equal(file('/var/lib/fedflow/tls/ca.pem')?.content, PEM_CERT);
    const script = file('/etc/fedflow/install-release.sh')!;
    assert.equal(script.permissions, '0700');
    // The URL single-quoted for sh, a quote in it escaped.
    assert.ok(script.content.includes(`url='https://bucket.s3.amazonaws.com/fedflow-0.1.0-linux-x64.tar.gz?X-Amz-Signature=ab'\\''c'`), script.content);
    assert.match(script.content, new RegExp(`^sha256=${SHA}$`, 'm'));
    assert.match(script.content, /sha256sum --check/);
    // Its messages name the URL without the query (a presigned URL's signature stays out of the boot log).
    assert.doesNotMatch(script.content, /echo [^\n]*\$url/);
    assert.match(script.content, /^where="\$\{url%%\\\?\*\}"$/m);
    assert.match(script.content, /^sh "\$1" fedflow-agent\.service$/m);
    assert.deepEqual(doc.runcmd, [['sh', '/etc/fedflow/install-release.sh']]);
  });

  it('without a release (a baked image): only the environment, and the unit enabled; no secret', () => {
    const text = agentCloudInit({ siteId: 'gcp:europe-west1-b', workloadId: 'kv', temporalAddress: 't:7233' });
    const doc = read(text);
    assert.deepEqual(doc.write_files.map((f) => f.path), ['/etc/fedflow/agent.env']);
    assert.deepEqual(doc.runcmd, [['systemctl', 'enable', '--now', 'fedflow-agent.service']]);
    assert.doesNotMatch(text, /SECRET|PRIVATE KEY/);
  });

  it('refuses bad input with every problem named, and writes nothing', () => {
    assert.throws(
      () => agentCloudInit({ siteId: 'aws:us-east-1', workloadId: '', release: { url: 's3://bucket/fedflow.tar.gz', sha256: 'ABC' }, tls: { ca: 'x', cert: PEM_CERT, key: PEM_CERT }, transferSecret: 'short' }),
      (err: unknown) => {
        assert.ok(err instanceof CloudInitError);
        assert.match(err.message, /release url 's3:\/\/bucket\/fedflow\.tar\.gz' is s3: .*https URL/);
        assert.match(err.message, /release sha256 'ABC' is not 64 lowercase hex digits/);
        assert.match(err.message, /tls\.ca is not a PEM certificate/);
        assert.match(err.message, /tls\.key is not a PEM private key/);
        assert.match(err.message, /transferSecret must be at least 64 hex digits/);
        return true;
      },
    );
  });

  it('refuses a URL or field that would start a new line in the cloud-config or agent.env; the header names the URL without its query', () => {
    const sha256 = 'a'.repeat(64);
    const injected = 'https://x.example/a.tgz?sig\nbootcmd:\n  - [sh, -c, "touch /tmp/pwned"]\n#';
    assert.throws(
      () => agentCloudInit({ siteId: 'aws:us-east-1', workloadId: '', temporalAddress: 't:7233\nFEDFLOW_SITE=other', release: { url: injected, sha256 } }),
      (err: unknown) => {
        assert.ok(err instanceof CloudInitError);
        assert.match(err.message, /release url .* has whitespace or a control character/);
        assert.match(err.message, /temporalAddress .* has whitespace or a control character/);
        return true;
      },
    );
    const text = agentCloudInit({ siteId: 'aws:us-east-1', workloadId: '', release: { url: 'https://b.s3.amazonaws.com/f.tgz?X-Amz-Signature=deadbeef', sha256 } });
    const header = text.split('\n').filter((l) => l.startsWith('#')).join('\n');
    assert.match(header, /installs the release https:\/\/b\.s3\.amazonaws\.com\/f\.tgz \(sha256/);
    assert.doesNotMatch(header, /Signature|deadbeef/, 'the signature is not in the header comment');
    assert.deepEqual(Object.keys(read(text)).sort(), ['runcmd', 'write_files']);
  });

  it("infra passes the config's infra.release into every site's user-data; a bad one is refused by the config", () => {
    const ud = read(siteUserData('aws:us-east-1', 't:7233', 'fedflow', { url: 'https://example.com/fedflow-0.1.0-linux-x64.tar.gz', sha256: SHA }));
    assert.match(ud.write_files.find((f) => f.path === '/etc/fedflow/install-release.sh')!.content, /example\.com\/fedflow-0\.1\.0-linux-x64\.tar\.gz/);
    const site = { id: 'aws:us-east-1', provider: 'aws', trust: 'trusted', capacity: { instances: 1 }, settings: { region: 'us-east-1', imageId: 'ami-0abcdef1234567890', instanceType: 't3.micro' }, infra: { cidr: '10.10.0.0/16' } };
    assert.throws(
      () => parseFederationConfig({ federation: 'demo', infra: { release: { url: 'ftp://x/y', sha256: 'nope' } }, sites: [site] }),
      (err: Error) => /infra\.release\.url.*must be the http\(s\) URL/s.test(err.message) && /infra\.release\.sha256.*64 lowercase hex/s.test(err.message),
    );
    const ok = parseFederationConfig({ federation: 'demo', infra: { release: { url: 'https://example.com/f.tar.gz', sha256: SHA } }, sites: [site] });
    assert.equal(ok.infra?.release?.sha256, SHA);
  });
});
