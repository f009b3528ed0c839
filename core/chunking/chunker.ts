/**
 * Streaming wrapper around nextCut: feed byte blocks of any size, get chunks with their absolute
 * offsets. Its cut points equal cutAll's on the concatenated input, whatever the block sizes.
 *
 * Memory: one carry buffer of exactly maxSize bytes. Blocks are cut in place when a whole
 * maxSize window is available inside them, so only a block's tail (and the head of the next
 * block) is ever copied. Pure: no Node imports.
 */
import { nextCut } from './fastcdc';
import { ChunkerParams, CompiledParams, compileParams } from './params';

export interface Chunk {
  /** Offset of the chunk's first byte in the whole stream. */
  offset: number;
  length: number;
  /**
   * The chunk's bytes: a view into the caller's block or into the chunker's carry buffer. Valid
   * only until the generator that yielded it is resumed; copy it to keep it.
   */
  bytes: Uint8Array;
}

export class Chunker {
  readonly params: CompiledParams;
  private readonly carry: Uint8Array;
  private carryLen = 0;
  /** Stream offset of carry[0], or of the next byte to cut when the carry is empty. */
  private offset = 0;
  private finished = false;

  constructor(params: ChunkerParams) {
    this.params = compileParams(params);
    this.carry = new Uint8Array(this.params.maxSize);
  }

  /** Bytes consumed so far that belong to no yielded chunk yet (at most maxSize - 1 between calls). */
  get pendingBytes(): number {
    return this.carryLen;
  }

  /** Feeds one block; yields every chunk whose end is now decided. */
  *push(block: Uint8Array): Generator<Chunk, void, undefined> {
    if (this.finished) throw new Error('Chunker.push called after finish(); create a new Chunker per stream');
    const p = this.params;
    const max = p.maxSize;
    let i = 0;
    // First drain the carry, topping it up from the block until it holds a whole window.
    while (this.carryLen > 0) {
      const oldLen = this.carryLen;
      const take = Math.min(max - oldLen, block.length - i);
      this.carry.set(block.subarray(i, i + take), oldLen);
      this.carryLen = oldLen + take;
      if (this.carryLen < max) return; // the block is used up; wait for more
      const cut = nextCut(this.carry, 0, max, p);
      yield this.emit(this.carry.subarray(0, cut));
      if (cut >= oldLen) {
        // The rest of the window is still in the block: continue there without copying.
        i += cut - oldLen;
        this.carryLen = 0;
      } else {
        // The cut fell inside the old carry: keep its tail, give back what was borrowed.
        this.carry.copyWithin(0, cut, oldLen);
        this.carryLen = oldLen - cut;
      }
    }
    // Cut in place while the block holds a whole window.
    while (block.length - i >= max) {
      const end = nextCut(block, i, block.length, p);
      yield this.emit(block.subarray(i, end));
      i = end;
    }
    this.carry.set(block.subarray(i), 0);
    this.carryLen = block.length - i;
  }

  /** Ends the stream: yields the remaining chunks, the last one possibly shorter than minSize. */
  *finish(): Generator<Chunk, void, undefined> {
    this.finished = true;
    while (this.carryLen > 0) {
      const cut = nextCut(this.carry, 0, this.carryLen, this.params);
      yield this.emit(this.carry.subarray(0, cut));
      this.carry.copyWithin(0, cut, this.carryLen);
      this.carryLen -= cut;
    }
  }

  private emit(bytes: Uint8Array): Chunk {
    const chunk = { offset: this.offset, length: bytes.length, bytes };
    this.offset += bytes.length;
    return chunk;
  }
}
