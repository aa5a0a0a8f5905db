/**
 * A sink that writes one gzip member: a sparse image's .gz in time that follows its data.
 *
 * Data is staged into pieces of about 1 MiB and each piece is compressed on its own on the thread
 * pool (zlib's async deflateRaw, several in flight: both cores), primed with the 32 KiB of output
 * before it as a dictionary and ended with a sync flush, so the pieces concatenate into one deflate
 * stream with pigz's ratio. Long zero runs never reach the compressor: after the flush that ends
 * the previous piece, precomputed blocks that expand to zeros are written (about 1 KiB per MiB,
 * see deflate-zeros.ts), and the CRC is extended over them arithmetically (crc32AppendZeros).
 */
import zlib from 'node:zlib';
import type { Extent } from '../extent/extent.js';
import { ToolError, describeSystemError } from '../errors.js';
import { writeAllSync } from '../io/write-sync.js';
import type { Sink, SinkCounters } from '../sparsecopy/sink.js';
import { newCounters } from '../sparsecopy/sink.js';
import { crc32, crc32AppendZeros } from './crc32.js';
import { zeroRunPieces } from './deflate-zeros.js';
import { FINAL_EMPTY_BLOCK, gzipHeader, gzipTrailer } from './gzip-format.js';

export interface GzipSinkOptions {
  fd: number;
  name: string;
  /** zlib level 1-9 (default 6, gzip's). */
  level?: number;
  /** Where the member starts in a regular file; null: sequential writes (pipes, stdout). */
  position?: number | null;
}

const PIECE_BYTES = 1 << 20;
const WINDOW_BYTES = 32 << 10;
/** Zero runs shorter than this are compressed with the data: splitting the stream costs more. */
const MIN_ZERO_RUN_BYTES = 64 << 10;
/** Pieces compressing at once: two cores, and enough queued to keep them busy. */
const MAX_IN_FLIGHT = 4;

type Output = Buffer | Buffer[];

export class GzipSink implements Sink {
  private readonly level: number;
  private readonly counters = newCounters();
  private position: number | null;
  private written = 0;
  private crc = 0;
  private total = 0;
  private staging = Buffer.allocUnsafe(PIECE_BYTES);
  private staged = 0;
  /** The last up-to-32 KiB of uncompressed output, the next piece's dictionary. */
  private window = Buffer.alloc(0);
  private readonly queue: Promise<Output>[] = [];

  constructor(private readonly options: GzipSinkOptions) {
    this.level = options.level ?? 6;
    this.position = options.position === undefined ? 0 : options.position;
    this.emit(gzipHeader(this.level));
  }

  /** Compressed bytes written so far. */
  get compressedBytes(): number {
    return this.written;
  }

  async write(extent: Extent): Promise<void> {
    if (extent.data) {
      this.crc = crc32(extent.data, this.crc);
      this.total += extent.length;
      this.counters.real += extent.length;
      await this.stage(extent.data);
      extent.release?.();
      return;
    }
    extent.release?.();
    this.crc = crc32AppendZeros(this.crc, extent.length);
    this.total += extent.length;
    if (extent.length < MIN_ZERO_RUN_BYTES) {
      this.counters.real += extent.length;
      await this.stageZeros(extent.length);
      return;
    }
    await this.flushPiece();
    this.queue.push(Promise.resolve(zeroRunOutput(extent.length)));
    this.counters.sparse += extent.length;
    this.window = Buffer.alloc(Math.min(WINDOW_BYTES, extent.length)); // the output now ends in zeros
    await this.drain(MAX_IN_FLIGHT);
  }

  private async stage(data: Buffer): Promise<void> {
    for (let done = 0; done < data.length; ) {
      const n = Math.min(data.length - done, PIECE_BYTES - this.staged);
      data.copy(this.staging, this.staged, done, done + n);
      this.staged += n;
      done += n;
      if (this.staged === PIECE_BYTES) await this.flushPiece();
    }
  }

  private async stageZeros(length: number): Promise<void> {
    for (let left = length; left > 0; ) {
      const n = Math.min(left, PIECE_BYTES - this.staged);
      this.staging.fill(0, this.staged, this.staged + n);
      this.staged += n;
      left -= n;
      if (this.staged === PIECE_BYTES) await this.flushPiece();
    }
  }

  /** Starts compressing the staged bytes as one piece. */
  private async flushPiece(): Promise<void> {
    if (this.staged === 0) return;
    const piece = this.staging.subarray(0, this.staged);
    const dictionary = this.window.length > 0 ? this.window : undefined;
    this.window = Buffer.from(piece.subarray(Math.max(0, piece.length - WINDOW_BYTES)));
    if (this.window.length < WINDOW_BYTES && dictionary) {
      this.window = Buffer.concat([dictionary, this.window]).subarray(-WINDOW_BYTES);
    }
    const level = this.level;
    const compressed = new Promise<Output>((resolve, reject) => {
      zlib.deflateRaw(piece, { level, dictionary, finishFlush: zlib.constants.Z_SYNC_FLUSH }, (err, out) => (err ? reject(err) : resolve(out)));
    });
    compressed.catch(() => undefined);
    this.queue.push(compressed);
    this.staging = Buffer.allocUnsafe(PIECE_BYTES); // the piece is owned by the compressor now
    this.staged = 0;
    await this.drain(MAX_IN_FLIGHT);
  }

  /** Writes finished outputs, in order, until at most `limit` remain queued. */
  private async drain(limit: number): Promise<void> {
    while (this.queue.length > limit) {
      let out: Output;
      try {
        out = await this.queue.shift()!;
      } catch (err) {
        throw new ToolError('WRITE', `sparsecopy: ${this.options.name}: compression failed: ${describeSystemError(err)}`, { cause: err });
      }
      this.emit(out);
    }
  }

  private emit(out: Output): void {
    const buffers = Array.isArray(out) ? out : [out];
    try {
      const n = writeAllSync(this.options.fd, buffers, this.position);
      this.written += n;
      if (this.position !== null) this.position += n;
    } catch (err) {
      throw new ToolError('WRITE', `sparsecopy: ${this.options.name}: write failed at byte ${this.written}: ${describeSystemError(err)}`, { cause: err });
    }
  }

  async close(): Promise<SinkCounters> {
    await this.flushPiece();
    await this.drain(0);
    this.emit([FINAL_EMPTY_BLOCK, gzipTrailer(this.crc, this.total)]);
    return { ...this.counters };
  }

  async abort(): Promise<void> {
    await Promise.allSettled(this.queue.splice(0));
  }
}

/** The deflate bytes for `length` zeros: the precomputed unit repeated, then a remainder. */
function zeroRunOutput(length: number): Buffer[] {
  const { unit, unitRepeats, remainder } = zeroRunPieces(length);
  const out = new Array<Buffer>(unitRepeats).fill(unit);
  if (remainder) out.push(remainder);
  return out;
}
