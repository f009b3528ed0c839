/**
 * `npm run bench -- delta [--size-mib N] [--reps N] [--scenario scattered|insert|unrelated] [--mode datacenter|internet] [--agents 2|1]`
 * `npm run bench -- delta --old PATH --new PATH [--reps N] [--mode datacenter|internet] [--agents 2|1]`
 *
 * Delta sync of one volume (default 512 MiB), fedflow against rsync, both on this machine, on the
 * same files, in the same run. See bench/delta-files.ts for the scenarios. With --old and --new,
 * the volume is yours instead: two files, or two directories (fedflow archives a directory into
 * one deterministic tar, as a site's agent does; rsync gets `-a --delete --ignore-times` and NEW/),
 * run exactly as a generated scenario, with `"scenario": "user"`. Your paths are only read. Per mode:
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
import { copyFileSync, cpSync, createReadStream, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { tarStream } from '../agent/capture/source-images';
import { DEFAULT_PLANS } from '../core/transfer-plan';
import { benchNodeArgs, type FedflowFigures, type Job } from './delta-fedflow';
import { newVersion, oldVersion, SCENARIOS, type Scenario } from './delta-files';
import { runRsync, type RsyncFigures } from './delta-rsync';

const MODES = ['datacenter', 'internet'] as const;
type Mode = (typeof MODES)[number];

/** The user's own old and new version (--old, --new): two files or two directories. */
interface UserVolumes {
  old: string;
  new: string;
  kind: 'file' | 'directory';
}

interface Args {
  sizeMiB: number;
  reps: number;
  scenarios: Scenario[];
  modes: Mode[];
  agents: 1 | 2;
  user?: UserVolumes;
}

const USAGE =
  `usage: npm run bench -- delta [--size-mib N] [--reps N] [--scenario ${SCENARIOS.join('|')}] [--mode ${MODES.join('|')}] [--agents 2|1]\n` +
  `   or: npm run bench -- delta --old PATH --new PATH [--reps N] [--mode ${MODES.join('|')}] [--agents 2|1]   (two files, or two directories)`;

