/**
 * Extent transforms between a source and its sink, each written once (pure over async iterables):
 *  - window: the bytes [start, end) of a source, renumbered from 0. A partition
 *    (--from-partition) is a window; so is --max (a window from 0), and both together are one
 *    window. It also reports whether the source went on past `end` (-e needs to know).
 *  - pad: a final run of zeros up to a multiple (--pad).
 *
 * A source that can seek reads only its window (the plan asks it for that range); the window
 * transform then only renumbers. A stream is read from its start, and what lies before the window
 * is dropped as it passes.
 */
import type { Extent } from './extent.js';

export interface WindowOptions {
  start: number;
  /** Exclusive; null: to the end of the source. */
  end: number | null;
  /** Called once if the source has a byte at or past `end`. */
  onBeyondEnd?: () => void;
}

/** The part of `e` inside [from, to), or null; its `release` stays with the original. */
function clip(e: Extent, from: number, to: number): Extent | null {
  const start = Math.max(e.offset, from);
  const end = Math.min(e.offset + e.length, to);
  if (end <= start) return null;
  if (start === e.offset && end === e.offset + e.length) return e;
  const piece: Extent = { offset: start, length: end - start };
  if (e.data) piece.data = e.data.subarray(start - e.offset, end - e.offset);
  if (e.release) piece.release = e.release;
  return piece;
}

export async function* windowExtents(source: AsyncIterable<Extent>, options: WindowOptions): AsyncGenerator<Extent> {
  const { start } = options;
  const end = options.end ?? Infinity;
  for await (const e of source) {
    if (e.offset + e.length > end) {
      options.onBeyondEnd?.();
      const piece = clip(e, start, end);
      if (piece) yield { ...piece, offset: piece.offset - start };
      else e.release?.();
      return; // nothing after this one can be inside the window
    }
    const piece = clip(e, start, end);
    if (!piece) {
      e.release?.();
      continue;
    }
    yield start === 0 ? piece : { ...piece, offset: piece.offset - start };
  }
}

/** Zeros after the source's last byte up to the next multiple of `multiple` (no-op for 0 or 1). */
export async function* padExtents(source: AsyncIterable<Extent>, multiple: number, onPadded?: (bytes: number) => void): AsyncGenerator<Extent> {
  let end = 0;
  for await (const e of source) {
    end = Math.max(end, e.offset + e.length);
    yield e;
  }
  const padding = multiple > 1 ? (multiple - (end % multiple)) % multiple : 0;
  onPadded?.(padding);
  if (padding > 0) yield { offset: end, length: padding };
}
