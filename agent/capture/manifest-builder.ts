/**
 * Builds a volume's manifest by streaming it through the FASTCDC_V1 chunker and sha256, and checks
 * a manifest's root hash. Memory: the chunker's maxSize carry plus one read block, whatever the
 * volume's size (the chunk list itself grows with the volume: ~100 bytes per chunk).
 */
import { createHash, hash as oneShotHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Chunker, ChunkerParams, paramsId as toParamsId, parseParamsId } from '../../core/chunking';
import { ChunkRef, Manifest, MANIFEST_V1, ManifestError, assertManifest, manifestShapeHashes } from '../../core/manifest';

export interface BuildOptions {
  volumeId: string;
  params: ChunkerParams;
  /**
   * Called with each chunk and its bytes, in order, before the next chunk is read: lets the source
   * put chunks into its store while hashing them once. The bytes are a view valid only during the
   * call (await it if it is async).
   */
  onChunk?: (ref: ChunkRef, bytes: Uint8Array) => void | Promise<void>;
  signal?: AbortSignal;
}

/** Root hash of MANIFEST_V1 (see core/manifest.ts): sha256 over the raw digests in order. */
export function computeRootHash(chunks: readonly Pick<ChunkRef, 'hash'>[]): string {
  // All digests decoded into one buffer and hashed in one call: ~3x faster than an update per
  // chunk on manifests of tens of thousands of chunks.
  const all = Buffer.allocUnsafe(32 * chunks.length);
  for (let i = 0; i < chunks.length; i++) {
    if (all.write(chunks[i]!.hash, 32 * i, 32, 'hex') !== 32) return computeRootHashByUpdates(chunks);
  }
  return oneShotHash('sha256', all, 'hex');
}

/** The same root, one update per digest: for hashes that are not 64 hex digits (the root of what they decode to). */
function computeRootHashByUpdates(chunks: readonly Pick<ChunkRef, 'hash'>[]): string {
  const root = createHash('sha256');
  for (const c of chunks) root.update(Buffer.from(c.hash, 'hex'));
  return root.digest('hex');
}

/** Builds a manifest from any byte source (a file stream, an HTTP body, an array of buffers). */
export async function buildManifestFromStream(source: AsyncIterable<Uint8Array>, opts: BuildOptions): Promise<Manifest> {
  const chunker = new Chunker(opts.params);
  const root = createHash('sha256');
  const chunks: ChunkRef[] = [];
  let total = 0;
  const take = async (it: Iterable<{ offset: number; length: number; bytes: Uint8Array }>) => {
    for (const c of it) {
      // One-shot hash: 2-3x faster than createHash on chunks of 8-64 KiB (no Hash object per chunk).
      const digest = oneShotHash('sha256', c.bytes, 'buffer');
      root.update(digest);
      const ref = { offset: c.offset, length: c.length, hash: digest.toString('hex') };
      chunks.push(ref);
      total += c.length;
      if (opts.onChunk) await opts.onChunk(ref, c.bytes);
    }
  };
  for await (const block of source) {
    opts.signal?.throwIfAborted();
    await take(chunker.push(block));
  }
  await take(chunker.finish());
  return { version: MANIFEST_V1, volumeId: opts.volumeId, paramsId: toParamsId(opts.params), chunks, totalBytes: total, rootHash: root.digest('hex') };
}

/** Builds a manifest by streaming a file in 1 MiB reads. */
export function buildManifestFromFile(path: string, opts: BuildOptions): Promise<Manifest> {
  return buildManifestFromStream(createReadStream(path, { highWaterMark: 1 << 20, signal: opts.signal }), opts);
}

/**
 * The raw digests of manifests this process has checked or built, in entry order (32 bytes each):
 * the root hash is sha256 over them, and a manifest fetched as a delta against one of them copies
 * its digests from here instead of decoding hex. Keyed by the manifest object, which nothing
 * changes once made (a manifest is a value: a change is a new manifest).
 */
const DIGESTS = new WeakMap<Pick<Manifest, 'chunks'>, Uint8Array>();

/** `m`'s raw digests, from the cache or decoded from its hex (undefined if a hash is not 64 lower-case hex digits). */
export function digestsOf(m: Pick<Manifest, 'chunks'>): Uint8Array | undefined {
  const hit = DIGESTS.get(m);
  if (hit && hit.length === 32 * m.chunks.length) return hit;
  const digests = unhexDigests(m.chunks.map((c) => c.hash).join(''), m.chunks.length);
  if (digests) DIGESTS.set(m, digests);
  return digests;
}

/** `count` digests from their hex joined; undefined unless it is exactly that many, in lower-case hex (which survives the round trip). */
function unhexDigests(joined: string, count: number): Buffer | undefined {
  const digests = Buffer.from(joined, 'hex');
  return digests.length === 32 * count && digests.toString('hex') === joined ? digests : undefined;
}

/**
 * The check of a manifest decoded from the binary form (core/manifest-delta.ts
 * decodeManifestWithDigests), whose decoder made its structure (offsets contiguous from 0,
 * lengths positive, the sum its totalBytes, hashes spelled from the digests) and gave its raw
 * digests: what remains is what verifyManifest checks beyond that, the volume id, the paramsId,
 * and the root hash over `digests`, in one hash call. Throws ManifestError; caches the digests.
 */
export function verifyDecodedManifest(m: Manifest, digests: Uint8Array): Manifest {
  if (typeof m.volumeId !== 'string' || m.volumeId.length === 0) throw new ManifestError(`invalid manifest: volumeId is ${JSON.stringify(m.volumeId)}; expected a non-empty string`);
  try {
    parseParamsId(m.paramsId);
  } catch (err) {
    throw new ManifestError(`invalid manifest: ${(err as Error).message}`);
  }
  if (digests.length !== 32 * m.chunks.length) throw new ManifestError(`manifest of volume '${m.volumeId}' has ${m.chunks.length} entries but ${digests.length} bytes of digests`);
  return rootChecked(m, digests);
}

/** `m` if sha256 over `digests` is its root hash (then its digests are cached); else a ManifestError. */
function rootChecked(m: Manifest, digests: Uint8Array): Manifest {
  const root = oneShotHash('sha256', digests, 'hex');
  if (root !== m.rootHash) throw new ManifestError(`manifest of volume '${m.volumeId}' claims root hash ${m.rootHash}, but its chunk hashes give ${root}`);
  DIGESTS.set(m, digests);
  return m;
}

/**
 * Throws ManifestError unless the manifest is well formed, its paramsId parses and its root hash
 * matches its chunk hashes. Chunk contents are verified separately, as each chunk arrives.
 */
export function verifyManifest(input: unknown): Manifest {
  // Fast path: the shape checked in one pass, the hashes decoded together; a hash that is not
  // 64 lower-case hex digits does not survive the round trip through bytes. Anything off there
  // goes the slow way, which names every problem.
  const joined = manifestShapeHashes(input);
  if (joined !== undefined) {
    const m = input as Manifest;
    const digests = unhexDigests(joined, m.chunks.length);
    if (digests) return rootChecked(m, digests);
  }
  assertManifest(input);
  parseParamsId(input.paramsId);
  const root = computeRootHash(input.chunks);
  if (root !== input.rootHash) {
    throw new ManifestError(`manifest of volume '${input.volumeId}' claims root hash ${input.rootHash}, but its chunk hashes give ${root}`);
  }
  return input;
}
