/** What the assembly files (assemble.ts, write-chunks.ts, patch-in-place.ts) need of the store. */
import type { ChunkIndex } from './chunk-index';
import type { ManifestStore } from './manifests';
import type { PackWriter } from './pack-writer';

export interface AssemblyContext {
  /** The store's directory (for its volume records). */
  readonly dir: string;
  readonly state: ChunkIndex;
  readonly writer: PackWriter;
  readonly manifests: ManifestStore;
  readonly verifyOnRead: boolean;
  /** Removes a chunk found corrupt, durably (a DEL record). */
  remove(hash: string): Promise<void>;
}

/** Bytes of a volume assemble() reads, verifies and writes per step. */
export const ASSEMBLE_WINDOW_BYTES = 4 << 20;
