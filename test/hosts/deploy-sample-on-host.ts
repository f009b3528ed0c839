/**
 * Run on a site's host (`ip netns exec <ns> node --import tsx this-file`): deploys the sample
 * workload there, as `fedflow up` does on one machine, so its instance runs in that host's network
 * namespace, where the site's agent freezes and checks it. Prints the deployed sample as JSON.
 *   FEDFLOW_HOME, FEDFLOW_CONFIG, TEMPORAL_ADDRESS; SAMPLE_SITE, SAMPLE_KEYS; optional SAMPLE_ID
 *   (default: the sample's id) and SAMPLE_VALUE_BYTES (default 1024)
 */
import { Client, Connection } from '@temporalio/client';
import { loadFederationConfig } from '../../agent/site/config-file';
import { fedflowHome } from '../../agent/site/home';
import { deploySampleWorkload } from '../../worker/deploy-sample';

async function run(): Promise<void> {
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS });
  try {
    const client = new Client({ connection, namespace: 'default' });
    const sample = await deploySampleWorkload({ client, config: loadFederationConfig(), home: fedflowHome(), site: process.env.SAMPLE_SITE, keys: Number(process.env.SAMPLE_KEYS ?? 200), valueBytes: Number(process.env.SAMPLE_VALUE_BYTES ?? 1024), ...(process.env.SAMPLE_ID ? { workloadId: process.env.SAMPLE_ID } : {}) });
    process.stdout.write(JSON.stringify(sample) + '\n');
  } finally {
    await connection.close();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
