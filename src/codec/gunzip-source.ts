/**
 * Transparent gzip input: sniff the magic, then decompress on the thread pool (node:zlib's async
 * Gunzip, which also checks every member's CRC-32 and length and follows concatenated members, as
 * pigz and `cat a.gz b.gz` make them), yielding the uncompressed bytes as extents for zero
 * detection. node:zlib inflates about 4x faster than pako here (bench/codecs.mjs, BENCHMARKS.md).
 */
import fs from 'node:fs';
import type zlibTypes from 'node:zlib';
import { zlib } from '../builtins.js';
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

/**
 * The compressed bytes, in order: positional reads for a file, sequential for a stream. Chunks
 * are COMPRESSED_READ_BYTES long and start at multiples of it from the start of the input, for a
 * file and a pipe alike (a pipe's sniffed head is completed to a whole chunk): the inflater then
 * sees the same pieces, and reports a corrupt stream at the same compressed offset either way.
 */
async function* compressedChunks(input: OpenedInput, onRead: (n: number) => void): AsyncGenerator<Buffer> {
  let position = input.seekable ? input.startOffset : null;
  const end = input.seekable ? input.startOffset + (input.size ?? 0) : Infinity;
  let offset = 0; // of the next chunk, from the start of the input
  // One read ahead: the thread pool reads the next compressed chunk while zlib inflates this one.
  const read = (): Promise<Buffer> => {
    const head = input.pending;
    input.pending = null;
    const have = head?.length ?? 0;
    const length = position === null ? COMPRESSED_READ_BYTES - have : Math.min(COMPRESSED_READ_BYTES, end - position);
    if (length <= 0) return Promise.resolve(head ?? Buffer.alloc(0));
    const buffer = Buffer.allocUnsafe(have + length);
    head?.copy(buffer);
    const at = position;
    if (position !== null) position += length;
    return readAt(input.fd, buffer.subarray(have), length, at, input.signal).then(
      (n) => buffer.subarray(0, have + n),
      (err: unknown) => {
        if (input.signal?.aborted && err === input.signal.reason) throw err;
        throw new ToolError('SOURCE_READ', `${input.name}: read failed at compressed byte ${offset}: ${describeSystemError(err)}`, { cause: err });
      },
    );
  };
  let next = read();
  try {
    for (;;) {
      const chunk = await next;
      if (chunk.length === 0) return;
      offset += chunk.length;
      next = read();
      next.catch(() => undefined);
      onRead(chunk.length);
      yield chunk;
    }
  } finally {
    // The read ahead must be over before the caller closes the descriptor: a read still queued
    // then would run on whatever file reuses the number. (An interrupted copy's read gives up.)
    await next.catch(() => undefined);
  }
}

export interface GunzipProgress {
  /** Compressed bytes read so far. */
  compressedBytes: number;
}

/**
 * Extents of the decompressed input. Errors name the input and the compressed byte offset where
 * decompression stopped: for a truncated stream the end of the input, otherwise the bytes the
 * inflater had taken in when it failed (a bad CRC or length is found at the end of its member).
 *
 * The inflater (node:zlib's Gunzip) follows concatenated members, and takes zero bytes after a
 * member as padding: it stops there, silently, even when a member follows the zeros. So what it
 * did not take must be zeros to the end of the input, or the input is corrupt (trailing garbage,
 * a member whose header was zeroed): read and checked here.
 */
