/**
 * A source is a chain: a transport (file, block device, pipe) -> zero or more decompressors ->
 * at most one container -> the virtual disk. Each link is probed from the first bytes of the link
 * below it (identify.ts) and opened by its driver (input-formats.ts); what no driver reads is
 * refused by name before anything is written.
 *
 * A layer yields extents in order. One that can seek (a file or a device) reads only the range it
 * is asked for, its holes unread; a stream yields everything from its start and the window
 * transform drops what lies outside.
 */
import type { Extent } from '../extent/extent.js';
import type { ImageFormat } from './identify.js';

/** A byte range of a layer; end null: to its end. */
export interface ByteRange {
  start: number;
  end: number | null;
}

/**
 * What a layer knows of its length before it is read: exactly (a file, an Android sparse image's
 * header), a lower bound (a single-member gzip's ISIZE modulo 2^32 is one only when it is large),
 * or nothing (a pipe).
 */
export type KnownLength = { exact: number } | { atLeast: number } | null;

export const exactLength = (l: KnownLength): number | null => (l && 'exact' in l ? l.exact : null);
export const minimumLength = (l: KnownLength): number | null => (l === null ? null : 'exact' in l ? l.exact : l.atLeast);

export interface SourceLayer {
  /** What messages call the source (the user's path, or "stdin"). */
  name: string;
  /** Formats from the outside in: [] for a raw image, ['xz', 'android-sparse']... */
  formats: ImageFormat[];
  length: KnownLength;
  /** Synchronous reads at any offset (partition tables); null for a stream. */
  /** Reads `length` bytes at `offset` (zeros past the end), into `into` when given (its first `length` bytes), else a new buffer. */
  readAt: ((offset: number, length: number, into?: Buffer) => Buffer) | null;
  /**
   * Ranges, in order from `start`, outside which the disk reads as zeros, found without reading
   * data (a file's SEEK_DATA/SEEK_HOLE map, a qcow2's tables); absent for a stream. Any number of
   * walks: a qcow2 layer's backing file (--backing) is compared with where it may hold data.
   */
  mayHoldData?: (start: number) => Generator<{ offset: number; length: number }>;
  /** Extents covering at least `range`, in order; a layer is read once. */
  extents(range: ByteRange): AsyncGenerator<Extent>;
  /**
   * Progress in input bytes, where they are not the disk's: compressed bytes read so far under a
   * decompressor. Null: progress counts the disk's bytes copied.
   */
  progressDone: (() => number) | null;
  /** Progress's total when known: the compressed size, or the disk's length. */
  progressTotal: number | null;
}

/**
 * A layer's extents with the first `bytes` (or all, if fewer) taken ahead and replayed. `close`
 * gives back what was taken and stops the layer, whether the replay was started or not (an
 * unstarted generator runs no cleanup of its own).
 */
export async function peekHead(extents: AsyncGenerator<Extent>, bytes: number): Promise<{ head: Buffer; replay: AsyncGenerator<Extent>; close: () => Promise<void> }> {
  const taken: Extent[] = [];
  const head = Buffer.alloc(bytes);
  let end = 0;
  let finished = false;
  try {
    while (end < bytes) {
      const next = await extents.next();
      if (next.done) {
        finished = true;
        break;
      }
      const e = next.value;
      taken.push(e);
      if (e.data && e.offset < bytes) e.data.copy(head, e.offset, 0, Math.min(e.length, bytes - e.offset));
      end = e.offset + e.length;
    }
  } catch (err) {
    for (const e of taken) e.release?.(); // the layer failed: what it gave is given back
    throw err;
  }
  const close = async (): Promise<void> => {
    for (const e of taken.splice(0)) e.release?.();
    await extents.return(undefined);
  };
  async function* replay(): AsyncGenerator<Extent> {
    try {
      // One at a time, so that what is handed on is no longer ours to release.
      while (taken.length > 0) yield taken.shift()!;
      if (!finished) yield* extents;
    } finally {
      await close();
    }
  }
  return { head: head.subarray(0, Math.min(end, bytes)), replay: replay(), close };
}
