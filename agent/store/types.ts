/** The chunk store's public option, statistic and figure types (ChunkStore re-exports them). */

export type { Retention } from './format';

export interface ChunkStoreOptions {
  /** Bound on the bytes of stored chunks. Over it, least recently used unpinned chunks are evicted. */
  maxBytes?: number;
  /** Re-hash chunks when reading them (default true): catches disk corruption before it spreads. */
  verifyOnRead?: boolean;
}

export interface ChunkStoreStats {
  chunks: number;
  /** Bytes of the chunks held (each distinct chunk once): what maxBytes bounds. */
  bytes: number;
  pinnedBytes: number;
  manifests: number;
  /** Lookups (has and get) that found the chunk, and those that did not. */
  hits: number;
  misses: number;
  puts: number;
  duplicatePuts: number;
  rejectedPuts: number;
  evictedChunks: number;
  evictedBytes: number;
  corruptChunks: number;
  /** Leftover `.tmp-` files removed by open(). */
  cleanedTempFiles: number;
  /** Pack files on disk and their bytes (live chunks plus dead space not yet reclaimed). */
  packs: number;
  packBytes: number;
  /** Bytes of a torn tail cut from the index log by open() (a group commit a crash interrupted). */
  truncatedLogBytes: number;
  /** Packs deleted because nothing live was left in them (or, at open, nothing durable pointed at them). */
  removedPacks: number;
  /** Packs rewritten to reclaim the space of removed chunks. */
  compactedPacks: number;
  /** Chunk files of a format-1 store moved into packs by open(). */
  migratedChunks: number;
}

export interface AssembleOptions {
  /**
   * An earlier volume file this store assembled (often the destination itself): chunks the new
   * manifest shares with it are copied from it instead of being read from the store. Used only if
   * the store's record of that file (its manifest root, device, inode, size, mtime and ctime, all
   * taken right after this store wrote it) still matches the file, and that manifest is still in
   * the store; otherwise ignored (the whole volume then comes from the store). Bytes copied from
   * the basis are not hashed again: they were verified chunk by chunk when this store wrote the
   * file, and the file has not been written since (its ctime would have moved).
   */
  basisPath?: string;
  /**
   * With basisPath === destPath: update the file in place when only a small part of it changes
   * (see patchInPlace), instead of writing a whole new file and renaming it over the old one.
   */
  inPlace?: boolean;
  /** Receives where the bytes came from and how long each step took. */
  onFigures?: (f: AssembleFigures) => void;
}

export interface AssembleFigures {
  basisUsed: boolean;
  /** The file was updated in place (AssembleOptions.inPlace). */
  inPlace?: boolean;
  /** Why a basis that was asked for was not used. */
  basisRefused?: string;
  /** Bytes taken from a kernel-side copy of the basis file (already at the right offset). */
  inPlaceBytes: number;
  /** Bytes read from the basis at another offset and written. */
  movedBytes: number;
  /** Bytes read from chunk files (and hashed, when verifyOnRead). */
  storeBytes: number;
  copyMs: number;
  writeMs: number;
  syncMs: number;
}
