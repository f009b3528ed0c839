/**
 * The source agent of the delta benchmark: SourceImages and a transfer server on loopback. Runs
 * either in the target's process (`--agents 1`, both agents on one event loop) or as a process of
 * its own (`--agents 2`, the default, as in production where source and target are two agents):
 *
 *   node --import tsx bench/delta-source.ts '<json {imagesDir}>'     (a child with an IPC channel)
 *
 * Protocol over IPC: the source sends {ready, url, control} once its servers listen (the agent is
 * running before a sync starts); {op: 'capture'} → {op: 'captured', root}; {op: 'finish'} → {op:
 * 'finished', figures}, then it exits. `control` is a loopback HTTP endpoint (POST /capture,
 * POST /report) through which a target in a third process drives the same agent over several
 * syncs: bench/delta.ts keeps one source agent per mode, as a site's agent serves round after
 * round.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import type { ChunkerParams } from '../core/chunking';
import { warmCaptureWorkers } from '../agent/capture/parallel-capture';
import { SourceImages } from '../agent/capture/source-images';
import { newTransferStats, startTransferServer, type TransferStats } from '../agent/transfer/server';

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
  /** Where the current sync's counts start (the agent may serve several syncs). */
  private mark = { sockets: 0, bytesServed: 0 };

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

  /** Captures the file in place; the root names the image the server now serves. Starts a sync's counts. */
  async capture(req: CaptureRequest): Promise<{ root: string; chunks: number; totalBytes: number }> {
    this.mark = { sockets: this.sockets.length, bytesServed: this.stats.bytesServed };
    const { manifest } = await this.images.capture(req.volumeId, req.file, req.params, { inPlace: true });
    this.rssAfterCapture = maxRssMB();
    return { root: manifest.rootHash, chunks: manifest.chunks.length, totalBytes: manifest.totalBytes };
  }

  /**
   * The sync's figures, once the target has closed its connections; releases the image `release`
   * (a sync's own image, as the sync workflow does). The agent keeps serving.
   */
  async report(release?: string): Promise<SourceFigures> {
    // The target keeps its connections in its pool to this peer (agent/transfer/client.ts,
    // peerPool): the sync is over, so the idle ones are closed from this side, not left to the
    // keep-alive timeout (30 s).
    this.server.server.closeIdleConnections();
    const mine = this.sockets.slice(this.mark.sockets);
    await Promise.all(mine.map((s) => (s.closed ? undefined : new Promise((resolve) => s.once('close', resolve)))));
    const socketBytes = { toTarget: 0, toSource: 0 };
    for (const s of mine) {
      socketBytes.toTarget += s.bytesWritten ?? 0;
      socketBytes.toSource += s.bytesRead;
    }
    if (release) await this.images.release(release);
    return { socketBytes, chunkFrameBytes: this.stats.bytesServed - this.mark.bytesServed, peakRssMB: maxRssMB(), peakRssAfterCaptureMB: this.rssAfterCapture };
  }

  async stop(): Promise<void> {
    await this.server.close();
    await this.images.close();
  }

  /** report(), then stop(). */
  async finish(release?: string): Promise<SourceFigures> {
    const figures = await this.report(release);
    await this.stop();
    return figures;
  }
}

/** A running source agent's control endpoint (loopback HTTP), for a target in another process. */
function startControl(agent: SourceAgent): Promise<string> {
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = parts.length ? (JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>) : {};
      const done = (p: Promise<unknown>) =>
        p.then(
          (r) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r)),
          (err: unknown) => res.writeHead(500).end(String((err as Error)?.stack ?? err)),
        );
      if (req.url === '/capture') void done(agent.capture(body as unknown as CaptureRequest));
      else if (req.url === '/report') void done(agent.report(body.release as string | undefined));
      else res.writeHead(404).end();
    });
  });
  server.unref();
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

/** The target's side of startControl's endpoint. */
export async function controlCall<T>(control: string, op: 'capture' | 'report', body: unknown): Promise<T> {
  const res = await fetch(`${control}/${op}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) });
  if (!res.ok) throw new Error(`source agent ${op}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

type Msg = { op: 'capture'; req: CaptureRequest } | { op: 'finish'; release?: string };

if (require.main === module) {
  const { imagesDir } = JSON.parse(process.argv[2] ?? '{}') as { imagesDir: string };
  const fail = (err: unknown) => {
    console.error(err);
    process.exit(1);
  };
  SourceAgent.start(imagesDir).then(async (agent) => {
    process.on('message', (m: Msg) => {
      if (m.op === 'capture') agent.capture(m.req).then((r) => process.send!({ op: 'captured', ...r }), fail);
      else if (m.op === 'finish')
        agent.finish(m.release).then((figures) => process.send!({ op: 'finished', figures }, () => process.exit(0)), fail);
    });
    process.send!({ op: 'ready', url: agent.url, control: await startControl(agent) });
  }, fail);
}
