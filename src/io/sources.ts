/**
 * Extent sources over open descriptors.
 *
 * Seekable inputs (files, block devices) are walked with SEEK_DATA/SEEK_HOLE so holes are never
 * read, and their data is read in chunks with several positional reads in flight, so the thread
 * pool reads ahead while the main thread scans and writes. Streams (pipes, stdin, character
 * devices) are read sequentially into full chunks, one read ahead.
 *
 * Chunk boundaries sit at multiples of the chunk size in the source's address space, and the
 * chunk size is a multiple of the block size, so a zero-detection block never straddles chunks.
 */
import type { Extent, ExtentSource } from '../extent/extent.js';
import { ToolError, describeSystemError } from '../errors.js';
import { seekData, seekHole } from './ffi.js';
import { readAt } from './fd-io.js';
import type { OpenedInput } from './target.js';
import { BufferPool } from './buffer-pool.js';

/**
 * 512 KiB chunks: measured on the 2 GiB ext4 image and the 1 TiB sparse file (bench/), smaller
 * chunks pay more in per-chunk JavaScript than they win in cache locality, larger ones lose the
 * cache (a read into a buffer still in the core's L2 runs several times faster than into a cold
 * one). The sink gathers consecutive chunks into pwritev calls of up to 1 MiB.
 */
export const DEFAULT_CHUNK_BYTES = 512 << 10;
/** Reads queued ahead of the consumer: enough to overlap the writes, few enough to stay cached. */
const READ_AHEAD_BYTES = 4 << 20;

export function chunkSizeFor(blockSize: number, preferred = DEFAULT_CHUNK_BYTES): number {
  if (blockSize >= preferred) return blockSize;
  return Math.max(blockSize, Math.floor(preferred / blockSize) * blockSize);
}

export interface SourceReadOptions {
  chunkBytes: number;
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
function* allocationSegments(input: OpenedInput, size: number, useHoleMap: boolean): Generator<Segment> {
  const base = input.startOffset;
  let pos = 0;
  if (!useHoleMap || input.kind !== 'file') {
    if (size > 0) yield { offset: 0, length: size, data: true };
    return;
  }
  while (pos < size) {
    const dataAt = seekData(input.fd, base + pos);
    if (dataAt.kind === 'unsupported') {
      yield { offset: pos, length: size - pos, data: true };
      return;
    }
    const dataStart = dataAt.kind === 'end' ? size : Math.min(size, dataAt.offset - base);
    if (dataStart > pos) yield { offset: pos, length: dataStart - pos, data: false };
    if (dataStart >= size) return;
    const holeAt = seekHole(input.fd, base + dataStart);
    const dataEnd = holeAt.kind === 'offset' ? Math.min(size, holeAt.offset - base) : size;
    yield { offset: dataStart, length: Math.max(dataEnd - dataStart, 1), data: true };
    pos = Math.max(dataEnd, dataStart + 1);
  }
}

function readFailure(input: OpenedInput, offset: number, err: unknown): ToolError {
  return new ToolError('SOURCE_READ', `sparsecopy: ${input.name}: read failed at byte ${offset}: ${describeSystemError(err)}`, {
    cause: err,
  });
}

/** Extents of a file or block device, covering [0, size) unless the input shrinks while read. */
export async function* seekableSource(input: OpenedInput, options: SourceReadOptions): AsyncGenerator<Extent> {
  const size = Math.min(input.size ?? 0, options.limitBytes ?? Infinity);
  const { chunkBytes } = options;
  const depth = Math.max(2, Math.floor(READ_AHEAD_BYTES / chunkBytes));
  type Pending = { offset: number; length: number; read?: Promise<number>; data?: Buffer };
  const queue: Pending[] = [];
  let queuedReads = 0; // reads issued and not yet handed on: in flight or waiting in the queue
  const pool = new BufferPool(chunkBytes);

  const startRead = (offset: number, length: number): Pending => {
    const data = pool.acquire();
    queuedReads++;
    const read = readAt(input.fd, data, length, input.startOffset + offset);
    read.catch(() => undefined); // surfaced when its turn comes
    return { offset, length, read, data };
  };

  // Yields the head of the queue; reports whether the input ended early (a short read).
  async function* drainHead(): AsyncGenerator<Extent, boolean> {
    const head = queue.shift()!;
    if (!head.read) {
      yield { offset: head.offset, length: head.length };
      return false;
    }
    let n: number;
    queuedReads--;
    try {
      n = await head.read;
    } catch (err) {
      throw readFailure(input, head.offset, err);
    }
    options.onRead?.(n);
    const buffer = head.data!;
    if (n > 0) yield { offset: head.offset, length: n, data: buffer.subarray(0, n), release: () => pool.release(buffer) };
    else pool.release(buffer);
    return n < head.length;
  }

  for (const segment of allocationSegments(input, size, options.useHoleMap ?? true)) {
    if (!segment.data) {
      queue.push({ offset: segment.offset, length: segment.length });
      continue;
    }
    let offset = segment.offset;
    const end = segment.offset + segment.length;
    while (offset < end) {
      const chunkEnd = Math.min(end, (Math.floor(offset / chunkBytes) + 1) * chunkBytes);
      queue.push(startRead(offset, chunkEnd - offset));
      offset = chunkEnd;
      while (queuedReads >= depth) {
        if (yield* drainHead()) return;
      }
    }
  }
  while (queue.length > 0) {
    if (yield* drainHead()) return;
  }
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
    const p = readAt(input.fd, buffer, wanted, null).then(
      (length) => {
        options.onRead?.(length);
        return { buffer, length, wanted };
      },
      (err: unknown) => {
        throw readFailure(input, at, err);
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
  while (next) {
    const { buffer, length, wanted } = await next;
    if (length === 0) return;
    // readAt retries until the chunk is full or the input ends, so a short chunk is the last one.
    next = length < wanted ? null : readChunk(offset + length);
    yield { offset, length, data: buffer.subarray(0, length), release: () => pool.release(buffer) };
    offset += length;
  }
}

export function sourceExtents(input: OpenedInput, options: SourceReadOptions): ExtentSource {
  return input.seekable ? seekableSource(input, options) : streamSource(input, options);
}
