/**
 * Run on a site's host (`ip netns exec <ns> node --import tsx this-file`, by ./hosts-federation.ts):
 * deploys the sample workload there, as `fedflow up` does on one machine, so its instance runs in
 * that host's network namespace, where the site's agent freezes and checks it; then fills it. Prints
 * the deployed sample as JSON.
 *   FEDFLOW_HOME, FEDFLOW_CONFIG, TEMPORAL_ADDRESS;
 *   SAMPLE_SITE, SAMPLE_KEYS, SAMPLE_VALUE_BYTES (1024), SAMPLE_WORKLOAD_ID (kv-demo),
 *   SAMPLE_FIRST_VALUE (0: key i holds sampleValue(first + i, bytes))
 */
import { Client, Connection } from '@temporalio/client';
import { loadFederationConfig } from '../../agent/site/config-file';
import { fedflowHome } from '../../agent/site/home';
import { sampleKeyCount, sampleValue } from '../../agent/workload/sample';
import { deploySampleWorkload } from '../../worker/deploy-sample';

function intEnv(name: string, dflt: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} is '${raw.slice(0, 40)}'; expected an integer >= ${min}`);
  return n;
}

async function fill(address: string, keys: number, valueBytes: number, first: number): Promise<void> {
  // A few writers at a time, as seedSample does; the values start at `first`.
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = next++; i < keys; i = next++) {
        const res = await fetch(`${address}/kv/key-${String(i).padStart(6, '0')}`, { method: 'PUT', body: sampleValue(first + i, valueBytes) });
        if (!res.ok) throw new Error(`seeding key ${i} on ${address} failed: ${res.status}`);
      }
    }),
  );
}

async function run(): Promise<void> {
  const keys = intEnv('SAMPLE_KEYS', 200, 0);
  const valueBytes = intEnv('SAMPLE_VALUE_BYTES', 1024, 1);
  const first = intEnv('SAMPLE_FIRST_VALUE', 0, 0);
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS });
  try {
    const client = new Client({ connection, namespace: 'default' });
    const sample = await deploySampleWorkload({ client, config: loadFederationConfig(), home: fedflowHome(), site: process.env.SAMPLE_SITE, workloadId: process.env.SAMPLE_WORKLOAD_ID || undefined, keys: 0 });
    if (sample.created) await fill(sample.address, keys, valueBytes, first);
    process.stdout.write(JSON.stringify({ workloadId: sample.workloadId, site: sample.site, address: sample.address, keys: await sampleKeyCount(sample.address) }) + '\n');
  } finally {
    await connection.close();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
