/**
 * `npm run bench -- final-round [--files 870] [--mib 64] [--rounds 5] [--change-kib 1536]`
 *
 * The target's side of a cut-over's final round, step by step, on a directory volume with a
 * realistic number of chunks (issue 14: the final round of a 1 GiB PostgreSQL volume lists
 * ~58 000 chunks; its work per chunk, not its changed bytes, is what still grows with the volume).
 *
 * Chunk count, not bytes, is what the steps measured here scale with, so the volume is small in
 * bytes and cut into small chunks (FASTCDC_V1 with 256 B / 1 KiB / 4 KiB): `--files` files (sizes
 * spread around `--mib` MiB in all, in nested directories) give ~58 000 chunks by default. Set-up,
 * untimed: a source agent (SourceImages and a real transfer server on loopback, in this process),
 * a target store; the pre-copy round (the whole volume pulled into the store, kept as baseline,
 * and laid down as the target's volume directory, as `layDownEarly` does). Then `--rounds` times:
 * a few files change at the source (`--change-kib` in all: ranges rewritten in a few files, one
 * new file, one removed), the source captures again (reusing the previous capture's chunks, as
 * the real final capture does: timed as `sourceCapture`), and the target runs the final round's
 * steps, each timed on its own, exactly as `pullAttempt` in activities/sync.ts runs them:
 *
 *   manifest      fetchManifest: the manifest fetched as a delta against the store's recent
 *                 manifests, decoded and checked against its root
 *   pull          pullMissingChunks: the diff against the store and the changed chunks fetched,
 *                 verified and stored (with its own `diffMs`, the diff alone, measured before it)
 *   putManifest   store.putManifest(manifest, 'baseline'), written beside the patch
 *                 (keepingBaseline, as pullAttempt does for a pre-copy round; a cut-over's final
 *                 round stores it 2 s after its patch, baselineLater): then putManifestMs is the two together,
 *                 `baselineAndPatchMs`; with `--sequential`, one after the other, each timed alone
 *   patch         extractVolume: the in-place patch of the volume directory, its records and fsyncs
 *   totalMs       manifest + pull + baselineAndPatch (the bench's own diffMs is not part of it)
 *
 * One JSON line per round, then one with the per-manifest CPU steps alone on the last round's
 * manifest (verifyManifest, the binary encoding and decoding, a decoding and its check done both
 * ways (verifyManifest on the entries, verifyDecodedManifest on the decoder's digests),
 * JSON.stringify, the diff), then a
 * summary line (medians). Printed, not asserted.
 */
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SourceImages } from '../agent/capture/source-images';
import { extractVolume } from '../agent/capture/volume-extract';
import { ChunkStore } from '../agent/store/chunk-store';
import { fetchManifest, pullMissingChunks } from '../agent/transfer/client';
import { startTransferServer } from '../agent/transfer/server';
import { claimsFor, issueToken } from '../agent/transfer/token';
import { diffManifest } from '../core/manifest-diff';
import { decodeManifest, decodeManifestWithDigests, encodeManifest, firstIndexOf } from '../core/manifest-delta';
import type { Manifest } from '../core/manifest';
import { verifyDecodedManifest, verifyManifest } from '../agent/capture/manifest-builder';
import { keepingBaseline } from '../activities/sync';
import { seededBytes } from '../test/unit/delta/seeded-bytes';

/** Small chunks: the chunk count of a 1 GiB-class volume in a few tens of MiB. */
const PARAMS = { minSize: 256, avgSize: 1024, maxSize: 4096 };
const SECRET = Buffer.alloc(32, 0x5a);
const PLAN = { codec: { codec: 'lz4' as const }, streams: 2, batchBytes: 8 << 20 };

interface Args {
  files: number;
  mib: number;
  rounds: number;
  changeKiB: number;
  sequential: boolean;
}

