import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveConnection } from '../../client/connection';
import { tempDir } from '../helpers/tmp';

describe('Temporal connection settings follow envconfig', () => {
  it('defaults to the local dev server', () => {
    const c = resolveConnection({ TEMPORAL_CONFIG_FILE: join(tmpdir(), 'fedflow-no-such-file.toml') });
    assert.equal(c.address, 'localhost:7233');
    assert.equal(c.namespace, 'default');
  });

  it('takes TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and TEMPORAL_API_KEY from the environment', () => {
    const c = resolveConnection({ TEMPORAL_ADDRESS: 'my-ns.a1b2c.tmprl.cloud:7233', TEMPORAL_NAMESPACE: 'my-ns.a1b2c', TEMPORAL_API_KEY: 'k3y' });
    assert.equal(c.address, 'my-ns.a1b2c.tmprl.cloud:7233');
    assert.equal(c.namespace, 'my-ns.a1b2c');
    assert.equal(c.connectionOptions.apiKey, 'k3y');
    // An API key implies TLS, as Temporal Cloud requires.
    assert.ok(c.connectionOptions.tls, 'TLS is on with an API key');
  });

  it('reads a profile from the TOML config file', () => {
    const dir = tempDir('fedflow-envconfig-');
    const file = join(dir, 'temporal.toml');
    writeFileSync(file, '[profile.staging]\naddress = "temporal.staging.internal:7233"\nnamespace = "fedflow-staging"\n');
    const c = resolveConnection({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' });
    assert.equal(c.address, 'temporal.staging.internal:7233');
    assert.equal(c.namespace, 'fedflow-staging');
  });
});
