/**
 * `npm run bench -- spawn-cost [--mib 800] [--commands 30]`
 *
 * What one of the workload runner's commands (a health probe, a verification, a hook) costs the
 * agent's event loop, forked from the agent itself against run through the spawn helper
 * (agent/workload/spawner.ts). The process first grows to about `--mib` MiB of live, touched
 * memory (an agent in the four-site test federation holds ~800 MB at a cut-over; Node forks the
 * whole process to start a child, so the fork's cost grows with it). Then, alternating, it runs
 * `/bin/true` `--commands` times each way and times the event loop's share of each: from the call
 * to its return (the spawn is synchronous; with the helper, the call only posts a message). Each
 * command's whole time (to its exit seen here) is given too.
 *
 * One JSON line per way (`local`, `helper`): p50 and max of `blockedMs` and `totalMs`, the RSS, and
 * a summary line with the ratio of the p50s. Printed, not asserted.
 */
import { execWithTimeout, type ExecResult } from '../agent/workload/exec';
import { Spawner } from '../agent/workload/spawner';

interface Args {
  mib: number;
  commands: number;
}

function parseArgs(argv: string[]): Args {
  const out: Args = { mib: 800, commands: 30 };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i] === '--mib' ? 'mib' : argv[i] === '--commands' ? 'commands' : undefined;
    const value = Number(argv[i + 1]);
    if (!key || !Number.isInteger(value) || value < 1) {
      throw new Error(`spawn-cost: unknown or bad argument '${argv[i]} ${argv[i + 1] ?? ''}'; usage: npm run bench -- spawn-cost [--mib N] [--commands N] (positive integers)`);
    }
    out[key] = value;
    i++;
  }
  return out;
}

const print = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const round = (x: number) => Math.round(x * 100) / 100;

export async function run(argv: string[]): Promise<void> {
  const a = parseArgs(argv);
  // Live memory, every page touched: half in buffers, half in small objects on the V8 heap.
  const keep: unknown[] = [];
  for (let i = 0; i < a.mib / 2; i++) keep.push(Buffer.alloc(1 << 20, i & 0xff));
  const objects: { i: number; s: string }[] = [];
  while (process.memoryUsage().rss < a.mib * 1024 * 1024) for (let i = 0; i < 100_000; i++) objects.push({ i, s: `x${i}` });
  keep.push(objects);
  const rssMB = Math.round(process.memoryUsage().rss / 1e6);
  process.stderr.write(`[bench spawn-cost] grown to ${rssMB} MB; starting the helper\n`);

  const helper = new Spawner(true);
  helper.warm();
  for (let i = 0; i < 500 && helper.helperPid === undefined; i++) await new Promise((r) => setTimeout(r, 20));
  const helperPid = helper.helperPid;
  if (helperPid === undefined) throw new Error('spawn-cost: the spawn helper did not come up within 10 s');

  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const ways = {
    local: (argv: string[]) => execWithTimeout(argv, { timeoutMs: 10_000, env }),
    helper: (argv: string[]) => helper.exec(argv, { timeoutMs: 10_000, env }),
  };
  const figures: Record<keyof typeof ways, { blocked: number[]; total: number[] }> = { local: { blocked: [], total: [] }, helper: { blocked: [], total: [] } };
  for (let i = 0; i < a.commands; i++) {
    for (const way of Object.keys(ways) as (keyof typeof ways)[]) {
      const t0 = performance.now();
      const pending: Promise<ExecResult> = ways[way](['/bin/true']);
      const t1 = performance.now();
      const r = await pending;
      if (r.code !== 0) throw new Error(`spawn-cost: /bin/true ran ${way} and exited with ${r.code ?? r.signal}: ${r.stderr.trim()}`);
      figures[way].blocked.push(t1 - t0);
      figures[way].total.push(performance.now() - t0);
    }
  }
  if (helper.helperPid !== helperPid) throw new Error(`spawn-cost: the spawn helper (pid ${helperPid}) did not last the run: its figures would include commands run here`);
  for (const way of Object.keys(figures) as (keyof typeof figures)[]) {
    const f = figures[way];
    print({ bench: 'spawn-cost', way, commands: a.commands, rssMB, p50BlockedMs: round(pct(f.blocked, 0.5)), maxBlockedMs: round(Math.max(...f.blocked)), p50TotalMs: round(pct(f.total, 0.5)), maxTotalMs: round(Math.max(...f.total)) });
  }
  const p50 = (way: keyof typeof figures) => pct(figures[way].blocked, 0.5);
  print({ bench: 'spawn-cost', summary: true, rssMB, p50BlockedLocalMs: round(p50('local')), p50BlockedHelperMs: round(p50('helper')), blockedRatio: Math.round((p50('helper') / p50('local')) * 10_000) / 10_000, p50TotalLocalMs: round(pct(figures.local.total, 0.5)), p50TotalHelperMs: round(pct(figures.helper.total, 0.5)) });
  process.kill(helperPid, 'SIGKILL');
}
