/**
 * The service files of deploy/ read the way systemd reads them, and their command lines run as
 * processes: only `/opt/fedflow` (INSTALL_DIR, where fedflow is installed) stands for this checkout.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { REPO_ROOT } from '../../agent/site/home';
import type { WorkerProcess } from './worker-process';

export const INSTALL_DIR = '/opt/fedflow';

/** `${VAR}` and `$VAR` expanded as systemd expands them in ExecStart (unset: empty). */
const expand = (word: string, env: Record<string, string>) => word.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => env[(a ?? b)!] ?? '');

/** KEY=VALUE lines (an EnvironmentFile, or a unit's Environment= values). */
export function envLines(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return env;
}

export interface Unit {
  execStart: string;
  environment: Record<string, string>;
  environmentFile: string;
}

export function readUnit(path: string): Unit {
  const service = /\[Service\]\n([\s\S]*?)(?:\n\[|$)/.exec(readFileSync(path, 'utf8'))?.[1];
  assert.ok(service, `${path} has a [Service] section`);
  const values = (key: string) => service.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
  const [execStart, ...more] = values('ExecStart');
  assert.ok(execStart && !more.length, `${path} has exactly one ExecStart`);
  const [environmentFile] = values('EnvironmentFile');
  assert.ok(environmentFile, `${path} has an EnvironmentFile`);
  return { execStart, environment: envLines(values('Environment').join('\n')), environmentFile };
}

/**
 * The unit's ExecStart as its process: its Environment=, then its EnvironmentFile= (which
 * systemd applies over Environment=), with `envFileText` standing for that file.
 */
export function unitCommand(unit: Unit, envFileText: string): { argv: string[]; env: Record<string, string> } {
  const env = { ...unit.environment, ...envLines(envFileText) };
  const argv = unit.execStart.split(/\s+/).map((w) => expand(w, env));
  assert.ok(argv[0]!.startsWith(`${INSTALL_DIR}/`), `ExecStart runs fedflow from ${INSTALL_DIR}: ${unit.execStart}`);
  return { argv: [argv[0]!.replace(INSTALL_DIR, REPO_ROOT), ...argv.slice(1)], env };
}

/**
 * Runs a command line (`prefix` first: e.g. `ip netns exec <ns>`, as a host of its own would run
 * it) with exactly `env` plus PATH; ready once it logs `; ready`.
 */
export function startCommand(label: string, c: { argv: string[]; env: Record<string, string> }, prefix: string[] = []): WorkerProcess {
  const argv = [...prefix, ...c.argv];
  const child = spawn(argv[0]!, argv.slice(1), { cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...c.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} (${c.argv.join(' ')}) not ready within 120 s:\n${out}`)), 120_000);
    child.stdout!.on('data', () => {
      if (/; ready/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${label} (${c.argv.join(' ')}) exited (${sig ?? code}) before it was ready:\n${out}`));
    });
  });
  ready.catch(() => undefined);
  return { child, output: () => out, ready };
}


/** A unit file's sections as systemd reads them: `[Section]` → key → its values, in order (comments and blank lines skipped). */
export function unitSections(text: string): Record<string, Record<string, string[]>> {
  const sections: Record<string, Record<string, string[]>> = {};
  let current: Record<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      current = sections[head[1]!] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) throw new Error(`not a unit file line: '${line}'`);
    (current[line.slice(0, eq).trim()] ??= []).push(line.slice(eq + 1).trim());
  }
  return sections;
}

/** An ExecStart line as the argv systemd runs: split on whitespace, `${VAR}` and `$VAR` expanded from `env`, no path rewritten. */
export function execStartArgv(execStart: string, env: Record<string, string>): string[] {
  return execStart.split(/\s+/).filter(Boolean).map((w) => expand(w, env));
}
