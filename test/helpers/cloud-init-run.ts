/**
 * Runs a `#cloud-config` user-data file the way cloud-init's modules would on first boot, for the
 * two modules fedflow's user-data uses (test/hosts/userdata-install.test.ts runs it as root inside a
 * network namespace and a private mount namespace):
 *
 *   write_files  (cc_write_files) each file's parents made (0755), its content written, then its
 *                `permissions` (octal string, default 0644) and `owner` (default root:root) set;
 *                `encoding` plain text only, `append` and `defer` honoured in order
 *   runcmd       (cc_runcmd + cc_scripts_user) the entries made into one /bin/sh script, a list
 *                entry with each word single-quoted, a string entry as it is, written to
 *                /var/lib/cloud/instance/scripts/runcmd (0700) and run; its exit status is the
 *                module's (cloud-init reports a failure but does not stop booting)
 *
 * Order: write_files (init stage), then deferred write_files and runcmd (final stage), as
 * cloud-init orders them. Any other top-level key, or another write_files field, is an error:
 * what this does not emulate cannot pass silently. Not emulated either: the datasource, users and
 * packages modules, the instance-id bookkeeping (runs once per call), and the boot's environment
 * beyond PATH (cloud-final.service runs with systemd's default PATH; the test puts its systemctl
 * shim in front of it).
 *
 *   node --import tsx test/helpers/cloud-init-run.ts <user-data>
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parse } from 'yaml';

interface WriteFile {
  path: string;
  content?: string;
  permissions?: string;
  owner?: string;
  encoding?: string;
  append?: boolean;
  defer?: boolean;
}

const WRITE_FILE_KEYS = new Set(['path', 'content', 'permissions', 'owner', 'encoding', 'append', 'defer']);

class UserDataError extends Error {}

function idOf(file: string, name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  const line = readFileSync(file, 'utf8').split('\n').find((l) => l.split(':')[0] === name);
  if (!line) throw new UserDataError(`owner ${name}: not in ${file}`);
  return Number(line.split(':')[2]);
}

function writeOne(f: WriteFile): void {
  for (const key of Object.keys(f)) if (!WRITE_FILE_KEYS.has(key)) throw new UserDataError(`write_files ${f.path}: field '${key}' is not emulated`);
  if (typeof f.path !== 'string' || !f.path.startsWith('/')) throw new UserDataError(`write_files: path must be absolute, got ${JSON.stringify(f.path)}`);
  if (f.encoding !== undefined && f.encoding !== 'text/plain') throw new UserDataError(`write_files ${f.path}: encoding '${f.encoding}' is not emulated (plain text only)`);
  const mode = parseInt(f.permissions ?? '0644', 8);
  if (!Number.isInteger(mode) || mode > 0o7777) throw new UserDataError(`write_files ${f.path}: permissions '${f.permissions}' is not an octal mode`);
  mkdirSync(dirname(f.path), { recursive: true, mode: 0o755 });
  if (f.append) appendFileSync(f.path, f.content ?? '', { mode });
  else writeFileSync(f.path, f.content ?? '', { mode });
  chmodSync(f.path, mode);
  const [user, group] = (f.owner ?? 'root:root').split(':');
  chownSync(f.path, idOf('/etc/passwd', user!), idOf('/etc/group', group ?? user!));
}

/** One word, single-quoted for sh the way cloud-init's shellify quotes list entries. */
const quote = (w: unknown) => `'${String(w).replace(/'/g, `'\\''`)}'`;

function main(path: string): number {
  const text = readFileSync(path, 'utf8');
  if (!text.startsWith('#cloud-config\n')) throw new UserDataError(`${path} does not start with '#cloud-config': cloud-init would not read it as cloud-config`);
  const doc = parse(text) as Record<string, unknown>;
  for (const key of Object.keys(doc)) if (key !== 'write_files' && key !== 'runcmd') throw new UserDataError(`top-level '${key}' is not emulated (write_files and runcmd only)`);
  const files = (doc.write_files ?? []) as WriteFile[];
  for (const f of files.filter((x) => !x.defer)) writeOne(f);
  for (const f of files.filter((x) => x.defer)) writeOne(f);
  const runcmd = (doc.runcmd ?? []) as unknown[];
  if (!runcmd.length) return 0;
  const script = ['#!/bin/sh', ...runcmd.map((c) => (Array.isArray(c) ? c.map(quote).join(' ') : String(c)))].join('\n') + '\n';
  const scriptPath = '/var/lib/cloud/instance/scripts/runcmd';
  mkdirSync(dirname(scriptPath), { recursive: true });
  writeFileSync(scriptPath, script, { mode: 0o700 });
  const r = spawnSync(scriptPath, [], { stdio: 'inherit', cwd: '/' });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

try {
  const file = process.argv[2];
  if (!file) throw new UserDataError('usage: cloud-init-run.ts <user-data>');
  process.exit(main(file));
} catch (err) {
  console.error(`cloud-init-run: ${err instanceof UserDataError ? err.message : String((err as Error).stack ?? err)}`);
  process.exit(1);
}