export async function* gunzipSource(input: OpenedInput, options: { limitBytes?: number; onCompressedRead?: (n: number) => void }): AsyncGenerator<Extent> {
  let compressedRead = 0;
  // A deep output buffer lets inflation run ahead while the consumer is busy (hashing on the
  // other core, writing): without it the two take turns instead of overlapping.
  const gunzip = zlib().createGunzip({ chunkSize: INFLATE_CHUNK_BYTES, readableHighWaterMark: INFLATE_AHEAD_BYTES } as zlibTypes.ZlibOptions);
  gunzip.on('error', () => undefined); // seen by the loop below; none may go unhandled after it
  const chunks = compressedChunks(input, (n) => {
    compressedRead += n;
    options.onCompressedRead?.(n);
  });
  const fed = new FedChunks();
  let stopped = false;
  let readError: unknown = null;
  /** Where the inflater stopped taking input, at a member followed by zeros; null: it took everything. */
  let endedAt: number | null = null;
  // Two chunks in flight, no more: when one's write callback runs, the inflater has processed it
  // and has not started on the next, so bytesWritten is exact there, and less than the bytes fed
  // up to that chunk means it stopped at a member followed by zeros (it ignores what follows).
  const feeding = (async () => {
    try {
      let previous: Promise<boolean> = Promise.resolve(true);
      for (let next = await chunks.next(); !next.done && !stopped; next = await chunks.next()) {
        fed.add(next.value, gunzip.bytesWritten);
        const fedEnd = fed.fedEnd;
        const current = new Promise<boolean>((resolve) =>
          gunzip.write(next.value, (err) => {
            if (!err && endedAt === null && gunzip.bytesWritten < fedEnd) endedAt = gunzip.bytesWritten;
            resolve(!err && endedAt === null);
          }),
        );
        if (!(await previous)) return;
        previous = current;
      }
      if ((await previous) && !stopped) gunzip.end();
    } catch (err) {
      readError = err;
      gunzip.destroy(err as Error);
    }
  })();
  const limit = options.limitBytes ?? Infinity;
  let offset = 0;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      const length = Math.min(chunk.length, limit - offset);
      if (length > 0) yield { offset, length, data: chunk.subarray(0, length) };
      offset += length;
      if (offset >= limit) return;
    }
    await feeding;
    if (readError) throw readError;
    await expectZerosAfter(input, endedAt ?? gunzip.bytesWritten, fed, chunks);
  } catch (err) {
    if (readError) throw readError;
    if (err instanceof ToolError) throw err;
    throw corruptInput(input, err, compressedRead, gunzip.bytesWritten, fed.fedEnd);
  } finally {
    stopped = true;
    gunzip.destroy();
    await chunks.return(undefined).catch(() => undefined); // no read left running (see compressedChunks)
  }
}

/** The compressed chunks handed to the inflater and not yet known to be taken in, with their offsets. */
class FedChunks {
  private readonly chunks: { offset: number; data: Buffer }[] = [];
  private end = 0;

  add(data: Buffer, consumed: number): void {
    while (this.chunks.length > 0 && this.chunks[0]!.offset + this.chunks[0]!.data.length <= consumed) this.chunks.shift();
    this.chunks.push({ offset: this.end, data });
    this.end += data.length;
  }

  /** The fed bytes from `from` on, with the offset of each piece. */
  *from(from: number): Generator<{ offset: number; data: Buffer }> {
    for (const c of this.chunks) {
      const skip = Math.max(0, from - c.offset);
      if (skip < c.data.length) yield { offset: c.offset + skip, data: c.data.subarray(skip) };
    }
  }

  get fedEnd(): number {
    return this.end;
  }
}

/** The input after the last member the inflater took (from `consumed`) must be zeros to its end. */
async function expectZerosAfter(input: OpenedInput, consumed: number, fed: FedChunks, rest: AsyncGenerator<Buffer>): Promise<void> {
  const check = (offset: number, data: Buffer): void => {
    const at = data.findIndex((b) => b !== 0);
    if (at >= 0) {
      const what = offset + at === consumed ? 'trailing garbage or a corrupt gzip member' : 'trailing garbage after zero padding';
      throw new ToolError('CORRUPT_INPUT', `${input.name}: ${what} at compressed byte ${offset + at}`);
    }
  };
  for (const piece of fed.from(consumed)) check(piece.offset, piece.data);
  let offset = fed.fedEnd;
  for (let next = await rest.next(); !next.done; next = await rest.next()) {
    check(offset, next.value);
    offset += next.value.length;
  }
}

/**
 * The error for a stream the inflater refused. Where: a truncated stream ends at the end of the
 * input; anything else lies in what the inflater was given last, from what it had taken in
 * (`consumed`, exact: chunks are fed one at a time) to the end of that chunk (`fedEnd`).
 */
function corruptInput(input: OpenedInput, err: unknown, compressedRead: number, consumed: number, fedEnd: number): ToolError {
  const e = err as { code?: string; message?: string };
  const message = e.message ?? String(err);
  let what: string;
  if (e.code === 'Z_BUF_ERROR' || /unexpected end/.test(message)) {
    return new ToolError('CORRUPT_INPUT', `${input.name}: truncated gzip data (unexpected end of input) at compressed byte ${compressedRead}`, { cause: err });
  } else if (/incorrect data check/.test(message)) {
    what = 'bad CRC-32 in a gzip member trailer';
  } else if (/incorrect length check/.test(message)) {
    what = 'bad length in a gzip member trailer';
  } else if (/incorrect header check/.test(message)) {
    // The first member's magic was checked before: a later one's is wrong.
    what = `trailing garbage or a corrupt gzip member (${message})`;
  } else {
    what = `corrupt gzip data (${message})`;
  }
  const where = fedEnd > consumed ? `compressed bytes ${consumed}..${fedEnd}` : `compressed byte ${consumed}`;
  return new ToolError('CORRUPT_INPUT', `${input.name}: ${what} within ${where}`, { cause: err });
}
