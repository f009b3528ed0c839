/**
 * Micro-benchmarks of the delta-sync building blocks. Prints one JSON line per measurement:
 *   - chunker: FASTCDC_V1 MB/s on one core over pseudo-random data (default 256 MiB), per preset,
 *     through nextCut on a whole buffer, through nextCutBytewise (the portable one-byte-per-load
 *     loop, which nextCut was before it read words) and through the streaming Chunker in 1 MiB
 *     blocks;
 *   - codec: fedflow's per-chunk LZ4/Zstd compression on semi-compressible data (bench/delta-data.ts)
 *     next to the `lz4` and `zstd` command-line tools at the same levels on the same bytes, the
 *     two taking turns run by run. `cli` is the tool compressing the file to /dev/null (process
 *     start and file read included, as a user would run it): the target's yardstick. Both sides
 *     also report MB per CPU second (`cpuMbps`), which a busy neighbour disturbs less.
 *     `cliInMemory` is the tool's own benchmark mode (`-b`, in memory, no I/O), for the engines'
 *     speed alone. For LZ4, `lz4napi` is the library fedflow compressed with before (lz4_flex).
 *   - levels (only with --only=levels): fedflow's per-chunk Zstd speed at every level the transfer
 *     plan can pick (core/zstd-levels.ts ZSTD_SPEED_MBPS is copied from this output, run with
 *     --codec-chunks=internet: its slowest run per level, rounded down), with the ratio and the
 *     CPU-second figure beside it.
 * MB = 10^6 bytes. Each figure is the best of --reps runs (the machine is shared; the best run is
 * the least disturbed one), with every run listed.
 *
 *   node --import tsx bench/delta-micro.ts [--chunker-mib=256] [--codec-mib=64] [--reps=3] [--only=chunker|codec|levels]
 *     [--codec-chunks=datacenter|hybrid|internet]   (the preset whose chunks the codecs compress)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compressSync as lz4NapiCompress } from 'lz4-napi';
import { CHUNKER_PRESETS, Chunker, ChunkerPreset, compileParams, nextCut, cutAll } from '../core/chunking';
import { nextCutBytewise } from '../core/chunking/fastcdc';
import { CodecSpec, compressChunk, describeCodec, LZ4_COMPRESSOR } from '../agent/transfer/codec';
import { ZSTD_PLAN_LEVELS } from '../core/zstd-levels';
import { semiCompressibleBytes } from './delta-data';

export interface BenchArgs {
  chunkerMiB: number;
  codecMiB: number;
  reps: number;
  only?: 'chunker' | 'codec' | 'levels';
  codecChunks: ChunkerPreset;
  print: (line: Record<string, unknown>) => void;
}

function parseArgs(argv: string[]): BenchArgs {
  const args: BenchArgs = { chunkerMiB: 256, codecMiB: 64, reps: 3, codecChunks: 'datacenter', print: (l) => console.log(JSON.stringify(l)) };
  for (const a of argv) {
    const m = /^--(chunker-mib|codec-mib|reps|only|codec-chunks)=(.+)$/.exec(a);
    if (!m) throw new Error(`unknown argument '${a}'; expected --chunker-mib=N, --codec-mib=N, --reps=N, --only=chunker|codec|levels or --codec-chunks=${Object.keys(CHUNKER_PRESETS).join('|')}`);
    if (m[1] === 'codec-chunks') {
      const preset = m[2]!;
      if (!(preset in CHUNKER_PRESETS)) throw new Error(`--codec-chunks is '${preset}'; expected one of ${Object.keys(CHUNKER_PRESETS).join(', ')}`);
      args.codecChunks = preset as ChunkerPreset;
      continue;
    }
    if (m[1] === 'only') {
      if (m[2] !== 'chunker' && m[2] !== 'codec' && m[2] !== 'levels') throw new Error(`--only is '${m[2]}'; expected chunker, codec or levels`);
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
    const finders = [
      { api: 'nextCut', f: nextCut },
      { api: 'nextCutBytewise', f: nextCutBytewise },
    ];
    for (const { api, f } of finders) {
      let chunks = 0;
      const cpu: number[] = [];
      const runs = best(a.reps, () => {
        chunks = 0;
        for (let s = 0; s < data.length; chunks++) s = f(data, s, data.length, p);
      }, cpu);
      a.print({
        bench: 'chunker', preset, api, bytes: data.length, chunks, avgChunk: Math.round(data.length / chunks),
        mbps: Math.max(...runs.map((ms) => mbps(data.length, ms))), runsMbps: runs.map((ms) => mbps(data.length, ms)), runsCpuMbps: cpu.map((ms) => mbps(data.length, ms)),
      });
    }
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

/**
 * Runs `cmd args... file > out` under bash's `time`: wall ms of the tool's process (its start and
 * file read included, the shell's own start not) and its CPU ms (user + system, ms resolution).
 */
