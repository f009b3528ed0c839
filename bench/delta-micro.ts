/**
 * Micro-benchmarks of the delta-sync building blocks. Prints one JSON line per measurement:
 *   - chunker: FASTCDC_V1 MB/s on one core over pseudo-random data (default 256 MiB), per preset,
 *     through nextCut on a whole buffer and through the streaming Chunker in 1 MiB blocks;
 *   - codec: fedflow's per-chunk LZ4/Zstd compression on semi-compressible data (bench/delta-data.ts)
 *     next to the `lz4` and `zstd` command-line tools at the same levels on the same bytes.
 * MB = 10^6 bytes. Each figure is the best of --reps runs (the machine is shared; the best run is
 * the least disturbed one), with every run listed.
 *
 *   node --import tsx bench/delta-micro.ts [--chunker-mib=256] [--codec-mib=64] [--reps=3] [--only=chunker|codec]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHUNKER_PRESETS, Chunker, compileParams, nextCut, cutAll } from '../core/chunking';
import { CodecSpec, compressChunk, describeCodec } from '../agent/codec';
import { semiCompressibleBytes } from './delta-data';

export interface BenchArgs {
  chunkerMiB: number;
  codecMiB: number;
  reps: number;
  only?: 'chunker' | 'codec';
  print: (line: Record<string, unknown>) => void;
}

function parseArgs(argv: string[]): BenchArgs {
  const args: BenchArgs = { chunkerMiB: 256, codecMiB: 64, reps: 3, print: (l) => console.log(JSON.stringify(l)) };
  for (const a of argv) {
    const m = /^--(chunker-mib|codec-mib|reps|only)=(.+)$/.exec(a);
    if (!m) throw new Error(`unknown argument '${a}'; expected --chunker-mib=N, --codec-mib=N, --reps=N or --only=chunker|codec`);
    if (m[1] === 'only') {
      if (m[2] !== 'chunker' && m[2] !== 'codec') throw new Error(`--only is '${m[2]}'; expected chunker or codec`);
      args.only = m[2];
      continue;
    }
    const n = Number(m[2]);
    if (!(Number.isInteger(n) && n > 0)) throw new Error(`--${m[1]} is '${m[2]}'; expected a positive integer`);
    if (m[1] === 'chunker-mib') args.chunkerMiB = n;
    else if (m[1] === 'codec-mib') args.codecMiB = n;
    else args.reps = n;
  }
  return args;
}

/** xorshift32 words: fast enough to make 256 MiB in well under a second. */
function randomBytes(length: number, seed = 0x12345678): Uint8Array {
  const out = new Uint8Array(length);
  const words = new Uint32Array(out.buffer, 0, length >>> 2);
  let s = seed;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s >>> 0;
  }
  return out;
}

const mbps = (bytes: number, ms: number) => Math.round((bytes / (ms / 1000) / 1e6) * 10) / 10;
const round3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Wall-clock ms of each run. Also records CPU ms (user + system) in `cpu`: on a shared machine a
 * run whose wall time far exceeds its CPU time was descheduled, not slow.
 */
