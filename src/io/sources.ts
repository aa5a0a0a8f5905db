/**
 * Extent sources over open descriptors.
 *
 * Seekable inputs (files, block devices) are walked with SEEK_DATA/SEEK_HOLE so holes are never
 * read, and their data is read in chunks. Streams (pipes, stdin, character devices) are read
 * sequentially into full chunks, one read ahead on the thread pool (a pipe's reads may block).
 *
 * Chunk boundaries sit at multiples of the chunk size in the source's address space, and the
 * chunk size is a multiple of the block size (up to 2 MiB blocks), so such a zero-detection block
 * never straddles chunks.
 */
import fs from 'node:fs';
import type { Extent, ExtentSource } from '../extent/extent.js';
import { ToolError, describeSystemError } from '../errors.js';
import { seekData, seekHole } from './ffi.js';
import { readAt } from './fd-io.js';
import type { OpenedInput } from './target.js';
import { BufferPool } from './buffer-pool.js';

/**
 * 2 MiB chunks: measured on the 2 GiB ext4 images (bench/), in-process copy time 0.29 / 0.27 /
 * 0.26 s for 256 KiB / 512 KiB / 2 MiB chunks of the sparse image, 0.45 / 0.44 / 0.41 s of the
 * fully allocated one: with aligned buffers a large read costs no more per byte than a small one,
 * and fewer chunks cost less JavaScript per byte (zero detection, extents, the sink).
 */
export const DEFAULT_CHUNK_BYTES = 2 << 20;
/** Synchronous reads between turns of the event loop (so that a signal is handled): bytes, or ms on a slow device. */
const YIELD_EVERY_BYTES = 64 << 20;
const YIELD_EVERY_MS = 100;

/**
 * The read chunk for a block size: a multiple of it up to `preferred`, so that no block straddles
 * two chunks. A block larger than that is not a buffer size (-b 4G must not allocate 4 GiB): the
 * chunk stays `preferred` and the copy joins the pieces of a block (extent/whole-blocks.ts).
 */
export function chunkSizeFor(blockSize: number, preferred = DEFAULT_CHUNK_BYTES): number {
  if (blockSize >= preferred) return preferred;
  return Math.floor(preferred / blockSize) * blockSize;
}

export interface SourceReadOptions {
  chunkBytes: number;
  /** Start here (a seekable source: a partition's first byte); offsets stay the source's own. */
  fromBytes?: number;
  /** Read no further than this many bytes from the start of the source. */
  limitBytes?: number;
  /** Walk holes with SEEK_DATA/SEEK_HOLE (files only); false forces reading everything. */
  useHoleMap?: boolean;
  /** Called with the number of bytes each read returns (progress on raw input). */
  onRead?: (bytes: number) => void;
}

/** A data or hole segment of a seekable input, offsets relative to the input's start. */
interface Segment {
  offset: number;
  length: number;
  data: boolean;
}

/**
 * The allocation map of [0, size), lazily, one lseek pair per data extent. Any "unsupported"
 * answer makes the rest of the range data: read and scanned, never assumed zero.
 */
function* allocationSegments(input: OpenedInput, from: number, size: number, useHoleMap: boolean): Generator<Segment> {
  const base = input.startOffset;
  let pos = from;
  if (!useHoleMap || input.kind !== 'file') {
    if (size > from) yield { offset: from, length: size - from, data: true };
    return;
  }
  // lseek fails as a read would (EIO on a failing disk): the same error, at the offset looked up.
  const seek = (find: typeof seekData, at: number): ReturnType<typeof seekData> => {
    try {
      return find(input.fd, base + at);
    } catch (err) {
      throw readFailure(input, at, err);
    }
  };
  while (pos < size) {
    const dataAt = seek(seekData, pos);
    if (dataAt.kind === 'unsupported') {
      yield { offset: pos, length: size - pos, data: true };
      return;
    }
    const dataStart = dataAt.kind === 'end' ? size : Math.min(size, dataAt.offset - base);
    if (dataStart > pos) yield { offset: pos, length: dataStart - pos, data: false };
    if (dataStart >= size) return;
    const holeAt = seek(seekHole, dataStart);
    const dataEnd = holeAt.kind === 'offset' ? Math.min(size, holeAt.offset - base) : size;
    yield { offset: dataStart, length: Math.max(dataEnd - dataStart, 1), data: true };
    pos = Math.max(dataEnd, dataStart + 1);
  }
}

/** The data segments of a seekable input from `from` (all of it where holes cannot be found). */
export function* dataSegments(input: OpenedInput, from: number): Generator<{ offset: number; length: number }> {
  for (const segment of allocationSegments(input, from, input.size ?? 0, true)) if (segment.data) yield { offset: segment.offset, length: segment.length };
}