function parseArgs(argv: string[]): Args {
  const out: Args = { files: 870, mib: 64, rounds: 5, changeKiB: 1536, sequential: false };
  const keys: Record<string, 'files' | 'mib' | 'rounds' | 'changeKiB'> = { '--files': 'files', '--mib': 'mib', '--rounds': 'rounds', '--change-kib': 'changeKiB' };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--sequential') {
      out.sequential = true;
      i--;
      continue;
    }
    const key = keys[argv[i]!];
    const v = Number(argv[i + 1]);
    if (!key) throw new Error(`unknown option '${argv[i]}'; expected --files N, --mib N, --rounds N, --change-kib N or --sequential`);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${argv[i]} is '${argv[i + 1]}'; expected a positive integer`);
    out[key] = v;
  }
  if (out.files < 20) throw new Error(`--files is ${out.files}; expected at least 20 (a few change every round)`);
  return out;
}

/** `files` files of sizes spread around mib/files MiB (0.25× to 1.75×), 10 per directory, two levels deep. */
function buildVolume(vol: string, a: Args): string[] {
  const mean = (a.mib << 20) / a.files;
  const paths: string[] = [];
  for (let f = 0; f < a.files; f++) {
    const dir = join(vol, `base-${Math.floor(f / 100)}`, `rel-${Math.floor(f / 10) % 10}`);
    mkdirSync(dir, { recursive: true });
    const size = Math.round(mean * (0.25 + 1.5 * (((f * 7919) % 1000) / 1000)));
    const p = join(dir, `seg-${f}`);
    writeFileSync(p, seededBytes(size, f + 1));
    paths.push(p);
  }
  return paths;
}

/** Round r's change: ranges rewritten in a few files, one file appended to, one new file, one removed. */
function change(vol: string, paths: string[], r: number, changeKiB: number): void {
  const bytes = changeKiB << 10;
  const piece = 64 << 10;
  const rewrites = Math.max(1, Math.floor(bytes / 2 / piece));
  for (let i = 0; i < rewrites; i++) {
    const p = paths[(r * 131 + i * 17) % paths.length]!;
    const fd = openSync(p, 'r+');
    writeSync(fd, seededBytes(piece, 10_000 + r * 100 + i), 0, piece, 0);
    closeSync(fd);
  }
  appendFileSync(paths[(r * 37) % paths.length]!, seededBytes(bytes / 4, 20_000 + r));
  writeFileSync(join(vol, `wal-${r}`), seededBytes(bytes / 4, 30_000 + r));
  const gone = paths.splice((r * 53 + 7) % paths.length, 1)[0]!;
  unlinkSync(gone);
}

const ms = (t: number) => Math.round((performance.now() - t) * 10) / 10;
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

export async function run(argv: string[]): Promise<void> {
  const a = parseArgs(argv);
  const sequential = a.sequential;
  const dir = mkdtempSync(join(tmpdir(), 'fedflow-bench-final-'));
  const src = join(dir, 'src');
  const vol = join(dir, 'target', 'volumes', 'vol');
  mkdirSync(join(dir, 'target', 'volumes'), { recursive: true });
  const images = new SourceImages(join(dir, 'images'));
  const server = await startTransferServer({ site: 'src', images, secret: SECRET });
  const store = await ChunkStore.open(join(dir, 'target', 'store'));
  const rows: Record<string, number>[] = [];
  try {
    const paths = buildVolume(src, a);
    /** One round at the target, as pullAttempt runs it; returns each step's ms. */
    const round = async (root: string) => {
      const token = issueToken(SECRET, claimsFor(root, 'src', 'dst', Date.now(), 3600));
      let t = performance.now();
      const manifest = await fetchManifest(server.url, root, token, undefined, { bases: store.recentManifestRoots(), loadBase: (r) => store.getManifest(r) });
      const manifestMs = ms(t);
      t = performance.now();
      const delta = diffManifest(manifest, { has: (h) => store.locateChunk(h) !== undefined });
      const diffMs = ms(t);
      t = performance.now();
      const pulled = await pullMissingChunks({ endpoint: server.url, root, token, manifest, store, plan: PLAN, to: 'dst' });
      const pullMs = ms(t);
      t = performance.now();
      let putManifestMs = 0;
      let patchMs = 0;
      const extract = await (sequential
        ? (async () => {
            await store.putManifest(manifest, 'baseline');
            putManifestMs = ms(t);
            const t1 = performance.now();
            const x = await extractVolume(store, manifest, vol);
            patchMs = ms(t1);
            return x;
          })()
        : keepingBaseline(store, manifest, async () => {
            const x = await extractVolume(store, manifest, vol);
            patchMs = ms(t);
            return x;
          }));
      const baselineAndPatchMs = ms(t);
      if (!sequential) putManifestMs = baselineAndPatchMs;
      // The round as pullAttempt runs it: the bench's own diff (timed alone above) is not part of it.
      const totalMs = Math.round((manifestMs + pullMs + baselineAndPatchMs) * 10) / 10;
      return { manifest, delta, pulled, extract, steps: { manifestMs, diffMs, pullMs, putManifestMs, patchMs, baselineAndPatchMs, totalMs } };
    };
    // Files written less than 1 s before a capture are not trusted unchanged by the next one
    // (reuse-rule.ts: "racily clean"); a real volume's files are older than that.
    await new Promise((r) => setTimeout(r, 1200));
    // The pre-copy round: the whole volume into the store and laid down at the target.
    const first = await images.capture('vol', src, PARAMS);
    const pre = await round(first.manifest.rootHash);
    console.error(`pre-copy: ${pre.manifest.chunks.length} chunks, ${(pre.manifest.totalBytes / 1e6).toFixed(1)} MB, extract ${pre.extract.method}`);
    let prevRoot = first.manifest.rootHash;
    /** The manifest of the round before the last: the base a final round's delta is made against. */
    let before: Manifest | undefined;
    for (let r = 1; r <= a.rounds; r++) {
      // The source's metadata writes of the round before (its capture record, the image's
      // manifest) end first: they run after a capture returns, and would be timed in this one.
      await images.flush();
      change(src, paths, r, a.changeKiB);
      const t = performance.now();
      const cap = await images.capture('vol', src, PARAMS);
      const sourceCaptureMs = ms(t);
      const res = await round(cap.manifest.rootHash);
      if (r === a.rounds) before = await store.getManifest(prevRoot);
      await images.release(prevRoot);
      prevRoot = cap.manifest.rootHash;
      const row = { ...res.steps, sourceCaptureMs };
      rows.push(row);
      console.log(
        JSON.stringify({
          bench: 'final-round',
          round: r,
          chunks: res.manifest.chunks.length,
          volumeBytes: res.manifest.totalBytes,
          files: paths.length + r,
          chunksSent: res.pulled.chunksFetched,
          bytesSent: res.pulled.rawBytes,
          extract: { method: res.extract.method, ...(res.extract.fallback ? { fallback: res.extract.fallback } : {}), bytesWritten: res.extract.bytesWritten, filesWritten: res.extract.filesWritten, filesKept: res.extract.filesKept, filesRemoved: res.extract.filesRemoved },
          sourceReuse: cap.reuse,
          stepsMs: row,
        }),
      );
    }
    // The per-manifest CPU steps alone, on the last round's manifest (median of 5 each).
    const last = await store.getManifest(prevRoot);
    if (last) {
      const time = (f: () => unknown) => median(Array.from({ length: 5 }, () => ((t0) => (f(), ms(t0)))(performance.now())));
      const bin = encodeManifest(last).bytes;
      console.log(
        JSON.stringify({
          bench: 'final-round',
          perManifest: true,
          chunks: last.chunks.length,
          cpuMs: {
            verifyManifest: time(() => verifyManifest(last)),
            encodeBinary: time(() => encodeManifest(last)),
            decodeBinary: time(() => decodeManifest(bin)),
            decodeBinaryThenVerify: time(() => verifyManifest(decodeManifest(bin))),
            decodeBinaryWithDigestsThenVerify: time(() => {
              const d = decodeManifestWithDigests(bin);
              verifyDecodedManifest(d.manifest, d.digests);
            }),
            // As a final round's manifest goes: a delta against the round before, which both ends hold.
            ...(before
              ? ((base) => {
                  const baseDigests = Buffer.concat(base.chunks.map((c) => Buffer.from(c.hash, 'hex')));
                  const delta = encodeManifest(last, base).bytes;
                  return {
                    // With the base's index of first entries at hand, as a source that holds the base's image (or released it last) has it;
                    // timed first, so the other is not the one with the warmed-up encoder.
                    encodeDeltaWithIndex: ((index) => time(() => encodeManifest(last, base, index)))(firstIndexOf(base.chunks)),
                    encodeDelta: time(() => encodeManifest(last, base)),
                    decodeDeltaWithDigestsThenVerify: time(() => {
                      const d = decodeManifestWithDigests(delta, base, baseDigests);
                      verifyDecodedManifest(d.manifest, d.digests);
                    }),
                  };
                })(before)
              : {}),
            jsonStringify: time(() => JSON.stringify(last)),
            diff: time(() => diffManifest(last, { has: (h) => store.locateChunk(h) !== undefined })),
          },
        }),
      );
    }
    const keys = Object.keys(rows[0]!);
    console.log(JSON.stringify({ bench: 'final-round', summary: true, rounds: rows.length, chunks: pre.manifest.chunks.length, medianMs: Object.fromEntries(keys.map((k) => [k, median(rows.map((row) => row[k]!))])) }));
  } finally {
    await store.close();
    await server.close();
    await images.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
