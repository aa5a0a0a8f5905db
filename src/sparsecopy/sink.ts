import type { Extent } from '../extent/extent.js';

/** What a sink did with the bytes it was given, in v0.10's terms plus the new counters. */
export interface SinkCounters {
  /** Bytes written to the destination (data, and zeros written over non-zero destination). */
  real: number;
  /** Zero bytes not written: holes in a file, skipped ranges of a device. */
  sparse: number;
  /** Zero bytes that landed on non-zero destination data and were written (v0.10's nonzerodest). */
  nonzerodest: number;
  /** Destination bytes read to check for zeros. */
  checkedBytes: number;
  /** Zero bytes written because the zero policy says so (--zero=write, and zeroout's fallback). */
  zerosWritten: number;
  /** Zero bytes cleared with BLKZEROOUT instead of being written (--zero=zeroout). */
  zeroedOut: number;
}

/**
 * What to do with zeros that land where the destination may hold data (a block device, or an
 * existing file with --overlay):
 *  - compare: read the destination and write zeros only where it is not zero (v0.10's check);
 *  - skip: trust the destination to be zero already (-n);
 *  - zeroout: ask the device to zero the range (BLKZEROOUT), writing zeros where it cannot;
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

export const newCounters = (): SinkCounters => ({ real: 0, sparse: 0, nonzerodest: 0, checkedBytes: 0, zerosWritten: 0, zeroedOut: 0 });
