/**
 * `npm start`: brings up the embedded stack, runs one sample migration with a live progress bar,
 * prints the UI link and where to look, and keeps serving until Ctrl-C.
 * `npm start -- --exit` does the same and exits (stopping the stack) when the migration has finished.
 * `npm start -- --workload postgres` (or `redis`, or a spec file's path) moves that service the
 * same way instead: added from its spec if the federation does not hold it yet, given some data,
 * migrated, and read back through its stable address (./quickstart-workload.ts).
 */
import { FedflowClient } from '../client';
import { watchProgress } from './progress';
import { workflowUiUrl } from './main';
import { up } from '../scripts/stack';
import { sampleValue } from '../agent/workload/sample';
import { runWorkload, serveOrExit } from './quickstart-workload';

async function run(): Promise<void> {
  const exitWhenDone = process.argv.includes('--exit');
  const wi = process.argv.indexOf('--workload');
  if (wi >= 0) return runWorkload(process.argv[wi + 1], exitWhenDone);
  const t0 = Date.now();
  const stack = await up({ sampleKeys: Number(process.env.FEDFLOW_SAMPLE_KEYS ?? 2000), sampleValueBytes: Number(process.env.FEDFLOW_SAMPLE_VALUE_BYTES ?? 1024) });
  console.log(`stack up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const sample = stack.sample!;
  // Alternate between two trusted sites, so every `npm start` has somewhere to go.
  const target = stack.config.sites.find((s) => s.provider === 'local' && s.trust === 'trusted' && s.id !== sample.site)!.id;
  const client = await FedflowClient.connect();
  let failed = false;
  try {
    const { workflowId } = await client.startMigration({ workloadId: sample.workloadId, targetSite: target });
    console.log(`\nmigrating ${sample.workloadId} ${sample.site} -> ${target}`);
    console.log(`watch it in the Temporal Web UI: ${workflowUiUrl(workflowId)}\n`);
    await watchProgress(client, sample.workloadId, !!process.stderr.isTTY);
    const r = await client.waitForResult(sample.workloadId);
    // Check independently of the workflow's own health check: read every key back through the route.
    const all = (await (await fetch(`${r.address}/kv`)).json()) as Record<string, string>;
    const bad = Object.entries(all).filter(([k, v]) => /^key-\d{6}$/.test(k) && v !== sampleValue(Number(k.slice(4)), Number(process.env.FEDFLOW_SAMPLE_VALUE_BYTES ?? 1024)));
    console.log(`\nmigrated ${r.workloadId}: ${r.source} -> ${r.target}, served at ${r.address}`);
    console.log(`  keys: ${Object.keys(all).length} read back through the route, ${bad.length} wrong (workflow verified ${r.keys}: ${r.verified})`);
    if (stack.sampleFront) {
      // The same read through the stable address, which clients keep using across the move.
      const viaFront = (await (await fetch(`http://${stack.sampleFront}/kv`)).json()) as Record<string, string>;
      const same = Object.keys(viaFront).length === Object.keys(all).length && Object.entries(all).every(([k, v]) => viaFront[k] === v);
      console.log(`  stable address ${stack.sampleFront}: ${Object.keys(viaFront).length} keys, ${same ? 'the same as the target serves' : 'NOT the same as the target serves'}`);
      if (!same) failed = true;
    }
    console.log(`  mode: ${r.decision.reason}`);
    for (const x of r.rounds) console.log(`  round ${x.round} ${x.kind}: sent ${x.bytesSent} of ${x.bytesScanned} bytes (${x.wireBytes} on the wire, ${x.codec}), ${x.chunksReused} chunks reused, ${x.durationMs} ms`);
    console.log(`  bytes on the wire: ${r.bytesTransferred}${r.resentBytes ? ` (${r.resentBytes} sent again after a retry)` : ''}  duration: ${r.durationMs} ms  downtime: ${r.downtimeMs} ms`);
    console.log(`\nIn the UI (${stack.uiUrl}/namespaces/default/workflows): open ${workflowId}; the timeline shows each step's summary,`);
    console.log('the "Queries" tab runs `progress`, and the search attributes FedPhase/FedSource/FedTarget are on the run.');
    if (bad.length || Object.keys(all).length !== r.keys) failed = true;
  } catch (err) {
    console.error(`migration failed: ${err instanceof Error ? err.message : err}`);
    failed = true;
  } finally {
    await client.close();
  }
  await serveOrExit(stack, failed, exitWhenDone);
}

run().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
