/** Worker thread of agent/capture/parallel-capture.ts: chunks and hashes one segment of a file. */
import { closeSync, openSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { chunkRange, type CaptureJob } from './parallel-capture';

parentPort?.on('message', (job: CaptureJob) => {
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
