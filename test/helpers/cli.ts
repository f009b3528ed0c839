/** The `fedflow` CLI as a child process (bin/fedflow), as a user's shell or script runs it. */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { REPO_ROOT } from '../../agent/site/home';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `fedflow <args>` with `env` over this process's environment; never rejects (the exit code says). */
export function runCli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<CliRun> {
  return runCliWithin(60_000, env, ...args);
}

export function runCliWithin(timeoutMs: number, env: NodeJS.ProcessEnv, ...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(join(REPO_ROOT, 'bin', 'fedflow'), args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A loopback port nothing listens on at the moment: bound, read, released. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
