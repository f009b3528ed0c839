/**
 * The fedflow side of the delta benchmark, run as a child process so that its peak RSS is the
 * agent's alone (not the parent's, which holds the generated volumes in memory).
 *
 *   node --import tsx bench/delta-fedflow.ts '<json Job>'
 *
 * Prints one JSON line (a FedflowFigures) to stdout. Both sites run in this process: the source
 * (SourceImages + transfer server on loopback) and the target (ChunkStore + transfer client), as
 * two agents on one machine would, minus the second process.
 *
 * Job 'baseline' (untimed set-up): capture the old file and pull all of it into the target store,
 * keeping its manifest as the baseline, and write the old version at the target's volume path
 * (`outFile`), as rsync's DEST holds it. Job 'sync' (timed): capture the new file, serve it, pull
 * the missing chunks, assemble the new file at the target over its old version (which assemble
 * uses as its basis); then (untimed) check it, put the old version back and remove what the sync
 * added, so the next run starts from the same baseline.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { ChunkStore, type AssembleFigures } from '../agent/chunk-store';
import { SourceImages } from '../agent/source-images';
import { newTransferStats, startTransferServer } from '../agent/transfer-server';
import { fetchManifest, pullMissingChunks, type ManifestFetchInfo } from '../agent/transfer-client';
import { claimsFor, issueToken } from '../agent/transfer-token';
import { DEFAULT_PLANS, TRANSFER_CHUNK_PRESETS } from '../core/transfer-plan';

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
  rssBeforeMB: number;
  peakRssMB: number;
  /** Peak RSS (MB) as it stood at the end of each phase: shows which phase grows memory. */
  peakRssAfterMB: { open: number; capture: number; pull: number; assemble: number };
}

const SECRET = Buffer.alloc(32, 0x5a);
/**
 * Peak RSS of this process, MB. Linux's VmHWM belongs to this process's own address space, made
 * fresh by exec; getrusage's maxRSS is not: it inherits the parent's peak across fork+exec, and the
 * parent holds the generated volumes in memory.
 */
function maxRssMB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(existsSync('/proc/self/status') ? readFileSync('/proc/self/status', 'utf8') : '');
  return Math.round((m ? Number(m[1]) : process.resourceUsage().maxRSS) / 1024);
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
  // The target agent runs already, with its store open: opening it is not part of a sync.
  const store = await ChunkStore.open(job.storeDir);
  const rssBeforeMB = process.memoryUsage().rss / 2 ** 20;
  const rssOpen = maxRssMB();

  const t0 = performance.now();
  const images = new SourceImages(job.imagesDir);
  const { manifest: captured } = await images.capture(`bench-${job.mode}`, job.file, params, { inPlace: true });
  const tCapture = performance.now();
  const rssCapture = maxRssMB();
  const stats = newTransferStats();
  const server = await startTransferServer({ site: 'src', images, secret: SECRET, stats });
  // Count at the sockets: HTTP headers, request bodies, manifest and chunk frames, all of it.
  const sockets: Socket[] = [];
  server.server.on('connection', (s: Socket) => sockets.push(s));
  let figures;
  let tManifest = 0;
  let tPull = 0;
  let manifestBytes = 0;
  let manifestInfo: ManifestFetchInfo | undefined;
  let rssPull = 0;
  try {
    const token = issueToken(SECRET, claimsFor(captured.rootHash, 'src', 'dst', Date.now(), 3600));
    const before = stats.bytesServed;
    const manifest = await fetchManifest(server.url, captured.rootHash, token, undefined, {
      bases: store.recentManifestRoots(),
      loadBase: (r) => store.getManifest(r),
      onFetched: (info) => (manifestInfo = info),
    });
    manifestBytes = manifestInfo?.bodyBytes ?? 0;
    if (stats.bytesServed !== before) throw new Error('manifest fetch moved chunk bytes: the stats are not what this benchmark assumes');
    tManifest = performance.now();
    figures = await pullMissingChunks({
      endpoint: server.url,
      root: captured.rootHash,
      token,
      manifest,
      store,
      plan: { codec: spec, streams: plan.streams, batchBytes: plan.batchBytes },
      to: 'dst',
    });
    await store.putManifest(manifest, 'baseline');
    tPull = performance.now();
    rssPull = maxRssMB();
  } finally {
    await server.close();
    await images.close();
  }
  const socketBytes = { toTarget: 0, toSource: 0 };
  for (const s of sockets) {
    socketBytes.toTarget += s.bytesWritten ?? 0;
    socketBytes.toSource += s.bytesRead;
  }
  let tAssemble = tPull;
  let assembleFigures: AssembleFigures | undefined;
  if (job.kind === 'sync') {
    await store.assemble(captured.rootHash, job.outFile, { basisPath: job.outFile, inPlace: true, onFigures: (f) => (assembleFigures = f) });
    tAssemble = performance.now();
  } else {
    // Untimed set-up: the target's volume file holds the old version, as rsync's DEST does.
    await store.assemble(captured.rootHash, job.outFile);
  }
  const wallMs = tAssemble - t0;
  const peakRssMB = maxRssMB();

  const out: FedflowFigures = {
    kind: job.kind,
    mode: job.mode,
    root: captured.rootHash,
    wallMs: Math.round(wallMs),
    phasesMs: { capture: Math.round(tCapture - t0), manifest: Math.round(tManifest - tCapture), pull: Math.round(tPull - tManifest), assemble: Math.round(tAssemble - tPull) },
    ...(assembleFigures ? { assemble: { ...assembleFigures, copyMs: Math.round(assembleFigures.copyMs), writeMs: Math.round(assembleFigures.writeMs), syncMs: Math.round(assembleFigures.syncMs) } } : {}),
    socketBytes,
    chunkFrameBytes: stats.bytesServed,
    manifestBytes,
    ...(manifestInfo ? { manifest: { format: manifestInfo.format, delta: manifestInfo.baseRoot !== undefined, ...(manifestInfo.fellBack ? { fellBack: manifestInfo.fellBack } : {}) } } : {}),
    chunks: captured.chunks.length,
    chunksSent: figures.chunksFetched,
    rawBytesSent: figures.rawBytes,
    corruptRefetched: figures.corruptRefetched,
    volumeBytes: captured.totalBytes,
    rssBeforeMB: Math.round(rssBeforeMB),
    peakRssMB: Math.round(peakRssMB),
    peakRssAfterMB: { open: rssOpen, capture: rssCapture, pull: rssPull, assemble: maxRssMB() },
  };
  if (job.kind === 'sync') {
    // Untimed: check the result, then put the store back to the baseline for the next scenario.
    out.assembledSha256 = await sha256File(job.outFile);
    // Put the old version back at the target's volume path for the next run.
    if (captured.rootHash !== job.baselineRoot) await store.assemble(job.baselineRoot!, job.outFile, { basisPath: job.outFile, inPlace: true });
    const keep = new Set((await store.getManifest(job.baselineRoot!))?.chunks.map((c) => c.hash));
    if (keep.size === 0) throw new Error(`baseline manifest ${job.baselineRoot} is not in ${job.storeDir}`);
    if (captured.rootHash !== job.baselineRoot) {
      await store.deleteManifest(captured.rootHash);
      await store.deleteMany(captured.chunks.map((c) => c.hash).filter((h) => !keep.has(h)));
    }
  }
  // The source keeps what it captured (in place: only the manifests) as later delta bases; a sync's
  // own image is released, as the sync workflow releases each round's image.
  if (job.kind === 'sync' && captured.rootHash !== job.baselineRoot) await images.release(captured.rootHash);
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