function runCli(cmd: string, args: string[], file: string, out: string): { ms: number; cpuMs: number } {
  const script = `TIMEFORMAT='%3R %3U %3S'; time ("$0" "$@" > '${out}')`;
  const r = spawnSync('bash', ['-c', script, cmd, ...args, file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const err = r.stderr.toString();
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${err}`);
  const m = /(\d+\.\d+) (\d+\.\d+) (\d+\.\d+)\s*$/.exec(err);
  if (!m) throw new Error(`bash time printed no "real user sys" line for ${cmd}: ${JSON.stringify(err.slice(-200))}`);
  return { ms: Number(m[1]) * 1000, cpuMs: (Number(m[2]) + Number(m[3])) * 1000 };
}

/**
 * The tool's own in-memory benchmark (`lz4 -b1`, `zstd -b3 -T1`): its best compression MB/s as it
 * prints it, e.g. `semi.bin : 67108864 -> 27007314 (2.485),1217.4 MB/s ,5484.2 MB/s`.
 */
function cliInMemoryMbps(cmd: string, level: string, file: string): number {
  const args = [`-b${level}`, '-i1', ...(cmd === 'zstd' ? ['-T1'] : []), file];
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.toString()}`);
  const text = `${r.stdout.toString()}${r.stderr.toString()}`;
  const speeds = [...text.matchAll(/\(x?[\d.]+\),\s*([\d.]+) MB\/s/g)].map((m) => Number(m[1]));
  if (speeds.length === 0) throw new Error(`${cmd} ${args.join(' ')} printed no "(ratio), N MB/s" figure: ${JSON.stringify(text.slice(-300))}`);
  return Math.max(...speeds);
}

function benchCodecs(a: BenchArgs): void {
  const data = semiCompressibleBytes(a.codecMiB * 1024 * 1024);
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-bench-'));
  const file = join(dir, 'semi.bin');
  writeFileSync(file, data);
  // Chunks as a transfer would compress them: one preset's content-defined chunks.
  const chunks = cutAll(data, CHUNKER_PRESETS[a.codecChunks]).map((c) => Buffer.from(data.buffer, data.byteOffset + c.offset, c.length));
  const cases: { spec: CodecSpec; cli: [string, string[]]; level: string }[] = [
    { spec: { codec: 'lz4' }, cli: ['lz4', ['-1', '-c', '-q']], level: '1' },
    { spec: { codec: 'zstd', level: 1 }, cli: ['zstd', ['-1', '-c', '-q', '-T1']], level: '1' },
    { spec: { codec: 'zstd', level: 3 }, cli: ['zstd', ['-3', '-c', '-q', '-T1']], level: '3' },
    { spec: { codec: 'zstd', level: 9 }, cli: ['zstd', ['-9', '-c', '-q', '-T1']], level: '9' },
  ];
  const compressAll = (f: (c: Buffer) => Buffer) => () => {
    let packed = 0;
    for (const c of chunks) packed += f(c).length;
    return packed;
  };
  try {
    for (const { spec, cli, level } of cases) {
      const sized = `${file}.out`;
      runCli(cli[0], cli[1], file, sized);
      const cliBytes = statSync(sized).size;
      rmSync(sized);
      const ours = compressAll((c) => compressChunk(c, spec));
      const previous = spec.codec === 'lz4' ? compressAll((c) => lz4NapiCompress(c)) : undefined;
      let packed = 0;
      let previousPacked = 0;
      const runs: number[] = [];
      const cpu: number[] = [];
      const cliRuns: number[] = [];
      const cliCpu: number[] = [];
      const previousRuns: number[] = [];
      const inMemoryRuns: number[] = [];
      // Turns: fedflow, the CLI, its in-memory mode (and the previous library), run after run, so a
      // busy moment of the shared machine falls on every side alike.
      for (let r = 0; r < a.reps; r++) {
        runs.push(...best(1, () => (packed = ours()), cpu));
        const c = runCli(cli[0], cli[1], file, '/dev/null');
        cliRuns.push(c.ms);
        cliCpu.push(c.cpuMs);
        inMemoryRuns.push(cliInMemoryMbps(cli[0], level, file));
        if (previous) previousRuns.push(...best(1, () => (previousPacked = previous())));
      }
      const fedMbps = Math.max(...runs.map((ms) => mbps(data.length, ms)));
      const cliMbps = Math.max(...cliRuns.map((ms) => mbps(data.length, ms)));
      const fedCpuMbps = Math.max(...cpu.map((ms) => mbps(data.length, ms)));
      const cliCpuMbps = Math.max(...cliCpu.map((ms) => mbps(data.length, ms)));
      const inMemory = Math.max(...inMemoryRuns);
      a.print({
        bench: 'codec',
        codec: describeCodec(spec),
        // The optional C addon or its lz4-napi fallback (agent/transfer/codec.ts): figures differ.
        ...(spec.codec === 'lz4' ? { compressor: LZ4_COMPRESSOR } : {}),
        bytes: data.length,
        chunkPreset: a.codecChunks,
        chunks: chunks.length,
        fedflow: { mbps: fedMbps, cpuMbps: fedCpuMbps, ratio: round3(data.length / packed), runsMbps: runs.map((ms) => mbps(data.length, ms)), runsCpuMbps: cpu.map((ms) => mbps(data.length, ms)) },
        cli: {
          cmd: `${cli[0]} ${cli[1].join(' ')} FILE`, mbps: cliMbps, cpuMbps: cliCpuMbps, ratio: round3(data.length / cliBytes),
          runsMbps: cliRuns.map((ms) => mbps(data.length, ms)), runsCpuMbps: cliCpu.map((ms) => mbps(data.length, ms)),
        },
        speedFedflowOverCli: round3(fedMbps / cliMbps),
        cpuSpeedFedflowOverCli: round3(fedCpuMbps / cliCpuMbps),
        ratioFedflowOverCli: round3(data.length / packed / (data.length / cliBytes)),
        cliInMemory: { cmd: `${cli[0]} -b${level} -i1${cli[0] === 'zstd' ? ' -T1' : ''} FILE`, mbps: inMemory, runsMbps: inMemoryRuns },
        speedFedflowOverCliInMemory: round3(fedMbps / inMemory),
        ...(previous
          ? { lz4napi: { api: 'lz4-napi compressSync', mbps: Math.max(...previousRuns.map((ms) => mbps(data.length, ms))), ratio: round3(data.length / previousPacked), runsMbps: previousRuns.map((ms) => mbps(data.length, ms)) } }
          : {}),
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Zstd speed per level on one core, for the plan's table. The slow levels get fewer bytes. */
function benchLevels(a: BenchArgs): void {
  const all = semiCompressibleBytes(a.codecMiB * 1024 * 1024);
  for (const level of ZSTD_PLAN_LEVELS) {
    const bytes = level >= 15 ? Math.min(all.length, 8 << 20) : all.length;
    const data = all.subarray(0, bytes);
    const chunks = cutAll(data, CHUNKER_PRESETS[a.codecChunks]).map((c) => data.subarray(c.offset, c.offset + c.length));
    const spec: CodecSpec = { codec: 'zstd', level };
    let packed = 0;
    const cpu: number[] = [];
    const runs = best(a.reps, () => {
      packed = 0;
      for (const c of chunks) packed += compressChunk(c, spec).length;
    }, cpu);
    a.print({
      bench: 'zstd-level', level, bytes, chunkPreset: a.codecChunks, ratio: round3(bytes / packed),
      mbps: Math.max(...runs.map((ms) => mbps(bytes, ms))), cpuMbps: Math.max(...cpu.map((ms) => mbps(bytes, ms))),
      runsMbps: runs.map((ms) => mbps(bytes, ms)), runsCpuMbps: cpu.map((ms) => mbps(bytes, ms)),
    });
  }
}

export async function run(argv: string[] = []): Promise<void> {
  const a = parseArgs(argv);
  if (a.only === 'levels') return benchLevels(a);
  if (a.only !== 'codec') benchChunker(a);
  if (a.only !== 'chunker') benchCodecs(a);
}

if (require.main === module) {
  run(process.argv.slice(2)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
