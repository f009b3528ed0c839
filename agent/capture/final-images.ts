/**
 * The cut-over's final image, announced by the source agent to a target that is already waiting.
 *
 * At cut-over the migration starts two activities at once: the source freezes the workload and
 * captures the final image; the target asks the source's endpoint for that image
 * (`GET /finals/<slot>`, a long poll) and pulls it the moment it exists. The target's activity is
 * dispatched before the freeze, so the downtime window no longer holds a trip through the
 * workflow between the two.
 *
 * A slot is named by the SHA-256 of the migration's cut-over key (workflow id, run id), so it is
 * 64 hex digits like a manifest root, and a transfer token scoped to it unlocks nothing else.
 * What is announced is metadata only (root, counts, the frozen workload's digest): the chunks
 * still need a token for the root, and the target checks everything it pulls against the root.
 */
import type { WorkloadDigest } from '../../core/migration';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ManifestSummary } from '../../core/manifest';
import { writeFileDurable, writeFileDurableAsync } from '../durable-files';

export interface FinalImage {
  manifest: ManifestSummary;
  /**
   * The frozen workload's digest. Absent while the source still verifies the frozen data (a
   * workload whose freeze stops it is verified on a private boot after the capture, beside the
   * target's pull): the source announces the image again with it, and the target asks again.
   */
  digest?: WorkloadDigest;
  frozenAtMs: number;
  /** Hybrid mode: the codec the source chose on sample chunks of the image. */
  hybridCodec?: { codec: 'none' | 'lz4' | 'zstd'; level?: number; goodputMBps: number };
}

/** Announcements are kept this long; a target that comes later has lost its migration anyway. */
const KEEP_MS = 10 * 60_000;

/** The slot for a cut-over key: hex SHA-256, the shape transfer tokens scope to. */
export function finalSlot(cutoverKey: string): string {
  return createHash('sha256').update(`fedflow-final\0${cutoverKey}`).digest('hex');
}

const SLOT = /^[0-9a-f]{64}$/;

/**
 * Announcements live in memory and, when given a directory, in a small file per slot too: an
 * agent restarted after the freeze still answers the target that waits for its image.
 */
export class FinalImages {
  private readonly published = new Map<string, { image: FinalImage; at: number }>();
  private readonly waiters = new Map<string, Set<(image: FinalImage) => boolean>>();
  private readonly freezes = new Map<string, number>();
  /** The announcements' writes, one after another: a slot's newer announcement lands last. */
  private writes: Promise<void> = Promise.resolve();

  constructor(private readonly dir?: string) {
    if (!dir || !existsSync(dir)) return;
    const now = Date.now();
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (!name.endsWith('.json') || now - statSync(path).mtimeMs > KEEP_MS) rmSync(path, { force: true });
    }
  }

  /**
   * Announces a slot's image (again, on a retried capture: the newest wins) and wakes its waiters,
   * then writes it down (fsynced), after the waiters' answers have gone out: a waiting target is
   * inside the downtime window, the file is for an agent restarted later. The write and its fsyncs
   * run on the thread pool: the target asks this agent for the image's manifest right after its
   * answer, and the event loop that serves it must not be held by a disk flush meanwhile.
   */
  async publish(slot: string, image: FinalImage): Promise<void> {
    if (!SLOT.test(slot)) throw new Error(`final image slot '${slot}' is not 64 lower-case hex digits`);
    const now = Date.now();
    for (const [s, p] of this.published) {
      if (now - p.at <= KEEP_MS) continue;
      this.published.delete(s);
      if (this.dir) rmSync(join(this.dir, `${s}.json`), { force: true });
    }
    this.published.set(slot, { image, at: now });
    // Each waiter takes the image if it is what it waits for (and then leaves the set).
    for (const w of [...(this.waiters.get(slot) ?? [])]) w(image);
    await new Promise((r) => setImmediate(r));
    if (this.dir) {
      mkdirSync(this.dir, { recursive: true });
      // An agent that crashes right after announcing still has it when it is back (awaited: the
      // caller goes on only once it is on disk).
      const path = join(this.dir, `${slot}.json`);
      const write = this.writes.then(() => writeFileDurableAsync(path, JSON.stringify(image)));
      this.writes = write.catch(() => undefined);
      await write;
    }
  }

  /**
   * The time a slot's cut-over first froze its workload, written down (fsynced) just before the
   * freeze is asked for: a capture retried after a crash, even of this whole process, finds it and
   * counts the downtime from it. Returns the first time recorded for the slot (`atMs` if none).
   */
  firstFreeze(slot: string, atMs: number): number {
    if (!SLOT.test(slot)) throw new Error(`final image slot '${slot}' is not 64 lower-case hex digits`);
    const held = this.freezes.get(slot);
    if (held !== undefined) return held;
    const path = this.dir ? join(this.dir, `${slot}.frozen.json`) : undefined;
    if (path && existsSync(path)) {
      try {
        const { frozenAtMs } = JSON.parse(readFileSync(path, 'utf8')) as { frozenAtMs: unknown };
        if (typeof frozenAtMs === 'number' && Number.isFinite(frozenAtMs)) {
          this.freezes.set(slot, frozenAtMs);
          return frozenAtMs;
        }
      } catch {
        // Torn or foreign: written again below.
      }
    }
    this.freezes.set(slot, atMs);
    if (path) {
      mkdirSync(this.dir!, { recursive: true });
      writeFileDurable(path, JSON.stringify({ frozenAtMs: atMs }));
    }
    return atMs;
  }

  get(slot: string): FinalImage | undefined {
    const held = this.published.get(slot)?.image;
    if (held || !this.dir || !SLOT.test(slot)) return held;
    try {
      const image = JSON.parse(readFileSync(join(this.dir, `${slot}.json`), 'utf8')) as FinalImage;
      this.published.set(slot, { image, at: Date.now() });
      return image;
    } catch {
      return undefined;
    }
  }

  /**
   * The slot's image as soon as one is published for which `ready` holds (by default, any), or
   * undefined after `timeoutMs` or on abort.
   */
  wait(slot: string, timeoutMs: number, signal?: AbortSignal, ready: (image: FinalImage) => boolean = () => true): Promise<FinalImage | undefined> {
    const now = this.get(slot);
    if (now && ready(now)) return Promise.resolve(now);
    return new Promise((resolve) => {
      let ws = this.waiters.get(slot);
      if (!ws) this.waiters.set(slot, (ws = new Set()));
      const done = (image: FinalImage | undefined) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        ws!.delete(waiter);
        if (ws!.size === 0 && this.waiters.get(slot) === ws) this.waiters.delete(slot);
        resolve(image);
      };
      // Called on every announcement of the slot; one that is not ready yet keeps it waiting.
      const waiter = (image: FinalImage) => {
        if (!ready(image)) return false;
        done(image);
        return true;
      };
      const onAbort = () => done(undefined);
      const timer = setTimeout(() => done(undefined), timeoutMs);
      ws.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
