/**
 * Finds the Temporal CLI (which carries `temporal server start-dev` and the Web UI) or builds it.
 *
 * Order, first hit wins:
 *   1. $TEMPORAL_CLI
 *   2. `temporal` on PATH
 *   3. a cached build in the user's cache directory
 *   4. a build from the Go module proxy with the machine's Go (cached for next time)
 * If all of these fail and the machine has no Go, callers fall back to `@temporalio/testing`'s own
 * download (see dev-server.ts), which needs internet.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { isExecutable, onPath, toolCacheDir } from './tool-cache';

/**
 * Pinned: v1.5.1 is the newest CLI release whose go.mod has no `replace` directive, so a plain
 * `go install module@version` builds it. Its `temporal --version` prints `0.0.0-DEV (Server 1.29.1, UI 2.42.1)`
 * because go install does not stamp the version; the server and UI versions are what matter.
 */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

export type CliSource = 'env' | 'path' | 'cache' | 'go-build';
export interface FoundCli {
  path: string;
  source: CliSource;
  buildMs?: number;
}

export class TemporalCliNotFound extends Error {
  constructor(readonly tried: string[]) {
    super(
      [
        'could not find or build the Temporal CLI. Tried, in order:',
        ...tried.map((t, i) => `  ${i + 1}. ${t}`),
        'Fix it with one of:',
        '  - install Go (https://go.dev/dl) and run again: the CLI is built from the Go module proxy and cached;',
        '  - set TEMPORAL_CLI=/path/to/temporal to a CLI you already have;',
        '  - put `temporal` on PATH (https://docs.temporal.io/cli).',
      ].join('\n'),
    );
    this.name = 'TemporalCliNotFound';
  }
}

export function cacheDir(): string {
  return toolCacheDir('temporal-cli', TEMPORAL_CLI_VERSION);
}


export interface FindOptions {
  /** Build with Go when nothing is found (default true). */
  build?: boolean;
  log?: (line: string) => void;
}

export function findTemporalCli(opts: FindOptions = {}): FoundCli {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const tried: string[] = [];

  const fromEnv = process.env.TEMPORAL_CLI;
  if (fromEnv) {
    if (isExecutable(fromEnv)) return { path: fromEnv, source: 'env' };
    tried.push(`TEMPORAL_CLI=${fromEnv}: not an executable file`);
  } else tried.push('TEMPORAL_CLI: not set');

  const fromPath = onPath('temporal');
  if (fromPath) return { path: fromPath, source: 'path' };
  tried.push('`temporal` on PATH: not found');

  const cached = join(cacheDir(), 'temporal');
  if (isExecutable(cached)) return { path: cached, source: 'cache' };
  tried.push(`cached build ${cached}: not there`);

  if (opts.build === false) throw new TemporalCliNotFound([...tried, 'Go build: not attempted (build disabled)']);
  const go = onPath('go');
  if (!go) throw new TemporalCliNotFound([...tried, 'Go build: `go` is not on PATH']);

  mkdirSync(cacheDir(), { recursive: true });
  // Build into a scratch GOBIN and rename, so an interrupted build never leaves a half-written binary in the cache.
  const scratch = mkdtempSync(join(cacheDir(), '.build-'));
  log(`fedflow: building the Temporal CLI ${TEMPORAL_CLI_VERSION} with ${go} (once; cached in ${cacheDir()}) ...`);
  const t0 = Date.now();
  const res = spawnSync(go, ['install', `${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`], {
    env: { ...process.env, GOBIN: scratch, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const buildMs = Date.now() - t0;
  const built = join(scratch, 'temporal');
  if (res.status !== 0 || !existsSync(built)) {
    rmSync(scratch, { recursive: true, force: true });
    throw new TemporalCliNotFound([...tried, `Go build (go install ${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}): exit ${res.status ?? res.signal}`]);
  }
  renameSync(built, cached);
  rmSync(scratch, { recursive: true, force: true });
  log(`fedflow: built the Temporal CLI in ${(buildMs / 1000).toFixed(1)} s -> ${cached}`);
  return { path: cached, source: 'go-build', buildMs };
}

if (require.main === module) {
  try {
    const found = findTemporalCli();
    process.stdout.write(JSON.stringify(found) + '\n');
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  }
}
