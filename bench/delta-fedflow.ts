/**
 * The fedflow side of the delta benchmark, run as a child process so that its peak RSS is the
 * agents' own (not the parent's, which holds the generated volumes in memory).
 *
 *   node --import tsx bench/delta-fedflow.ts '<json Job>'
 *
 * Prints one JSON line (a FedflowFigures) to stdout. This process is the target agent (ChunkStore
 * + transfer client); the source agent (SourceImages + transfer server on loopback,
 * bench/delta-source.ts) runs as a second process (`agents: 2`, the default: as in production,
 * where they are two agents, and as rsync runs a sender and a receiver), or in this one
 * (`agents: 1`, one event loop for both). Either way it is running before the timed part starts.
 *
 * Job 'baseline' (untimed set-up): capture the old file and pull all of it into the target store,
 * keeping its manifest as the baseline, and write the old version at the target's volume path
 * (`outFile`), as rsync's DEST holds it. Job 'sync' (timed): capture the new file, serve it, pull
 * the missing chunks, assemble the new file at the target over its old version (which assemble
 * uses as its basis); then (untimed) check it, put the old version back and remove what the sync
 * added, so the next run starts from the same baseline.
 */
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { ChunkStore, type AssembleFigures } from '../agent/store/chunk-store';
import { fetchManifest, pullMissingChunks, type ManifestFetchInfo } from '../agent/transfer/client';
import { claimsFor, issueToken } from '../agent/transfer/token';
import { DEFAULT_PLANS, TRANSFER_CHUNK_PRESETS } from '../core/transfer-plan';
import { BENCH_SECRET, controlCall, maxRssMB, SourceAgent, type CaptureRequest, type SourceFigures } from './delta-source';

export interface Job {
  kind: 'baseline' | 'sync';
  mode: 'datacenter' | 'internet';
  /** Volume file at the source. */
  file: string;
  storeDir: string;
  imagesDir: string;
  /** The target's volume file: the old version after 'baseline', the new one after a 'sync'. */
  outFile: string;
  /** Root of the baseline manifest, to undo the sync's additions afterwards ('sync' only). */
  baselineRoot?: string;
  /** 2 (default): the source agent in a process of its own; 1: in this one. */
  agents?: 1 | 2;
  /**
   * A source agent that is already running (agents: 2): its transfer endpoint and its control
   * endpoint (bench/delta-source.ts). Without it, this process starts one for the job.
   */
  source?: { url: string; control: string };
}

export interface FedflowFigures {
  kind: Job['kind'];
  mode: Job['mode'];
  root: string;
  wallMs: number;
  phasesMs: { capture: number; manifest: number; pull: number; assemble: number };
  /** Where assemble took the bytes from and how long its steps took ('sync' only). */
  assemble?: AssembleFigures;
  /** Every byte read or written on the loopback sockets of the transfer server. */
  socketBytes: { toTarget: number; toSource: number };
  /** Server-side counts: framed chunk bytes; the manifest response body(ies) and how it came. */
  chunkFrameBytes: number;
  manifestBytes: number;
  manifest?: { format: 'json' | 'binary'; delta: boolean; fellBack?: string };
  chunks: number;
  chunksSent: number;
  rawBytesSent: number;
  corruptRefetched: number;
  volumeBytes: number;
  assembledSha256?: string;
  agents: 1 | 2;
  rssBeforeMB: number;
  /** Peak RSS (MB) of this process: the target agent (with agents: 1, both agents). */
  peakRssMB: number;
  /** Peak RSS (MB) of the source agent's process (agents: 2), its peak after the capture. */
  source?: { peakRssMB: number; peakRssAfterCaptureMB: number };
  /** Peak RSS (MB) of this process as it stood at the end of each phase: shows which phase grows memory. */
  peakRssAfterMB: { open: number; capture: number; pull: number; assemble: number };
}

/**
 * Extra node flags for the agents' processes, from FEDFLOW_BENCH_NODE_ARGS (space-separated), e.g.
 * "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile them (NODE_OPTIONS does not take --cpu-prof).
 */
