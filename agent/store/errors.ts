/** Errors of the chunk store, each carrying the values that were wrong. */

/** A chunk's bytes do not hash to the name it was offered or stored under. Not retryable from the same bytes. */
export class ChunkHashMismatchError extends Error {
  constructor(
    readonly expected: string,
    readonly actual: string,
    readonly where: 'put' | 'read',
  ) {
    super(
      where === 'put'
        ? `chunk offered as ${expected} hashes to ${actual}; refused (the sender must send the bytes of ${expected})`
        : `stored chunk ${expected} now hashes to ${actual}; removed from the store (fetch it again)`,
    );
    this.name = 'ChunkHashMismatchError';
  }
}

/** The store cannot make room: everything it could evict is pinned by a manifest. */
export class ChunkStoreFullError extends Error {
  constructor(
    readonly neededBytes: number,
    readonly maxBytes: number,
    readonly pinnedBytes: number,
  ) {
    super(
      `chunk store is full: storing ${neededBytes} more bytes needs room under maxBytes ${maxBytes}, ` +
        `but ${pinnedBytes} bytes are pinned by manifests; release a manifest (setRetention 'baseline' or deleteManifest) or raise maxBytes`,
    );
    this.name = 'ChunkStoreFullError';
  }
}

/** A manifest cannot be assembled: some of its chunks are not in the store. */
export class MissingChunksError extends Error {
  constructor(
    readonly rootHash: string,
    readonly missing: string[],
  ) {
    const shown = missing.slice(0, 3).join(', ');
    super(`cannot assemble manifest ${rootHash}: ${missing.length} chunk(s) missing from the store (${shown}${missing.length > 3 ? ', …' : ''}); pull them first`);
    this.name = 'MissingChunksError';
  }
}

export class ManifestNotFoundError extends Error {
  constructor(readonly rootHash: string) {
    super(`manifest ${rootHash} is not in the chunk store; put it with putManifest first`);
    this.name = 'ManifestNotFoundError';
  }
}
