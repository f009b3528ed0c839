/**
 * The spawn helper: a small process that runs the workload runner's commands (health probes,
 * verifications, hooks, volume init) and starts its instances, for its parent, the agent. Started
 * by ./spawner.ts with an IPC channel; one request in, one answer out, as ./exec.ts's
 * execWithTimeout and launchDetached give it.
 *
 * Why a process of its own: Node starts a child by forking the whole process, and the fork's cost
 * grows with the parent's memory. In an agent holding ~800 MB (chunk stores, manifests, the
 * workers of four sites in the test federation) one spawn held the event loop 17–33 ms
 * (docs/workloads.md); forked from this small process it costs about a millisecond of its time
 * and none of the agent's.
 *
 * When the agent goes (the IPC channel closes, also on a kill -9 of the agent), the commands
 * still running here are killed with their process groups, and the helper exits. The instances
 * it started run on (detached, each in a session of its own), as they do when the agent goes.
 */
import { execWithTimeout, killGroup, launchDetached, type ExecOptions, type LaunchOptions } from './exec';

/** A request from the spawner: a command to run to its end, or an instance to start. */
export type SpawnRequest = { id: number; argv: string[]; opts: ExecOptions } | { id: number; argv: string[]; launch: LaunchOptions };

const running = new Set<number>();

process.on('message', (req: SpawnRequest) => {
  if ('launch' in req) {
    // Not tracked: an instance outlives this helper as it outlives the agent.
    void launchDetached(req.argv, req.launch).then((launched) => process.connected && process.send!({ id: req.id, launched }));
    return;
  }
  void execWithTimeout(req.argv, { ...req.opts, onSpawn: (pid) => running.add(pid) }).then((result) => {
    if (result.pid !== undefined) running.delete(result.pid);
    if (process.connected) process.send!({ id: req.id, result });
  });
});

process.on('disconnect', () => {
  for (const pid of running) killGroup(pid, 'SIGKILL');
  process.exit(0);
});

process.send!({ ready: process.pid });
