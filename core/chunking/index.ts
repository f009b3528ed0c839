/** Content-defined chunking, FASTCDC_V1. See fastcdc.ts for the cut rule. */
export * from './params';
export { GEAR, GEAR_LS, GEAR_SEED } from './gear-table';
export { nextCut, cutAll } from './fastcdc';
export type { Cut } from './fastcdc';
export { Chunker } from './chunker';
export type { Chunk } from './chunker';
