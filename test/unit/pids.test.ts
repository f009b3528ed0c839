/**
 * Pid files name a process by its pid and its start time: `fedflow down` signals a pid only while
 * it is still the process fedflow started, and removes the files it read (issue 13).
 * Real processes: `sleep` stands in for another program that got the pid, and for our worker.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readPid, writePid } from '../../scripts/pids';
import { down } from '../../scripts/stack';

function sleeper(): ChildProcess {
  return spawn('sleep', ['30'], { stdio: 'ignore' });
}
/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot (Linux). */
const startTicks = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
};
const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

describe('pid files and `fedflow down`', () => {
  let home: string;
  const children: ChildProcess[] = [];
  const saved = { home: process.env.FEDFLOW_HOME, config: process.env.FEDFLOW_CONFIG };

  before(() => {
    home = mkdtempSync(join(tmpdir(), 'fedflow-pids-'));
    writeFileSync(join(home, 'federation.json'), JSON.stringify({ federation: 'pids', sites: [{ id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 1 } }] }));
    process.env.FEDFLOW_HOME = home;
    process.env.FEDFLOW_CONFIG = join(home, 'federation.json');
  });
  after(() => {
    for (const c of children) if (running(c)) c.kill('SIGKILL');
    if (saved.home === undefined) delete process.env.FEDFLOW_HOME;
    else process.env.FEDFLOW_HOME = saved.home;
    if (saved.config === undefined) delete process.env.FEDFLOW_CONFIG;
    else process.env.FEDFLOW_CONFIG = saved.config;
    rmSync(home, { recursive: true, force: true });
  });

  const pidFile = (what: string) => join(home, 'run', `${what}.pid`);

  it('a stale pid file naming a live process of another program: down leaves the process alone and removes the file', async () => {
    const other = sleeper();
    const another = sleeper();
    const third = sleeper();
    const fourth = sleeper();
    children.push(other, another, third, fourth);
    mkdirSync(join(home, 'run'), { recursive: true });
    // As fedflow wrote them for its own processes, which have exited; the kernel reused the pids.
    const real = startTicks(other.pid!);
    writeFileSync(pidFile('worker'), JSON.stringify({ pid: other.pid, startTime: String(Number(real) - 1), cmdline: 'node worker/main.ts' }));
    writeFileSync(pidFile('server'), JSON.stringify({ pid: another.pid, startTime: 'Mon Jan  1 00:00:00 2024', cmdline: 'temporal server start-dev' }));
    // The supervisor of `up --detach` (scripts/supervisor.ts), checked the same way.
    writeFileSync(pidFile('supervisor'), JSON.stringify({ pid: fourth.pid, startTime: String(Number(startTicks(fourth.pid!)) + 7), cmdline: 'node scripts/supervisor.ts' }));
    // A bare pid from an older fedflow cannot be checked, so it is not trusted either.
    writeFileSync(pidFile('up'), String(third.pid));
    assert.equal(readPid(home, 'worker'), undefined, 'a pid whose start time differs is not ours');

    const lines: string[] = [];
    await down((l) => lines.push(l));
    await new Promise((r) => setTimeout(r, 300));
    for (const c of [other, another, third, fourth]) assert.ok(running(c), `pid ${c.pid} (sleep) must not be signalled; down said:\n${lines.join('\n')}`);
    for (const what of ['worker', 'server', 'supervisor', 'up']) assert.equal(existsSync(pidFile(what)), false, `${what}.pid is removed`);
    for (const c of [other, fourth]) assert.ok(lines.some((l) => l.includes(`named pid ${c.pid}, which is now another process`)), lines.join('\n'));
  });

  it('the process fedflow started is stopped, and its pid file removed', async () => {
    const ours = sleeper();
    children.push(ours);
    await new Promise((r) => ours.once('spawn', r));
    writePid(home, 'worker', ours.pid!);
    const record = JSON.parse(readFileSync(pidFile('worker'), 'utf8')) as { pid: number; startTime: string; cmdline: string };
    assert.equal(record.pid, ours.pid);
    assert.equal(record.startTime, startTicks(ours.pid!));
    assert.match(record.cmdline, /sleep 30/);
    assert.equal(readPid(home, 'worker'), ours.pid);
    const exited = new Promise((r) => ours.once('exit', r));
    const lines: string[] = [];
    await down((l) => lines.push(l));
    await exited;
    assert.equal(ours.signalCode, 'SIGTERM');
    assert.ok(lines.includes('worker stopped'), lines.join('\n'));
    assert.equal(existsSync(pidFile('worker')), false);
  });
});
