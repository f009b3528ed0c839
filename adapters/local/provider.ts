/**
 * The `local` provider: a site is a directory on this machine, an instance is a real child
 * process (detached, so it outlives the agent that started it, as a VM outlives its control
 * plane), and a volume is a directory inside the site.
 *
 * Layout under the site directory:
 *   instances/<id>.json   the instance record (spec, pid, address, status, tags)
 *   instances/<id>.log    the process's stdout and stderr
 *   volumes/<id>/         volume contents
 *   snapshots/<id>.tar    point-in-time archive of a volume, with <id>.json beside it (size, sha256)
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, renameSync, writeFileSync, fsyncSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { ProviderError, ProviderErrorType } from '../common/provider-error';
import type { CloudProvider, InstanceRef, InstanceSpec, InstanceState, InstanceStatus, SiteCapacity, SnapshotRef, VolumeRef, WaitOptions } from '../common/cloud-provider';

/** Tag that boots an instance in standby (the workload waits for activation before reading its volume). */
export const STANDBY_TAG = 'fedflow-standby';

/** Images the local provider can boot: an image name maps to a program on this machine. */
export const LOCAL_IMAGES: Record<string, string> = {
  // Relative to this file (adapters/local/), two levels below the repo root: adapters may not
  // import agent/home's REPO_ROOT.
  'fedflow/kv': join(__dirname, '..', '..', 'workload', 'kv-server.js'),
};

interface InstanceRecord {
  id: string;
  name: string;
  image: string;
  volumeId?: string;
  idempotencyKey: string;
  status: 'running' | 'stopped' | 'terminated';
  pid?: number;
  port?: number;
  address?: string;
  tags: Record<string, string>;
  createdAt: string;
}

export interface LocalSnapshotInfo extends SnapshotRef {
  sizeBytes: number;
  sha256: string;
  path: string;
}

export interface LocalProviderOptions {
  site: string;
  /** The site's directory. */
  dir: string;
  /** Configured capacity: the number of instances the site may run. */
  capacityInstances: number;
}

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  writeFileSync(fd, JSON.stringify(value, null, 2));
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
}

/** Whether a process with this pid exists (signal 0 checks without touching it). */
export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason ?? new Error('aborted'));
    }, { once: true });
  });

export class LocalProvider implements CloudProvider {
  readonly kind = 'local' as const;
  readonly site: string;
  readonly dir: string;
  private readonly capacity: number;

  constructor(opts: LocalProviderOptions) {
    this.site = opts.site;
    this.dir = opts.dir;
    this.capacity = opts.capacityInstances;
    for (const sub of ['instances', 'volumes', 'snapshots']) mkdirSync(join(this.dir, sub), { recursive: true });
  }

  // ---- paths and records -------------------------------------------------------------------

