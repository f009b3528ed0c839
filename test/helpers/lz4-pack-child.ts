/**
 * Packs a fixed set of chunks with LZ4 and prints them as JSON, so a test can compare compressors
 * chosen at load time (FEDFLOW_LZ4_COMPRESSOR=lz4-napi forces the fallback):
 *   node --import tsx test/helpers/lz4-pack-child.ts
 * Prints {"compressor": LZ4_COMPRESSOR, "packed": [hex of packChunk(chunk) for each chunk of lz4Samples()]}.
 */
import { LZ4_COMPRESSOR, packChunk } from '../../agent/transfer/codec';
import { seededBytes } from '../unit/delta/seeded-bytes';

export function lz4Samples(): Buffer[] {
  const text = Buffer.from('site=dc:paris op=put key=k42 status=200 latency_ms=12\n'.repeat(1200));
  const random = Buffer.from(seededBytes(64 * 1024, 5));
  return [text, Buffer.alloc(300 * 1024), Buffer.concat([text.subarray(0, 20_000), random.subarray(0, 30_000), text.subarray(7)]), random, Buffer.from([7]), Buffer.alloc(0)];
}

if (require.main === module) {
  process.stdout.write(JSON.stringify({ compressor: LZ4_COMPRESSOR, packed: lz4Samples().map((c) => packChunk(c, { codec: 'lz4' }).toString('hex')) }));
}
