/**
 * v0.10's destination check: zeros of the source that land where the destination may hold data
 * are written only where it does, and counted as v0.10 counted them.
 *
 * The destination under a range is read in large reads (O_DIRECT and aligned on a block device:
 * the page cache would only double the work), each -b block of it compared with zeros, and zeros
 * written over the parts that are not. Counting follows v0.10, which judged the destination under
 * each all-zero source block by reading one whole block there (even past the end of a short last
 * block, never past the destination's old end) and counted the source block's length: `nonzerodest`
 * and `real` when anything there was not zero, `sparse` when all was.
 *
 * `compareAndZero` is the writer thread's "compare and zero" command (writer-thread.ts), so that
 * the reads overlap reading, decompressing and writing, and it is also called directly when there
 * is no writer thread. It therefore depends on nothing but its arguments (the thread is given its
 * source text): no imports, no module-level names, no nested named functions.
 */

/** Slots of the counters a compare adds to (a Float64Array: byte counts, exact to 2^53). */
export const COMPARE_COUNTER = { real: 0, sparse: 1, nonzerodest: 2, checked: 3, written: 4 } as const;
export const COMPARE_COUNTER_SLOTS = 5;

/** Bytes of the destination read at a time: large reads, a few of them per second of the copy. */
export const COMPARE_READ_BYTES = 4 << 20;

export interface CompareZeros {
  /** Destination range [position, position + length) whose bytes must end up zero. */
  position: number;
  length: number;
  /** Block k of the source lands at [blockOrigin + k * blockSize, blockOrigin + (k + 1) * blockSize) (the --seek offset). */
  blockOrigin: number;
  blockSize: number;
  /** Destination bytes at and past this are not read: past its old end it reads as zero. */
  checkLimit: number;
  /**
   * The range lies in blocks of the source that hold data (beyond a hole of the source): v0.10
   * wrote them whole, so they count as real whatever the destination holds. Otherwise the range is
   * whole all-zero blocks (the last may be short) and each is judged.
   */
  inDataBlock: boolean;
  /** Descriptor reads go through; `readAlignment` > 0 when it is O_DIRECT (offsets, lengths, buffer aligned to it). */
  readFd: number;
  readAlignment: number;
  /** Descriptors zeros are written through: O_DIRECT (-1: none) for aligned writes, else the buffered one. */
  directFd: number;
  directAlignment: number;
  bufferedFd: number;
}

/** Memory a compare works in: `read` (page-aligned, COMPARE_READ_BYTES + 2 pages), `zeros` (as large, all zero, never written). */
export interface CompareScratch {
  read: Buffer;
  zeros: Buffer;
}

/** What failed, for the caller's message: the read (exit 6) or the write of zeros (exit 9), at which destination byte. */
export interface CompareFailure {
  phase: 'read' | 'write';
  at: number;
  cause: unknown;
}

export function compareAndZero(
  fs: { readSync: (fd: number, b: Buffer, o: number, n: number, p: number) => number; writeSync: (fd: number, b: Buffer, o: number, n: number, p: number) => number },
  c: CompareZeros,
  scratch: CompareScratch,
  counters: Float64Array,
): void {
  // Added to `counters` at the end (slots as COMPARE_COUNTER, which this code cannot name).
  let real = 0;
  let sparse = 0;
  let nonzerodest = 0;
  let checked = 0;
  let written = 0;
  const fail = (phase: 'read' | 'write', at: number, cause: unknown): CompareFailure => ({ phase, at, cause });
  const end = c.position + c.length;
  const bs = c.blockSize;
  const buf = scratch.read;
  const zeros = scratch.zeros;
  const isZero = (from: number, to: number): boolean => from >= to || (buf[from] === 0 && buf[to - 1] === 0 && buf.compare(zeros, 0, to - from, from, to) === 0);
  const nextBoundary = (p: number): number => p + bs - ((p - c.blockOrigin) % bs);
  // A zero block is judged on the destination under all of it, a short last one included.
  const lastBlockEnd = nextBoundary(end - 1);
  const readEnd = Math.min(c.checkLimit, c.inDataBlock ? end : lastBlockEnd);
  if (c.inDataBlock) real += c.length;

  let zeroFrom = -1; // a run of destination bytes to overwrite with zeros, [zeroFrom, zeroTo)
  let zeroTo = -1;
  const writeZeros = (): void => {
    for (let at = zeroFrom; at < zeroTo; ) {
      const n = Math.min(zeroTo - at, zeros.length);
      const direct = c.directFd >= 0 && at % c.directAlignment === 0 && n % c.directAlignment === 0;
      let done = 0;
      try {
        while (done < n) done += fs.writeSync(direct ? c.directFd : c.bufferedFd, zeros, 0, n - done, at + done);
      } catch (err) {
        throw fail('write', at + done, err);
      }
      at += n;
    }
    written += zeroTo - zeroFrom;
    zeroFrom = zeroTo = -1;
  };

  let accounted = c.position; // source bytes before this are counted
  let dirty = false; // the block being judged has destination data
  const finishBlock = (blockEnd: number): void => {
    const n = Math.min(blockEnd, end) - accounted;
    if (!c.inDataBlock && n > 0) {
      if (dirty) {
        nonzerodest += n;
        real += n;
      } else sparse += n;
    }
    accounted = Math.max(accounted, Math.min(blockEnd, end));
    dirty = false;
  };

  for (let pos = c.position; pos < readEnd; ) {
    const want = Math.min(readEnd, pos + (buf.length - 2 * 4096));
    const align = c.readAlignment;
    const base = align > 0 ? pos - (pos % align) : pos;
    const readTo = align > 0 ? Math.ceil(want / align) * align : want;
    let got = 0;
    try {
      while (base + got < readTo) {
        const n = fs.readSync(c.readFd, buf, got, readTo - base - got, base + got);
        if (n === 0) break;
        got += n;
      }
    } catch (err) {
      throw fail('read', base + got, err);
    }
    const valid = Math.min(want, base + got);
    if (valid <= pos) break; // the destination ended: nothing there to overwrite
    checked += valid - pos;
    for (let p = pos; p < valid; ) {
      let q = Math.min(valid, nextBoundary(p));
      if (isZero(p - base, q - base)) {
        // Zero blocks come in runs: take them in spans of 2, 4, 8... blocks, one compare each.
        for (let span = 2 * bs; q < valid && (q - c.blockOrigin) % bs === 0; span *= 2) {
          const next = Math.min(valid, q + span);
          if (!isZero(q - base, next - base)) break;
          finishBlock(q);
          q = next;
        }
      } else {
        dirty = true;
        // Past the range's end (the rest of a short last block) data only decides the count.
        const from = Math.max(p, c.position);
        const to = Math.min(q, end);
        if (from < to && (q <= end || !isZero(from - base, to - base))) {
          if (zeroTo !== from && zeroFrom >= 0) writeZeros();
          if (zeroFrom < 0) zeroFrom = from;
          zeroTo = to;
        }
      }
      // A block is judged once read to its end, or to the end of what may be read of it; a block
      // cut by the end of this read goes on in the next one.
      if (q === readEnd) finishBlock(nextBoundary(q - 1));
      else if ((q - c.blockOrigin) % bs === 0) finishBlock(q);
      p = q;
    }
    if (zeroFrom >= 0) writeZeros();
    pos = valid;
  }
  // Beyond the destination's old end (or where it ended early): zeros already, nothing written.
  if (!c.inDataBlock && end > accounted) {
    if (dirty) finishBlock(nextBoundary(accounted));
    if (end > accounted) sparse += end - accounted;
  }
  counters[0] = counters[0]! + real;
  counters[1] = counters[1]! + sparse;
  counters[2] = counters[2]! + nonzerodest;
  counters[3] = counters[3]! + checked;
  counters[4] = counters[4]! + written;
}