/** What `path` is, or an error naming the flag and the problem. */
function volumeKind(flag: string, path: string): 'file' | 'directory' {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`${flag} ${path}: ${code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
  }
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  throw new Error(`${flag} ${path}: not a regular file or a directory`);
}

function userVolumes(old: string | undefined, neu: string | undefined, given: Set<string>): UserVolumes | undefined {
  if (old === undefined && neu === undefined) return undefined;
  if (neu === undefined) throw new Error(`--old needs --new: the two versions to compare\n${USAGE}`);
  if (old === undefined) throw new Error(`--new needs --old: the two versions to compare\n${USAGE}`);
  const generated = ['--size-mib', '--scenario'].filter((f) => given.has(f));
  if (generated.length) throw new Error(`${generated.join(' and ')} ${generated.length > 1 ? 'shape' : 'shapes'} a generated volume; with --old and --new the volume is yours: leave ${generated.length > 1 ? 'them' : 'it'} out`);
  const oldKind = volumeKind('--old', old);
  const newKind = volumeKind('--new', neu);
  if (oldKind !== newKind) throw new Error(`--old ${old} is a ${oldKind} and --new ${neu} a ${newKind}: give two files or two directories`);
  if (resolve(old) === resolve(neu)) throw new Error(`--old and --new are the same ${oldKind} (${resolve(old)})`);
  return { old: resolve(old), new: resolve(neu), kind: oldKind };
}

function parseArgs(argv: string[]): Args {
  const a: Args = { sizeMiB: 512, reps: 1, scenarios: [...SCENARIOS], modes: [...MODES], agents: 2 };
  const given = new Set<string>();
  let old: string | undefined;
  let neu: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = inline ?? argv[++i];
    if (value === undefined || (inline === undefined && value.startsWith('--'))) throw new Error(`${flag} needs a value\n${USAGE}`);
    given.add(flag);
    if (flag === '--old') old = value;
    else if (flag === '--new') neu = value;
    else if (flag === '--size-mib') {
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
    } else throw new Error(`unknown argument '${flag}'\n${USAGE}`);
  }
  a.user = userVolumes(old, neu, given);
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
function startSourceAgent(imagesDir: string): Promise<{ url: string; control: string; stop: () => Promise<void>; kill: () => void }> {
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
        // After a failure: its process must not outlive the benchmark.
        kill: () => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')),
      });
    });
  });
}

/** One new version to sync: where it is, what changed, and the sha256 of the bytes fedflow assembles. */
interface NewCase {
  scenario: string;
  path: string;
  note: string;
  want: string;
  done(): void;
}

/** The volumes of one run: the old version (a file or a directory) and, per scenario, a new one. */
interface Volumes {
  old: string;
  kind: 'file' | 'directory';
  sizeMiB: number;
  cases(): Iterable<NewCase>;
}

function generatedVolumes(args: Args, dir: string): Volumes {
  log(`generating ${args.sizeMiB} MiB old version in ${dir}`);
  const old = oldVersion(args.sizeMiB * 2 ** 20);
  const oldFile = join(dir, 'old.img');
  writeFileSync(oldFile, old);
  return {
    old: oldFile,
    kind: 'file',
    sizeMiB: args.sizeMiB,
    *cases() {
      for (const scenario of args.scenarios) {
        const nv = newVersion(old, scenario);
        const srcDir = join(dir, 'src');
        mkdirSync(srcDir, { recursive: true });
        const path = join(srcDir, 'vol.img');
        writeFileSync(path, nv.data);
        yield { scenario, path, note: nv.note, want: sha256(nv.data), done: () => rmSync(srcDir, { recursive: true, force: true }) };
      }
    },
  };
}

async function userCase(user: UserVolumes): Promise<Volumes> {
  // A directory is synced as the tar its capture archives (deterministic: the same tree, the same bytes).
  const want = user.kind === 'file' ? await sha256File(user.new) : await sha256Stream(tarStream(user.new));
  const bytes = user.kind === 'file' ? statSync(user.new).size : treeBytes(user.new);
  log(`your volumes: ${user.kind} ${user.old} -> ${user.new} (${bytes} bytes)`);
  return {
    old: user.old,
    kind: user.kind,
    sizeMiB: round3(bytes / 2 ** 20),
    *cases() {
      yield { scenario: 'user', path: user.new, note: `${user.kind} ${user.old} -> ${user.new}`, want, done: () => undefined };
    },
  };
}

async function sha256Stream(chunks: AsyncIterable<Uint8Array>): Promise<string> {
  const h = createHash('sha256');
  for await (const b of chunks) h.update(b);
  return h.digest('hex');
}

const sha256File = (path: string) => sha256Stream(createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>);

/** Sorted walk of a tree: each entry's path, type and content (a link's target), for equality. */
async function treeDigest(root: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (rel: string): Promise<void> => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const p = join(rel, name);
      const st = lstatSync(join(root, p));
      if (st.isDirectory()) {
        h.update(`d ${p}\n`);
        await walk(p);
      } else if (st.isSymbolicLink()) h.update(`l ${p} ${readlinkSync(join(root, p))}\n`);
      else if (st.isFile()) h.update(`f ${p} ${await sha256File(join(root, p))}\n`);
    }
  };
  await walk('');
  return h.digest('hex');
}

function treeBytes(root: string): number {
  let n = 0;
  for (const name of readdirSync(root)) {
    const st = lstatSync(join(root, name));
    n += st.isDirectory() ? treeBytes(join(root, name)) : st.isFile() ? st.size : 0;
  }
  return n;
}

export async function run(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-bench-delta-'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    const volumes = args.user ? await userCase(args.user) : generatedVolumes(args, dir);
    const isDir = volumes.kind === 'directory';
    for (const mode of args.modes) {
      const storeDir = join(dir, `store-${mode}`);
      log(`${mode}: baseline, the target pulls the old version once (untimed)`);
      const outFile = join(dir, `fedflow-target-${mode}.img`);
      const sourceAgent = args.agents === 2 ? await startSourceAgent(join(dir, 'images-src')) : undefined;
      try {
        const source = sourceAgent && { url: sourceAgent.url, control: sourceAgent.control };
        const base = await runFedflow({ kind: 'baseline', mode, file: volumes.old, storeDir, imagesDir: join(dir, 'images-src'), outFile, agents: args.agents, source });
        log(`${mode}: baseline ${base.chunks} chunks in ${base.wallMs} ms`);
        for (const nv of volumes.cases()) {
          const scenario = nv.scenario;
          // The tools take turns, `reps` times: a burst of load from the machine's other users then
          // hits both, and the best run of each is its least disturbed one (every run is listed).
          const destDir = join(dir, 'dst');
          mkdirSync(destDir, { recursive: true });
          const dest = join(destDir, isDir ? 'vol' : 'vol.img');
          const feds: FedflowFigures[] = [];
          const rsyncs: RsyncFigures[] = [];
          const rsyncWant = isDir ? await treeDigest(nv.path) : nv.want;
          for (let rep = 0; rep < args.reps; rep++) {
            log(`${scenario}/${mode}: fedflow (${nv.note}) run ${rep + 1}/${args.reps}`);
            flushDisks();
            const f = await runFedflow({ kind: 'sync', mode, file: nv.path, storeDir, imagesDir: join(dir, 'images-src'), outFile, baselineRoot: base.root, agents: args.agents, source });
            if (f.assembledSha256 !== nv.want) throw new Error(`fedflow assembled ${f.assembledSha256}, expected ${nv.want} (${scenario}/${mode})`);
            feds.push(f);
            log(`${scenario}/${mode}: rsync run ${rep + 1}/${args.reps}`);
            rmSync(dest, { recursive: true, force: true });
            if (isDir) cpSync(volumes.old, dest, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
            else copyFileSync(volumes.old, dest);
            flushDisks();
            const r = await runRsync(nv.path, dest, mode === 'internet', isDir);
            if ((isDir ? await treeDigest(dest) : await sha256File(dest)) !== rsyncWant) throw new Error(`rsync result differs from the new version (${scenario}/${mode})`);
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
          print({ scenario, mode, wireRatio: round3(fedWire / r.wireBytes), timeRatio: round3(f.wallMs / r.wallMs), sizeMiB: volumes.sizeMiB, reps: args.reps });
          rmSync(destDir, { recursive: true, force: true });
          nv.done();
        }
        await sourceAgent?.stop();
      } catch (err) {
        sourceAgent?.kill();
        throw err;
      }
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
