/**
 * `systemctl` for a test host with no systemd (test/hosts/userdata-install.test.ts puts it first on
 * PATH inside a private mount namespace). It implements only what fedflow's install.sh calls, the
 * way systemd does it, and refuses anything else:
 *
 *   systemctl daemon-reload                 parses every unit in /etc/systemd/system (a malformed one fails)
 *   systemctl enable [--now] <unit>...      links the unit into <WantedBy>.wants/; with --now starts it
 *   systemctl restart <unit>...             stops the unit's process group (KillSignal=, then SIGKILL
 *                                           after TimeoutStopSec=) if it runs, then starts it
 *
 * Starting a `Type=simple` service: StateDirectory= made under /var/lib (StateDirectoryMode=, owned
 * by User=/Group=, STATE_DIRECTORY set), the environment systemd gives (its default PATH, HOME, USER,
 * LOGNAME, SHELL of User=), then Environment=, then EnvironmentFile= over it, UMask=, working
 * directory /, and ExecStart= with `${VAR}` expanded, run as User=/Group= (setpriv) with its output
 * appended to `<FEDFLOW_SYSTEMCTL_SHIM_DIR>/<unit>.log` (the journal) and its pid in `<unit>.pid`.
 * Not emulated, since they act only after the start: Restart=, RestartSec= (the shim never
 * restarts a service that exits by itself). Any other [Service] setting is an error, so a unit
 * that grows one fails here instead of being half-started.
 */
import { spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, readlinkSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { envLines, execStartArgv, unitSections } from './units';

const UNIT_DIR = '/etc/systemd/system';
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const STARTED_ONLY = new Set(['Restart', 'RestartSec']);
const EMULATED = new Set(['Type', 'User', 'Group', 'StateDirectory', 'StateDirectoryMode', 'Environment', 'EnvironmentFile', 'ExecStart', 'UMask', 'KillSignal', 'TimeoutStopSec']);

class ShimError extends Error {}

const stateDir = () => {
  const d = process.env.FEDFLOW_SYSTEMCTL_SHIM_DIR;
  if (!d) throw new ShimError('FEDFLOW_SYSTEMCTL_SHIM_DIR is not set: it names where the shim keeps the journal and pid files');
  mkdirSync(d, { recursive: true });
  return d;
};

function loadUnit(name: string): Record<string, Record<string, string[]>> {
  if (!/^[\w@.-]+\.service$/.test(name)) throw new ShimError(`Unit name ${name} is not a service unit: the shim starts services only`);
  const path = join(UNIT_DIR, name);
  if (!existsSync(path)) throw new ShimError(`Unit file ${name} does not exist.`);
  return unitSections(readFileSync(path, 'utf8'));
}

/** A user's passwd entry as the host (this mount namespace) has it. */
function passwd(user: string): { uid: number; gid: number; home: string; shell: string } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.split(':')[0] === user);
  if (!line) throw new ShimError(`User=${user}: no such user in /etc/passwd (systemd fails the start with status 217/USER)`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! };
}

function groupId(group: string): number {
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.split(':')[0] === group);
  if (!line) throw new ShimError(`Group=${group}: no such group in /etc/group (systemd fails the start with status 216/GROUP)`);
  return Number(line.split(':')[2]);
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  if (statSync(path).isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e), uid, gid);
}

/** Whether a process runs: a zombie (exited, not yet reaped by whoever inherited it) does not. */
const alive = (pid: number) => {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};

