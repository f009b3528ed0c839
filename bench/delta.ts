/**
 * `npm run bench -- delta [--size-mib N] [--reps N] [--scenario scattered|insert|unrelated] [--mode datacenter|internet] [--agents 2|1]`
 *
 * Delta sync of one volume (default 512 MiB), fedflow against rsync, both on this machine, on the
 * same files, in the same run. See bench/delta-files.ts for the scenarios. Per mode:
 *   1. (untimed) the fedflow target pulls the old version once: its chunk store is the baseline;
 *   2. per scenario, fedflow (child process, bench/delta-fedflow.ts), timed: capture the new
 *      version at the source, serve it over a real transfer server on loopback, pull the missing
 *      chunks into the target store, assemble the new file at the target. The source and target
 *      agents are two processes (--agents 2, the default, as in production and as rsync's sender
 *      and receiver) or share one (--agents 1);
 *   3. rsync --no-whole-file --stats (-z in internet mode) from the new file onto a copy of the old.
 * Both results are checked against the new version's sha256.
 *
 * Output, JSON lines on stdout: one per (scenario, tool, mode), then one per (scenario, mode) with
 * wireRatio and timeRatio (fedflow / rsync; below 1 means fedflow did better). With --reps N the
 * tools take turns N times and each one's fastest run counts (all runs are listed in runsMs).
 * fedflow's wireBytes counts every byte on the transfer server's sockets, both directions: HTTP
 * headers, the manifest, the chunk batch requests and the framed chunks.
 */
import { fork, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PLANS } from '../core/transfer-plan';
import { benchNodeArgs, type FedflowFigures, type Job } from './delta-fedflow';
import { newVersion, oldVersion, SCENARIOS, type Scenario } from './delta-files';
import { runRsync, type RsyncFigures } from './delta-rsync';

const MODES = ['datacenter', 'internet'] as const;
type Mode = (typeof MODES)[number];

interface Args {
  sizeMiB: number;
  reps: number;
  scenarios: Scenario[];
  modes: Mode[];
  agents: 1 | 2;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { sizeMiB: 512, reps: 1, scenarios: [...SCENARIOS], modes: [...MODES], agents: 2 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--size-mib') {
      const n = Number(value);
      if (!(Number.isInteger(n) && n >= 4)) throw new Error(`--size-mib is '${value}'; expected an integer >= 4`);
      a.sizeMiB = n;
    } else if (flag === '--reps') {
      const n = Number(value);
      if (!(Number.isInteger(n) && n >= 1)) throw new Error(`--reps is '${value}'; expected a positive integer`);
      a.reps = n;
    } else if (flag === '--scenario') {
      if (!(SCENARIOS as readonly string[]).includes(value)) throw new Error(`--scenario is '${value}'; expected one of ${SCENARIOS.join(', ')}`);
      a.scenarios = [value as Scenario];
    } else if (flag === '--mode') {
      if (!(MODES as readonly string[]).includes(value)) throw new Error(`--mode is '${value}'; expected one of ${MODES.join(', ')}`);
      a.modes = [value as Mode];
    } else if (flag === '--agents') {
      if (value !== '1' && value !== '2') throw new Error(`--agents is '${value}'; expected 1 or 2`);
      a.agents = Number(value) as 1 | 2;
    } else throw new Error(`unknown argument '${flag}'; expected --size-mib N, --reps N, --scenario ${SCENARIOS.join('|')}, --mode ${MODES.join('|')}, --agents 2|1`);
  }
  return a;
}

const log = (msg: string) => process.stderr.write(`[bench delta] ${msg}\n`);
const print = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const round3 = (x: number) => Math.round(x * 1000) / 1000;
/**
 * Flush dirty pages before each timed run: otherwise the run that follows a big write (the volume
 * generation, the copy of the old file) pays for that write-back in its own fsyncs, and the order
 * of the tools decides the result.
 */
const flushDisks = () => spawnSync('sync', { stdio: 'ignore' });

