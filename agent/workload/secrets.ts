/**
 * Workload secrets at a site: the values a spec's `run.local.secretEnv` names. The spec travels in
 * the federation log and in Temporal's history, so it holds only a secret's name; the value is a
 * file the operator puts at each site that may run the workload, read by the runner when it builds
 * the environment of the instance, its hooks and its checks:
 *   <site>/secrets/workloads/<name>    mode 0600, in a 0700 directory
 * A migration does not carry secrets: the target site must hold its own copy before the migration
 * (the target's start fails with an error naming the missing file otherwise).
 */
import { chownSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { mkdirPrivate, writeFileDurable } from '../durable-files';
import { SECRET_NAME, SECRET_NAME_RULE } from '../../core/workload-spec';

export function workloadSecretPath(siteDir: string, name: string): string {
  return join(siteDir, 'secrets', 'workloads', name);
}

/**
 * Stores a secret's value at a site (0600), replacing any earlier value whole. Run as root (sudo on
 * an installed host), the directories and the file are handed to `owner` (the owner of the fedflow
 * home: the `fedflow` user the agent runs as), or the agent could not read them.
 */
export function writeWorkloadSecret(siteDir: string, name: string, value: string, owner?: { uid: number; gid: number }): string {
  if (!SECRET_NAME.test(name)) throw new Error(`secret name '${name.slice(0, 64)}' is not valid: ${SECRET_NAME_RULE}`);
  const file = workloadSecretPath(siteDir, name);
  const dir = join(siteDir, 'secrets', 'workloads');
  mkdirPrivate(dir);
  writeFileDurable(file, value, 0o600);
  if (owner && process.getuid?.() === 0) {
    for (const p of [join(siteDir, 'secrets'), dir, file]) chownSync(p, owner.uid, owner.gid);
  }
  return file;
}

export type SecretRead = { ok: true; value: string } | { ok: false; problem: string };

/** A secret's value, or why it cannot be used (missing, unreadable, not a file, readable by others). */
export function readWorkloadSecret(siteDir: string, name: string): SecretRead {
  const file = workloadSecretPath(siteDir, name);
  const why = (err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `${file} does not exist`;
    if (code === 'EACCES' || code === 'EPERM') return `${file} cannot be read by this agent (uid ${process.getuid?.()}): it, or a directory above it, belongs to another user; hand them to the agent's user (chown)`;
    return `${file} cannot be read: ${(err as Error).message}`;
  };
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    return { ok: false, problem: why(err) };
  }
  if (!st.isFile()) return { ok: false, problem: `${file} is not a regular file` };
  if (st.mode & 0o077) return { ok: false, problem: `${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, readable by others than its owner; make it 0600 (chmod 600 ${file})` };
  try {
    // One trailing newline is what `echo` and editors add; the value is what comes before it.
    return { ok: true, value: readFileSync(file, 'utf8').replace(/\r?\n$/, '') };
  } catch (err) {
    return { ok: false, problem: why(err) };
  }
}
