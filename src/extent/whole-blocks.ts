/**
 * Zero detection at a block size larger than the pieces the source arrives in (pure).
 *
 * The block size is the zero-detection granularity (v0.10's -b): a block holding any data is
 * written whole, zeros included; an all-zero block is a hole. Below the read chunk (2 MiB) blocks
 * never straddle chunks and zero-runs.ts decides each one. Above it, memory must not follow the
 * block size (-b 4G, -b 4P), so a block arrives in many runs: this transform takes the data and
 * zero runs in offset order and rewrites the zeros that share a block with data as data (from one
 * shared zero buffer), holding back only the length of a run of zeros whose block is undecided.
 *
 * As for smaller blocks, a hole of the source (never read, SEEK_HOLE) stays a hole and bounds the
 * blocks around it: a block is judged on the part of it that lies in one data region.
 */
import type { Extent } from './extent.js';
import { allocAligned } from '../io/aligned.js';

/** Zero data is handed out in pieces of at most this (views of one shared, never written buffer). */
const ZERO_PIECE_BYTES = 1 << 20;
let zeroPiece: Buffer | null = null;

function zeroData(offset: number, length: number): Extent[] {
  // Shared memory: a writer thread may write it, as it writes the source's own buffers.
  zeroPiece ??= allocAligned(ZERO_PIECE_BYTES);
  const pieces: Extent[] = [];
  for (let done = 0; done < length; done += ZERO_PIECE_BYTES) {
    const n = Math.min(ZERO_PIECE_BYTES, length - done);
    pieces.push({ offset: offset + done, length: n, data: zeroPiece.subarray(0, n) });
  }
  return pieces;
}

export class WholeBlocks {
  /** Everything below this has been handed out; input from here to `seen` is zeros not yet placed. */
  private placed = 0;
  /** The end of the input so far. */
  private seen = 0;
  /** The end of the last block that holds data: zeros below it are written. */
  private dataBlockEnd = 0;

  constructor(private readonly blockSize: number) {}

  /** Takes the next run (offsets increasing; a gap counts as zeros); returns what can be written now. */
  push(run: Extent): Extent[] {
    const out: Extent[] = [];
    if (run.offset > this.seen) this.zeros(this.seen, run.offset, out);
    const end = run.offset + run.length;
    if (run.data) {
      // Zeros pending since the last placement lie in blocks without data so far: the whole
      // blocks before this one are a hole, and the start of this one shares it with data.
      const blockStart = Math.max(this.placed, Math.floor(run.offset / this.blockSize) * this.blockSize);
      this.hole(blockStart, out);
      out.push(...zeroData(this.placed, run.offset - this.placed));
      out.push(run);
      this.placed = this.seen = end;
      this.dataBlockEnd = Math.ceil(end / this.blockSize) * this.blockSize;
    } else {
      this.zeros(run.offset, end, out);
      run.release?.();
    }
    return out;
  }

  /** A hole of the source (or padding): a hole, and the end of the data region before it. */
  sourceHole(hole: Extent): Extent[] {
    const out: Extent[] = [];
    if (hole.offset > this.seen) this.zeros(this.seen, hole.offset, out);
    this.seen = hole.offset;
    this.hole(this.seen, out);
    out.push(hole);
    this.placed = this.seen = hole.offset + hole.length;
    this.dataBlockEnd = 0;
    return out;
  }

  /** The end of the input: the last block's pending zeros are a hole. */
  flush(): Extent[] {
    const out: Extent[] = [];
    this.hole(this.seen, out);
    return out;
  }

  private zeros(start: number, end: number, out: Extent[]): void {
    if (start < this.dataBlockEnd) {
      // In a block with data: written. (Nothing is pending then: it would have been placed.)
      const until = Math.min(end, this.dataBlockEnd);
      out.push(...zeroData(start, until - start));
      this.placed = until;
    }
    this.seen = end;
    // Blocks that ended inside these zeros hold no data: a hole now.
    this.hole(Math.floor(end / this.blockSize) * this.blockSize, out);
  }

  /** Hands out the pending zeros below `until` as a hole. */
  private hole(until: number, out: Extent[]): void {
    const end = Math.min(until, this.seen);
    if (end > this.placed) {
      out.push({ offset: this.placed, length: end - this.placed });
      this.placed = end;
    }
  }
}
