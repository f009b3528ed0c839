/**
 * Pulls a snapshot from another site's agent as a stream: hashed as it arrives, written to a
 * `.part` file, fsync'd at each cursor it reports, and renamed into place only once its sha256 and
 * size match what the source announced. A broken pull resumes from the last reported cursor.
 * Memory use is one HTTP buffer, whatever the snapshot's size.
 */
import { createHash, Hash } from 'node:crypto';
import { createReadStream, existsSync, fsyncSync, openSync, closeSync, renameSync, statSync, truncateSync, writeSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import type { IncomingMessage } from 'node:http';

export interface PullOptions {
  url: string;
  sha256: string;
  sizeBytes: number;
  dest: string;
  /** Bytes already verified and fsync'd by an earlier attempt (the heartbeat cursor). */
  resumeFrom?: number;
  /** Called after each fsync with the new cursor. */
  onCursor?: (cursor: number) => void;
  /** How many bytes between fsync + cursor reports. */
  cursorEvery?: number;
  signal?: AbortSignal;
}

export class SnapshotVerifyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotVerifyError';
  }
}

async function hashPrefix(path: string, length: number, hash: Hash): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1 })) hash.update(chunk as Buffer);
}

function request(url: string, start: number, signal?: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: start > 0 ? { range: `bytes=${start}-` } : {}, signal }, resolve);
    req.on('error', reject);
  });
}

export interface PullResult {
  bytesTransferred: number;
  resumedFrom: number;
}

export async function pullSnapshot(opts: PullOptions): Promise<PullResult> {
  const part = `${opts.dest}.part`;
  let cursor = 0;
  if (opts.resumeFrom && existsSync(part) && statSync(part).size >= opts.resumeFrom) {
    // Bytes past the cursor were never reported as safe, so they are dropped and fetched again.
    cursor = opts.resumeFrom;
    truncateSync(part, cursor);
  } else {
    rmSync(part, { force: true });
  }
  const resumedFrom = cursor;
  const hash = createHash('sha256');
  await hashPrefix(part, cursor, hash);

  const res = await request(opts.url, cursor, opts.signal);
  if (res.statusCode !== (cursor > 0 ? 206 : 200)) {
    let body = '';
    for await (const c of res) body += c;
    throw new Error(`GET ${opts.url} answered ${res.statusCode}: ${body.slice(0, 300)}`);
  }
  const fd = openSync(part, cursor > 0 ? 'a' : 'w');
  const every = opts.cursorEvery ?? 8 << 20;
  let sinceSync = 0;
  let received = 0;
  try {
    for await (const chunk of res) {
      const buf = chunk as Buffer;
      writeSync(fd, buf);
      hash.update(buf);
      cursor += buf.length;
      received += buf.length;
      sinceSync += buf.length;
      if (sinceSync >= every) {
        fsyncSync(fd);
        sinceSync = 0;
        opts.onCursor?.(cursor);
      }
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const digest = hash.digest('hex');
  if (cursor !== opts.sizeBytes || digest !== opts.sha256) {
    rmSync(part, { force: true });
    opts.onCursor?.(0);
    throw new SnapshotVerifyError(
      `snapshot from ${opts.url} failed verification: got ${cursor} bytes sha256 ${digest}, expected ${opts.sizeBytes} bytes sha256 ${opts.sha256}`,
    );
  }
  renameSync(part, opts.dest);
  opts.onCursor?.(cursor);
  return { bytesTransferred: received, resumedFrom };
}
