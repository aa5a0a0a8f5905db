/**
 * Zero detection across the pieces a source arrives in, at any block size (pure).
 *
 * The block size is the zero-detection granularity (v0.10's -b), blocks aligned to multiples of it
 * in the source's address space. zero-runs.ts judges the blocks inside one buffer; a block that
 * straddles buffers (a gzip stream's pieces, a pipe's first sniffed bytes, any block larger than a
 * read chunk: -b 4G, -b 4P) arrives in parts, and this joins them, holding back only the length
 * of the zeros whose block is undecided, never their bytes: memory does not follow the block size.
 *
 * Two judgements are made of every block, and they differ only around holes of the source:
 *  - What is written. A hole of the source (never read, SEEK_HOLE) stays a hole and bounds the
 *    blocks around it: the part of a block inside one data region is written whole, zeros
 *    included (from one shared zero buffer), when it holds any data, and is zeros otherwise.
 *  - How it is counted, as v0.10 counted it (it read holes as zeros, block by block from offset
 *    0): a block with any data is `real`, all of it, its holes too; an all-zero block is
 *    `sparse` unless the sink finds destination data under it. Zero extents inside a block with
 *    data say so (`inDataBlock`), and an all-zero block is only handed out once it is complete, so
 *    that the sink can judge the destination under the whole block.
 * Where the destination is known to read as zero, zero blocks that share a filesystem block with
 * data are written along with it in one write (`holeUnit`), and counted as the zero blocks they are
 * (`zeroBlockBytes`).
 */
import type { Extent } from './extent.js';
import { type ZeroSplitOptions, absorbShortZeroRuns, findRuns, releaseOnce } from './zero-runs.js';
import { allocAligned } from '../io/aligned.js';

/** Zero data is handed out in pieces of at most this (views of one shared, never written buffer). */
const ZERO_PIECE_BYTES = 1 << 20;
let zeroPiece: Buffer | null = null;

function zeroData(offset: number, length: number, out: Extent[]): void {
  if (length <= 0) return;
  // Shared memory: a writer thread may write it, as it writes the source's own buffers.
  zeroPiece ??= allocAligned(ZERO_PIECE_BYTES);
  for (let done = 0; done < length; done += ZERO_PIECE_BYTES) {
    const n = Math.min(ZERO_PIECE_BYTES, length - done);
    out.push({ offset: offset + done, length: n, data: zeroPiece.subarray(0, n) });
  }
}

export class WholeBlocks {
  /** Everything below this has been handed out; input from here to `seen` is zeros not yet placed. */
  private placed = 0;
  /** The end of the input so far. */
  private seen = 0;
  /** Where the current data region began (the end of the last hole of the source). */
  private regionStart = 0;
  /** The end of the last block whose part in the current data region holds data: zeros below it are written. */
  private dataBlockEnd = 0;
  /** The end of the last block holding data anywhere (v0.10's view): zeros below it count as real. */
  private countedDataEnd = 0;

  constructor(private readonly blockSize: number) {}

  /**
   * A data extent of the source: its blocks judged (zero-runs.ts), joined with the blocks around
   * it. The data pieces handed out are views of its buffer; its `release` runs once after the
   * last of them is done with (at once when none is).
   */
  data(extent: Extent, options: ZeroSplitOptions = {}): Extent[] {
    const out: Extent[] = [];
    for (const run of findRuns(extent.data!, extent.offset, this.blockSize)) this.take(run, out);
    const unit = options.holeUnit ?? 0;
    return releaseOnce(unit > 0 ? absorbShortZeroRuns(out, extent, unit, options.destinationShift ?? 0) : out, extent);
  }

  /** Takes the next run, data or zeros found in data (offsets increasing); returns what can be handed out now. */
  push(run: Extent): Extent[] {
    const out: Extent[] = [];
    this.take(run, out);
    return out;
  }

  private take(run: Extent, out: Extent[]): void {
    if (run.offset !== this.seen) this.restart(run.offset, out);
    const end = run.offset + run.length;
    if (run.data) {
      this.settle(out);
      // What is pending lies in this run's block, which now holds data: zeros of this region
      // before the data are written with it; the part beyond a hole of the source stays a hole.
      this.dataBlockEnd = this.countedDataEnd = this.blockEnd(end);
      this.zeros(Math.max(this.placed, this.regionStart), out);
      zeroData(this.placed, run.offset - this.placed, out);
      out.push(run);
      this.placed = this.seen = end;
    } else {
      this.seen = end;
      run.release?.();
      this.settle(out);
    }
  }

  /** A hole of the source (or padding): a hole, and the end of the data region before it. */
  sourceHole(hole: Extent): Extent[] {
    const out: Extent[] = [];
    if (hole.offset !== this.seen) this.restart(hole.offset, out);
    this.seen = this.regionStart = hole.offset + hole.length;
    this.dataBlockEnd = 0;
    this.settle(out);
    return out;
  }

  /** The end of the input: the last block is complete, short or not. */
  flush(): Extent[] {
    const out: Extent[] = [];
    this.zeros(this.seen, out);
    return out;
  }

  /**
   * Extents that do not follow on (fsmaker's disk comes in two ordered parts): the blocks so far
   * end here, and judging starts again at `offset`.
   */
  private restart(offset: number, out: Extent[]): void {
    this.zeros(this.seen, out);
    this.placed = this.seen = this.regionStart = offset;
    this.dataBlockEnd = this.countedDataEnd = 0;
  }

  private blockEnd(offset: number): number {
    return Math.ceil(offset / this.blockSize) * this.blockSize;
  }

  /** Hands out what is decided of the pending zeros [placed, seen). */
  private settle(out: Extent[]): void {
    // In a block whose part in this region holds data: written.
    if (this.placed < this.dataBlockEnd) {
      const until = Math.min(this.seen, this.dataBlockEnd);
      zeroData(this.placed, until - this.placed, out);
      this.placed = until;
    }
    // In a block with data elsewhere (beyond a hole): a hole here, counted real. Zeros of this
    // region stay pending while data of this region may still join the block.
    if (this.placed < this.countedDataEnd) {
      const decided = this.seen >= this.countedDataEnd ? this.countedDataEnd : Math.min(this.seen, this.regionStart);
      this.zeros(decided, out);
    }
    // Whole blocks without data: a hole, counted sparse (or checked against the destination).
    if (this.placed >= this.countedDataEnd) this.zeros(Math.floor(this.seen / this.blockSize) * this.blockSize, out);
  }

  /** Hands out the pending zeros below `until` as holes, the part in a block with data marked so. */
  private zeros(until: number, out: Extent[]): void {
    const end = Math.min(until, this.seen);
    const inData = Math.min(end, this.countedDataEnd);
    if (inData > this.placed) {
      out.push({ offset: this.placed, length: inData - this.placed, inDataBlock: true });
      this.placed = inData;
    }
    if (end > this.placed) {
      out.push({ offset: this.placed, length: end - this.placed });
      this.placed = end;
    }
  }
}
