/**
 * The one idea of the design: every image is a stream of extents in offset order.
 * An extent without data is a run of zeros (a hole): it costs nothing to carry.
 */
export interface Extent {
  /** Byte offset in the source's logical address space. */
  offset: number;
  length: number;
  /** The bytes (length === data.length); absent for a run of zeros. */
  data?: Buffer;
  /**
   * Called once the consumer no longer needs `data` (written, hashed...), so a source can recycle
   * the buffer. Consumers that split an extent call it after the last piece is done.
   */
  release?: () => void;
  /**
   * v0.10's summary counts whole -b blocks: a block with any data is real, an all-zero block sparse.
   * Where what is written differs from that (whole-blocks.ts), an extent says how to count it:
   * `zeroBlockBytes` of a data extent are all-zero blocks written only because they share a
   * filesystem block with data (counted sparse); a zero extent `inDataBlock` lies in a block that
   * holds data beyond a hole of the source (counted real, as v0.10 wrote the whole block).
   */
  zeroBlockBytes?: number;
  inDataBlock?: boolean;
}

/** Offsets strictly increasing; a source may leave gaps only where it also ends (no overlap). */
export type ExtentSource = AsyncIterable<Extent>;

export const isHole = (e: Extent): boolean => e.data === undefined;

export const extentEnd = (e: Extent): number => e.offset + e.length;
