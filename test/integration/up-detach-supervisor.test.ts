/**
 * `fedflow up --detach` leaves a supervisor that restarts a worker that dies, and `fedflow down`
 * stops it first, then the rest (issue 13). The real CLI as child processes, in a temp home with
 * its own ports: `up --detach` starts a Temporal dev server, the supervisor and the worker; the
 * test kills the worker with -9, waits until a new worker process polls the control task queue
 * (the server's own list of pollers), reads the restart in the supervisor's log, runs `down` and
 * checks that every process is gone and every pid file removed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
import { isOurs, readPidRecord, running, type Managed, type PidRecord } from '../../scripts/pids';
import { supervisorLogPath } from '../../scripts/supervisor';
import { freePort, runCliWithin } from '../helpers/cli';
import { eventually } from '../helpers/eventually';

const CONFIG = {
  federation: 'supervised',
  sites: [
    { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 1 } },
    { id: 'dc:frankfurt', provider: 'local', trust: 'trusted', capacity: { instances: 1 } },
  ],
};
/** temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW */
const WORKFLOW_QUEUE = 1;

describe('`fedflow up --detach`: a supervisor restarts the worker; `fedflow down` stops it all', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let connection: Connection | undefined;
  const MANAGED: Managed[] = ['supervisor', 'worker', 'server'];

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'fedflow-supervise-'));
    writeFileSync(join(home, 'federation.json'), JSON.stringify(CONFIG));
    const port = await freePort();
    env = {
      FEDFLOW_HOME: home,
      FEDFLOW_CONFIG: join(home, 'federation.json'),
      FEDFLOW_DEV_SERVER_PORT: String(port),
      FEDFLOW_DEV_UI_PORT: String(await freePort()),
      TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
    };
  });

  after(async () => {
    await connection?.close();
    // A failed test leaves processes: stop those the pid files still name, checked as `down` checks them.
    for (const what of MANAGED) {
      const r = readPidRecord(home, what);
      if (r && isOurs(r)) process.kill(r.pid, 'SIGKILL');
    }
    rmSync(home, { recursive: true, force: true });
  });

  const record = (what: Managed) => readPidRecord(home, what);
  /** Whether a worker of process `pid` polls the control queue (the SDK's identity is `<pid>@<host>`). */
  const polls = async (client: Client, pid: number) => {
    const { pollers } = await client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: CONTROL_TASK_QUEUE }, taskQueueType: WORKFLOW_QUEUE });
    return (pollers ?? []).some((p) => p.identity?.startsWith(`${pid}@`));
  };

  it('restarts a worker killed with -9 after the logged delay, and down stops the supervisor, the worker and the server', { timeout: 400_000 }, async () => {
    const up = await runCliWithin(240_000, env, 'up', '--detach', '--no-sample');
    assert.equal(up.code, 0, `fedflow up --detach failed:\n${up.stdout}\n${up.stderr}`);
    assert.match(up.stdout, /supervisor starting \(pid \d+\)/);

    const started = Object.fromEntries(MANAGED.map((w) => [w, record(w)])) as Record<Managed, PidRecord | undefined>;
    for (const w of MANAGED) assert.ok(started[w] && isOurs(started[w]), `${w}.pid names a live process fedflow started: ${JSON.stringify(started[w])}`);
    assert.match(started.supervisor!.cmdline, /scripts\/supervisor\.ts/);
    assert.match(started.worker!.cmdline, /worker\/main\.ts/);
    // `up` has exited; what it left runs on its own.
    connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS! });
    const client = new Client({ connection });
    const first = started.worker!.pid;
    await eventually(`worker ${first} to poll ${CONTROL_TASK_QUEUE}`, () => polls(client, first), 30_000);

    process.kill(first, 'SIGKILL');
    const second = await eventually(
      'the supervisor to start a new worker',
      () => {
        const r = record('worker');
        return r && r.pid !== first && isOurs(r) ? r : undefined;
      },
      60_000,
    );
    await eventually(`the new worker ${second.pid} to poll ${CONTROL_TASK_QUEUE}`, () => polls(client, second.pid), 180_000);
    assert.equal(running(first), false);

    const log = readFileSync(supervisorLogPath(home), 'utf8');
    assert.match(log, new RegExp(`worker pid ${first} exited \\(signal SIGKILL\\) after \\d+\\.\\d s; restart 1 in 1\\.0 s`), log);
    assert.match(log, new RegExp(`worker restarted \\(pid ${second.pid}\\), restart 1`), log);

    const down = await runCliWithin(60_000, env, 'down');
    assert.equal(down.code, 0, `fedflow down failed:\n${down.stdout}\n${down.stderr}`);
    const said = down.stdout.split('\n');
    // The supervisor first, so that it does not start the worker again; then the worker.
    const order = ['supervisor stopped (it restarts the worker no more)', 'worker stopped', 'Temporal dev server stopped'].map((l) => said.indexOf(l));
    assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!)), `down said, in this order, supervisor / worker / server stopped:\n${down.stdout}`);
    for (const [what, pid] of [['supervisor', started.supervisor!.pid], ['worker', second.pid], ['server', started.server!.pid]] as const) {
      await eventually(`the ${what} (pid ${pid}) to be gone`, () => !running(pid), 10_000);
    }
    assert.deepEqual(readdirSync(join(home, 'run')), [], 'every pid file is removed');
    assert.match(readFileSync(supervisorLogPath(home), 'utf8'), new RegExp(`supervisor pid ${started.supervisor!.pid} stopping \\(SIGTERM\\): no more restarts`));
  });
});
