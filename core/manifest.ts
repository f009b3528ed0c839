/**
 * The manifest of a volume: its content-defined chunks at one point in time, plus a root hash over
 * them. Pure types and checks, imported by workflows (which see only ManifestSummary) and by the
 * agent (which builds and verifies whole manifests: agent/capture/manifest-builder.ts).
 *
 * Root hash (MANIFEST_V1): hex sha256 over the concatenation of the chunks' raw 32-byte sha256
 * digests, in offset order. It names the volume's exact bytes (the digests fix every chunk, their
 * order fixes the layout) and the chunking, so it changes if the content or the cut points change.
 * A flat hash, not a Merkle tree: chunks are always verified one by one against the manifest, so
 * nothing needs a proof for a subset; the empty volume's root is sha256 of nothing.
 */
import { parseParamsId } from './chunking/params';

export const MANIFEST_V1 = 1 as const;

export const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface ChunkRef {
  /** Offset of the chunk's first byte in the volume. */
  offset: number;
  length: number;
  /** Lower-case hex sha256 of the chunk's bytes. */
  hash: string;
}

export interface Manifest {
  version: typeof MANIFEST_V1;
  volumeId: string;
  /** Chunker version and sizes, as core/chunking's paramsId. */
  paramsId: string;
  /** In offset order, contiguous from 0. */
  chunks: ChunkRef[];
  totalBytes: number;
  rootHash: string;
}

/** What a workflow payload carries about a manifest: ids and counts, never the chunk list. */
export interface ManifestSummary {
  volumeId: string;
  rootHash: string;
  paramsId: string;
  chunkCount: number;
  totalBytes: number;
}

export function summarize(m: Manifest): ManifestSummary {
  return { volumeId: m.volumeId, rootHash: m.rootHash, paramsId: m.paramsId, chunkCount: m.chunks.length, totalBytes: m.totalBytes };
}

/**
 * Every structural problem with a manifest (not its hashes against data: that needs I/O).
 * Returns at most `limit` problems, each naming the field, what it was and what it should be.
 */
export function checkManifest(input: unknown, limit = 20): string[] {
  const problems: string[] = [];
  const add = (p: string) => {
    if (problems.length < limit) problems.push(p);
  };
  if (typeof input !== 'object' || input === null) return ['manifest must be an object'];
  const m = input as Partial<Record<keyof Manifest, unknown>>;
  if (m.version !== MANIFEST_V1) add(`version is ${JSON.stringify(m.version)}; expected ${MANIFEST_V1}`);
  if (typeof m.volumeId !== 'string' || m.volumeId.length === 0) add(`volumeId is ${JSON.stringify(m.volumeId)}; expected a non-empty string`);
  if (typeof m.paramsId !== 'string') add(`paramsId is ${JSON.stringify(m.paramsId)}; expected e.g. 'fastcdc-v1:4096:16384:65536'`);
  else {
    try {
      parseParamsId(m.paramsId);
    } catch (err) {
      add((err as Error).message);
    }
  }
  if (typeof m.rootHash !== 'string' || !SHA256_HEX.test(m.rootHash)) add(`rootHash is ${JSON.stringify(m.rootHash)}; expected 64 lower-case hex digits`);
  if (typeof m.totalBytes !== 'number' || !Number.isSafeInteger(m.totalBytes) || m.totalBytes < 0) add(`totalBytes is ${JSON.stringify(m.totalBytes)}; expected a non-negative integer`);
  if (!Array.isArray(m.chunks)) {
    add('chunks must be an array of {offset, length, hash}');
    return problems;
  }
  let next = 0;
  for (let k = 0; k < m.chunks.length && problems.length < limit; k++) {
    const c = m.chunks[k] as Partial<ChunkRef> | undefined;
    if (typeof c !== 'object' || c === null) {
      add(`chunks[${k}] must be an object {offset, length, hash}`);
      continue;
    }
    if (c.offset !== next) add(`chunks[${k}].offset is ${JSON.stringify(c.offset)}; expected ${next} (chunks are contiguous from 0)`);
    if (typeof c.length !== 'number' || !Number.isSafeInteger(c.length) || c.length <= 0) add(`chunks[${k}].length is ${JSON.stringify(c.length)}; expected a positive integer`);
    if (typeof c.hash !== 'string' || !SHA256_HEX.test(c.hash)) add(`chunks[${k}].hash is ${JSON.stringify(c.hash)}; expected 64 lower-case hex digits`);
    next = (typeof c.offset === 'number' ? c.offset : next) + (typeof c.length === 'number' ? c.length : 0);
  }
  if (typeof m.totalBytes === 'number' && next !== m.totalBytes) add(`totalBytes is ${m.totalBytes}; the chunks add up to ${next}`);
  return problems;
}

export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

/**
 * The fast path of a manifest's check, for one of tens of thousands of chunks: everything
 * checkManifest checks except that the hashes are lower-case hex digits, in one pass that does
 * per chunk only what must be done per chunk. Returns the chunks' hashes concatenated, which the
 * caller must check for hex digits in bulk (the agent does, as it decodes them for the root hash:
 * agent/capture/manifest-builder.ts verifyManifest); undefined means "ask checkManifest what is
 * wrong", never a verdict. (A pattern per hash was most of the check's time.)
 */
export function manifestShapeHashes(input: unknown): string | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const m = input as Partial<Record<keyof Manifest, unknown>>;
  if (m.version !== MANIFEST_V1 || typeof m.volumeId !== 'string' || m.volumeId.length === 0 || typeof m.paramsId !== 'string') return undefined;
  if (typeof m.rootHash !== 'string' || !SHA256_HEX.test(m.rootHash)) return undefined;
  if (typeof m.totalBytes !== 'number' || !Number.isSafeInteger(m.totalBytes) || m.totalBytes < 0 || !Array.isArray(m.chunks)) return undefined;
  try {
    parseParamsId(m.paramsId);
  } catch {
    return undefined;
  }
  const chunks = m.chunks as unknown[];
  const hashes = new Array<string>(chunks.length);
  let next = 0;
  for (let k = 0; k < chunks.length; k++) {
    const c = chunks[k] as Partial<ChunkRef> | null | undefined;
    if (typeof c !== 'object' || c === null || c.offset !== next) return undefined;
    const { length, hash } = c;
    if (typeof length !== 'number' || !Number.isSafeInteger(length) || length <= 0 || typeof hash !== 'string' || hash.length !== 64) return undefined;
    hashes[k] = hash;
    next += length;
  }
  return next === m.totalBytes ? hashes.join('') : undefined;
}

/** checkManifest as a type guard that throws with the problems. */
export function assertManifest(input: unknown): asserts input is Manifest {
  const problems = checkManifest(input);
  if (problems.length > 0) throw new ManifestError(`invalid manifest: ${problems.join('; ')}`);
}
