/**
 * The spawn helper (agent/workload/spawner.ts): the runner's commands run in a small process of
 * their own, not forked from the agent. Real processes throughout: who the command's parent is,
 * a deadline that kills the command, a command the helper cannot start, a helper killed under a
 * command (the command goes too), an instance that outlives its helper, and an agent killed under
 * a command (its helper's commands go with it).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { processStartTime } from '../../../agent/workload/exec';
import { Spawner } from '../../../agent/workload/spawner';

const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function up(s: Spawner): Promise<number> {
  s.warm();
  for (let i = 0; i < 300 && s.helperPid === undefined; i++) await sleep(20);
  assert.ok(s.helperPid, 'the helper answered within 6 s');
  return s.helperPid;
}

async function gone(pid: number, ms: number): Promise<boolean> {
  for (let t = 0; t < ms; t += 20) {
    if (processStartTime(pid) === undefined) return true;
    await sleep(20);
  }
  return processStartTime(pid) === undefined;
}

async function readPid(file: string, ms: number): Promise<number> {
  for (let t = 0; t < ms; t += 20) {
    try {
      const pid = Number(readFileSync(file, 'utf8'));
      if (pid) return pid;
    } catch {
      /* not yet */
    }
    await sleep(20);
  }
  throw new Error(`no pid in ${file} within ${ms} ms`);
}

describe('Spawner', () => {
  const helpers: number[] = [];
  const dirs: string[] = [];
  const fresh = () => new Spawner(true);
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'spawner-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const pid of helpers.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('runs a command in the helper, not in this process, with its output and exit code', async () => {
    const s = fresh();
    const helper = await up(s);
    helpers.push(helper);
    assert.notEqual(helper, process.pid);
    const r = await s.exec(['/bin/sh', '-c', 'echo "parent $PPID"; echo oops >&2; exit 3'], { timeoutMs: 5_000, env });
    assert.equal(r.stdout.trim(), `parent ${helper}`);
    assert.equal(r.stderr.trim(), 'oops');
    assert.equal(r.code, 3);
    assert.equal(r.timedOut, false);
  });

  it('kills a command at its deadline, with its process group', async () => {
    const s = fresh();
    helpers.push(await up(s));
    const pidFile = join(tmp(), 'pid');
    const r = await s.exec(['/bin/sh', '-c', `sleep 30 & echo $! > ${pidFile}; wait`], { timeoutMs: 300, env });
    assert.equal(r.timedOut, true);
    assert.ok(r.ms < 5_000, `answered at the deadline, not at the sleep's end (${r.ms} ms)`);
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(await gone(grandchild, 2_000), 'the sleep the shell started is killed too');
  });

  it('answers a command it cannot start with the reason, and stays up', async () => {
    const s = fresh();
    const helper = await up(s);
    helpers.push(helper);
    const bad = await s.exec(['/bin/echo', 'a\0b'], { timeoutMs: 5_000, env });
    assert.equal(bad.code, 127);
    assert.match(bad.stderr, /null bytes/);
    const missing = await s.exec(['/no/such/command'], { timeoutMs: 5_000, env });
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /ENOENT/);
    assert.equal(s.helperPid, helper, 'the same helper still answers');
    const ok = await s.exec(['/bin/sh', '-c', 'echo $PPID'], { timeoutMs: 5_000, env });
    assert.equal(ok.stdout.trim(), String(helper));
  });

  it('kills and answers as failed a command whose helper died, and starts a new helper for the next', async () => {
    const s = fresh();
    const first = await up(s);
    helpers.push(first);
    const pidFile = join(tmp(), 'pid');
    const running = s.exec(['/bin/sh', '-c', `echo $$ > ${pidFile}; exec sleep 30`], { timeoutMs: 60_000, env });
    const sleeper = await readPid(pidFile, 5_000);
    await sleep(50); // its pid has reached the agent by now
    process.kill(first, 'SIGKILL');
    const r = await running;
    assert.equal(r.code, null);
    assert.match(r.stderr, new RegExp(`spawn helper \\(pid ${first}\\) exited \\(SIGKILL\\) while it ran this command \\(killed\\)`));
    assert.ok(await gone(sleeper, 2_000), 'the command its helper left is killed');
    const second = await up(s);
    helpers.push(second);
    assert.notEqual(second, first);
    const again = await s.exec(['/bin/sh', '-c', 'echo $PPID'], { timeoutMs: 5_000, env });
    assert.equal(again.stdout.trim(), String(second));
  });

  it('starts an instance in the helper that outlives the helper, its output in its log', async () => {
    const s = fresh();
    const first = await up(s);
    helpers.push(first);
    const logPath = join(tmp(), 'instance.log');
    const missing = await s.launch(['/no/such/command'], { env, logPath });
    assert.ok('error' in missing && /ENOENT/.test(missing.error), `a command that does not exist is named: ${JSON.stringify(missing)}`);
    const launched = await s.launch(['/bin/sh', '-c', 'echo "started by $PPID"; exec sleep 60'], { env, logPath });
    assert.ok('pid' in launched, `started: ${JSON.stringify(launched)}`);
    const pid = launched.pid;
    try {
      for (let i = 0; i < 100 && !readFileSync(logPath, 'utf8'); i++) await sleep(20);
      assert.equal(readFileSync(logPath, 'utf8').trim(), `started by ${first}`);
      process.kill(first, 'SIGKILL');
      assert.ok(await gone(first, 5_000), 'the helper is gone');
      await sleep(100);
      assert.ok(processStartTime(pid) !== undefined, 'the instance still runs');
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });

  it('runs commands in this process when it is turned off', async () => {
    const off = new Spawner(false);
    off.warm();
    assert.equal(off.helperPid, undefined);
    const r = await off.exec(['/bin/sh', '-c', 'echo $PPID'], { timeoutMs: 5_000, env });
    assert.equal(r.stdout.trim(), String(process.pid));
  });

  it('kills the commands still running when the agent that asked for them is killed', async () => {
    const pidFile = join(tmp(), 'pid');
    const root = resolve(__dirname, '..', '..', '..');
    const script = `
      const { Spawner } = require(${JSON.stringify(join(root, 'agent/workload/spawner.ts'))});
      const s = new Spawner(true);
      s.warm();
      const t = setInterval(() => {
        if (!s.helperPid) return;
        clearInterval(t);
        void s.exec(['/bin/sh', '-c', 'echo $$ > ${pidFile}; exec sleep 60'], { timeoutMs: 120000, env: { PATH: process.env.PATH } });
      }, 20);`;
    const agent = spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: root, stdio: 'ignore' });
    try {
      const sleeper = await readPid(pidFile, 10_000);
      assert.ok(processStartTime(sleeper) !== undefined, 'the command runs');
      agent.kill('SIGKILL');
      assert.ok(await gone(sleeper, 5_000), 'the command is killed once its agent is gone');
    } finally {
      agent.kill('SIGKILL');
    }
  });
});