export interface CountZeroBlocks {
  /**
   * Destination ranges [start, end) as flat pairs, in order: whole all-zero blocks of the source
   * that are written with the data around them (in one write), each shorter than
   * COMPARE_READ_BYTES / 2. They need no compare for the bytes, only for v0.10's counters.
   */
  ranges: number[];
  blockOrigin: number;
  blockSize: number;
  checkLimit: number;
  readFd: number;
  readAlignment: number;
}

/**
 * v0.10's count of zero blocks that are written anyway: each judged on the destination under it
 * (`nonzerodest` and `real` if anything there is not zero, `sparse` if all is), read before the
 * write that covers them, in as few reads as the ranges fit in. Self-contained as compareAndZero.
 */
export function countZeroBlocks(
  fs: { readSync: (fd: number, b: Buffer, o: number, n: number, p: number) => number },
  c: CountZeroBlocks,
  scratch: CompareScratch,
  counters: Float64Array,
): void {
  let real = 0;
  let sparse = 0;
  let nonzerodest = 0;
  let checked = 0;
  const buf = scratch.read;
  const zeros = scratch.zeros;
  const bs = c.blockSize;
  const align = c.readAlignment;
  const room = buf.length - 2 * 4096;
  const isZero = (from: number, to: number): boolean => from >= to || (buf[from] === 0 && buf[to - 1] === 0 && buf.compare(zeros, 0, to - from, from, to) === 0);
  // A read costs here about what reading 32 KiB more does: ranges closer than that share a read.
  const MERGE_BYTES = 32 << 10;
  for (let i = 0; i < c.ranges.length; ) {
    // One read for the ranges from i on that are close and fit in the buffer (a range always fits).
    const spanStart = c.ranges[i]!;
    let j = i;
    while (j + 2 < c.ranges.length && c.ranges[j + 2]! - c.ranges[j + 1]! <= MERGE_BYTES && Math.min(c.ranges[j + 3]!, c.checkLimit) - spanStart <= room) j += 2;
    const spanEnd = Math.min(c.ranges[j + 1]!, c.checkLimit);
    const base = align > 0 ? spanStart - (spanStart % align) : spanStart;
    const readTo = align > 0 ? Math.ceil(spanEnd / align) * align : spanEnd;
    let got = 0;
    try {
      while (base + got < readTo) {
        const n = fs.readSync(c.readFd, buf, got, readTo - base - got, base + got);
        if (n === 0) break;
        got += n;
      }
    } catch (err) {
      const failure: CompareFailure = { phase: 'read', at: base + got, cause: err };
      throw failure;
    }
    const valid = Math.min(spanEnd, base + got); // past the destination's end: zeros
    for (let k = i; k <= j; k += 2) {
      const start = c.ranges[k]!;
      const end = c.ranges[k + 1]!;
      const readable = Math.max(start, Math.min(end, valid));
      checked += readable - start;
      if (isZero(start - base, readable - base)) {
        sparse += end - start;
        continue;
      }
      for (let b = start; b < end; ) {
        const blockEnd = Math.min(end, b + bs - ((b - c.blockOrigin) % bs));
        if (isZero(Math.min(b, readable) - base, Math.min(blockEnd, readable) - base)) sparse += blockEnd - b;
        else {
          nonzerodest += blockEnd - b;
          real += blockEnd - b;
        }
        b = blockEnd;
      }
    }
    i = j + 2;
  }
  counters[0] = counters[0]! + real;
  counters[1] = counters[1]! + sparse;
  counters[2] = counters[2]! + nonzerodest;
  counters[3] = counters[3]! + checked;
}
