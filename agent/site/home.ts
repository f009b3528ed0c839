/**
 * Where fedflow keeps its state on this machine: the dev server's SQLite file, each local site's
 * directory, the federation state and the pid files of what `fedflow up` started.
 * `FEDFLOW_HOME` overrides the default `<repo>/.fedflow`.
 */
import { join, resolve } from 'node:path';

// This file is agent/site/home.ts: the repository root is two folders up.
export const REPO_ROOT = resolve(__dirname, '..', '..');

export function fedflowHome(): string {
  return resolve(process.env.FEDFLOW_HOME || join(REPO_ROOT, '.fedflow'));
}

/** A site id such as `dc:paris` as a directory name (`dc_paris`): colons are awkward in paths. */
export function siteDirName(siteId: string): string {
  return siteId.replace(/:/g, '_');
}

export function siteDir(siteId: string, home = fedflowHome()): string {
  return join(home, 'sites', siteDirName(siteId));
}

export function defaultConfigPath(): string {
  return process.env.FEDFLOW_CONFIG || join(REPO_ROOT, 'config', 'federation.yaml');
}
