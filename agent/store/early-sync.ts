/** Early write-back while assemble() writes a volume (see EarlySync). */
import type { promises as fs } from 'node:fs';

/** While assemble writes a volume, an fdatasync is started every this many bytes (see EarlySync). */
const EARLY_SYNC_BYTES = 32 << 20;

/**
 * Starts an fdatasync of a file being written every EARLY_SYNC_BYTES (one at a time, not waited
 * for), so that the disk writes the volume back while the rest of it is still being written and
 * the fsync at the end waits only for the tail. Never instead of that final fsync; an error of an
 * early one is thrown by settle() (an fsync error may be reported only once, so it is never
 * dropped).
 */
export class EarlySync {
  private pending = 0;
  private running: Promise<void> | undefined;
  private failed: unknown;
  constructor(private readonly out: fs.FileHandle) {}
  wrote(n: number): void {
    this.pending += n;
    if (this.pending < EARLY_SYNC_BYTES || this.running) return;
    this.pending = 0;
    this.running = this.out.datasync().then(
      () => void (this.running = undefined),
      (err: unknown) => {
        this.failed ??= err;
        this.running = undefined;
      },
    );
  }
  /** Waits for an early sync under way; throws the first one that failed. */
  async settle(): Promise<void> {
    await this.running;
    if (this.failed !== undefined) throw this.failed;
  }
}