function runFedflow(job: Job): Promise<FedflowFigures> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...benchNodeArgs(), '--import', 'tsx', join(__dirname, 'delta-fedflow.ts'), JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`fedflow ${job.kind} (${job.mode}) child exited ${code}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1)!) as FedflowFigures);
      } catch (err) {
        reject(new Error(`fedflow child printed no figures: ${(err as Error).message}: ${out.slice(0, 300)}`));
      }
    });
  });
}

/**
 * Starts a source agent (bench/delta-source.ts) as a process of its own that serves every job of a
 * mode, as a site's agent serves round after round: it captured the previous version itself, so
 * that version's manifest (the delta base) is in its memory, not read back from disk.
 */
function startSourceAgent(imagesDir: string): Promise<{ url: string; control: string; stop: () => Promise<void> }> {
  const child = fork(join(__dirname, 'delta-source.ts'), [JSON.stringify({ imagesDir })], { execArgv: [...benchNodeArgs(), '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`source agent exited with code ${code} before it was ready`)));
    child.once('message', (m: { op: string; url: string; control: string }) => {
      if (m.op !== 'ready') return reject(new Error(`source agent said ${m.op}, expected ready`));
      resolve({
        url: m.url,
        control: m.control,
        stop: () =>
          new Promise<void>((done) => {
            child.removeAllListeners('exit');
            child.once('exit', () => done());
            child.send({ op: 'finish' });
          }),
      });
    });
  });
}

export async function run(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const bytes = args.sizeMiB * 2 ** 20;
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-bench-delta-'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    log(`generating ${args.sizeMiB} MiB old version in ${dir}`);
    const old = oldVersion(bytes);
    const oldFile = join(dir, 'old.img');
    writeFileSync(oldFile, old);
    for (const mode of args.modes) {
      const storeDir = join(dir, `store-${mode}`);
      log(`${mode}: baseline, the target pulls the old version once (untimed)`);
      const outFile = join(dir, `fedflow-target-${mode}.img`);
      const sourceAgent = args.agents === 2 ? await startSourceAgent(join(dir, 'images-src')) : undefined;
      const source = sourceAgent && { url: sourceAgent.url, control: sourceAgent.control };
      const base = await runFedflow({ kind: 'baseline', mode, file: oldFile, storeDir, imagesDir: join(dir, 'images-src'), outFile, agents: args.agents, source });
      log(`${mode}: baseline ${base.chunks} chunks in ${base.wallMs} ms`);
      for (const scenario of args.scenarios) {
        const nv = newVersion(old, scenario);
        const want = sha256(nv.data);
        const srcDir = join(dir, 'src');
        mkdirSync(srcDir, { recursive: true });
        const newFile = join(srcDir, 'vol.img');
        writeFileSync(newFile, nv.data);

        // The tools take turns, `reps` times: a burst of load from the machine's other users then
        // hits both, and the best run of each is its least disturbed one (every run is listed).
        const destDir = join(dir, 'dst');
        mkdirSync(destDir, { recursive: true });
        const dest = join(destDir, 'vol.img');
        const feds: FedflowFigures[] = [];
        const rsyncs: RsyncFigures[] = [];
        for (let rep = 0; rep < args.reps; rep++) {
          log(`${scenario}/${mode}: fedflow (${nv.note}) run ${rep + 1}/${args.reps}`);
          flushDisks();
          const f = await runFedflow({ kind: 'sync', mode, file: newFile, storeDir, imagesDir: join(dir, 'images-src'), outFile, baselineRoot: base.root, agents: args.agents, source });
          if (f.assembledSha256 !== want) throw new Error(`fedflow assembled ${f.assembledSha256}, expected ${want} (${scenario}/${mode})`);
          feds.push(f);
          log(`${scenario}/${mode}: rsync run ${rep + 1}/${args.reps}`);
          copyFileSync(oldFile, dest);
          flushDisks();
          const r = await runRsync(newFile, dest, mode === 'internet');
          if (sha256(readFileSync(dest)) !== want) throw new Error(`rsync result differs from the new version (${scenario}/${mode})`);
          rsyncs.push(r);
        }
        const f = feds.reduce((x, y) => (y.wallMs < x.wallMs ? y : x));
        const r = rsyncs.reduce((x, y) => (y.wallMs < x.wallMs ? y : x));
        const fedWire = f.socketBytes.toTarget + f.socketBytes.toSource;
        print({
          scenario, tool: 'fedflow', mode, wireBytes: fedWire, wallMs: f.wallMs, runsMs: feds.map((x) => x.wallMs),
          chunks: f.chunks, chunksSent: f.chunksSent, rawBytesSent: f.rawBytesSent,
          wire: { toTarget: f.socketBytes.toTarget, toSource: f.socketBytes.toSource, chunkFrames: f.chunkFrameBytes, manifestBody: f.manifestBytes, manifest: f.manifest },
          phasesMs: f.phasesMs, assemble: f.assemble, agents: args.agents,
          // With two agents: peakRssMB is the target agent's process, sourcePeakRssMB the source's.
          peakRssMB: Math.max(...feds.map((x) => x.peakRssMB)),
          ...(args.agents === 2 ? { sourcePeakRssMB: Math.max(...feds.map((x) => x.source?.peakRssMB ?? 0)) } : {}),
          rssBeforeMB: f.rssBeforeMB, peakRssAfterMB: f.peakRssAfterMB,
          plan: DEFAULT_PLANS[mode], volumeBytes: f.volumeBytes, change: nv.note,
        });
        print({ scenario, tool: 'rsync', mode, wireBytes: r.wireBytes, wallMs: r.wallMs, runsMs: rsyncs.map((x) => x.wallMs), sentBytes: r.sentBytes, receivedBytes: r.receivedBytes, literalBytes: r.literalBytes, matchedBytes: r.matchedBytes, command: r.command });
        print({ scenario, mode, wireRatio: round3(fedWire / r.wireBytes), timeRatio: round3(f.wallMs / r.wallMs), sizeMiB: args.sizeMiB, reps: args.reps });
        rmSync(destDir, { recursive: true, force: true });
        rmSync(srcDir, { recursive: true, force: true });
      }
      await sourceAgent?.stop();
      rmSync(storeDir, { recursive: true, force: true });
      rmSync(outFile, { force: true });
      rmSync(join(dir, 'images-src'), { recursive: true, force: true });
    }
  } finally {
    cleanup();
  }
}

if (require.main === module) {
  run(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
