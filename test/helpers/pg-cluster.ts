/**
 * Real PostgreSQL 15 clusters for tests: initdb'd data directories served by the unmodified
 * Debian binaries on loopback. PostgreSQL refuses to run as root, so as root every server-side
 * command runs as `nobody` (runuser), in a directory `nobody` owns; as any other user it runs
 * as that user. psql, the client, runs as the test does.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const asRoot = process.getuid?.() === 0;
const PG_USER = 'nobody';
/** The database superuser initdb creates (any name: authentication is trust on loopback). */
export const PG_ROLE = 'fedflow';

function need(bin: string, where: string[]): string {
  const found = where.map((d) => join(d, bin)).find((p) => existsSync(p));
  if (!found) throw new Error(`${bin} is not installed (looked in ${where.join(', ')}); PostgreSQL 15 is on the machine image (initdb, pg_ctl, postgres in /usr/local/bin or /usr/lib/postgresql/15/bin, psql in /usr/bin)`);
  return found;
}
const serverBin = (b: string) => need(b, ['/usr/local/bin', '/usr/lib/postgresql/15/bin', '/usr/bin']);
const psqlBin = () => need('psql', ['/usr/bin', '/usr/local/bin', '/usr/lib/postgresql/15/bin']);

/** Runs a server-side command as the PostgreSQL user. */
async function asPg(cmd: string, args: string[]): Promise<string> {
  const [file, argv] = asRoot ? ['runuser', ['-u', PG_USER, '--', cmd, ...args]] : [cmd, args];
  try {
    const { stdout } = await run(file, argv, { timeout: 60_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** A free loopback port (asked of the kernel, then released for the server to take). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A scratch directory the PostgreSQL user can write in. */
export function pgScratch(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (asRoot) {
    chmodSync(dir, 0o755);
    chownSync(dir, 65534, 65534);
  }
  return dir;
}

export class PgCluster {
  port?: number;
  constructor(
    readonly dataDir: string,
    /** Where the server's unix socket and log go. */
    readonly runDir: string,
  ) {}

  get address(): string {
    if (!this.port) throw new Error(`cluster ${this.dataDir} is not started`);
    return `127.0.0.1:${this.port}`;
  }

  static async init(dataDir: string, runDir: string): Promise<PgCluster> {
    await asPg(serverBin('initdb'), ['-D', dataDir, '-U', PG_ROLE, '--auth=trust', '--no-sync', '--encoding=UTF8', '--locale=C']);
    return new PgCluster(dataDir, runDir);
  }

  /** A copy of this cluster's data directory, taken after a clean stop (the target of a move). */
  async copyTo(dataDir: string): Promise<PgCluster> {
    await asPg('cp', ['-a', this.dataDir, dataDir]);
    return new PgCluster(dataDir, this.runDir);
  }

  async start(port?: number): Promise<void> {
    this.port = port ?? (await freePort());
    const log = join(this.runDir, `postgres-${this.port}.log`);
    await asPg(serverBin('pg_ctl'), ['-D', this.dataDir, '-l', log, '-w', '-t', '30', '-o', `-p ${this.port} -k ${this.runDir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
  }

  /** A clean fast shutdown: open sessions are ended, everything committed is on disk. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await asPg(serverBin('pg_ctl'), ['-D', this.dataDir, '-m', mode, '-w', '-t', '30', 'stop']);
  }

  /** Stops it if it runs; never throws (for cleanup). */
  async kill(): Promise<void> {
    if (existsSync(join(this.dataDir, 'postmaster.pid'))) await this.stop('immediate').catch(() => undefined);
  }

  logTail(): string {
    const p = this.port ? join(this.runDir, `postgres-${this.port}.log`) : '';
    return p && existsSync(p) ? readFileSync(p, 'utf8').slice(-1500) : '';
  }
}

/** Runs SQL with psql against `address` (host:port); resolves with its unaligned output, rejects with psql's stderr. */
export async function psql(address: string, sql: string): Promise<string> {
  const i = address.lastIndexOf(':');
  try {
    const { stdout } = await run(psqlBin(), ['-h', address.slice(0, i), '-p', address.slice(i + 1), '-U', PG_ROLE, '-d', 'postgres', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
      timeout: 60_000,
      env: { ...process.env, PGCONNECT_TIMEOUT: '30' },
    });
    return stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`psql against ${address} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** psql as a child process, for a session that stays open (or waits) while the test goes on. */
export function psqlChild(address: string, sql: string): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const i = address.lastIndexOf(':');
  const child = spawn(psqlBin(), ['-h', address.slice(0, i), '-p', address.slice(i + 1), '-U', PG_ROLE, '-d', 'postgres', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    env: { ...process.env, PGCONNECT_TIMEOUT: '30' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once('close', (code) => resolve({ code, stdout: stdout.trim(), stderr: stderr.trim() })));
  return { child, done };
}

export function removeScratch(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