export function benchNodeArgs(): string[] {
  return (process.env.FEDFLOW_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
}

/** The source agent as the target sees it: in this process, or a child process over IPC. */
interface Source {
  url: string;
  capture(req: CaptureRequest): Promise<{ root: string; chunks: number; totalBytes: number }>;
  finish(release?: string): Promise<SourceFigures>;
}

/** A source agent running in another process, driven through its control endpoint; it keeps running after the job. */
function remoteSource(s: { url: string; control: string }): Source {
  return {
    url: s.url,
    capture: (req) => controlCall(s.control, 'capture', req),
    finish: (release) => controlCall(s.control, 'report', { release }),
  };
}

async function inProcessSource(imagesDir: string): Promise<Source> {
  const agent = await SourceAgent.start(imagesDir);
  return { url: agent.url, capture: (req) => agent.capture(req), finish: (release) => agent.finish(release) };
}

/** Starts bench/delta-source.ts as its own process and waits until it serves. */
function childSource(imagesDir: string): Promise<Source> {
  const child = fork(join(__dirname, 'delta-source.ts'), [JSON.stringify({ imagesDir })], { execArgv: [...benchNodeArgs(), '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  type Reply = { op: 'ready'; url: string } | { op: 'captured'; root: string; chunks: number; totalBytes: number } | { op: 'finished'; figures: SourceFigures };
  let waiting: { op: Reply['op']; resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  const expect = (op: Reply['op']) => new Promise<Reply>((resolve, reject) => (waiting = { op, resolve, reject }));
  child.on('message', (m: Reply) => {
    const w = waiting;
    waiting = undefined;
    if (!w || w.op !== m.op) return w?.reject(new Error(`source agent answered ${m.op}, expected ${w.op}`));
    w.resolve(m);
  });
  child.on('exit', (code) => waiting?.reject(new Error(`source agent exited with code ${code}`)));
  return expect('ready').then((r) => ({
    url: (r as { url: string }).url,
    capture: async (req) => {
      const p = expect('captured');
      child.send({ op: 'capture', req });
      const { root, chunks, totalBytes } = (await p) as Extract<Reply, { op: 'captured' }>;
      return { root, chunks, totalBytes };
    },
    finish: async (release) => {
      const p = expect('finished');
      child.send({ op: 'finish', release });
      return ((await p) as Extract<Reply, { op: 'finished' }>).figures;
    },
  }));
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const b of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(b as Buffer);
  return h.digest('hex');
}

async function runJob(job: Job): Promise<FedflowFigures> {
  const plan = DEFAULT_PLANS[job.mode];
  const params = TRANSFER_CHUNK_PRESETS[plan.chunkPreset];
  const spec = plan.codec === 'zstd' ? { codec: 'zstd' as const, level: plan.level } : { codec: plan.codec };
  const agents = job.agents ?? 2;
  // Both agents run already when a sync starts: the target with its store open, the source
  // serving (and, in its own process, with its capture workers loaded).
  const store = await ChunkStore.open(job.storeDir);
  const source = job.source ? remoteSource(job.source) : agents === 2 ? await childSource(job.imagesDir) : await inProcessSource(job.imagesDir);
  const rssBeforeMB = process.memoryUsage().rss / 2 ** 20;
  const rssOpen = maxRssMB();

  const t0 = performance.now();
  let sourceFigures: SourceFigures | undefined;
  let captured: { root: string; chunks: number; totalBytes: number };
  try {
    captured = await source.capture({ file: job.file, volumeId: `bench-${job.mode}`, params });
  } catch (err) {
    await source.finish().catch(() => undefined);
    throw err;
  }
  const root = captured.root;
  const tCapture = performance.now();
  const rssCapture = maxRssMB();
  let figures;
  let manifest;
  let tManifest = 0;
  let tPull = 0;
  let manifestInfo: ManifestFetchInfo | undefined;
  let rssPull = 0;
  try {
    const token = issueToken(BENCH_SECRET, claimsFor(root, 'src', 'dst', Date.now(), 3600));
    manifest = await fetchManifest(source.url, root, token, undefined, {
      bases: store.recentManifestRoots(),
      loadBase: (r) => store.getManifest(r),
      onFetched: (info) => (manifestInfo = info),
    });
    tManifest = performance.now();
    figures = await pullMissingChunks({
      endpoint: source.url,
      root,
      token,
      manifest,
      store,
      plan: { codec: spec, streams: plan.streams, batchBytes: plan.batchBytes },
      to: 'dst',
    });
    await store.putManifest(manifest, 'baseline');
    tPull = performance.now();
    rssPull = maxRssMB();
  } catch (err) {
    await source.finish().catch(() => undefined);
    throw err;
  }
  let tAssemble = tPull;
  let assembleFigures: AssembleFigures | undefined;
  try {
    if (job.kind === 'sync') {
      await store.assemble(root, job.outFile, { basisPath: job.outFile, inPlace: true, onFigures: (f) => (assembleFigures = f) });
      tAssemble = performance.now();
    } else {
      // Untimed set-up: the target's volume file holds the old version, as rsync's DEST does.
      await store.assemble(root, job.outFile);
    }
  } finally {
    // Untimed. The source keeps what it captured (in place: only the manifests) as later delta
    // bases; a sync's own image is released, as the sync workflow releases each round's image.
    sourceFigures = await source.finish(job.kind === 'sync' && root !== job.baselineRoot ? root : undefined);
  }
  const wallMs = tAssemble - t0;
  const peakRssMB = maxRssMB();

  const out: FedflowFigures = {
    kind: job.kind,
    mode: job.mode,
    root,
    wallMs: Math.round(wallMs),
    phasesMs: { capture: Math.round(tCapture - t0), manifest: Math.round(tManifest - tCapture), pull: Math.round(tPull - tManifest), assemble: Math.round(tAssemble - tPull) },
    ...(assembleFigures ? { assemble: { ...assembleFigures, copyMs: Math.round(assembleFigures.copyMs), writeMs: Math.round(assembleFigures.writeMs), syncMs: Math.round(assembleFigures.syncMs) } } : {}),
    socketBytes: sourceFigures.socketBytes,
    chunkFrameBytes: sourceFigures.chunkFrameBytes,
    manifestBytes: manifestInfo?.bodyBytes ?? 0,
    ...(manifestInfo ? { manifest: { format: manifestInfo.format, delta: manifestInfo.baseRoot !== undefined, ...(manifestInfo.fellBack ? { fellBack: manifestInfo.fellBack } : {}) } } : {}),
    chunks: captured.chunks,
    chunksSent: figures.chunksFetched,
    rawBytesSent: figures.rawBytes,
    corruptRefetched: figures.corruptRefetched,
    volumeBytes: captured.totalBytes,
    agents,
    rssBeforeMB: Math.round(rssBeforeMB),
    peakRssMB: Math.round(peakRssMB),
    ...(agents === 2 ? { source: { peakRssMB: sourceFigures.peakRssMB, peakRssAfterCaptureMB: sourceFigures.peakRssAfterCaptureMB } } : {}),
    peakRssAfterMB: { open: rssOpen, capture: rssCapture, pull: rssPull, assemble: maxRssMB() },
  };
  if (job.kind === 'sync') {
    // Untimed: check the result, then put the store back to the baseline for the next scenario.
    out.assembledSha256 = await sha256File(job.outFile);
    // Put the old version back at the target's volume path for the next run.
    if (root !== job.baselineRoot) await store.assemble(job.baselineRoot!, job.outFile, { basisPath: job.outFile, inPlace: true });
    const keep = new Set((await store.getManifest(job.baselineRoot!))?.chunks.map((c) => c.hash));
    if (keep.size === 0) throw new Error(`baseline manifest ${job.baselineRoot} is not in ${job.storeDir}`);
    if (root !== job.baselineRoot) {
      await store.deleteManifest(root);
      await store.deleteMany(manifest.chunks.map((c) => c.hash).filter((h) => !keep.has(h)));
    }
  }
  await store.close();
  return out;
}

if (require.main === module) {
  const job = JSON.parse(process.argv[2] ?? '') as Job;
  runJob(job).then(
    (f) => {
      process.stdout.write(`${JSON.stringify(f)}\n`);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
