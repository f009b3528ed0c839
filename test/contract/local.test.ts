/**
 * The provider contract against adapters/local/provider.ts (LocalProvider: a temp directory,
 * instances are child processes). It has no remote API, so the fault-injection cases are not
 * registered for it.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalProvider } from '../../adapters/local/provider';
import { providerContract } from './provider-contract';

const SITE = 'dc:contract';

providerContract('local', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-local-contract-'));
  const provider = new LocalProvider({ site: SITE, dir, capacityInstances: 8 });
  const volume = provider.createVolume('vol-contract');
  return {
    provider,
    spec: { name: 'contract-kv', image: 'fedflow/kv', tags: { app: 'kv' }, volume },
    invalidSpec: { name: 'bad', image: 'fedflow/no-such-image' },
    missingRef: { provider: 'local', site: SITE, id: 'i-missing0000000' },
    pollMs: 50,
    volumeOf: () => volume,
    close: async () => {
      // Stop anything the suite left running before the directory goes away.
      const records = join(dir, 'instances');
      const ids = existsSync(records) ? readdirSync(records).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length)) : [];
      for (const id of ids) {
        await provider.terminateInstance({ provider: 'local', site: SITE, id }).catch(() => undefined);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}, { faults: false });