  volumePath(volumeId: string): string {
    return join(this.dir, 'volumes', volumeId);
  }
  private recordPath(id: string): string {
    return join(this.dir, 'instances', `${id}.json`);
  }
  private readRecord(id: string): InstanceRecord | undefined {
    const p = this.recordPath(id);
    if (!existsSync(p)) return undefined;
    return JSON.parse(readFileSync(p, 'utf8')) as InstanceRecord;
  }
  private mustRecord(ref: InstanceRef): InstanceRecord {
    this.checkRef(ref);
    const rec = this.readRecord(ref.id);
    if (!rec) throw new ProviderError(ProviderErrorType.NotFound, `instance '${ref.id}' does not exist on site '${this.site}'`, 'local');
    return rec;
  }
  private checkRef(ref: { provider: string; site: string }): void {
    if (ref.provider !== 'local' || ref.site !== this.site) {
      throw new ProviderError(
        ProviderErrorType.InvalidParameter,
        `reference for ${ref.provider} site '${ref.site}' was given to the local provider of site '${this.site}'`,
        'local',
      );
    }
  }
  private ref(id: string): InstanceRef {
    return { provider: 'local', site: this.site, id };
  }
  private records(): InstanceRecord[] {
    return readdirSync(join(this.dir, 'instances'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(this.dir, 'instances', f), 'utf8')) as InstanceRecord);
  }

  // ---- CloudProvider ---------------------------------------------------------------------

  async describeSite(): Promise<SiteCapacity> {
    const used = this.records().filter((r) => r.status !== 'terminated').length;
    return { instances: { limit: this.capacity, used }, source: 'config' };
  }

  async createInstance(spec: InstanceSpec, idempotencyKey: string): Promise<InstanceRef> {
    const program = LOCAL_IMAGES[spec.image];
    if (!program) {
      throw new ProviderError(
        ProviderErrorType.InvalidParameter,
        `image '${spec.image}' is not known to the local provider (known: ${Object.keys(LOCAL_IMAGES).join(', ')})`,
        'local',
      );
    }
    // The id is derived from the key, so a retried create finds the first one instead of making a second.
    const id = `i-${shortHash(idempotencyKey)}`;
    const existing = this.readRecord(id);
    if (existing && existing.status !== 'terminated') {
      if (existing.status === 'running' && !alive(existing.pid)) await this.launch(existing);
      return this.ref(id);
    }
    const cap = await this.describeSite();
    if (cap.instances.used >= cap.instances.limit) {
      throw new ProviderError(
        ProviderErrorType.Quota,
        `site '${this.site}' is full: ${cap.instances.used} of ${cap.instances.limit} instances in use`,
        'local',
      );
    }
    if (spec.volume) this.checkRef(spec.volume);
    const rec: InstanceRecord = {
      id,
      name: spec.name,
      image: spec.image,
      volumeId: spec.volume?.id,
      idempotencyKey,
      status: 'stopped',
      tags: { ...(spec.tags ?? {}) },
      createdAt: new Date().toISOString(),
    };
    if (spec.extra?.port) rec.port = Number(spec.extra.port);
    writeJsonAtomic(this.recordPath(id), rec);
    await this.launch(rec);
    return this.ref(id);
  }

  /** Starts the instance's process and waits until it listens. */
  private async launch(rec: InstanceRecord): Promise<void> {
    const program = LOCAL_IMAGES[rec.image]!;
    const volumeDir = rec.volumeId ? this.volumePath(rec.volumeId) : join(this.dir, 'instances', `${rec.id}.data`);
    mkdirSync(volumeDir, { recursive: true });
    const logPath = join(this.dir, 'instances', `${rec.id}.log`);
    const logFd = openSync(logPath, 'a');
    const startOffset = existsSync(logPath) ? readFileSync(logPath).length : 0;
    // A standby instance boots without reading its volume, until activated (see workload/kv-server.js).
    const args = [program, '--data', volumeDir, '--port', String(rec.port ?? 0), ...(rec.tags[STANDBY_TAG] === 'true' ? ['--standby'] : [])];
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    child.unref();
    const deadline = Date.now() + 10_000;
    let address: string | undefined;
    while (Date.now() < deadline) {
      const out = readFileSync(logPath, 'utf8').slice(startOffset);
      const m = /\{"listening":"([^"]+)"/.exec(out);
      if (m) {
        address = m[1];
        break;
      }
      if (child.exitCode !== null || !alive(child.pid)) break;
      await sleep(10);
    }
    if (!address) {
      const tail = readFileSync(logPath, 'utf8').slice(startOffset).slice(-500);
      try {
        if (child.pid) process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      // A port taken since the last run is the common cause: let the retry pick a fresh one.
      rec.port = undefined;
      writeJsonAtomic(this.recordPath(rec.id), rec);
      throw new ProviderError(ProviderErrorType.Unavailable, `instance '${rec.id}' on '${this.site}' did not start listening: ${tail.trim() || 'no output'}`, 'local');
    }
    rec.pid = child.pid;
    rec.address = address;
    rec.port = Number(new URL(address).port);
    rec.status = 'running';
    writeJsonAtomic(this.recordPath(rec.id), rec);
  }

  async describeInstance(ref: InstanceRef): Promise<InstanceState> {
    const rec = this.mustRecord(ref);
    let status: InstanceStatus = rec.status;
    // A process that died on its own is reported as stopped, as a cloud reports a crashed VM.
    if (status === 'running' && !alive(rec.pid)) status = 'stopped';
    return { ref: this.ref(rec.id), status, address: status === 'running' ? rec.address : undefined, tags: rec.tags };
  }

  async waitFor(ref: InstanceRef, state: 'running' | 'stopped' | 'terminated', opts: WaitOptions): Promise<InstanceState> {
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      const cur = await this.describeInstance(ref);
      opts.onPoll?.(cur);
      if (cur.status === state) return cur;
      if (Date.now() > deadline) {
        throw new ProviderError(ProviderErrorType.Timeout, `instance '${ref.id}' on '${this.site}' is '${cur.status}', not '${state}', after ${opts.timeoutMs} ms`, 'local');
      }
      await sleep(opts.pollMs ?? 50, opts.signal);
    }
  }

  async startInstance(ref: InstanceRef): Promise<void> {
    const rec = this.mustRecord(ref);
    if (rec.status === 'terminated') {
      throw new ProviderError(ProviderErrorType.InvalidParameter, `instance '${ref.id}' on '${this.site}' is terminated and cannot be started`, 'local');
    }
    if (rec.status === 'running' && alive(rec.pid)) return;
    await this.launch(rec);
  }

  async stopInstance(ref: InstanceRef): Promise<void> {
    const rec = this.mustRecord(ref);
    await this.kill(rec);
    if (rec.status !== 'terminated') rec.status = 'stopped';
    rec.pid = undefined;
    writeJsonAtomic(this.recordPath(rec.id), rec);
  }

  private async kill(rec: InstanceRecord): Promise<void> {
    if (!alive(rec.pid)) return;
    process.kill(rec.pid!, 'SIGTERM');
    const deadline = Date.now() + 5_000;
    while (alive(rec.pid) && Date.now() < deadline) await sleep(20);
    if (alive(rec.pid)) process.kill(rec.pid!, 'SIGKILL');
  }

  async terminateInstance(ref: InstanceRef): Promise<void> {
    const rec = this.readRecord(ref.id);
    // Terminating what is already gone succeeds: compensations and retries call it more than once.
    if (!rec) return;
    await this.kill(rec);
    rec.status = 'terminated';
    rec.pid = undefined;
    writeJsonAtomic(this.recordPath(rec.id), rec);
  }

  async snapshotVolume(ref: VolumeRef, idempotencyKey: string): Promise<LocalSnapshotInfo> {
    this.checkRef(ref);
    const vol = this.volumePath(ref.id);
    if (!existsSync(vol)) throw new ProviderError(ProviderErrorType.NotFound, `volume '${ref.id}' does not exist on site '${this.site}'`, 'local');
    const id = `snap-${shortHash(idempotencyKey)}`;
    const existing = this.snapshotInfo(id);
    if (existing) return existing;
    const path = join(this.dir, 'snapshots', `${id}.tar`);
    const tmp = `${path}.tmp-${process.pid}`;
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    // portable + fixed mtime: the archive depends only on the volume's contents.
    await pipeline(tar.c({ cwd: vol, portable: true, mtime: new Date(0) }, readdirSync(vol).sort()), tap, createWriteStream(tmp));
    const fd = openSync(tmp, 'r');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
    const info: LocalSnapshotInfo = { provider: 'local', site: this.site, id, sizeBytes: size, sha256: hash.digest('hex'), path };
    writeJsonAtomic(join(this.dir, 'snapshots', `${id}.json`), info);
    return info;
  }

  snapshotInfo(id: string): LocalSnapshotInfo | undefined {
    if (!/^snap-[0-9a-f]{16}$/.test(id)) return undefined;
    const meta = join(this.dir, 'snapshots', `${id}.json`);
    return existsSync(meta) ? (JSON.parse(readFileSync(meta, 'utf8')) as LocalSnapshotInfo) : undefined;
  }

  async tag(ref: InstanceRef | VolumeRef, tags: Record<string, string>): Promise<void> {
    this.checkRef(ref);
    const rec = this.readRecord(ref.id);
    if (rec) {
      rec.tags = { ...rec.tags, ...tags };
      writeJsonAtomic(this.recordPath(rec.id), rec);
      return;
    }
    if (existsSync(this.volumePath(ref.id))) {
      const p = join(this.dir, 'volumes', `${ref.id}.tags.json`);
      const cur = existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Record<string, string>) : {};
      writeJsonAtomic(p, { ...cur, ...tags });
      return;
    }
    throw new ProviderError(ProviderErrorType.NotFound, `nothing named '${ref.id}' on site '${this.site}' to tag`, 'local');
  }

  // ---- local-only helpers (volumes are plain directories here) -------------------------

  createVolume(volumeId: string): VolumeRef {
    mkdirSync(this.volumePath(volumeId), { recursive: true });
    return { provider: 'local', site: this.site, id: volumeId };
  }

  /** Removes a volume and its tags; on the thread pool, so a big one does not stall the agent (its fronts, its other transfers). */
  async deleteVolume(volumeId: string): Promise<void> {
    await rm(this.volumePath(volumeId), { recursive: true, force: true });
    await rm(join(this.dir, 'volumes', `${volumeId}.tags.json`), { force: true });
  }

  async findInstance(_name: string, idempotencyKey: string): Promise<InstanceRef | undefined> {
    const id = `i-${shortHash(idempotencyKey)}`;
    const rec = this.readRecord(id);
    return rec && rec.status !== 'terminated' ? this.ref(id) : undefined;
  }

  /** The running standby instance (booted with --standby, not yet activated) on volume `volumeId`, if there is one. */
  standbyOn(volumeId: string): { ref: InstanceRef; address: string } | undefined {
    const rec = this.records().find((r) => r.volumeId === volumeId && r.status === 'running' && r.tags[STANDBY_TAG] === 'true' && r.address && alive(r.pid));
    return rec ? { ref: this.ref(rec.id), address: rec.address! } : undefined;
  }

  /** Ids of this site's instances that are not terminated. */
  liveInstances(): InstanceRef[] {
    return this.records()
      .filter((r) => r.status !== 'terminated')
      .map((r) => this.ref(r.id));
  }
}