function best(reps: number, f: () => void, cpu: number[] = []): number[] {
  const runs: number[] = [];
  for (let r = 0; r < reps; r++) {
    const c0 = process.cpuUsage();
    const t = performance.now();
    f();
    runs.push(performance.now() - t);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return runs;
}

function benchChunker(a: BenchArgs): void {
  const data = randomBytes(a.chunkerMiB * 1024 * 1024);
  for (const [preset, params] of Object.entries(CHUNKER_PRESETS)) {
    const p = compileParams(params);
    let chunks = 0;
    const cpuWhole: number[] = [];
    const whole = best(a.reps, () => {
      chunks = 0;
      for (let s = 0; s < data.length; chunks++) s = nextCut(data, s, data.length, p);
    }, cpuWhole);
    a.print({
      bench: 'chunker', preset, api: 'nextCut', bytes: data.length, chunks, avgChunk: Math.round(data.length / chunks),
      mbps: Math.max(...whole.map((ms) => mbps(data.length, ms))), runsMbps: whole.map((ms) => mbps(data.length, ms)), runsCpuMbps: cpuWhole.map((ms) => mbps(data.length, ms)),
    });
    const cpuStreamed: number[] = [];
    const streamed = best(a.reps, () => {
      const c = new Chunker(params);
      const block = 1 << 20;
      for (let i = 0; i < data.length; i += block) for (const _ of c.push(data.subarray(i, i + block)));
      for (const _ of c.finish());
    }, cpuStreamed);
    a.print({
      bench: 'chunker', preset, api: 'Chunker(1 MiB blocks)', bytes: data.length,
      mbps: Math.max(...streamed.map((ms) => mbps(data.length, ms))), runsMbps: streamed.map((ms) => mbps(data.length, ms)), runsCpuMbps: cpuStreamed.map((ms) => mbps(data.length, ms)),
    });
  }
}

function timeCli(cmd: string, args: string[], file: string): { ms: number; bytes: number } {
  const runOnce = (out: string) => {
    const t = performance.now();
    const r = spawnSync('sh', ['-c', `"$0" "$@" > '${out}'`, cmd, ...args, file], { stdio: ['ignore', 'ignore', 'pipe'] });
    const ms = performance.now() - t;
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.toString()}`);
    return ms;
  };
  const sized = `${file}.out`;
  runOnce(sized);
  const bytes = statSync(sized).size;
  rmSync(sized);
  return { ms: runOnce('/dev/null'), bytes };
}

function benchCodecs(a: BenchArgs): void {
  const data = semiCompressibleBytes(a.codecMiB * 1024 * 1024);
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-bench-'));
  const file = join(dir, 'semi.bin');
  writeFileSync(file, data);
  // Chunks as a transfer would compress them: the datacenter preset's content-defined chunks.
  const chunks = cutAll(data, CHUNKER_PRESETS.datacenter).map((c) => data.subarray(c.offset, c.offset + c.length));
  const cases: { spec: CodecSpec; cli: [string, string[]] }[] = [
    { spec: { codec: 'lz4' }, cli: ['lz4', ['-1', '-c', '-q']] },
    { spec: { codec: 'zstd', level: 1 }, cli: ['zstd', ['-1', '-c', '-q', '-T1']] },
    { spec: { codec: 'zstd', level: 3 }, cli: ['zstd', ['-3', '-c', '-q', '-T1']] },
    { spec: { codec: 'zstd', level: 9 }, cli: ['zstd', ['-9', '-c', '-q', '-T1']] },
  ];
  try {
    for (const { spec, cli } of cases) {
      let packed = 0;
      const runs = best(a.reps, () => {
        packed = 0;
        for (const c of chunks) packed += compressChunk(c, spec).length;
      });
      const fedMbps = Math.max(...runs.map((ms) => mbps(data.length, ms)));
      const cliRuns: number[] = [];
      let cliBytes = 0;
      for (let r = 0; r < a.reps; r++) {
        const t = timeCli(cli[0], cli[1], file);
        cliRuns.push(t.ms);
        cliBytes = t.bytes;
      }
      const cliMbps = Math.max(...cliRuns.map((ms) => mbps(data.length, ms)));
      a.print({
        bench: 'codec',
        codec: describeCodec(spec),
        bytes: data.length,
        chunks: chunks.length,
        fedflow: { mbps: fedMbps, ratio: round3(data.length / packed), runsMbps: runs.map((ms) => mbps(data.length, ms)) },
        cli: { cmd: `${cli[0]} ${cli[1].join(' ')} FILE`, mbps: cliMbps, ratio: round3(data.length / cliBytes), runsMbps: cliRuns.map((ms) => mbps(data.length, ms)) },
        speedFedflowOverCli: round3(fedMbps / cliMbps),
        ratioFedflowOverCli: round3(data.length / packed / (data.length / cliBytes)),
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(argv: string[] = []): Promise<void> {
  const a = parseArgs(argv);
  if (a.only !== 'codec') benchChunker(a);
  if (a.only !== 'chunker') benchCodecs(a);
}

if (require.main === module) {
  run(process.argv.slice(2)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
