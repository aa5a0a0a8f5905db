/**
 * A pipe read on the calling thread, into a few reused buffers small enough to stay in the core's
 * cache from the read to the write.
 *
 * Why not a reading thread (decoder-thread.ts, kind 'copy'): when the writer of the pipe is a
 * decompressor that keeps both cores busy (xz -T0, lbzip2), the bytes a thread read on one core
 * are cold on the other, and the main thread's write into the page cache then costs a memory
 * round trip per cache line (perf: 0.76 s in copy_folio_from_iter_atomic on a 2 GiB image, against
 * dd's 0.06 s: dd writes each piece right after reading it). Read, scanned and written on one core
 * in 256 KiB pieces, the copy ran within 1-2% of `xz -dc -T0 | dd` instead of 6% (bench/formats.mjs).
 *
 * The reads block: only for a pipe whose writer always makes progress (a decompressor reading a
 * file), never for a pipe from outside, which may stay idle for ever. The event loop is given a
 * turn every YIELD_EVERY_BYTES so that signals, progress and the writer's exit are seen.
 */
import fs from 'node:fs';
import type { Extent } from '../extent/extent.js';
import { BufferPool } from './buffer-pool.js';

export const PIECE_BYTES = 256 << 10;
/** Pieces lent out at once: a write batch (1 MiB) and the one being filled, with room to spare. */
const PIECES = 8;
const YIELD_EVERY_BYTES = 16 << 20;

export interface PipeReadOptions {
  pieceBytes?: number;
  signal?: AbortSignal;
}

/**
 * The pipe's bytes as data extents from offset 0, each piece full but the last (so the copy
 * handles a few thousand extents per GiB whatever size the writer's pieces have). A piece's
 * buffer is reused once the consumer calls its `release`; when all are lent out the reader waits
 * for one. Read errors are thrown as they are (the caller knows what the pipe carries).
 */
export async function* readPipeHere(fd: number, options: PipeReadOptions = {}): AsyncGenerator<Extent> {
  const pieceBytes = options.pieceBytes ?? PIECE_BYTES;
  const pool = new BufferPool(pieceBytes, PIECES);
  let lent = 0;
  let wakeReader: (() => void) | null = null;
  let offset = 0;
  let sinceYield = 0;
  for (;;) {
    while (lent >= PIECES) await new Promise<void>((resolve) => (wakeReader = resolve));
    const buffer = pool.acquire();
    const length = fillFrom(fd, buffer);
    if (length === 0) {
      pool.release(buffer);
      return;
    }
    lent++;
    let released = false;
    yield {
      offset,
      length,
      data: buffer.subarray(0, length),
      release: () => {
        if (released) return;
        released = true;
        lent--;
        pool.release(buffer);
        const wake = wakeReader;
        wakeReader = null;
        wake?.();
      },
    };
    offset += length;
    sinceYield += length;
    if (length < buffer.length) return; // the pipe's writer is gone: its end was seen
    if (sinceYield >= YIELD_EVERY_BYTES) {
      sinceYield = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
      options.signal?.throwIfAborted();
    }
  }
}

/** Reads until `buffer` is full or the pipe ends; the byte count. */
function fillFrom(fd: number, buffer: Buffer): number {
  let filled = 0;
  while (filled < buffer.length) {
    let n: number;
    try {
      n = fs.readSync(fd, buffer, filled, buffer.length - filled, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EINTR') continue;
      throw err;
    }
    if (n === 0) break;
    filled += n;
  }
  return filled;
}
