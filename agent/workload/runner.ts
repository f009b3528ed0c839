/**
 * The workload runner: runs any workload from its spec (core/workload-spec.ts) at one site of the
 * `local` provider. Per workload id it can `install` (volumes resolved inside the site, created,
 * initialised once), `start` (templates filled, process started, health checked), tell whether it
 * is `healthy`, `freeze` and `thaw` it with the spec's hooks, `verify` it (the digest the spec's
 * verification prints), `stop` it cleanly and `remove` it.
 *
 * State lives on disk, not in this object, so any process at the site (the agent's activities,
 * the CLI adding a workload) drives the same instances, and a restarted agent finds them:
 *   <site>/workloads/<id>/spec.json       the spec, as installed
 *   <site>/workloads/<id>/instance.json   pid (with its start time, so a reused pid is not taken for it), port, status
 *   <site>/workloads/<id>/instance.log    the instance's stdout and stderr
 *   <site>/workloads/<id>/run/            {dataDir}: sockets, pid files; never migrated
 *   <site>/volumes/<id>/<volume path>     the volumes: one volume root per workload, the unit a migration syncs
 *
 * Every failure is a WorkloadError whose `type` is in core/contracts/failures.ts and whose message
 * names the workload, the hook or check, and what happened (exit code and stderr tail, or timeout).
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, ftruncateSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { writeFileDurable } from '../durable-files';
import { FailureType } from '../../core/contracts/failures';
import { fillTemplates, type Command, type HttpCall, type TemplateValues, type WorkloadSpec } from '../../core/workload-spec';
import { argvOf, killAndReap, launchedWith, lookupUser, processStartTime, signal, stillRunning, tail, waitExit, withTimeout, type RunAs } from './exec';
import { freePort, portFree, tcpCheck, tcpExchange } from './net';
import { spawner } from './spawner';
import { chownTree, realInside } from './volumes';
import { readWorkloadSecret } from './secrets';

export class WorkloadError extends Error {
  constructor(
    message: string,
    readonly type: FailureType,
    /** One line per problem, where there are several (volume paths). */
    readonly problems: string[] = [message],
  ) {
    super(message);
    this.name = 'WorkloadError';
  }
}

/** `freezing`: the freeze hook was started (written before it runs), so a crash in it leaves a trace the thaw and a retry act on. */
export type InstanceStatus = 'running' | 'freezing' | 'frozen' | 'stopped';

interface InstanceRecord {
  pid?: number;
  procStart?: number;
  port: number;
  status: InstanceStatus;
  /** The freeze stopped the process (a clean stop): the instance is frozen and not running. */
  stoppedByFreeze?: boolean;
  /** Tags, as a provider keeps them on an instance (the cloud instance a site's stand-in stands for). */
  tags?: Record<string, string>;
  /** A verification's private boot, written down at its spawn until it is stopped again: a stray once its agent is gone. */
  privatePid?: number;
  privateProcStart?: number;
  /** A start, written down at its spawn until its first health check passes (then `pid`): a stray once its agent is gone. */
  startingPid?: number;
  startingProcStart?: number;
}

/**
 * The environment variable that tags every process the runner launches for a workload (its
 * starts and its private boots; their children inherit it) with the site and the workload
 * (instanceTag). A stray is a process of the workload that is not the recorded instance: a start
 * or a private boot an agent crashed in, or one an earlier attempt left. They are found by the
 * pids written down at each spawn (startingPid, privatePid) and by this tag, which also covers an
 * agent that died inside the spawn, before it learnt the pid (the tag is read from
 * /proc/<pid>/environ: a service that overwrites its environment, as Redis does with its process
 * title, is found by the written-down pid only). Strays are stopped before any start, private boot
 * or write of the volume (WorkloadRunner.stopStrays): they hold the volume (PostgreSQL's
 * postmaster.pid) and must never run while it is written.
 */
export const INSTANCE_ENV = 'FEDFLOW_INSTANCE';

/** The tag (INSTANCE_ENV) of workload `id`'s processes at the site in `siteDir`. */
export function instanceTag(siteDir: string, id: string): string {
  return `${resolve(siteDir)}#${id}`;
}

export interface StartedInstance {
  id: string;
  pid: number;
  port: number;
  address: string;
  /** Ms from spawn to the first passing health check. */
  startMs: number;
}

export interface HookOutcome {
  hook: 'freeze' | 'thaw';
  ms: number;
  /** The instance's process is no longer running (a freeze that stops it). */
  stopped: boolean;
}

export interface InstanceInfo {
  id: string;
  installed: boolean;
  status: InstanceStatus;
  running: boolean;
  pid?: number;
  port?: number;
  address?: string;
}

