import type { Extent } from '../extent/extent.js';

/**
 * What a sink did with the bytes it was given: v0.10's counters, which judge whole -b blocks of the
 * source (see extent.ts), and what was physically done.
 */
export interface SinkCounters {
  /** Bytes of blocks v0.10 would have written: blocks with data, zero blocks over destination data. */
  real: number;
  /** Bytes of all-zero blocks v0.10 would have skipped: holes in a file, skipped ranges of a device. */
  sparse: number;
  /** Bytes of all-zero source blocks under which the destination held data (v0.10's nonzerodest). */
  nonzerodest: number;
  /** Bytes physically written to the destination (data, zeros written with it or over its old data). */
  written: number;
  /** Bytes of all-zero blocks written only because they share a filesystem block with data (counted in sparse). */
  zeroBlocksWritten: number;
  /** Destination bytes read to check for zeros. */
  checkedBytes: number;
  /** Zero bytes written because the zero policy says so (--zero=write, and zeroout's fallback). */
  zerosWritten: number;
  /** Zero bytes cleared by an unmap or BLKZEROOUT instead of being written (--zero=zeroout). */
  zeroedOut: number;
}

/**
 * What to do with zeros that land where the destination may hold data (a block device, or an
 * existing file with --overlay):
 *  - compare: read the destination and write zeros only where it is not zero (v0.10's check);
 *  - skip: trust the destination to be zero already (-n);
 *  - zeroout: have the range zeroed unread: unmapped (fallocate PUNCH_HOLE), else BLKZEROOUT,
 *    else zeros written;
 *  - write: write every zero.
 */
export type ZeroPolicy = 'compare' | 'skip' | 'zeroout' | 'write';
export const ZERO_POLICIES: readonly ZeroPolicy[] = ['compare', 'skip', 'zeroout', 'write'];

export interface Sink {
  /**
   * Accepts extents in offset order (a file or a device: in any order, never overlapping); resolves
   * when the sink can take more (backpressure).
   */
  write(extent: Extent): Promise<void>;
  /** Waits for every write, applies the final length / flush, and reports. */
  close(): Promise<SinkCounters>;
  /** Abandons the output after a failure: stops waiting, closes, never throws. */
  abort(): Promise<void>;
}

export const newCounters = (): SinkCounters => ({ real: 0, sparse: 0, nonzerodest: 0, written: 0, zeroBlocksWritten: 0, checkedBytes: 0, zerosWritten: 0, zeroedOut: 0 });
