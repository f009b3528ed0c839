/**
 * `npm run bench -- agent-footprint [--runs 3]`
 *
 * What loading an agent costs before it does anything: a fresh process imports
 * worker/federation-runtime.ts (everything `startFederation` needs), collects its garbage twice and
 * reports the heap it keeps, its resident size and the import's time. The named peer, in the same
 * run: the same import plus the three cloud adapters (AWS, Azure, GCP, and their SDKs), which
 * adapters/registry-cloud.ts loaded eagerly before it loaded each on demand. Every full collection
 * of an agent marks its heap (docs/workloads.md, "Since 2026-12-04 04:00 UTC: garbage collection").
 *
 * One JSON line per run and arm, then a summary with the medians and their ratios (agent / peer).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../agent/site/home';

interface Footprint {
  importMs: number;
  heapUsedMB: number;
  rssMB: number;
  cloudSdksLoaded: boolean;
}

const ARMS = {
  agent: ['worker/federation-runtime.ts'],
  'agent + cloud adapters': ['worker/federation-runtime.ts', 'adapters/aws/provider.ts', 'adapters/azure/provider.ts', 'adapters/gcp/provider.ts'],
} as const;

function measure(modules: readonly string[]): Footprint {
  const code = `
    const t0 = performance.now();
    for (const m of ${JSON.stringify(modules.map((m) => join(REPO_ROOT, m)))}) require(m);
    const importMs = performance.now() - t0;
    global.gc(); global.gc();
    const u = process.memoryUsage();
    const cloudSdksLoaded = Object.keys(require.cache).some((k) => /node_modules\\/(@aws-sdk|@azure|@google-cloud)\\//.test(k));
    console.log(JSON.stringify({ importMs: Math.round(importMs), heapUsedMB: +(u.heapUsed / 1e6).toFixed(1), rssMB: +(u.rss / 1e6).toFixed(1), cloudSdksLoaded }));`;
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '-e', code], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  if (r.status !== 0) throw new Error(`the measuring process failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Footprint;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(args: string[]): Promise<void> {
  let runs = 3;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--runs') {
      runs = Number(args[++i]);
      if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs is '${args[i]}'; expected a positive integer`);
    } else throw new Error(`unknown argument '${args[i]}'; usage: npm run bench -- agent-footprint [--runs N]`);
  }
  const seen: Record<string, Footprint[]> = {};
  // The arms take turns, so a slow moment of the machine falls on both.
  for (let r = 1; r <= runs; r++) {
    for (const [arm, modules] of Object.entries(ARMS)) {
      const f = measure(modules);
      (seen[arm] ??= []).push(f);
      console.log(JSON.stringify({ bench: 'agent-footprint', arm, run: r, ...f }));
    }
  }
  const m = (arm: string, k: 'importMs' | 'heapUsedMB' | 'rssMB') => median(seen[arm]!.map((f) => f[k]));
  const [agent, peer] = Object.keys(ARMS);
  console.log(
    JSON.stringify({
      bench: 'agent-footprint',
      runs,
      agent: { importMs: m(agent!, 'importMs'), heapUsedMB: m(agent!, 'heapUsedMB'), rssMB: m(agent!, 'rssMB'), cloudSdksLoaded: seen[agent!]!.some((f) => f.cloudSdksLoaded) },
      peer: { arm: peer, importMs: m(peer!, 'importMs'), heapUsedMB: m(peer!, 'heapUsedMB'), rssMB: m(peer!, 'rssMB') },
      heapRatio: +(m(agent!, 'heapUsedMB') / m(peer!, 'heapUsedMB')).toFixed(2),
      rssRatio: +(m(agent!, 'rssMB') / m(peer!, 'rssMB')).toFixed(2),
      importRatio: +(m(agent!, 'importMs') / m(peer!, 'importMs')).toFixed(2),
    }),
  );
}