export interface RunnerOptions {
  site: string;
  /** The site's directory: every volume must resolve inside it. */
  siteDir: string;
  /** Where instances listen; loopback by default. */
  host?: string;
  /** The fedflow checkout ({fedflowRoot}: the sample's program lives there). */
  fedflowRoot: string;
  /** {node}: the Node.js binary (default: this process's). */
  node?: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const ms = (s: number) => Math.round(s * 1000);

/**
 * How long to wait before the next health check when the last one began at `probedAt`
 * (performance.now()): periodSeconds from one check's start to the next's, as Kubernetes times
 * its probes, so a check's own run (a command's spawn: ~6 ms for pg_isready on an idle machine,
 * more under load) does not stretch the period. A check that took the whole period is still
 * followed by a quarter of one: a slow command is not spawned back to back beside the starting
 * service on a busy machine.
 */
export function untilNextProbe(probedAt: number, periodSeconds: number, now = performance.now()): number {
  const period = ms(periodSeconds);
  return Math.min(period, Math.max(period / 4, probedAt + period - now));
}

function describeCommand(c: Command): string {
  const s = typeof c === 'string' ? c : c.join(' ');
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

export class WorkloadRunner {
  readonly site: string;
  readonly siteDir: string;
  readonly host: string;
  private readonly fedflowRoot: string;
  private readonly node: string;
  /** Private boots being stopped after their verification answered (verify), by workload. */
  private readonly stoppingBoots = new Map<string, Promise<void>>();

  constructor(opts: RunnerOptions) {
    this.site = opts.site;
    this.siteDir = resolve(opts.siteDir);
    this.host = opts.host ?? '127.0.0.1';
    this.fedflowRoot = opts.fedflowRoot;
    this.node = opts.node ?? process.execPath;
  }

  // ---- paths and records ---------------------------------------------------------------------

  workloadDir(id: string): string {
    return join(this.siteDir, 'workloads', id);
  }
  /** The workload's volume root: the unit a migration syncs (the local provider's volume `<id>`). */
  volumeRoot(id: string): string {
    return join(this.siteDir, 'volumes', id);
  }
  private runDir(id: string): string {
    return join(this.workloadDir(id), 'run');
  }
  private logPath(id: string): string {
    return join(this.workloadDir(id), 'instance.log');
  }

  /** The installed spec of `id`, or a WorkloadNotInstalled error naming what is installed. */
  spec(id: string): WorkloadSpec {
    const p = join(this.workloadDir(id), 'spec.json');
    if (!existsSync(p)) {
      throw new WorkloadError(`workload '${id}' is not installed at site ${this.site} (installed: ${this.installedIds().join(', ') || 'none'})`, FailureType.WorkloadNotInstalled);
    }
    return JSON.parse(readFileSync(p, 'utf8')) as WorkloadSpec;
  }

  private record(id: string): InstanceRecord | undefined {
    const p = join(this.workloadDir(id), 'instance.json');
    return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as InstanceRecord) : undefined;
  }
  /** Writes the instance record; its tags are kept unless `rec` names its own. */
  private saveRecord(id: string, rec: InstanceRecord): void {
    const tags = rec.tags ?? this.record(id)?.tags;
    writeFileDurable(join(this.workloadDir(id), 'instance.json'), JSON.stringify({ ...rec, ...(tags ? { tags } : {}) }, null, 2));
  }

  /** Adds tags to the instance record (created stopped, on a free port, if there is none). */
  async tag(id: string, tags: Record<string, string>): Promise<void> {
    const rec = this.record(id) ?? { port: (await this.prepare(id)).port, status: 'stopped' as const };
    this.saveRecord(id, { ...rec, tags: { ...(rec.tags ?? {}), ...tags } });
  }

  /** The instance record's tags. */
  tags(id: string): Record<string, string> {
    return this.record(id)?.tags ?? {};
  }

  /**
   * Each volume's absolute path, checked to resolve inside this workload's volume root (and so
   * inside the site's directory), symlinks included. All problems at once; nothing is created.
   */
  resolveVolumes(spec: WorkloadSpec): [string, string][] {
    const root = this.volumeRoot(spec.id);
    const problems: string[] = [];
    const out: [string, string][] = [];
    const realRoot = realInside(root);
    spec.volumes.forEach((v, i) => {
      const wanted = v.path ?? v.name;
      const abs = resolve(root, wanted);
      const real = realInside(abs);
      const inside = (p: string, base: string) => p !== base && !relative(base, p).startsWith('..') && !isAbsolute(relative(base, p));
      if (abs === root) {
        problems.push(`volumes.${i}.path: '${wanted}' is the workload's volume root itself; give each volume its own path inside it, e.g. '${v.name}'`);
      } else if (!inside(abs, root) || !inside(real, realRoot) || !inside(real, realInside(this.siteDir))) {
        problems.push(
          `volumes.${i}.path: '${wanted.length > 60 ? `${wanted.slice(0, 60)}…` : wanted}' resolves to ${real}, outside the workload's volume root ${root} in site ${this.site}'s directory; give a relative path that stays inside it, e.g. '${v.name}'`,
        );
      }
      out.push([v.name, abs]);
    });
    if (problems.length) throw new WorkloadError(`workload '${spec.id}' cannot be installed at ${this.site}: ${problems.join('; ')}`, FailureType.VolumeOutsideSite, problems);
    return out;
  }

  /** Whom the instance and its hooks run as: the spec's user when this agent is root, else the agent's own user. */
  private runAs(spec: WorkloadSpec): RunAs | undefined {
    const name = spec.run.local?.user;
    if (!name || process.getuid?.() !== 0) return undefined;
    const u = lookupUser(name);
    if (!u) throw new WorkloadError(`workload '${spec.id}' runs as user '${name}', which does not exist on this machine; create it (useradd --system ${name}) or change run.local.user`, FailureType.WorkloadStartFailed);
    return u;
  }

  private env(spec: WorkloadSpec, values: TemplateValues, as: RunAs | undefined): Record<string, string> {
    const path = [process.env.PATH ?? '', '/usr/local/bin', '/usr/bin', '/bin'].filter(Boolean).join(':');
    const base: Record<string, string> = { PATH: path, LANG: 'C.UTF-8', HOME: as ? values.dataDir : (process.env.HOME ?? values.dataDir) };
    for (const [k, v] of Object.entries(spec.run.local?.env ?? {})) base[k] = fillTemplates(v, values);
    for (const [k, name] of Object.entries(spec.run.local?.secretEnv ?? {})) base[k] = this.readSecret(spec.id, k, name);
    return base;
  }

  /** A secret's value for `secretEnv.<variable>`: from the site's file, never from the spec (the log). */
  private readSecret(id: string, variable: string, name: string): string {
    const r = readWorkloadSecret(this.siteDir, name);
    if (r.ok) return r.value;
    throw new WorkloadError(
      `workload '${id}': run.local.secretEnv.${variable} names secret '${name}', but at site ${this.site} ${r.problem}; set it there with \`fedflow secrets set ${name} --site ${this.site}\` (the value is read from stdin)`,
      FailureType.WorkloadStartFailed,
    );
  }

  private values(spec: WorkloadSpec, port: number): TemplateValues {
    return {
      id: spec.id,
      host: this.host,
      port,
      dataDir: this.runDir(spec.id),
      node: this.node,
      fedflowRoot: this.fedflowRoot,
      volumes: spec.volumes.map((v) => [v.name, resolve(this.volumeRoot(spec.id), v.path ?? v.name)]),
    };
  }

  private address(spec: WorkloadSpec, port: number): string {
    return fillTemplates(spec.run.local!.address, this.values(spec, port));
  }

  // ---- install and remove --------------------------------------------------------------------

  /**
   * Installs a workload at this site: checks its volumes resolve inside the site (all problems at
   * once, nothing created otherwise), writes the spec, creates the volumes, and runs each new
   * (empty) volume's `init` once. Installing again with the same spec keeps the data.
   * `initVolumes: false` installs without running `init`: a migration's target, whose volumes the
   * sync fills, must not get a fresh `initdb` first. `createVolumes: false` does not even create
   * them: the sync lays its image into an empty volume root (agent/capture/volume-journal.ts).
   */
  async install(spec: WorkloadSpec, opts: { initVolumes?: boolean; createVolumes?: boolean } = {}): Promise<void> {
    if (!spec.run.local) throw new WorkloadError(`workload '${spec.id}' has no run.local section, so the local provider of ${this.site} cannot run it; add run.local.command`, FailureType.InvalidWorkloadSpec);
    this.resolveVolumes(spec);
    const as = this.runAs(spec);
    if (as) this.checkReachable(spec, as);
    // Every secret the spec names is at this site before anything is created: a migration's target
    // is refused at its standby install, before the source is frozen, not at its start.
    for (const [k, name] of Object.entries(spec.run.local.secretEnv)) this.readSecret(spec.id, k, name);
    mkdirSync(this.runDir(spec.id), { recursive: true });
    writeFileDurable(join(this.workloadDir(spec.id), 'spec.json'), JSON.stringify(spec, null, 2));
    if (opts.createVolumes === false) return;
    const values = this.values(spec, 0);
    const fresh: number[] = [];
    spec.volumes.forEach((v, i) => {
      const path = values.volumes[i]![1];
      if (v.kind === 'image') {
        if (!existsSync(path)) {
          mkdirSync(dirname(path), { recursive: true });
          const fd = openSync(path, 'w');
          ftruncateSync(fd, v.sizeMiB! * 1024 * 1024);
          closeSync(fd);
          fresh.push(i);
        }
      } else {
        if (!existsSync(path) || readdirSync(path).length === 0) fresh.push(i);
        mkdirSync(path, { recursive: true });
      }
    });
    this.giveTo(spec, as);
    for (const i of opts.initVolumes === false ? [] : fresh) {
      const init = spec.volumes[i]!.init;
      if (!init) continue;
      // initdb wants an empty directory it may create: hand it the empty one, owned by the user.
      const r = await spawner.exec(argvOf(fillCommand(init.command, values)), { timeoutMs: ms(init.timeoutSeconds), env: this.env(spec, values, as), cwd: values.dataDir, as });
      if (r.timedOut || r.code !== 0) {
        // The volume was new: empty it again, so the next install runs init on a clean slate
        // instead of taking a half-initialised volume for data.
        const path = values.volumes[i]![1];
        rmSync(path, { recursive: true, force: true });
        if (spec.volumes[i]!.kind === 'directory') mkdirSync(path, { recursive: true });
        throw new WorkloadError(
          `init of volume '${spec.volumes[i]!.name}' of workload '${spec.id}' (${describeCommand(init.command)}) ${r.timedOut ? `did not finish within ${init.timeoutSeconds} s and was killed` : `exited with code ${r.code}${r.signal ? ` (${r.signal})` : ''}`}: ${tail(r.stderr || r.stdout) || 'no output'}`,
          r.timedOut ? FailureType.WorkloadHookTimeout : FailureType.WorkloadHookFailed,
        );
      }
    }
  }

  /** The workloads installed at this site. */
  installedIds(): string[] {
    const dir = join(this.siteDir, 'workloads');
    return existsSync(dir) ? readdirSync(dir).filter((id) => this.installed(id)).sort() : [];
  }

  /** Whether `id` is installed here. */
  installed(id: string): boolean {
    return existsSync(join(this.workloadDir(id), 'spec.json'));
  }

  /** Stops the instance and forgets the workload; its volumes are deleted only when asked. */
  async remove(id: string, opts: { deleteVolumes?: boolean } = {}): Promise<void> {
    if (this.installed(id)) {
      await this.stop(id);
    }
    rmSync(this.workloadDir(id), { recursive: true, force: true });
    if (opts.deleteVolumes) await rm(this.volumeRoot(id), { recursive: true, force: true });
  }

  /**
   * The spec's user must reach its volumes and run directory: every directory above the site's
   * must let it through. The runner fixes what is inside the site; above it, it says what to change.
   */
  private checkReachable(spec: WorkloadSpec, as: RunAs): void {
    for (let d = this.siteDir; ; d = dirname(d)) {
      const st = statSync(d);
      const ok = st.uid === as.uid || (st.mode & 0o001) !== 0 || (st.gid === as.gid && (st.mode & 0o010) !== 0);
      if (!ok) {
        throw new WorkloadError(
          `workload '${spec.id}' runs as user '${as.name}' (run.local.user), who cannot enter ${d} (mode ${(st.mode & 0o777).toString(8)}, owner uid ${st.uid}); let others pass through it (chmod o+x ${d}) or run the agent as a user other than root`,
          FailureType.WorkloadStartFailed,
        );
      }
      if (d === dirname(d)) break;
    }
  }

  /**
   * Hands the workload's volumes and run directory to its user (a synced volume arrives owned by
   * the agent), and gives each volume the mode its spec asks for.
   */
  private giveTo(spec: WorkloadSpec, as: RunAs | undefined): void {
    const values = this.values(spec, 0);
    spec.volumes.forEach((v, i) => {
      const path = values.volumes[i]![1];
      if (v.mode && existsSync(path)) chmodSync(path, parseInt(v.mode, 8));
    });
    if (!as) return;
    for (const d of [join(this.siteDir, 'volumes'), join(this.siteDir, 'workloads')]) {
      const st = statSync(d);
      if ((st.mode & 0o001) === 0) chmodSync(d, st.mode | 0o011);
    }
    for (const top of [this.volumeRoot(spec.id), this.workloadDir(spec.id)]) chownTree(top, as);
  }

  // ---- start, health, stop -------------------------------------------------------------------

  /** What the runner knows of the instance now. */
  info(id: string): InstanceInfo {
    const installed = this.installed(id);
    const rec = this.record(id);
    const running = !!rec && stillRunning(rec.pid, rec.procStart);
    return {
      id,
      installed,
      status: rec?.status ?? 'stopped',
      running,
      ...(rec ? { pid: running ? rec.pid : undefined, port: rec.port } : {}),
      ...(installed && rec ? { address: this.address(this.spec(id), rec.port) } : {}),
    };
  }

  /**
   * Chooses the instance's port without starting it (the spec's, the one it had when still free,
   * or a free one) and records it: the address is known before the instance runs (a migration's
   * target names it in the placement it proposes before it activates).
   */
  async prepare(id: string): Promise<{ port: number; address: string }> {
    const spec = this.spec(id);
    const rec = this.record(id);
    if (rec && stillRunning(rec.pid, rec.procStart)) return { port: rec.port, address: this.address(spec, rec.port) };
    const port = spec.run.local!.port ?? (rec?.port && (await portFree(this.host, rec.port)) ? rec.port : await freePort(this.host));
    this.saveRecord(id, { port, status: rec?.status ?? 'stopped', ...(rec?.stoppedByFreeze ? { stoppedByFreeze: true } : {}) });
    return { port, address: this.address(spec, port) };
  }

  /**
   * Starts the instance (or finds it running) and waits for its first passing health check, at
   * most health.startTimeoutSeconds. A process that exits or never passes is killed, and the error
   * carries its log's tail.
   */
  async start(id: string, opts: { samePort?: boolean } = {}): Promise<StartedInstance> {
    const spec = this.spec(id);
    const rec = this.record(id);
    if (rec && stillRunning(rec.pid, rec.procStart)) {
      return { id, pid: rec.pid!, port: rec.port, address: this.address(spec, rec.port), startMs: 0 };
    }
    await this.stopStrays(id);
    const free = rec?.port !== undefined && (await portFree(this.host, rec.port));
    if (opts.samePort && rec && !free) {
      throw new WorkloadError(`workload '${id}' at ${this.site} must start on port ${rec.port} (the address the federation is told), but another process holds it; free it and retry`, FailureType.WorkloadStartFailed);
    }
    const port = spec.run.local!.port ?? (free ? rec!.port : await freePort(this.host));
    const started = await this.launchRecorded(id, spec, port, 'starting');
    this.saveRecord(id, { pid: started.pid, procStart: processStartTime(started.pid), port, status: 'running' });
    return started;
  }

  /**
   * The workload's processes at this site other than `except` (the recorded instance, when it
   * runs): the starts and private boots written down at their spawn, and whatever carries its tag
   * (INSTANCE_ENV). Reads /proc: not for a hot path.
   */
  strays(id: string, except?: number): { pid: number; procStart: number | undefined }[] {
    const rec = this.record(id);
    const found = new Map<number, number | undefined>();
    for (const [pid, procStart] of [
      [rec?.startingPid, rec?.startingProcStart],
      [rec?.privatePid, rec?.privateProcStart],
    ] as const) {
      // Only with its start time: a bare pid may name another process by now (pids wrap at 32768 here).
      if (pid && procStart !== undefined && stillRunning(pid, procStart)) found.set(pid, procStart);
    }
    for (const p of launchedWith(INSTANCE_ENV, instanceTag(this.siteDir, id))) {
      // A program the running instance itself started (an archive_command...) is in its session: not a stray.
      if (except !== undefined && p.sid === except) continue;
      if (!found.has(p.pid)) found.set(p.pid, p.procStart);
    }
    if (except !== undefined) found.delete(except);
    return [...found].map(([pid, procStart]) => ({ pid, procStart }));
  }

  /**
   * Stops the workload's strays (INSTANCE_ENV) the way stop() stops an instance: the freeze's
   * signal, then SIGKILL after its timeout, reaped. The recorded instance, when it runs, is left running.
   */
  async stopStrays(id: string): Promise<void> {
    // A verification's private boot being stopped after its digest went out (verify): waited for first.
    await this.stoppingBoots.get(id);
    const at = this.record(id);
    const found = this.strays(id, at && stillRunning(at.pid, at.procStart) ? at.pid : undefined);
    if (found.length) {
      const spec = this.spec(id);
      await Promise.all(
        found.map((p) => this.stopProcess(id, spec, p.pid, p.procStart)),
      );
    }
    const rec = this.record(id);
    if (rec && (rec.startingPid || rec.privatePid)) this.saveRecord(id, { ...rec, startingPid: undefined, startingProcStart: undefined, privatePid: undefined, privateProcStart: undefined });
  }

  /** A clean stop of one process of the workload: the freeze's signal (SIGTERM by default), then awaitExit. */
  private async stopProcess(id: string, spec: WorkloadSpec, pid: number, procStart: number | undefined): Promise<void> {
    signal(pid, spec.hooks.freeze.stop?.signal ?? 'SIGTERM');
    await this.awaitExit(id, spec, pid, procStart);
  }

  /** Waits the freeze hook's timeout for the process to exit, then kills and reaps it (reaped). */
  private async awaitExit(id: string, spec: WorkloadSpec, pid: number, procStart: number | undefined): Promise<void> {
    if (!(await waitExit(pid, procStart, ms(spec.hooks.freeze.timeoutSeconds)))) await this.reaped(id, pid, procStart);
  }

  /** killAndReap, or a WorkloadError naming the process when it is still there (never reaped: nothing may start on its volume). */
  private async reaped(id: string, pid: number, procStart: number | undefined): Promise<void> {
    if (await killAndReap(pid, procStart, 5_000)) return;
    throw new WorkloadError(`workload '${id}' at ${this.site}: process ${pid} was killed but is still there after 5 s (a zombie its parent never reaps?); nothing starts on its volume until it is gone`, FailureType.WorkloadStartFailed);
  }

  /**
   * launch, with the process written down in the record from its spawn (`startingPid` for a
   * start, `privatePid` for a private boot), so that it is found as a stray if this agent dies;
   * a launch that fails has stopped it, and the record no longer names it.
   */
  private async launchRecorded(id: string, spec: WorkloadSpec, port: number, kind: 'starting' | 'private'): Promise<StartedInstance> {
    const [pidKey, startKey] = kind === 'starting' ? (['startingPid', 'startingProcStart'] as const) : (['privatePid', 'privateProcStart'] as const);
    let spawned: number | undefined;
    return this.launch(spec, port, (pid, procStart) => {
      spawned = pid;
      this.saveRecord(id, { ...(this.record(id) ?? { port, status: 'stopped' }), [pidKey]: pid, [startKey]: procStart });
    }).catch((err: unknown) => {
      const now = this.record(id);
      if (now && spawned !== undefined && now[pidKey] === spawned) this.saveRecord(id, { ...now, [pidKey]: undefined, [startKey]: undefined });
      throw err;
    });
  }

  /** `onSpawn`: told the process as soon as it exists (before its health check), to be written down. */
  private async launch(spec: WorkloadSpec, port: number, onSpawn?: (pid: number, procStart: number | undefined) => void): Promise<StartedInstance> {
    const as = this.runAs(spec);
    this.giveTo(spec, as);
    const values = this.values(spec, port);
    mkdirSync(values.dataDir, { recursive: true });
    const argv = argvOf(fillCommand(spec.run.local!.command, values));
    const logPath = this.logPath(spec.id);
    closeSync(openSync(logPath, 'a'));
    const offset = statSync(logPath).size;
    const t0 = Date.now();
    // Detached: the instance outlives the process that started it, as a VM outlives its control plane.
    const launched = await spawner.launch(argv, { cwd: values.dataDir, env: { ...this.env(spec, values, as), [INSTANCE_ENV]: instanceTag(this.siteDir, spec.id) }, ...(as ? { as } : {}), logPath });
    const spawnError = 'error' in launched ? launched.error : undefined;
    const pid = 'pid' in launched ? launched.pid : undefined;
    const procStart = pid !== undefined ? processStartTime(pid) : undefined;
    if (pid !== undefined) onSpawn?.(pid, procStart);
    const h = spec.health;
    const deadline = t0 + ms(h.startTimeoutSeconds);
    if (h.initialDelaySeconds) await sleep(ms(h.initialDelaySeconds));
    let last = '';
    for (;;) {
      const exited = spawnError || !pid || processStartTime(pid) === undefined;
      if (exited) {
        throw new WorkloadError(
          `workload '${spec.id}' at ${this.site} exited while starting (${describeCommand(spec.run.local!.command)}): ${spawnError ?? (tail(readFileSync(logPath, 'utf8').slice(offset), 400) || 'no output')}`,
          FailureType.WorkloadStartFailed,
        );
      }
      const probedAt = performance.now();
      const check = await this.probe(spec, values);
      if (check.ok) return { id: spec.id, pid, port, address: this.address(spec, port), startMs: Date.now() - t0 };
      last = check.detail;
      if (Date.now() >= deadline) break;
      await sleep(Math.min(untilNextProbe(probedAt, h.periodSeconds), Math.max(0, deadline - Date.now())));
    }
    const gone = pid === undefined || (await killAndReap(pid, procStart, 5_000));
    throw new WorkloadError(
      `workload '${spec.id}' at ${this.site} did not pass its health check within ${h.startTimeoutSeconds} s (last: ${last}); ${gone ? 'it was stopped' : `it was killed, but process ${pid} is still there (never reaped?)`}. Its log: ${tail(readFileSync(logPath, 'utf8').slice(offset), 300) || 'no output'}`,
      FailureType.WorkloadUnhealthy,
    );
  }

  /** One health check, bounded by its timeoutSeconds. */
  private async probe(spec: WorkloadSpec, values: TemplateValues): Promise<{ ok: boolean; detail: string }> {
    const h = spec.health;
    const timeoutMs = ms(h.timeoutSeconds);
    if (h.http) {
      try {
        const res = await this.http(h.http, values, timeoutMs);
        return { ok: res.status >= 200 && res.status < 400, detail: `HTTP ${res.status}` };
      } catch (err) {
        return { ok: false, detail: (err as Error).message };
      }
    }
    if (h.tcp) return tcpCheck(this.host, values.port, timeoutMs, tcpExchange(h.tcp));
    const r = await spawner.exec(argvOf(fillCommand(h.command!, values)), { timeoutMs, env: this.env(spec, values, this.runAs(spec)), cwd: values.dataDir, as: this.runAs(spec) });
    return { ok: r.code === 0 && !r.timedOut, detail: r.timedOut ? `command timed out after ${h.timeoutSeconds} s` : `command exited with code ${r.code}${r.stderr ? `: ${tail(r.stderr, 120)}` : ''}` };
  }

  /**
   * Whether the instance is healthy now, as a Kubernetes liveness probe decides: unhealthy after
   * failureThreshold checks in a row fail, periodSeconds apart. A stopped instance is not healthy.
   */
  async healthy(id: string): Promise<{ healthy: boolean; detail: string }> {
    const spec = this.spec(id);
    const rec = this.record(id);
    if (!rec || !stillRunning(rec.pid, rec.procStart)) return { healthy: false, detail: 'not running' };
    const values = this.values(spec, rec.port);
    let detail = '';
    let probedAt = 0;
    for (let i = 0; i < spec.health.failureThreshold; i++) {
      if (i) await sleep(untilNextProbe(probedAt, spec.health.periodSeconds));
      probedAt = performance.now();
      const r = await this.probe(spec, values);
      if (r.ok) return { healthy: true, detail: r.detail };
      detail = r.detail;
    }
    return { healthy: false, detail: `${spec.health.failureThreshold} checks in a row failed (last: ${detail})` };
  }

  /**
   * A clean stop: the freeze hook's signal when it is a clean stop, SIGTERM otherwise; SIGKILL to
   * the process group if it has not exited within the freeze hook's timeout.
   */
  async stop(id: string): Promise<void> {
    const spec = this.spec(id);
    await this.stopStrays(id);
    // Read again: stopping the strays may have taken a while, and written the record.
    const rec = this.record(id);
    if (!rec) return;
    if (stillRunning(rec.pid, rec.procStart)) {
      await this.stopProcess(id, spec, rec.pid!, rec.procStart);
    }
    this.saveRecord(id, { port: rec.port, status: 'stopped' });
  }

  // ---- cut-over hooks ------------------------------------------------------------------------

  /**
   * Runs the freeze hook: after it, the instance takes no writes (or has stopped cleanly). A hook
   * that exits non-zero, answers an HTTP error or outlives its timeout is a WorkloadError naming
   * the hook and what happened; the instance is then left as the hook left it (thaw compensates).
   */
  async freeze(id: string): Promise<HookOutcome> {
    const spec = this.spec(id);
    const rec = this.record(id);
    const hook = spec.hooks.freeze;
    const t0 = Date.now();
    if (rec?.status === 'freezing' && (hook.stop || hook.stopsInstance) && !stillRunning(rec.pid, rec.procStart)) {
      // A freeze that stops the service was started, and the service is gone: the agent crashed
      // while it waited for the exit. The freeze is done.
      this.saveRecord(id, { port: rec.port, status: 'frozen', stoppedByFreeze: true });
      return { hook: 'freeze', ms: 0, stopped: true };
    }
    if (!rec || !stillRunning(rec.pid, rec.procStart)) {
      throw new WorkloadError(`cannot freeze workload '${id}' at ${this.site}: it is not running (status ${rec?.status ?? 'never started'}); start it first`, FailureType.WorkloadNotInstalled);
    }
    const values = this.values(spec, rec.port);
    const timeoutMs = ms(hook.timeoutSeconds);
    // Written before the hook runs: whatever happens in it, the thaw knows a freeze began.
    this.saveRecord(id, { pid: rec.pid, procStart: rec.procStart, port: rec.port, status: 'freezing' });
    if (hook.stop) {
      signal(rec.pid!, hook.stop.signal);
    } else {
      await this.runCall(spec, 'freeze', hook, values, timeoutMs);
    }
    let stopped = false;
    if (hook.stop || hook.stopsInstance) {
      stopped = await waitExit(rec.pid!, rec.procStart, Math.max(0, timeoutMs - (Date.now() - t0)));
      if (!stopped) {
        // Half stopped is the worst state to leave it in (the thaw would find it "running" while
        // it exits): kill it, so the thaw starts it again on its data.
        const gone = await killAndReap(rec.pid, rec.procStart, 10_000);
        this.saveRecord(id, { port: rec.port, status: 'frozen', stoppedByFreeze: true });
        throw new WorkloadError(
          `freeze hook of workload '${id}' at ${this.site} (${hook.stop ? `stop with ${hook.stop.signal}` : 'stopsInstance'}) did not stop the instance (pid ${rec.pid}) within ${hook.timeoutSeconds} s${gone ? '' : '; it is still there 10 s after SIGKILL (a zombie its parent never reaps?)'}`,
          FailureType.WorkloadHookTimeout,
        );
      }
    }
    this.saveRecord(id, { ...(stopped ? {} : { pid: rec.pid, procStart: rec.procStart }), port: rec.port, status: 'frozen', stoppedByFreeze: stopped });
    return { hook: 'freeze', ms: Date.now() - t0, stopped };
  }

  /**
   * Runs the flush hook, if the spec has one and the instance runs (not frozen): the service writes
   * down what it holds only in memory while it goes on serving (run before a pre-copy capture).
   * Undefined when there is nothing to run; a hook that fails or times out throws a WorkloadError
   * naming it (the caller logs it and captures anyway: a flush only makes the cut-over lighter).
   */
  async flush(id: string): Promise<{ ms: number } | undefined> {
    const spec = this.spec(id);
    const hook = spec.hooks.flush;
    if (!hook) return undefined;
    const rec = this.record(id);
    if (!rec || rec.status !== 'running' || !stillRunning(rec.pid, rec.procStart)) return undefined;
    const t0 = performance.now();
    await this.runCall(spec, 'flush', hook, this.values(spec, rec.port), ms(hook.timeoutSeconds));
    return { ms: Math.round(performance.now() - t0) };
  }

  /** Runs the thaw hook (the compensation of a freeze): the instance takes writes again. */
  async thaw(id: string): Promise<HookOutcome> {
    const spec = this.spec(id);
    const rec = this.record(id);
    const hook = spec.hooks.thaw;
    const t0 = Date.now();
    // Only a freeze is undone: a compensation that runs when no freeze began (a migration that
    // failed in pre-copy) leaves the instance as it is.
    if (rec?.status !== 'freezing' && rec?.status !== 'frozen') return { hook: 'thaw', ms: 0, stopped: !rec || !stillRunning(rec.pid, rec.procStart) };
    // A private boot a crashed agent left (not the frozen instance itself, when it still runs).
    await this.stopStrays(id);
    if (hook.start) {
      const started = await withTimeout(this.start(id), ms(hook.timeoutSeconds), () => new WorkloadError(`thaw hook of workload '${id}' at ${this.site} (start) did not bring it up within ${hook.timeoutSeconds} s`, FailureType.WorkloadHookTimeout));
      this.saveRecord(id, { pid: started.pid, procStart: processStartTime(started.pid), port: started.port, status: 'running' });
      return { hook: 'thaw', ms: Date.now() - t0, stopped: false };
    }
    if (!rec || !stillRunning(rec.pid, rec.procStart)) {
      throw new WorkloadError(`cannot thaw workload '${id}' at ${this.site}: it is not running, and its thaw hook does not start it`, FailureType.WorkloadNotInstalled);
    }
    await this.runCall(spec, 'thaw', hook, this.values(spec, rec.port), ms(hook.timeoutSeconds));
    this.saveRecord(id, { pid: rec.pid, procStart: rec.procStart, port: rec.port, status: 'running' });
    return { hook: 'thaw', ms: Date.now() - t0, stopped: false };
  }

  /**
   * Runs the verification and returns the digest it printed (trimmed). When a freeze stopped the
   * instance, it is booted privately for the check (a fresh port no client knows, so no write can
   * reach it), verified, and stopped cleanly again (after the digest is returned: stopStrays waits
   * for that stop): the data is the frozen data.
   */
  async verify(id: string): Promise<{ digest: string; ms: number; privateBoot: boolean }> {
    const spec = this.spec(id);
    const rec = this.record(id);
    const t0 = Date.now();
    if (rec && stillRunning(rec.pid, rec.procStart)) {
      const digest = await this.runVerify(spec, this.values(spec, rec.port));
      return { digest, ms: Date.now() - t0, privateBoot: false };
    }
    // A private boot (or a start) an agent crashed in holds the volume: stopped first.
    await this.stopStrays(id);
    const port = await freePort(this.host);
    const boot = await this.launchRecorded(id, spec, port, 'private');
    const procStart = processStartTime(boot.pid);
    let digest: string;
    try {
      digest = await this.runVerify(spec, this.values(spec, port));
    } catch (err) {
      await this.stopPrivateBoot(id, spec, boot.pid, procStart, port);
      throw err;
    }
    // The digest goes to the caller now, the boot is stopped after: at the cut-over a target waits
    // for this digest, and the stop (a clean shutdown: PostgreSQL's checkpoint, Redis's AOF fsync)
    // was in its window. Until the boot has exited, the record names it (privatePid), and whatever
    // next uses the volume here (a start, a stop, a thaw, a removal, a retried freeze through
    // SiteWorkloads.freeze) waits for this stop in stopStrays; a stop that fails leaves it to them
    // as a stray (and the cut-over goes on: the next of them fails, naming the process).
    const stopping: Promise<void> = this.stopPrivateBoot(id, spec, boot.pid, procStart, port)
      .catch((err: unknown) => console.warn(`workload '${id}' at ${this.site}: the verification's private boot (pid ${boot.pid}) did not stop: ${(err as Error).message}; the next start or stop stops it`))
      .finally(() => {
        if (this.stoppingBoots.get(id) === stopping) this.stoppingBoots.delete(id);
      });
    this.stoppingBoots.set(id, stopping);
    return { digest, ms: Date.now() - t0, privateBoot: true };
  }

  /** Stops a private boot the way the freeze stops the instance (pg_ctl stop, a signal), so the data is left clean again; the record no longer names it. */
  private async stopPrivateBoot(id: string, spec: WorkloadSpec, pid: number, procStart: number | undefined, port: number): Promise<void> {
    const freeze = spec.hooks.freeze;
    const viaHook = freeze.stopsInstance ? this.runCall(spec, 'freeze', freeze, this.values(spec, port), ms(freeze.timeoutSeconds)).then(() => true, () => false) : Promise.resolve(false);
    if (await viaHook) await this.awaitExit(id, spec, pid, procStart);
    else await this.stopProcess(id, spec, pid, procStart);
    const now = this.record(id);
    if (now?.privatePid === pid) this.saveRecord(id, { ...now, privatePid: undefined, privateProcStart: undefined });
  }

  private async runVerify(spec: WorkloadSpec, values: TemplateValues): Promise<string> {
    const v = spec.verify;
    const timeoutMs = ms(v.timeoutSeconds);
    let out: string;
    if (v.http) {
      const res = await this.http(v.http, values, timeoutMs).catch((err: Error) => {
        throw new WorkloadError(`verify of workload '${spec.id}' at ${this.site} (${v.http!.method} ${v.http!.path}) failed: ${err.message}`, FailureType.WorkloadHookFailed);
      });
      out = await res.text();
      if (res.status >= 300) throw new WorkloadError(`verify of workload '${spec.id}' at ${this.site} (${v.http.method} ${v.http.path}) answered HTTP ${res.status}: ${tail(out, 200)}`, FailureType.WorkloadHookFailed);
    } else {
      const as = this.runAs(spec);
      const r = await spawner.exec(argvOf(fillCommand(v.command!, values)), { timeoutMs, env: this.env(spec, values, as), cwd: values.dataDir, as });
      if (r.timedOut) throw new WorkloadError(`verify of workload '${spec.id}' at ${this.site} (${describeCommand(v.command!)}) did not finish within ${v.timeoutSeconds} s and was killed`, FailureType.WorkloadHookTimeout);
      if (r.code !== 0) throw new WorkloadError(`verify of workload '${spec.id}' at ${this.site} (${describeCommand(v.command!)}) exited with code ${r.code}: ${tail(r.stderr || r.stdout) || 'no output'}`, FailureType.WorkloadHookFailed);
      out = r.stdout;
    }
    const digest = out.trim();
    if (!digest) throw new WorkloadError(`verify of workload '${spec.id}' at ${this.site} printed nothing; it must print a digest`, FailureType.WorkloadHookFailed);
    return digest;
  }

  /** Runs a hook's command or HTTP call; a failure names the hook, and the exit code and stderr tail or the timeout. */
  private async runCall(spec: WorkloadSpec, name: 'freeze' | 'thaw' | 'flush', hook: { command?: Command; http?: HttpCall; timeoutSeconds: number }, values: TemplateValues, timeoutMs: number): Promise<void> {
    const what = `${name} hook of workload '${spec.id}' at ${this.site}`;
    if (hook.http) {
      const res = await this.http(hook.http, values, timeoutMs).catch((err: Error) => {
        const timedOut = err.name === 'TimeoutError';
        throw new WorkloadError(
          `${what} (${hook.http!.method} ${hook.http!.path}) ${timedOut ? `did not answer within ${hook.timeoutSeconds} s` : `failed: ${err.message}`}`,
          timedOut ? FailureType.WorkloadHookTimeout : FailureType.WorkloadHookFailed,
        );
      });
      const body = await res.text();
      if (res.status >= 300) throw new WorkloadError(`${what} (${hook.http.method} ${hook.http.path}) answered HTTP ${res.status}: ${tail(body, 200)}`, FailureType.WorkloadHookFailed);
      return;
    }
    const as = this.runAs(spec);
    const r = await spawner.exec(argvOf(fillCommand(hook.command!, values)), { timeoutMs, env: this.env(spec, values, as), cwd: values.dataDir, as });
    if (r.timedOut) throw new WorkloadError(`${what} (${describeCommand(hook.command!)}) did not finish within ${hook.timeoutSeconds} s and was killed`, FailureType.WorkloadHookTimeout);
    if (r.code !== 0) {
      throw new WorkloadError(`${what} (${describeCommand(hook.command!)}) exited with code ${r.code}${r.signal ? ` (${r.signal})` : ''}: ${tail(r.stderr || r.stdout) || 'no output'}`, FailureType.WorkloadHookFailed);
    }
  }

  private http(call: HttpCall, values: TemplateValues, timeoutMs: number): Promise<Response> {
    const body = call.body === undefined ? undefined : fillTemplates(call.body, values);
    return fetch(`http://${this.host}:${values.port}${fillTemplates(call.path, values)}`, { method: call.method, body, signal: AbortSignal.timeout(timeoutMs) });
  }
}

function fillCommand(c: Command, values: TemplateValues): Command {
  return typeof c === 'string' ? fillTemplates(c, values) : c.map((a) => fillTemplates(a, values));
}
