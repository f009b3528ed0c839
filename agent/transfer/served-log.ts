/**
 * The chunk endpoint's audit trail, when an operator asks for one (FEDFLOW_SERVED_LOG=<file>):
 * one JSON line per chunk served, `{"at":ms,"from":site,"to":site,"root":hex,"hash":hex,"n":k}`,
 * `n` counting the times that chunk went to that site from that image. It answers "what crossed
 * to whom, and what crossed twice" after the fact, e.g. after a partition: the hosts tier checks
 * with it that a resumed transfer asked for no chunk the target had already verified.
 * Appended through one stream, in serve order; a line costs ~230 bytes per chunk served.
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ServedChunk } from './server';

export interface ServedLog {
  onServed(e: ServedChunk): void;
  close(): Promise<void>;
}

export function openServedLog(path: string): ServedLog {
  mkdirSync(dirname(path), { recursive: true });
  const out = createWriteStream(path, { flags: 'a', mode: 0o600 });
  let failed: Error | undefined;
  // An audit trail that cannot be written must not stop transfers: said once, then dropped.
  out.on('error', (err) => {
    if (!failed) console.error(`served log ${path}: ${err.message}; no more chunks are recorded there`);
    failed = err;
  });
  return {
    onServed: (e) => {
      if (!failed) out.write(`${JSON.stringify(e)}\n`);
    },
    close: () => new Promise<void>((resolve) => (failed ? resolve() : out.end(() => resolve()))),
  };
}

/** Reads a served log back (a torn last line, still being written, is left out). */
export function parseServedLog(text: string): ServedChunk[] {
  const out: ServedChunk[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as ServedChunk);
    } catch {
      // The line being written when it was read.
    }
  }
  return out;
}
