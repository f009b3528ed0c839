/**
 * `npm start -- --workload postgres|redis|<spec.yaml>`: the quickstart with a real service. Brings
 * up the embedded stack, adds the workload from its spec (workloads/<name>.yaml) unless the
 * federation holds it already, writes some data through its stable address (PostgreSQL: a table
 * of 10 000 rows; Redis: 10 000 keys; another spec: none), moves it to another trusted site with
 * the live progress bar, and reads the data back through the same stable address.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../agent/site/home';
import { parseWorkloadSpecText } from '../agent/workload/spec-file';
import { FedflowClient } from '../client';
import { up, waitFrontAddress } from '../scripts/stack';
import { workflowUiUrl } from './main';
import { watchProgress } from './progress';

const run = promisify(execFile);
const SHIPPED = ['postgres', 'redis', 'kv'];
const ROWS = 10_000;

/** One statement through the stable address with the service's own client; its trimmed output. */
async function ask(kind: string, front: string, statement: string[]): Promise<string> {
  const [host, port] = [front.slice(0, front.lastIndexOf(':')), front.slice(front.lastIndexOf(':') + 1)];
  const argv = kind === 'postgres' ? ['psql', ['-h', host, '-p', port, '-U', 'postgres', '-d', 'postgres', '-AtX', '-v', 'ON_ERROR_STOP=1', '-c', statement[0]!]] : ['redis-cli', ['-h', host, '-p', port, ...statement]];
  const { stdout } = await run(argv[0] as string, argv[1] as string[], { timeout: 120_000 });
  return stdout.trim();
}

export async function runWorkload(arg: string | undefined, exitWhenDone: boolean): Promise<void> {
  if (!arg || arg.startsWith('--')) throw new Error(`--workload needs a name (${SHIPPED.join(', ')}) or a spec file's path, e.g. npm start -- --workload postgres`);
  const specFile = SHIPPED.includes(arg) ? join(REPO_ROOT, 'workloads', `${arg}.yaml`) : resolve(arg);
  if (!existsSync(specFile)) throw new Error(`--workload '${arg}': no spec file at ${specFile}; give ${SHIPPED.join(', ')} or the path of a spec (see README, "Add your own workload")`);
  const spec = parseWorkloadSpecText(readFileSync(specFile, 'utf8'), specFile);
  const kind = ['postgres', 'redis'].includes(spec.id) ? spec.id : 'other';
  const t0 = Date.now();
  const stack = await up({ sample: false });
  console.log(`stack up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const client = await FedflowClient.connect();
  let failed = false;
  try {
    const log = client.federation(stack.config.federation);
    let placed = (await log.workloads()).find((w) => w.id === spec.id);
    if (!placed) {
      const added = await client.addWorkload(spec, { config: stack.config, home: stack.home, source: specFile });
      console.log(`added ${spec.id} from ${specFile}: running on ${added.site} at ${added.address} (started in ${added.startMs} ms)`);
      placed = (await log.workloads()).find((w) => w.id === spec.id)!;
    }
    const front = await waitFrontAddress(stack.home, spec.id);
    if (!front) throw new Error(`no stable address for ${spec.id} after 15 s; see ${join(stack.home, 'worker.log')}`);
    console.log(`stable address of ${spec.id}: ${front} (clients use this; it follows the workload when it moves)`);
    if (kind === 'postgres') {
      await ask(kind, front, [`CREATE TABLE IF NOT EXISTS quickstart (id int PRIMARY KEY, note text NOT NULL); INSERT INTO quickstart SELECT g, 'row ' || g FROM generate_series(1, ${ROWS}) g ON CONFLICT DO NOTHING`]);
    } else if (kind === 'redis') {
      const lines = Array.from({ length: ROWS }, (_, i) => `SET quickstart:${i + 1} "row ${i + 1}"`).join('\n');
      const [host, port] = [front.slice(0, front.lastIndexOf(':')), front.slice(front.lastIndexOf(':') + 1)];
      await new Promise<void>((res, rej) => {
        const c = execFile('redis-cli', ['-h', host, '-p', port], { timeout: 120_000 }, (err) => (err ? rej(err) : res()));
        c.stdin!.end(`${lines}\n`);
      });
    }
    const target = stack.config.sites.find((s) => s.provider === 'local' && s.trust === 'trusted' && s.id !== placed!.site)!.id;
    const { workflowId } = await client.startMigration({ workloadId: spec.id, targetSite: target });
    console.log(`\nmigrating ${spec.id} ${placed.site} -> ${target}`);
    console.log(`watch it in the Temporal Web UI: ${workflowUiUrl(workflowId)}\n`);
    await watchProgress(client, spec.id, !!process.stderr.isTTY);
    const r = await client.waitForResult(spec.id);
    console.log(`\nmigrated ${r.workloadId}: ${r.source} -> ${r.target}, served at ${r.address}; both ends verified to digest ${(r.digest ?? '').slice(0, 16)}…`);
    const port = new URL(r.address).port;
    if (kind === 'postgres') {
      const [count, served] = [await ask(kind, front, ['SELECT count(*) FROM quickstart']), await ask(kind, front, ['SELECT inet_server_port()'])];
      console.log(`  through the stable address ${front}: ${count} rows of quickstart, served by port ${served}${served === port ? ' (the target)' : ' (NOT the target)'}`);
      failed = Number(count) < ROWS || served !== port;
    } else if (kind === 'redis') {
      const count = (await ask(kind, front, ['EVAL', "return #redis.call('KEYS', 'quickstart:*')", '0'])).trim();
      const served = /tcp_port:(\d+)/.exec(await ask(kind, front, ['INFO', 'server']))?.[1];
      console.log(`  through the stable address ${front}: ${count} quickstart keys, served by port ${served}${served === port ? ' (the target)' : ' (NOT the target)'}`);
      failed = Number(count) < ROWS || served !== port;
    }
    for (const x of r.rounds) console.log(`  round ${x.round} ${x.kind}: sent ${x.bytesSent} of ${x.bytesScanned} bytes (${x.wireBytes} on the wire, ${x.codec}), ${x.durationMs} ms`);
    console.log(`  duration: ${r.durationMs} ms  downtime: ${r.downtimeMs} ms  mode: ${r.decision.reason}`);
  } catch (err) {
    console.error(`migration failed: ${err instanceof Error ? err.message : err}`);
    failed = true;
  } finally {
    await client.close();
  }
  await serveOrExit(stack, failed, exitWhenDone);
}

/** The quickstart's end: with `--exit` stop the stack and exit (1 if anything failed); else serve until Ctrl-C. */
export async function serveOrExit(stack: { stop(): Promise<void> }, failed: boolean, exitWhenDone: boolean): Promise<void> {
  if (exitWhenDone) {
    await stack.stop();
    process.exit(failed ? 1 : 0);
  }
  console.log('\nserving; press Ctrl-C to stop');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  console.log('\nstopping ...');
  await stack.stop();
}
