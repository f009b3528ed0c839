/**
 * `npm run bench -- capture-reuse [--files 870] [--mib 64] [--captures 8] [--shift]`
 *
 * The source's final capture alone (agent/capture/dir-capture.ts captureDirectory), on a directory
 * volume with the chunk count of a 1 GiB-class volume: `--files` files (sizes spread around
 * `--mib` MiB in all, nested two levels) cut into small chunks (FASTCDC_V1 256 B / 1 KiB / 4 KiB:
 * ~58 000 chunks by default). The first capture reads everything; each later one comes after a
 * small change (16 KiB rewritten at the start of one file; with `--shift`, also 3000 bytes
 * appended to an early file, so every entry after it moves) and reuses the previous capture's
 * chunks, as a cut-over's capture does. That reuse is a pass over every chunk of the volume, the
 * step of the capture that grows with the volume, not with the change.
 *
 * One JSON line per capture after the first (its ms and reuse figures), then a summary line with
 * the median. Files are a second old before each capture (the reuse rule trusts no file stat'ed
 * within 1 s of its last write). Printed, not asserted.
 */
import { appendFileSync, closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureDirectory, type PriorCapture } from '../agent/capture/dir-capture';
import { seededBytes } from '../test/unit/delta/seeded-bytes';

const PARAMS = { minSize: 256, avgSize: 1024, maxSize: 4096 };

interface Args {
  files: number;
  mib: number;
  captures: number;
  shift: boolean;
}

function parseArgs(argv: string[]): Args {
  const out: Args = { files: 870, mib: 64, captures: 8, shift: false };
  const keys: Record<string, 'files' | 'mib' | 'captures'> = { '--files': 'files', '--mib': 'mib', '--captures': 'captures' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--shift') {
      out.shift = true;
      continue;
    }
    const key = keys[argv[i]!];
    const v = Number(argv[i + 1]);
    if (!key) throw new Error(`unknown option '${argv[i]}'; expected --files N, --mib N, --captures N or --shift`);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${argv[i]} is '${argv[i + 1]}'; expected a positive integer`);
    out[key] = v;
    i++;
  }
  if (out.files < 200) throw new Error(`--files is ${out.files}; expected at least 200 (one file changes per capture)`);
  if (out.captures < 2) throw new Error(`--captures is ${out.captures}; expected at least 2 (the first reads everything)`);
  return out;
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

export async function run(argv: string[]): Promise<void> {
  const a = parseArgs(argv);
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-bench-capture-'));
  try {
    const vol = join(dir, 'vol');
    const paths: string[] = [];
    const mean = (a.mib << 20) / a.files;
    for (let f = 0; f < a.files; f++) {
      const d = join(vol, `base-${Math.floor(f / 100)}`, `rel-${Math.floor(f / 10) % 10}`);
      mkdirSync(d, { recursive: true });
      const p = join(d, `seg-${f}`);
      writeFileSync(p, seededBytes(Math.round(mean * (0.25 + 1.5 * (((f * 7919) % 1000) / 1000))), f + 1));
      paths.push(p);
    }
    let prior: PriorCapture | undefined;
    const times: number[] = [];
    for (let c = 0; c < a.captures; c++) {
      await new Promise((r) => setTimeout(r, 1100));
      if (c > 0) {
        const fd = openSync(paths[(c * 131) % paths.length]!, 'r+');
        writeSync(fd, seededBytes(16 << 10, 100 + c), 0, 16 << 10, 0);
        closeSync(fd);
        if (a.shift) appendFileSync(paths[100 + (c % 100)]!, seededBytes(3000, 200 + c));
      }
      const t = performance.now();
      const r = await captureDirectory(vol, { volumeId: 'v', params: PARAMS, freshPath: join(dir, `fresh-${c}`), ...(prior ? { prior } : {}) });
      const ms = Math.round((performance.now() - t) * 10) / 10;
      prior = r.next;
      if (c === 0) {
        console.error(`first capture: ${r.manifest.chunks.length} chunks, ${(r.manifest.totalBytes / 1e6).toFixed(1)} MB, ${ms} ms`);
        continue;
      }
      times.push(ms);
      console.log(JSON.stringify({ bench: 'capture-reuse', capture: c, shift: a.shift, chunks: r.manifest.chunks.length, captureMs: ms, reuse: r.figures }));
    }
    console.log(JSON.stringify({ bench: 'capture-reuse', summary: true, shift: a.shift, files: a.files, captures: times.length, medianCaptureMs: median(times), minCaptureMs: Math.min(...times), maxCaptureMs: Math.max(...times) }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
