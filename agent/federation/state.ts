/**
 * The federation state of the embedded default: which workloads exist, where each one runs,
 * which migration holds it, and the route that says where it is served.
 *
 * One JSON file, changed under a lock file and replaced atomically (write temp, fsync, rename),
 * so the worker and the CLI can share it across processes. The consensus issue replaces this
 * single file with a replicated federation log; the interface stays.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fedflowHome } from '../site/home';
import type { InstanceRef, VolumeRef } from '../../core/contracts/providers';

export interface WorkloadRecord {
  id: string;
  site: string;
  image: string;
  instance: InstanceRef;
  volume: VolumeRef;
  /** Set while a migration holds the workload; cleared when it ends either way. */
  migration?: { workflowId: string; runId: string; target: string; since: string };
}

export interface RouteRecord {
  site: string;
  address: string;
  since: string;
  /** The migration that last switched it, if any. */
  switchedBy?: string;
}

export interface FederationState {
  workloads: Record<string, WorkloadRecord>;
  routes: Record<string, RouteRecord>;
}

const LOCK_STALE_MS = 30_000;

export class FederationStateStore {
  readonly path: string;
  constructor(home = fedflowHome()) {
    this.path = join(home, 'federation', 'state.json');
    mkdirSync(dirname(this.path), { recursive: true });
  }

  read(): FederationState {
    if (!existsSync(this.path)) return { workloads: {}, routes: {} };
    return JSON.parse(readFileSync(this.path, 'utf8')) as FederationState;
  }

  /** Runs `fn` on the current state under the lock and saves what it returns (if anything changed). */
  async update<T>(fn: (state: FederationState) => T): Promise<T> {
    const lock = `${this.path}.lock`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        closeSync(openSync(lock, 'wx'));
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // A holder killed with -9 leaves its lock behind; past this age nobody still holds it.
        try {
          if (Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) rmSync(lock, { force: true });
        } catch {
          /* raced with its removal */
        }
        if (Date.now() > deadline) throw new Error(`federation state ${this.path} stayed locked for 10 s (lock file ${lock})`);
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    try {
      const state = this.read();
      const before = JSON.stringify(state);
      const out = fn(state);
      const after = JSON.stringify(state, null, 2);
      if (JSON.stringify(state) !== before) {
        const tmp = `${this.path}.tmp-${process.pid}`;
        const fd = openSync(tmp, 'w');
        writeFileSync(fd, after);
        fsyncSync(fd);
        closeSync(fd);
        renameSync(tmp, this.path);
      }
      return out;
    } finally {
      rmSync(lock, { force: true });
    }
  }
}
