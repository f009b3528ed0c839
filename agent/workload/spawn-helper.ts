/**
 * The spawn helper: a small process that runs the workload runner's commands (health probes,
 * verifications, hooks, volume init) and starts its instances, for its parent, the agent. Started
 * by ./spawner.ts with an IPC channel; one request in, one answer out, as ./exec.ts's
 * execWithTimeout and launchDetached give it, and beforehand the pid of what it started (so that
 * the agent can kill a command, or find an instance, if this helper dies before it answers).
 *
 * Why a process of its own: Node starts a child by forking the whole process, and the fork's cost
 * grows with the parent's memory. In an agent holding ~800 MB (chunk stores, manifests, the
 * workers of four sites in the test federation) one spawn held the event loop 17–33 ms
 * (docs/workloads.md); forked from this small process it costs 2–8 ms of its time and none of the
 * agent's.
 *
 * It ends only when the agent goes (the IPC channel closes, also on a kill -9 of the agent): then
 * the commands still running here are killed with their process groups, and it exits. A Ctrl-C or
 * a SIGTERM meant for the agent's process group is the agent's to act on, not this helper's. The
 * instances it started run on (detached, each in a session of its own), as they do when the agent goes.
 */
import { execWithTimeout, killGroup, launchDetached, type ExecOptions, type LaunchOptions } from './exec';

/** A request from the spawner: a command to run to its end, or an instance to start. */
export type SpawnRequest = { id: number; argv: string[]; opts: ExecOptions } | { id: number; argv: string[]; launch: LaunchOptions };

const running = new Set<number>();

/** Sends to the agent while it is there; a message to an agent that has gone is dropped. */
function tell(message: object): void {
  if (process.connected) process.send!(message, undefined, {}, () => undefined);
}

process.on('message', (req: SpawnRequest) => {
  if ('launch' in req) {
    // Not tracked: an instance outlives this helper as it outlives the agent.
    void launchDetached(req.argv, req.launch, (pid) => tell({ id: req.id, spawned: pid })).then((launched) => tell({ id: req.id, launched }));
    return;
  }
  const onSpawn = (pid: number) => {
    running.add(pid);
    tell({ id: req.id, spawned: pid });
  };
  void execWithTimeout(req.argv, { ...req.opts, onSpawn }).then((result) => {
    if (result.pid !== undefined) running.delete(result.pid);
    tell({ id: req.id, result });
  });
});

process.on('disconnect', () => {
  for (const pid of running) killGroup(pid, 'SIGKILL');
  process.exit(0);
});

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => undefined);

tell({ ready: process.pid });
