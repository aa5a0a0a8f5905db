/**
 * Transparent gzip input: sniff the magic, then decompress on the thread pool (node:zlib's async
 * Gunzip, which also checks every member's CRC-32 and length and follows concatenated members, as
 * pigz and `cat a.gz b.gz` make them), yielding the uncompressed bytes as extents for zero
 * detection. node:zlib inflates about 4x faster than pako here (bench/codecs.mjs, BENCHMARKS.md).
 */
import fs from 'node:fs';
import type zlibTypes from 'node:zlib';
import { stream, zlib } from '../builtins.js';
import type { Extent } from '../extent/extent.js';
import { ToolError, describeSystemError } from '../errors.js';
import { readAt } from '../io/fd-io.js';
import type { OpenedInput } from '../io/target.js';

const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;
/** Output chunk of the inflater: 1 MiB doubles node:zlib's throughput over the 16 KiB default. */
const INFLATE_CHUNK_BYTES = 1 << 20;
const COMPRESSED_READ_BYTES = 1 << 20;
/** Inflated bytes allowed to wait for the consumer. */
const INFLATE_AHEAD_BYTES = 16 << 20;
const SNIFF_BYTES = 64 << 10;

/** Whether the input starts with the gzip magic. A stream's first bytes are kept in `pending`. */
export async function looksGzipped(input: OpenedInput): Promise<boolean> {
  const head = Buffer.alloc(2);
  if (input.seekable) {
    if ((input.size ?? 0) < 2) return false;
    const n = fs.readSync(input.fd, head, 0, 2, input.startOffset);
    return n === 2 && head[0] === GZIP_MAGIC_0 && head[1] === GZIP_MAGIC_1;
  }
  if (!input.pending) {
    const first = Buffer.alloc(SNIFF_BYTES);
    const n = await readAt(input.fd, first, SNIFF_BYTES, null, input.signal);
    input.pending = first.subarray(0, n);
  }
  return input.pending.length >= 2 && input.pending[0] === GZIP_MAGIC_0 && input.pending[1] === GZIP_MAGIC_1;
}

/**
 * The uncompressed length a single-member gzip file declares (ISIZE, the last 4 bytes): exact
 * below 4 GiB, the true length modulo 2^32 above. Null for a stream.
 */
export function declaredUncompressedSize(input: OpenedInput): number | null {
  if (!input.seekable || input.size === null || input.size < 18) return null;
  const tail = Buffer.alloc(4);
  fs.readSync(input.fd, tail, 0, 4, input.startOffset + input.size - 4);
  return tail.readUInt32LE(0);
}

/** The compressed bytes, in order: positional reads for a file, sequential for a stream. */
async function* compressedChunks(input: OpenedInput, onRead: (n: number) => void): AsyncGenerator<Buffer> {
  if (input.pending) {
    const first = input.pending;
    input.pending = null;
    onRead(first.length);
    if (first.length > 0) yield first;
  }
  let position = input.seekable ? input.startOffset : null;
  const end = input.seekable ? input.startOffset + (input.size ?? 0) : Infinity;
  // One read ahead: the thread pool reads the next compressed chunk while zlib inflates this one.
  const read = (): Promise<Buffer> => {
    const length = position === null ? COMPRESSED_READ_BYTES : Math.min(COMPRESSED_READ_BYTES, end - position);
    if (length <= 0) return Promise.resolve(Buffer.alloc(0));
    const buffer = Buffer.allocUnsafe(length);
    const at = position;
    if (position !== null) position += length;
    return readAt(input.fd, buffer, length, at, input.signal).then(
      (n) => buffer.subarray(0, n),
      (err: unknown) => {
        if (input.signal?.aborted && err === input.signal.reason) throw err;
        throw new ToolError('SOURCE_READ', `${input.name}: read failed: ${describeSystemError(err)}`, { cause: err });
      },
    );
  };
  let next = read();
  for (;;) {
    const chunk = await next;
    if (chunk.length === 0) return;
    next = read();
    next.catch(() => undefined);
    onRead(chunk.length);
    yield chunk;
  }
}

export interface GunzipProgress {
  /** Compressed bytes read so far. */
  compressedBytes: number;
}

/**
 * Extents of the decompressed input. Errors name the input and the compressed byte offset where
 * decompression stopped: for a truncated stream the end of the input, otherwise the bytes the
 * inflater had consumed when it failed (a bad CRC or length is found at the end of its member).
 */
export async function* gunzipSource(input: OpenedInput, options: { limitBytes?: number; onCompressedRead?: (n: number) => void }): AsyncGenerator<Extent> {
  let compressedRead = 0;
  // A deep output buffer lets inflation run ahead while the consumer is busy (hashing on the
  // other core, writing): without it the two take turns instead of overlapping.
  const gunzip = zlib().createGunzip({ chunkSize: INFLATE_CHUNK_BYTES, readableHighWaterMark: INFLATE_AHEAD_BYTES } as zlibTypes.ZlibOptions);
  const raw = stream().Readable.from(
    compressedChunks(input, (n) => {
      compressedRead += n;
      options.onCompressedRead?.(n);
    }),
    { objectMode: false, highWaterMark: 4 << 20 },
  );
  raw.on('error', (err) => gunzip.destroy(err));
  raw.pipe(gunzip);
  const limit = options.limitBytes ?? Infinity;
  let offset = 0;
  let consumed = 0;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      consumed = gunzip.bytesWritten;
      const length = Math.min(chunk.length, limit - offset);
      if (length > 0) yield { offset, length, data: chunk.subarray(0, length) };
      offset += length;
      if (offset >= limit) return;
    }
  } catch (err) {
    if (err instanceof ToolError) throw err;
    throw corruptInput(input, err, compressedRead, consumed, offset);
  } finally {
    raw.destroy();
    gunzip.destroy();
  }
}

function corruptInput(input: OpenedInput, err: unknown, compressedRead: number, consumed: number, outputBytes: number): ToolError {
  const e = err as { code?: string; message?: string };
  const message = e.message ?? String(err);
  let what: string;
  let at: number;
  if (e.code === 'Z_BUF_ERROR' || /unexpected end/.test(message)) {
    what = 'truncated gzip data (unexpected end of input)';
    at = compressedRead;
  } else if (/incorrect data check/.test(message)) {
    what = 'bad CRC-32 in a gzip member trailer';
    at = Math.max(consumed, 0);
  } else if (/incorrect length check/.test(message)) {
    what = 'bad length in a gzip member trailer';
    at = Math.max(consumed, 0);
  } else if (/incorrect header check|unknown compression method|invalid/.test(message) && outputBytes > 0) {
    what = `trailing garbage or a corrupt gzip member (${message})`;
    at = Math.max(consumed, 0);
  } else {
    what = `corrupt gzip data (${message})`;
    at = Math.max(consumed, 0);
  }
  return new ToolError('CORRUPT_INPUT', `${input.name}: ${what} at compressed byte ${at} (after ${outputBytes} bytes of output)`, {
    cause: err,
  });
}
