/**
 * The cloud registry loads each cloud's adapter (and its SDK) on demand: an agent whose sites are
 * all local loads none (they were ~130 MB of its heap, `npm run bench -- agent-footprint`), and a
 * cloud site still gets its adapter, or a ProviderError naming what is wrong with its settings.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createCloudProvider } from '../../../adapters/registry-cloud';
import { ProviderError } from '../../../adapters/common/provider-error';
import { loadFederationConfig } from '../../../agent/site/config-file';
import { REPO_ROOT } from '../../../agent/site/home';

const SDK = /node_modules\/(@aws-sdk|@azure|@google-cloud)\//;

function sdksLoadedBy(modules: string[]): string[] {
  const code = `for (const m of ${JSON.stringify(modules.map((m) => join(REPO_ROOT, m)))}) require(m);
    console.log(JSON.stringify([...new Set(Object.keys(require.cache).filter((k) => ${SDK}.test(k)).map((k) => k.match(${SDK})[1]))]));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as string[];
}

describe('cloud registry', () => {
  it('loads no cloud SDK with the agent runtime, and each one with its adapter', () => {
    // The runtime and the roles module the agent's entry points run it through.
    assert.deepEqual(sdksLoadedBy(['worker/federation-runtime.ts', 'worker/roles.ts']), []);
    // The check can see an SDK: loading the adapters loads theirs.
    assert.deepEqual(sdksLoadedBy(['worker/federation-runtime.ts', 'adapters/aws/provider.ts', 'adapters/azure/provider.ts', 'adapters/gcp/provider.ts']).sort(), ['@aws-sdk', '@azure', '@google-cloud']);
  });

  it('builds each cloud site of the multi-cloud example on demand', async () => {
    const config = loadFederationConfig(join(REPO_ROOT, 'config', 'federation.multicloud.yaml'));
    const clouds = config.sites.filter((s) => s.provider !== 'local');
    assert.deepEqual(clouds.map((s) => s.provider).sort(), ['aws', 'azure', 'gcp']);
    for (const site of clouds) {
      const provider = await createCloudProvider(site);
      assert.equal(provider.kind, site.provider);
    }
  });

  it('refuses bad settings with a ProviderError naming them, and a local site with where to build it', async () => {
    await assert.rejects(createCloudProvider({ id: 'aws:bad', provider: 'aws', capacity: { instances: 1 }, settings: { region: 'Mars' } }), (err: unknown) => {
      assert.ok(err instanceof ProviderError, String(err));
      assert.match(err.message, /invalid aws settings for site 'aws:bad'[\s\S]*region must be an AWS region such as us-east-1/);
      return true;
    });
    await assert.rejects(createCloudProvider({ id: 'x', provider: 'local', capacity: { instances: 1 } }), /uses provider 'local'; build it with LocalProvider/);
  });
});
