/**
 * Zero detection at block granularity (pure).
 *
 * Blocks are aligned to multiples of `blockSize` in the source's address space, as v0.10 read the
 * source block by block from its start; a buffer that starts or ends mid-block is judged on the
 * part it holds. Adjacent blocks of the same kind are coalesced, so a mostly-data buffer becomes a
 * single write.
 *
 * Speed: Buffer.compare is a memcmp (about 13 GiB/s here, against 1.6 to 3.3 GiB/s for typed-array
 * loops). The whole buffer is compared first; only a mixed buffer is walked block by block, and a
 * block whose first or last byte is non-zero is decided without a compare at all, which is the
 * common case for real data. A large range is compared with itself shifted by SELF_SHIFT bytes
 * rather than with a zero buffer as large: one pass over memory instead of two (per 512 MiB of
 * zeros just read, 7 ms against 14 ms).
 */
import type { Extent } from './extent.js';

/** A range whose first SELF_SHIFT bytes are zero and whose every byte equals the one SELF_SHIFT before it is all zero. */
const SELF_SHIFT = 4096;
const zeroes = Buffer.alloc(2 * SELF_SHIFT);

/** Bytes between the probes that decide most data blocks without a compare. */
const PROBE_STRIDE = 64;

/** True when every byte of buf[start, end) is zero. */
export function isZeroRange(buf: Buffer, start = 0, end = buf.length): boolean {
  const length = end - start;
  if (length <= 0) return true;
  if (buf[start] !== 0 || buf[end - 1] !== 0) return false;
  // A few single-byte probes reject almost every data block for the price of a load each, before
  // paying for a native call; a range that passes them is then proved zero by one memcmp.
  if (length <= 8 * PROBE_STRIDE) {
    for (let i = start + PROBE_STRIDE - 1; i < end; i += PROBE_STRIDE) if (buf[i] !== 0) return false;
  }
  if (length <= zeroes.length) return buf.compare(zeroes, 0, length, start, end) === 0;
  return buf.compare(zeroes, 0, SELF_SHIFT, start, start + SELF_SHIFT) === 0 && buf.compare(buf, start + SELF_SHIFT, end, start, end - SELF_SHIFT) === 0;
}

export interface ZeroSplitOptions {
  /**
   * Where the destination is known to read as zero, a zero run that covers no whole aligned unit
   * of this many bytes (the destination filesystem's block) cannot become a hole: its blocks hold
   * data too. Writing it with its neighbours gives the same bytes and the same allocation in one
   * large write instead of many small ones. 0 keeps every zero run.
   */
  holeUnit?: number;
  /** Destination offset minus source offset (--seek), for aligning `holeUnit`. */
  destinationShift?: number;
}

/**
 * Split `data` (which sits at `offset` in the source) into alternating data and zero extents.
 * Data extents are subarrays of `data` (no copy); zero extents carry no data.
 */
export function splitZeroRuns(data: Buffer, offset: number, blockSize: number, options: ZeroSplitOptions = {}): Extent[] {
  const runs = findRuns(data, offset, blockSize);
  const unit = options.holeUnit ?? 0;
  return unit > 0 ? absorbShortZeroRuns(runs, data, offset, unit, options.destinationShift ?? 0) : runs;
}

/**
 * Split a data extent into runs whose `release` hooks together release the original once: the
 * buffer is recycled after the last data piece is done with.
 */
export function splitExtentZeroRuns(extent: Extent, blockSize: number, options: ZeroSplitOptions = {}): Extent[] {
  if (!extent.data) return [extent];
  const runs = splitZeroRuns(extent.data, extent.offset, blockSize, options);
  const release = extent.release;
  if (!release) return runs;
  let pieces = runs.reduce((n, r) => n + (r.data ? 1 : 0), 0);
  if (pieces === 0) {
    release();
    return runs;
  }
  const releaseOne = (): void => {
    if (--pieces === 0) release();
  };
  return runs.map((r) => (r.data ? { ...r, release: releaseOne } : r));
}

function coversAlignedUnit(start: number, end: number, unit: number): boolean {
  const firstUnitStart = Math.ceil(start / unit) * unit;
  return firstUnitStart + unit <= end;
}

function absorbShortZeroRuns(runs: Extent[], data: Buffer, offset: number, unit: number, shift: number): Extent[] {
  if (runs.length < 2) return runs;
  const merged: Extent[] = [];
  let pendingStart = -1; // start (relative to data) of a data run being extended
  let pendingEnd = -1;
  const flushData = (): void => {
    if (pendingStart >= 0) merged.push({ offset: offset + pendingStart, length: pendingEnd - pendingStart, data: data.subarray(pendingStart, pendingEnd) });
    pendingStart = -1;
  };
  for (const run of runs) {
    const start = run.offset - offset;
    const end = start + run.length;
    const keepAsHole = !run.data && coversAlignedUnit(run.offset + shift, run.offset + run.length + shift, unit);
    if (keepAsHole) {
      flushData();
      merged.push(run);
    } else {
      if (pendingStart < 0) pendingStart = start;
      pendingEnd = end;
    }
  }
  flushData();
  return merged;
}

function findRuns(data: Buffer, offset: number, blockSize: number): Extent[] {
  const length = data.length;
  if (length === 0) return [];
  if (isZeroRange(data)) return [{ offset, length }];

  const runs: Extent[] = [];
  let runStart = 0;
  let runIsZero: boolean | null = null;
  // First block boundary after `offset` in source coordinates.
  let blockEnd = Math.min(length, blockSize - (offset % blockSize));
  let blockStart = 0;
  while (blockStart < length) {
    const zero = isZeroRange(data, blockStart, blockEnd);
    if (runIsZero === null) runIsZero = zero;
    else if (zero !== runIsZero) {
      runs.push(makeRun(data, offset, runStart, blockStart, runIsZero));
      runStart = blockStart;
      runIsZero = zero;
    }
    // After a zero block, more zero blocks are likely (a filesystem's unused blocks, tables):
    // take them in spans of 2, 4, 8... blocks, one compare each, until a span holds data.
    if (zero) blockEnd = zeroSpanEnd(data, blockEnd, blockSize);
    blockStart = blockEnd;
    blockEnd = Math.min(length, blockEnd + blockSize);
  }
  runs.push(makeRun(data, offset, runStart, length, runIsZero === true));
  return runs;
}

/** Where the zeros that start at `start` (a block boundary) end, to a block boundary: galloping. */
function zeroSpanEnd(data: Buffer, start: number, blockSize: number): number {
  let end = start;
  for (let span = 2 * blockSize; end < data.length; span *= 2) {
    const next = Math.min(data.length, end + span);
    if (!isZeroRange(data, end, next)) break;
    end = next;
  }
  return end;
}

function makeRun(data: Buffer, offset: number, start: number, end: number, zero: boolean): Extent {
  return zero
    ? { offset: offset + start, length: end - start }
    : { offset: offset + start, length: end - start, data: data.subarray(start, end) };
}
