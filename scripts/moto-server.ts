/**
 * Starts moto's EC2 emulator for the AWS contract tests: creates the pinned venv with
 * scripts/setup-moto.sh when it is missing, runs `moto_server` on 127.0.0.1 on a free port, waits
 * until it answers and returns a handle that stops it. Runnable on its own to poke at moto:
 * `node --import tsx scripts/moto-server.ts` prints the endpoint and runs until Ctrl-C.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

const ROOT = join(__dirname, '..');
export const MOTO_VENV = process.env.FEDFLOW_MOTO_VENV ?? join(ROOT, '.venv', 'moto');

export interface MotoHandle {
  endpoint: string;
  port: number;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function ensureMoto(): string {
  const bin = join(MOTO_VENV, 'bin', 'moto_server');
  if (!existsSync(bin)) {
    const res = spawnSync('bash', [join(ROOT, 'scripts', 'setup-moto.sh')], { stdio: 'inherit', env: { ...process.env, FEDFLOW_MOTO_VENV: MOTO_VENV } });
    if (res.status !== 0 || !existsSync(bin)) throw new Error(`scripts/setup-moto.sh failed (exit ${res.status}); expected ${bin} afterwards`);
  }
  return bin;
}

async function waitUntilUp(endpoint: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with code ${child.exitCode} before answering on ${endpoint}`);
    try {
      const res = await fetch(`${endpoint}/moto-api/data.json`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`moto_server did not answer on ${endpoint} within ${timeoutMs} ms`);
}

export interface MotoOptions {
  /**
   * Run moto through scripts/moto-cfn-events.py, which makes its CloudFormation report a failed
   * resource the way CloudFormation does (CREATE_FAILED events with the reason, the stack
   * CREATE_FAILED) instead of failing ExecuteChangeSet itself. It still does not roll back.
   */
  cfnEvents?: boolean;
}

export async function startMoto(env: Record<string, string> = {}, o: MotoOptions = {}): Promise<MotoHandle> {
  const bin = ensureMoto();
  const port = await freePort();
  const args = ['-H', '127.0.0.1', '-p', String(port)];
  const [cmd, argv] = o.cfnEvents ? [join(MOTO_VENV, 'bin', 'python'), [join(ROOT, 'scripts', 'moto-cfn-events.py'), ...args]] : [bin, args];
  const child = spawn(cmd, argv, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntilUp(endpoint, child, 30_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${stderr}`);
  }
  return {
    endpoint,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3_000).unref();
      }),
  };
}

if (require.main === module) {
  startMoto()
    .then((m) => {
      console.log(`moto EC2 on ${m.endpoint} (Ctrl-C to stop)`);
      process.on('SIGINT', () => void m.stop().then(() => process.exit(0)));
    })
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
