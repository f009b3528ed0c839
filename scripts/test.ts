/**
 * `npm test`: every test, through Node's test runner with the tsx loader.
 * Unit tests run in parallel; tests that start servers (Temporal, emulators, a browser) run one
 * file at a time on this 2-core machine. Tiers run in this order: unit, workflow, contract,
 * integration, infra, hosts, browser. Ends with `N passed, N failed`.
 *
 *   npm test                 everything
 *   npm test -- unit         only test/unit (any tier name or path prefix works)
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../agent/site/home';
import { hostsUnavailable } from './hosts-check';
import { failureDigest } from './test-failures';

function findTests(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return name === 'fakes' || name === 'helpers' ? [] : findTests(p);
      return name.endsWith('.test.ts') ? [p] : [];
    });
}

/** Debian's Chromium, which the browser tier drives (never a downloaded browser). */
const CHROMIUM = '/usr/bin/chromium';

interface Tier {
  name: string;
  dirs: string[];
  concurrency: number;
}
const TIERS: Tier[] = [
  { name: 'unit', dirs: ['test/unit'], concurrency: 2 },
  // Workflows against Temporal's time-skipping test server, with mocked activities: no agents.
  { name: 'workflow', dirs: ['test/workflow'], concurrency: 1 },
  { name: 'contract', dirs: ['test/contract'], concurrency: 1 },
  { name: 'integration', dirs: ['test/integration'], concurrency: 1 },
  // infra/ against a real dev server, moto's CloudFormation, and the fake ARM and compute servers.
  { name: 'infra', dirs: ['test/infra'], concurrency: 1 },
  // Every site a host of its own: network namespaces on a bridge (root and iproute2; test/helpers/netns.ts).
  { name: 'hosts', dirs: ['test/hosts'], concurrency: 1 },
  { name: 'browser', dirs: ['test/browser'], concurrency: 1 },
];

function runTier(files: string[], concurrency: number): Promise<{ pass: number; fail: number; code: number; failures: string[] }> {
  return new Promise((resolve) => {
    const args = ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files];
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      process.stdout.write(d);
      out += d.toString();
    });
    child.on('exit', (code) => {
      const num = (label: string) => Number(new RegExp(`ℹ ${label} (\\d+)`).exec(out)?.[1] ?? 0);
      resolve({ pass: num('pass'), fail: num('fail') + num('cancelled'), code: code ?? 1, failures: failureDigest(out) });
    });
  });
}

async function run(): Promise<void> {
  const filters = process.argv.slice(2);
  let pass = 0;
  let fail = 0;
  let code = 0;
  const t0 = Date.now();
  const skipped: string[] = [];
  const failures: string[] = [];
  for (const tier of TIERS) {
    const files = tier.dirs
      .flatMap((d) => findTests(join(REPO_ROOT, d)))
      .map((f) => relative(REPO_ROOT, f))
      .filter((f) => !filters.length || filters.some((x) => tier.name === x || f.startsWith(x)));
    if (!files.length) continue;
    if (tier.name === 'hosts' && !process.env.CI) {
      const why = hostsUnavailable();
      if (why) {
        // Not a pass: said at the end. In CI a machine that cannot run it fails the run.
        skipped.push(`hosts tier skipped (${files.length} file(s)): ${why}`);
        continue;
      }
    }
    if (tier.name === 'browser' && !existsSync(CHROMIUM) && !process.env.CI) {
      // Not a pass: said at the end, with what to install. In CI a missing browser fails the run.
      skipped.push(`browser tier skipped (${files.length} file(s)): ${CHROMIUM} is missing (install it: sudo apt-get install chromium)`);
      continue;
    }
    console.log(`\n=== ${tier.name}: ${files.length} file(s) ===`);
    const r = await runTier(files, tier.concurrency);
    pass += r.pass;
    fail += r.fail;
    if (r.code !== 0) code = r.code;
    if (r.failures.length) failures.push(`--- ${tier.name}:`, ...r.failures);
    else if (r.code !== 0) failures.push(`--- ${tier.name}: its runner exited with ${r.code} and named no failed test`);
  }
  if (pass + fail === 0 && !skipped.length) {
    console.error('no tests matched');
    code = 1;
  }
  if (failures.length) console.log(`\n=== every failure, tier by tier (first lines of each) ===\n${failures.join('\n')}`);
  console.log(`\nnpm test took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (const line of skipped) console.log(line);
  console.log(`${pass} passed, ${fail} failed${skipped.length ? `, ${skipped.length} tier(s) skipped` : ''}`);
  process.exit(code || (fail ? 1 : 0));
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
