/**
 * `npm run bench -- kv-readahead [--volume-mib 1024] [--segment-mib 1] [--runs 2] [--kv-server FILE]`
 *
 * How long the sample (workload/kv-server.js) standing by takes to read a log ahead: the time a
 * migration's pre-copy waits for its standby (docs/workloads.md). A log of `--volume-mib` MiB of
 * 64 KiB values, cut in segments of `--segment-mib` MiB, is written to a temporary volume; the
 * sample starts on it with `--standby`, and /health is asked every 50 ms until nothing is pending
 * (`readAheadPending` 0). `--kv-server FILE` runs another version of the sample on the same
 * volume (e.g. one taken from git: `git show REV:workload/kv-server.js > /tmp/kv-REV.js`), so
 * two versions compare in one run. One JSON line per run, then a summary line (median).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from '../agent/site/home';
import { freePort } from '../test/helpers/killable-server';

interface Args {
  volumeMiB: number;
  segmentMiB: number;
  runs: number;
  kvServer: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { volumeMiB: 1024, segmentMiB: 1, runs: 2, kvServer: join(REPO_ROOT, 'workload', 'kv-server.js') };
  const usage = 'expected --volume-mib N, --segment-mib N, --runs N, --kv-server FILE';
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    if (flag === '--kv-server') {
      if (!value) throw new Error(`--kv-server needs a file; ${usage}`);
      a.kvServer = resolve(value);
      continue;
    }
    const field = ({ '--volume-mib': 'volumeMiB', '--segment-mib': 'segmentMiB', '--runs': 'runs' } as const)[flag as '--runs'];
    if (!field) throw new Error(`unknown argument '${flag.slice(0, 40)}'; ${usage}`);
    const n = Number(value);
    if (!(Number.isInteger(n) && n >= 1)) throw new Error(`${flag} is '${String(value).slice(0, 40)}'; expected an integer >= 1`);
    a[field] = n;
  }
  if (a.segmentMiB > a.volumeMiB) throw new Error(`--segment-mib ${a.segmentMiB} is above --volume-mib ${a.volumeMiB}; expected a segment no bigger than the log`);
  return a;
}

/** The log, as the sample writes it: `{"k","v"}` lines, segment n at kv.jsonl (0) or kv.<n>.jsonl. */
function writeLog(dir: string, a: Args): number {
  const value = 'x'.repeat(64 << 10);
  const perSegment = Math.floor((a.segmentMiB << 20) / (value.length + 24));
  const segments = Math.ceil(a.volumeMiB / a.segmentMiB);
  let k = 0;
  for (let s = 0; s < segments; s++) {
    const lines: string[] = [];
    for (let i = 0; i < perSegment; i++, k++) lines.push(`${JSON.stringify({ k: `key${k}`, v: value.slice(0, value.length - (k % 100)) })}\n`);
    writeFileSync(join(dir, s === 0 ? 'kv.jsonl' : `kv.${s}.jsonl`), lines.join(''));
  }
  return segments;
}

export async function run(argv: string[]): Promise<void> {
  const a = parseArgs(argv);
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-readahead-'));
  const times: number[] = [];
  try {
    const segments = writeLog(dir, a);
    // Older than the sample's read-ahead age (100 ms), as segments a pre-copy laid down are.
    await new Promise((r) => setTimeout(r, 1_100));
    for (let i = 1; i <= a.runs; i++) {
      const port = await freePort();
      const t0 = performance.now();
      const child = spawn(process.execPath, [a.kvServer, '--data', dir, '--port', String(port), '--standby'], { stdio: ['ignore', 'ignore', 'inherit'] });
      let health: { readAheadSegments?: number; readAheadPending?: number; keys?: number } | undefined;
      try {
        for (;;) {
          if (child.exitCode !== null) throw new Error(`${a.kvServer} exited (${child.exitCode}) before it had read the log ahead`);
          await new Promise((r) => setTimeout(r, 50));
          health = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.json() as Promise<typeof health>, () => undefined);
          if (health && health.readAheadPending === 0 && (health.readAheadSegments ?? 0) >= segments - 1) break;
        }
      } finally {
        child.kill('SIGKILL');
      }
      const ms = Math.round(performance.now() - t0);
      times.push(ms);
      process.stdout.write(`${JSON.stringify({ bench: 'kv-readahead', run: i, kvServer: a.kvServer, volumeMiB: a.volumeMiB, segmentMiB: a.segmentMiB, segments, readAheadMs: ms, readAheadSegments: health?.readAheadSegments, keys: health?.keys })}\n`);
    }
    const sorted = [...times].sort((x, y) => x - y);
    process.stdout.write(`${JSON.stringify({ bench: 'kv-readahead', summary: true, kvServer: a.kvServer, volumeMiB: a.volumeMiB, segmentMiB: a.segmentMiB, segments, medianReadAheadMs: sorted[Math.floor((sorted.length - 1) / 2)], runsMs: times })}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
