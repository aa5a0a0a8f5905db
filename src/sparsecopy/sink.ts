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
}

export interface Sink {
  /** Accepts extents in offset order; resolves when the sink can take more (backpressure). */
  write(extent: Extent): Promise<void>;
  /** Waits for every write, applies the final length / flush, and reports. */
  close(): Promise<SinkCounters>;
  /** Abandons the output after a failure: stops waiting, closes, never throws. */
  abort(): Promise<void>;
}

export const newCounters = (): SinkCounters => ({ real: 0, sparse: 0, nonzerodest: 0, checkedBytes: 0 });