function start(name: string): void {
  const service = loadUnit(name).Service ?? {};
  for (const key of Object.keys(service)) if (!EMULATED.has(key) && !STARTED_ONLY.has(key)) throw new ShimError(`${name}: [Service] ${key}= is not emulated by the systemctl shim (test/helpers/systemctl-shim.ts); add it there`);
  const type = service.Type?.at(-1) ?? 'simple';
  if (type !== 'simple') throw new ShimError(`${name}: Type=${type} is not emulated (only simple)`);
  if (service.ExecStart?.length !== 1) throw new ShimError(`${name}: needs exactly one ExecStart=`);
  const last = (key: string) => service[key]?.at(-1);
  const user = last('User') ?? 'root';
  const pw = passwd(user);
  const gid = last('Group') ? groupId(last('Group')!) : pw.gid;
  const env: Record<string, string> = { PATH: SYSTEMD_PATH, HOME: pw.home, USER: user, LOGNAME: user, SHELL: pw.shell };
  for (const dir of last('StateDirectory')?.split(/\s+/) ?? []) {
    const path = join('/var/lib', dir);
    const mode = parseInt(last('StateDirectoryMode') ?? '0755', 8);
    mkdirSync(path, { recursive: true });
    chmodSync(path, mode);
    // systemd hands the whole tree to the service's user when the top is not already its.
    const st = statSync(path);
    if (st.uid !== pw.uid || st.gid !== gid) chownTree(path, pw.uid, gid);
    env.STATE_DIRECTORY = path;
  }
  Object.assign(env, envLines((service.Environment ?? []).join('\n')));
  for (const spec of service.EnvironmentFile ?? []) {
    const optional = spec.startsWith('-');
    const path = optional ? spec.slice(1) : spec;
    if (!existsSync(path)) {
      if (optional) continue;
      throw new ShimError(`${name}: EnvironmentFile ${path} does not exist (systemd fails the start: Failed to load environment files)`);
    }
    Object.assign(env, envLines(readFileSync(path, 'utf8')));
  }
  const argv = execStartArgv(service.ExecStart![0]!, env);
  if (!argv[0]!.startsWith('/')) throw new ShimError(`${name}: ExecStart= ${argv[0]} is not an absolute path`);
  const umask = last('UMask') ?? '0022';
  const dir = stateDir();
  // `start` of an active unit does nothing, as in systemd.
  const pidFile = join(dir, `${name}.pid`);
  if (existsSync(pidFile) && alive(Number(readFileSync(pidFile, 'utf8').trim()))) return;
  const log = openSync(join(dir, `${name}.log`), 'a');
  const child = spawn('setpriv', [`--reuid=${pw.uid}`, `--regid=${gid}`, '--init-groups', '--', '/bin/sh', '-c', 'umask "$0" && exec "$@"', umask, ...argv], { cwd: '/', env, stdio: ['ignore', log, log], detached: true });
  if (child.pid === undefined) throw new ShimError(`${name}: could not start ${argv.join(' ')}`);
  writeFileSync(pidFile, `${child.pid}\n`);
  child.unref();
}

function enable(args: string[]): void {
  const now = args.includes('--now');
  const units = args.filter((a) => a !== '--now');
  const unknown = units.filter((a) => a.startsWith('-'));
  if (unknown.length) throw new ShimError(`systemctl enable: ${unknown.join(' ')} is not emulated (only --now)`);
  if (!units.length) throw new ShimError('Too few arguments.');
  for (const name of units) {
    const unit = loadUnit(name);
    for (const target of unit.Install?.WantedBy?.flatMap((w) => w.split(/\s+/)) ?? []) {
      const wants = join(UNIT_DIR, `${target}.wants`);
      mkdirSync(wants, { recursive: true });
      const link = join(wants, name);
      const exists = (() => {
        try {
          return readlinkSync(link);
        } catch {
          return undefined;
        }
      })();
      if (!exists) {
        symlinkSync(join(UNIT_DIR, name), link);
        console.log(`Created symlink ${link} → ${join(UNIT_DIR, name)}.`);
      }
    }
    if (now) start(name);
  }
}

/** Stops a running unit as systemd does with KillMode=control-group: its whole process group. */
function stop(name: string): void {
  const service = loadUnit(name).Service ?? {};
  const pidFile = join(stateDir(), `${name}.pid`);
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!alive(pid)) return;
  const signal = (service.KillSignal?.at(-1) ?? 'SIGTERM') as NodeJS.Signals;
  const timeoutSec = Number(service.TimeoutStopSec?.at(-1) ?? '90');
  if (!Number.isFinite(timeoutSec)) throw new ShimError(`${name}: TimeoutStopSec=${service.TimeoutStopSec?.at(-1)} is not emulated (only a number of seconds)`);
  const group = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      // Gone already.
    }
  };
  group(signal);
  const deadline = Date.now() + timeoutSec * 1000;
  while (alive(pid) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  if (alive(pid)) {
    console.error(`${name}: State 'stop-sigterm' timed out. Killing.`);
    group('SIGKILL');
    while (alive(pid)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
}

function main(args: string[]): void {
  const [verb, ...rest] = args;
  if (verb === 'daemon-reload' && !rest.length) {
    const units = readdirSync(UNIT_DIR).filter((f) => f.endsWith('.service'));
    for (const u of units) loadUnit(u);
    writeFileSync(join(stateDir(), 'loaded'), `${units.join('\n')}\n`);
    return;
  }
  if (verb === 'enable') return enable(rest);
  if (verb === 'restart' && rest.length && rest.every((a) => !a.startsWith('-'))) {
    for (const name of rest) {
      stop(name);
      start(name);
    }
    return;
  }
  throw new ShimError(`the systemctl shim implements only \`daemon-reload\`, \`enable [--now] <unit>\` and \`restart <unit>\`; got \`systemctl ${args.join(' ')}\``);
}

try {
  main(process.argv.slice(2));
} catch (err) {
  console.error(err instanceof ShimError ? err.message : err);
  process.exit(1);
}
