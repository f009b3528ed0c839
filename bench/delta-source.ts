/**
 * The source agent of the delta benchmark: SourceImages and a transfer server on loopback. Runs
 * either in the target's process (`--agents 1`, both agents on one event loop) or as a process of
 * its own (`--agents 2`, the default, as in production where source and target are two agents):
 *
 *   node --import tsx bench/delta-source.ts '<json {imagesDir}>'     (a child with an IPC channel)
 *
 * Protocol over IPC: the source sends {ready, url} once its server listens (the agent is running
 * before a sync starts); {op: 'capture'} → {op: 'captured', root}; {op: 'finish'} → {op:
 * 'finished', figures}, then it exits.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { ChunkerParams } from '../core/chunking';
import { warmCaptureWorkers } from '../agent/parallel-capture';
import { SourceImages } from '../agent/source-images';
import { newTransferStats, startTransferServer, type TransferStats } from '../agent/transfer-server';

export const BENCH_SECRET = Buffer.alloc(32, 0x5a);

/**
 * Peak RSS of this process, MB. Linux's VmHWM belongs to this process's own address space, made
 * fresh by exec; getrusage's maxRSS is not: it inherits the parent's peak across fork+exec, and the
 * parent holds the generated volumes in memory.
 */
export function maxRssMB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(existsSync('/proc/self/status') ? readFileSync('/proc/self/status', 'utf8') : '');
  return Math.round((m ? Number(m[1]) : process.resourceUsage().maxRSS) / 1024);
}

export interface CaptureRequest {
  file: string;
  volumeId: string;
  params: ChunkerParams;
}

export interface SourceFigures {
  /** Every byte read or written on the transfer server's sockets. */
  socketBytes: { toTarget: number; toSource: number };
  /** Server-side count of framed chunk bytes. */
  chunkFrameBytes: number;
  /** Peak RSS of the source agent's process (MB; in-process: the shared process's). */
  peakRssMB: number;
  peakRssAfterCaptureMB: number;
}

/** The source agent's side; the same code in the target's process or in its own. */
export class SourceAgent {
  private readonly sockets: Socket[] = [];
  private rssAfterCapture = 0;

  private constructor(
    readonly images: SourceImages,
    private readonly server: Awaited<ReturnType<typeof startTransferServer>>,
    private readonly stats: TransferStats,
  ) {
    server.server.on('connection', (s: Socket) => this.sockets.push(s));
  }

  get url(): string {
    return this.server.url;
  }

  /** Starts the agent: its images, its transfer server, and the capture workers (as at agent start-up). */
  static async start(imagesDir: string): Promise<SourceAgent> {
    const images = new SourceImages(imagesDir);
    const stats = newTransferStats();
    const server = await startTransferServer({ site: 'src', images, secret: BENCH_SECRET, stats });
    await warmCaptureWorkers();
    return new SourceAgent(images, server, stats);
  }

  /** Captures the file in place; the root names the image the server now serves. */
  async capture(req: CaptureRequest): Promise<{ root: string; chunks: number; totalBytes: number }> {
    const { manifest } = await this.images.capture(req.volumeId, req.file, req.params, { inPlace: true });
    this.rssAfterCapture = maxRssMB();
    return { root: manifest.rootHash, chunks: manifest.chunks.length, totalBytes: manifest.totalBytes };
  }

  /** Stops serving and reports; releases the image `release` (a sync's own image, as the sync workflow does). */
  async finish(release?: string): Promise<SourceFigures> {
    await this.server.close();
    const socketBytes = { toTarget: 0, toSource: 0 };
    for (const s of this.sockets) {
      socketBytes.toTarget += s.bytesWritten ?? 0;
      socketBytes.toSource += s.bytesRead;
    }
    if (release) await this.images.release(release);
    await this.images.close();
    return { socketBytes, chunkFrameBytes: this.stats.bytesServed, peakRssMB: maxRssMB(), peakRssAfterCaptureMB: this.rssAfterCapture };
  }
}

type Msg = { op: 'capture'; req: CaptureRequest } | { op: 'finish'; release?: string };

if (require.main === module) {
  const { imagesDir } = JSON.parse(process.argv[2] ?? '{}') as { imagesDir: string };
  const fail = (err: unknown) => {
    console.error(err);
    process.exit(1);
  };
  SourceAgent.start(imagesDir).then((agent) => {
    process.on('message', (m: Msg) => {
      if (m.op === 'capture') agent.capture(m.req).then((r) => process.send!({ op: 'captured', ...r }), fail);
      else if (m.op === 'finish')
        agent.finish(m.release).then((figures) => process.send!({ op: 'finished', figures }, () => process.exit(0)), fail);
    });
    process.send!({ op: 'ready', url: agent.url });
  }, fail);
}
