/**
 * test/helpers/hosts-federation.ts (the hosts tier's set-up, shared with `npm run bench -- hosts`)
 * leaves nothing behind: not when its process is interrupted with SIGINT (Ctrl-C) while the
 * federation runs, and not when its set-up fails half-way; and it refuses, before it makes anything,
 * a per-site option (delayMs, agentEnv) it cannot honour.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../../agent/site/home';
import { startHostsFederation } from '../helpers/hosts-federation';
import { hostsUnavailable } from '../helpers/netns';

const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
const linkExists = (name: string) => {
  try {
    execFileSync('ip', ['link', 'show', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('the hosts federation set-up cleans up after itself', { skip: hostsUnavailable() }, () => {
  it('a process interrupted with SIGINT while its federation runs leaves no namespace, bridge, process or home', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test', 'hosts', 'hosts-federation-child.ts')], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
    const line = await Promise.race([
      new Promise<string>((resolve) => child.stdout.on('data', () => out.includes('\n') && resolve(out.split('\n')[0]!))),
      exited.then((code) => Promise.reject(new Error(`the federation's process exited (${code}) before it was up:\n${err.slice(-3000)}`))),
    ]);
    const made = JSON.parse(line) as { root: string; bridge: string; namespaces: string[]; pids: number[] };
    assert.equal(made.namespaces.length, 3, 'Temporal and two sites, each in a namespace');
    for (const ns of made.namespaces) assert.ok(namespaces().includes(ns), `${ns} exists while the federation runs`);
    assert.match(execFileSync('ip', ['netns', 'exec', made.namespaces[1]!, 'tc', 'qdisc', 'show', 'dev', 'eth0'], { encoding: 'utf8' }), /tbf/, "dc:paris's link is shaped");
    assert.ok(existsSync(made.root) && linkExists(made.bridge));
    assert.equal(made.pids.length, 4, "two agents, paris's delay proxy and the control worker");
    assert.ok(made.pids.every(alive), "the agents, paris's delay proxy and the control worker run");

    child.kill('SIGINT');
    assert.equal(await exited, 130, `exit code after SIGINT; stderr:\n${err.slice(-2000)}`);
    assert.match(err, /SIGINT: removing the hosts federation/);
    const left = namespaces().filter((ns) => made.namespaces.includes(ns));
    assert.deepEqual(left, [], 'no namespace left');
    assert.ok(!linkExists(made.bridge), `bridge ${made.bridge} removed`);
    assert.ok(!existsSync(made.root), `${made.root} removed`);
    // A SIGKILLed process is gone once the kernel has reaped it: give it a moment, not a deadline to race.
    for (const deadline = Date.now() + 30_000; made.pids.some(alive) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(made.pids.filter(alive), [], 'no agent, delay proxy or control worker left');
  });

  it('a set-up that fails half-way (an invalid config, after the namespaces are made) removes what it made and says what was wrong', async () => {
    const tag = `ffh${(process.pid % 100_000).toString(36)}-`;
    await assert.rejects(startHostsFederation({ sites: ['dc:paris'], capacity: -1 }), /capacity\.instances must be 0 or more/);
    assert.deepEqual(namespaces().filter((ns) => ns.startsWith(tag)), [], 'no namespace of this process left');
    assert.ok(!linkExists(`ffbr${(process.pid % 100_000).toString(36)}`), 'no bridge of this process left');
  });

  it('a delay or an agent env for a site not in the federation, or a delay in the loopback layout, is refused before anything is made', async () => {
    const tag = `ffh${(process.pid % 100_000).toString(36)}-`;
    await assert.rejects(startHostsFederation({ sites: ['dc:paris'], delayMs: { 'dc:lyon': 15 } }), /site 'dc:lyon' is not in this hosts federation \(known: dc:paris\)/);
    await assert.rejects(startHostsFederation({ sites: ['dc:paris'], agentEnv: { 'dc:lyon': () => ({}) } }), /site 'dc:lyon' is not in this hosts federation/);
    await assert.rejects(startHostsFederation({ sites: ['dc:paris'], layout: 'loopback', delayMs: { 'dc:paris': 15 } }), /delayMs for dc:paris: the 'loopback' layout has no link per site/);
    await assert.rejects(startHostsFederation({ sites: ['dc:paris'], delayMs: { 'dc:paris': -1 } }), /delayMs for dc:paris is -1; expected a number of ms >= 0/);
    assert.deepEqual(namespaces().filter((ns) => ns.startsWith(tag)), [], 'no namespace of this process left');
  });
});
