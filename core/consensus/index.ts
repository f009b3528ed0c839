/** The consensus core: pure, deterministic, importable from workflows. */
export * from './types';
export * from './quorum';
export * from './quorum-wait';
export * from './protocol-choice';
export * from './timeouts';
export * from './signing';
export * from './canonical-bytes';
export * from './canonical-json';
export * from './sha256';
export * from './entries';
export * as cft from './cft';
export * as bft from './bft';
