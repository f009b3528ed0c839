/**
 * The agents' GC policy (worker/gc-policy.ts), by what V8 does under it: a process that churns
 * through 1 GiB of Buffers (as a pre-copy round does) beside a heap of live objects, counted in
 * full (major) collections by node's own `gc` performance entries, once with the policy and once
 * with V8's default. Each in a fresh process: the flag is per process and set once.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../../agent/site/home';
import { FedflowError } from '../../client/federation';
import { applyAgentGcPolicy } from '../../worker/gc-policy';

const CHURN = `
const { PerformanceObserver, constants } = require('node:perf_hooks');
const { applyAgentGcPolicy } = require(${JSON.stringify(join(REPO_ROOT, 'worker', 'gc-policy.ts'))});
const inForce = applyAgentGcPolicy();
let major = 0;
new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++; }).observe({ entryTypes: ['gc'] });
const live = [];
for (let i = 0; i < 200000; i++) live.push({ i, s: 'entry ' + i });
let sum = 0;
for (let i = 0; i < 4096; i++) { const b = Buffer.allocUnsafeSlow(256 * 1024); b[0] = i & 255; sum += b[0]; }
setTimeout(() => console.log(JSON.stringify({ inForce, major, live: live.length, sum })), 100);
`;

function churn(policy: string | undefined): { inForce: boolean; major: number; live: number } {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
  delete env.FEDFLOW_GC_POLICY;
  if (policy !== undefined) env.FEDFLOW_GC_POLICY = policy;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', CHURN], { cwd: REPO_ROOT, encoding: 'utf8', env });
  assert.equal(r.status, 0, `the churn process failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { inForce: boolean; major: number; live: number };
}

describe('agent GC policy', () => {
  it('collects a GiB of Buffer churn in far fewer full collections than V8 by default', () => {
    const withPolicy = churn(undefined);
    const v8Default = churn('v8-default');
    assert.equal(withPolicy.inForce, true);
    assert.equal(v8Default.inForce, false);
    assert.equal(withPolicy.live, 200000);
    // V8's default: a full collection per ~64 MB of external growth (12 here when measured).
    assert.ok(v8Default.major >= 6, `V8's default ran ${v8Default.major} full collections; expected one per ~64 MB of the 1 GiB churned`);
    assert.ok(withPolicy.major * 3 <= v8Default.major, `with the policy ${withPolicy.major} full collections, V8's default ${v8Default.major}: expected at most a third`);
  });

  it('refuses a policy it does not know, naming the ones it does, before setting anything', () => {
    // An invalid value throws before the once-per-process choice is made: this process keeps its own.
    assert.throws(
      () => applyAgentGcPolicy({ FEDFLOW_GC_POLICY: 'fast' }),
      (err: unknown) => err instanceof FedflowError && err.type === 'InvalidEnvironment' && /FEDFLOW_GC_POLICY is 'fast'; expected 'bulk-data' .* or 'v8-default'/.test(err.message),
    );
  });

  it('takes an empty value as unset (the default policy)', () => {
    const r = churn('');
    assert.equal(r.inForce, true);
  });
});
