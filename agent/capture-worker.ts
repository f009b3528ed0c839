/** Worker thread of agent/parallel-capture.ts: chunks and hashes one segment of a file. */
import { closeSync, openSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { ChunkerParams } from '../core/chunking';
import { chunkRange } from './parallel-capture';

interface Job {
  id: number;
  path: string;
  start: number;
  segmentEnd: number;
  fileSize: number;
  params: ChunkerParams;
}

parentPort?.on('message', (job: Job) => {
  try {
    const fd = openSync(job.path, 'r');
    try {
      const r = chunkRange(fd, job.start, job.fileSize, job.params, (end) => end >= job.segmentEnd);
      const ends = Float64Array.from(r.ends);
      const digests = new Uint8Array(r.digests);
      parentPort!.postMessage({ id: job.id, ends, digests }, [ends.buffer, digests.buffer]);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: String((err as Error)?.message ?? err) });
  }
});
parentPort?.postMessage({ ready: true });