function readFailure(input: OpenedInput, offset: number, err: unknown): ToolError {
  return new ToolError('SOURCE_READ', `${input.name}: read failed at byte ${offset}: ${describeSystemError(err)}`, {
    cause: err,
  });
}

/**
 * Extents of a file or block device, covering [0, size) unless the input shrinks while read.
 *
 * Read synchronously, chunk by chunk, on the main thread: a read from the page cache into an
 * aligned buffer costs less than handing it to libuv's pool and back (a cross-CPU wake-up each
 * way on a virtual machine; measured, 0.21 s of pool reads and 36-70 ms of main-thread dispatch
 * for the 740 MB of the benchmark image, against 0.06 s read here), the chunk is then scanned
 * while it is still in this core's cache, and the writes overlap it on their own thread. The
 * kernel's read-ahead keeps a disk busy meanwhile.
 */
export async function* seekableSource(input: OpenedInput, options: SourceReadOptions): AsyncGenerator<Extent> {
  const size = Math.min(input.size ?? 0, options.limitBytes ?? Infinity);
  const { chunkBytes } = options;
  const pool = new BufferPool(chunkBytes);
  let sinceYield = 0;
  let lastYield = performance.now();
  for (const segment of allocationSegments(input, Math.min(options.fromBytes ?? 0, size), size, options.useHoleMap ?? true)) {
    if (!segment.data) {
      yield { offset: segment.offset, length: segment.length };
      continue;
    }
    const end = segment.offset + segment.length;
    for (let offset = segment.offset; offset < end; ) {
      const length = Math.min(end, (Math.floor(offset / chunkBytes) + 1) * chunkBytes) - offset;
      const buffer = pool.acquire();
      const n = readFullySync(input, buffer, length, offset);
      options.onRead?.(n);
      if (n > 0) yield { offset, length: n, data: buffer.subarray(0, n), release: () => pool.release(buffer) };
      else pool.release(buffer);
      if (n < length) return; // the input shrank while being read
      offset += length;
      // Every so often let the event loop turn, so a signal is handled mid-copy.
      if ((sinceYield += length) >= YIELD_EVERY_BYTES || performance.now() - lastYield >= YIELD_EVERY_MS) {
        await new Promise(setImmediate);
        sinceYield = 0;
        lastYield = performance.now();
      }
    }
  }
}

/** Reads until `length` bytes are in or the input ends; returns the bytes read. */
function readFullySync(input: OpenedInput, buffer: Buffer, length: number, offset: number): number {
  let done = 0;
  try {
    while (done < length) {
      const n = fs.readSync(input.fd, buffer, done, length - done, input.startOffset + offset + done);
      if (n === 0) break;
      done += n;
    }
  } catch (err) {
    throw readFailure(input, offset + done, err);
  }
  return done;
}

/** Extents of a pipe, stdin or character device, read in full chunks with one read ahead. */
export async function* streamSource(input: OpenedInput, options: SourceReadOptions): AsyncGenerator<Extent> {
  const { chunkBytes } = options;
  const limit = options.limitBytes ?? Infinity;
  const pool = new BufferPool(chunkBytes);
  type Chunk = { buffer: Buffer; length: number; wanted: number };
  const readChunk = (at: number): Promise<Chunk> | null => {
    const wanted = Math.min(chunkBytes, limit - at);
    if (wanted <= 0) return null;
    const buffer = pool.acquire();
    const p = readAt(input.fd, buffer, wanted, null, input.signal).then(
      (length) => {
        options.onRead?.(length);
        return { buffer, length, wanted };
      },
      (err: unknown) => {
        throw input.signal?.aborted && err === input.signal.reason ? err : readFailure(input, at, err);
      },
    );
    p.catch(() => undefined);
    return p;
  };
  let offset = 0;
  if (input.pending) {
    // Bytes a format sniffer already read: they are the start of the stream.
    const first = input.pending.subarray(0, Math.min(input.pending.length, limit));
    input.pending = null;
    options.onRead?.(first.length);
    if (first.length > 0) yield { offset: 0, length: first.length, data: first };
    offset = first.length;
  }
  let next = readChunk(offset);
  try {
    while (next) {
      const { buffer, length, wanted } = await next;
      if (length === 0) return;
      // readAt retries until the chunk is full or the input ends, so a short chunk is the last one.
      next = length < wanted ? null : readChunk(offset + length);
      yield { offset, length, data: buffer.subarray(0, length), release: () => pool.release(buffer) };
      offset += length;
    }
  } finally {
    // The read ahead must be over before the caller closes the descriptor (a queued read would
    // run on whatever file reuses the number); an interrupted copy's read gives up at once.
    await next?.catch(() => undefined);
  }
}

export function sourceExtents(input: OpenedInput, options: SourceReadOptions): ExtentSource {
  return input.seekable ? seekableSource(input, options) : streamSource(input, options);
}
