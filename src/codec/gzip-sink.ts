/**
 * A sink that writes one gzip member: a sparse image's .gz in time that follows its data, not its
 * apparent size.
 *
 * Data is staged into pieces of PIECE_BYTES and each piece is compressed on its own on libuv's
 * thread pool (zlib's async deflateRaw, up to MAX_PIECES_IN_FLIGHT at once: every core), primed
 * with the 32 KiB of uncompressed output before it as a dictionary and ended with a sync flush, so
 * the pieces concatenate into one deflate stream with nearly single-stream ratio (what pigz does).
 * Outputs are written in order as soon as the head of the queue is done.
 *
 * Long zero runs never reach the compressor: after the flush that ends the previous piece, the
 * precomputed unit from deflate-zeros.ts (about 1 KiB expanding to about 1 MiB of zeros) is written
 * again and again, the same Buffer in batches of writev, then a fixed-Huffman remainder; the CRC is
 * extended over them arithmetically (crc32AppendZeros). Short zero runs are cheaper compressed with
 * the data around them than splitting the stream for them.
 */
import type zlibTypes from 'node:zlib';
import { zlib } from '../builtins.js';
import type { Extent } from '../extent/extent.js';
import { ToolError, describeSystemError } from '../errors.js';
import { type Sink, type SinkCounters, newCounters } from '../sparsecopy/sink.js';
import { crc32, crc32AppendZeros } from './crc32.js';
import { fixedZeroRunBlock, zeroUnitBlock, ZERO_UNIT_BYTES } from './deflate-zeros.js';
import { FINAL_EMPTY_BLOCK, gzipHeader, gzipTrailer } from './gzip-format.js';
import { ChangeSignal } from './change-signal.js';
import { OrderedOutput } from './ordered-output.js';

export interface GzipSinkOptions {
  fd: number;
  /** Name used in messages. */
  name: string;
  /** zlib level 0-9 (default 6, gzip's). */
  level?: number;
  /** Where the member starts in a regular file (positional writes); null: sequential writes (pipes, stdout). */
  position?: number | null;
  /** Gives up a sequential write that waits on a pipe nobody reads. */
  signal?: AbortSignal;
}

/** Uncompressed bytes per independently compressed piece. */
export const PIECE_BYTES = 1 << 20;
/** Deflate's window: the dictionary each piece gets. */
const WINDOW_BYTES = 32 << 10;
/**
 * Zero runs at least this long are emitted as precomputed blocks; shorter ones are compressed with
 * the data. A split costs about 0.2 ms (one more deflateRaw call: its set-up, dictionary, sync
 * flush, and a smaller piece), which is what zlib takes to compress about 64 KiB of zeros at levels
 * 4-9 and about 300 KiB at levels 1-3 (deflate_fast runs over zeros at ~1.6 GiB/s, level 6 at
 * ~300 MiB/s). Measured (bench: data extents of 4-64 KiB between zero runs of 96-384 KiB), the
 * fastest thresholds were 128 KiB at level 6 and 256-512 KiB at level 1. Level 0 (stored blocks)
 * does not compress zeros at all, so every run worth a block goes to the units.
 */
export function zeroRunThreshold(level: number): number {
  if (level === 0) return 4 << 10;
  return level <= 3 ? 256 << 10 : 128 << 10;
}
/** Pieces compressing or waiting to be written at once: 2 cores, and one queued for each. */
export const MAX_PIECES_IN_FLIGHT = 4;
/** zlib's output buffer: large enough that a piece's output comes back in one round trip. */
const OUTPUT_CHUNK_BYTES = 512 << 10;
/** Zero units per writev call (IOV_MAX is 1024). */
const UNITS_PER_WRITE = 1024;
/**
 * Sequential output (a pipe) is written on the thread pool, so that a reader that stops reading
 * blocks a pool thread, not the main thread (which must still handle SIGINT/SIGTERM). Bytes
 * handed over and not yet written: past this, compression and zero runs wait.
 */
const MAX_UNWRITTEN_BYTES = 8 << 20;
const SPARE_STAGING_BUFFERS = MAX_PIECES_IN_FLIGHT + 1;

const EMPTY = Buffer.alloc(0);
/** The window after a long zero run (shared, never modified). */
const ZERO_WINDOW = Buffer.alloc(WINDOW_BYTES);

type Entry = { kind: 'piece'; done: boolean; out: Buffer | null; error: Error | null } | { kind: 'zeros'; length: number };

export class GzipSink implements Sink {
  private readonly level: number;
  private readonly minZeroRun: number;
  private readonly counters = newCounters();
  /** Where the member starts (positional writes), or null (sequential writes). */
  private readonly start: number | null;
  private crcValue = 0;
  /** Uncompressed bytes accepted so far: the next extent's expected offset. */
  private total = 0;
  /**
   * Zeros accepted and not yet placed: consecutive zero extents (a hole, then a zero run found at
   * the start of the next chunk) are decided on as one run.
   */
  private pendingZeros = 0;
  private staging: Buffer | null = null;
  private staged = 0;
  private readonly spareStaging: Buffer[] = [];
  /** The last up-to-32 KiB of uncompressed output: the next piece's dictionary. Never modified. */
  private window: Buffer = EMPTY;
  /** Outputs in stream order: compressed pieces and zero runs. */
  private readonly queue: Entry[] = [];
  private piecesQueued = 0;
  private compressing = 0;
  private readonly change = new ChangeSignal();
  private readonly output: OrderedOutput;
  private headerWritten = false;
  private closed = false;
  private aborted = false;
  private unitBatch: Buffer[] | null = null;

  constructor(private readonly options: GzipSinkOptions) {
    const level = options.level ?? 6;
    if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`gzip level must be 0-9, not ${level}`);
    this.level = level;
    this.minZeroRun = zeroRunThreshold(level);
    this.start = options.position === undefined ? 0 : options.position;
    this.output = new OrderedOutput({ fd: options.fd, name: options.name, position: this.start, signal: options.signal, change: this.change, afterWrite: () => this.pump() });
  }

  /** The output's failure or the compressor's: one, thrown at the next call. */
  private get failure(): Error | null {
    return this.output.failure;
  }

  private set failure(err: Error | null) {
    this.output.failure = err;
  }

  /** Compressed bytes written so far (the whole member once closed). */
  get compressedBytes(): number {
    return this.output.written;
  }

  /** CRC-32 of the uncompressed bytes accepted so far. */
  get crc(): number {
    return this.crcValue >>> 0;
  }

  /** Uncompressed bytes accepted so far. */
  get uncompressedBytes(): number {
    return this.total;
  }

  async write(extent: Extent): Promise<void> {
    if (this.aborted) {
      extent.release?.();
      return;
    }
    try {
      this.throwIfFailed();
      if (this.closed) throw new Error('GzipSink: write after close');
      if (extent.offset < this.total) throw new Error(`GzipSink: extent at ${extent.offset} goes back before ${this.total}`);
      this.writeHeader();
      // A gap before the extent is zeros too.
      this.pendingZeros += extent.offset - this.total;
      this.total = extent.offset;
      if (extent.data) {
        await this.placeZeros();
        await this.stage(extent.data);
      } else {
        this.pendingZeros += extent.length;
        this.total += extent.length;
      }
    } finally {
      // Data is copied into the staging buffer: the extent's own bytes are not needed any more.
      extent.release?.();
    }
  }

  async close(): Promise<SinkCounters> {
    this.throwIfFailed();
    if (this.closed || this.aborted) throw new Error('GzipSink: closed twice or after abort');
    this.writeHeader();
    await this.placeZeros();
    await this.flushPiece();
    while (this.queue.length > 0 && !this.failure) await this.change.next();
    this.throwIfFailed();
    this.emit([FINAL_EMPTY_BLOCK, gzipTrailer(this.crcValue, this.total)]);
    while (!this.output.idle && !this.failure) await this.change.next();
    this.throwIfFailed();
    this.closed = true;
    return { ...this.counters };
  }

  async abort(): Promise<void> {
    this.aborted = true;
    this.change.wakeAll();
    // Pieces compressing finish soon; a write to a pipe nobody reads may never: not waited for.
    while (this.compressing > 0) await this.change.next();
    this.output.stop();
    this.queue.length = 0;
    this.piecesQueued = 0;
    this.staging = null;
    this.staged = 0;
    this.spareStaging.length = 0;
  }

  private writeHeader(): void {
    if (this.headerWritten) return;
    this.headerWritten = true;
    this.emit([gzipHeader({ level: this.level })]);
    this.throwIfFailed();
  }

  /** Data: hashed, then copied into pieces. */
  private async stage(data: Buffer): Promise<void> {
    this.crcValue = crc32(data, this.crcValue);
    this.total += data.length;
    this.counters.real += data.length;
    for (let done = 0; done < data.length; ) {
      const staging = (this.staging ??= this.spareStaging.pop() ?? Buffer.allocUnsafeSlow(PIECE_BYTES));
      const n = Math.min(data.length - done, PIECE_BYTES - this.staged);
      data.copy(staging, this.staged, done, done + n);
      this.staged += n;
      done += n;
      if (this.staged === PIECE_BYTES) await this.flushPiece();
    }
  }

  /** The pending run of zeros: precomputed blocks when long, else staged with the data. */
  private async placeZeros(): Promise<void> {
    const length = this.pendingZeros;
    if (length <= 0) return;
    this.pendingZeros = 0;
    this.crcValue = crc32AppendZeros(this.crcValue, length);
    if (length < this.minZeroRun) {
      this.counters.real += length;
      for (let left = length; left > 0; ) {
        const staging = (this.staging ??= this.spareStaging.pop() ?? Buffer.allocUnsafeSlow(PIECE_BYTES));
        const n = Math.min(left, PIECE_BYTES - this.staged);
        staging.fill(0, this.staged, this.staged + n);
        this.staged += n;
        left -= n;
        if (this.staged === PIECE_BYTES) await this.flushPiece();
      }
      return;
    }
    this.counters.sparse += length;
    await this.flushPiece(); // the units go after the flush that ends the staged data
    this.window = length >= WINDOW_BYTES ? ZERO_WINDOW : slideWindow(this.window, Buffer.alloc(length));
    const last = this.queue[this.queue.length - 1];
    if (last?.kind === 'zeros') last.length += length;
    else this.queue.push({ kind: 'zeros', length });
    this.pump();
    this.throwIfFailed();
  }

  /** Starts compressing the staged bytes as one piece, once fewer than the maximum are in flight. */
  private async flushPiece(): Promise<void> {
    if (this.staged === 0 || !this.staging) return;
    while ((this.piecesQueued >= MAX_PIECES_IN_FLIGHT || this.output.queuedBytes > MAX_UNWRITTEN_BYTES) && !this.failure && !this.aborted) await this.change.next();
    this.throwIfFailed();
    if (this.aborted) return;
    const buffer = this.staging;
    const piece = buffer.subarray(0, this.staged);
    const dictionary = this.window.length > 0 ? this.window : undefined;
    this.window = slideWindow(this.window, piece);
    this.staging = null;
    this.staged = 0;
    const entry: Entry = { kind: 'piece', done: false, out: null, error: null };
    this.queue.push(entry);
    this.piecesQueued++;
    this.compressing++;
    const options: zlibTypes.ZlibOptions = { level: this.level, finishFlush: zlib().constants.Z_SYNC_FLUSH, chunkSize: OUTPUT_CHUNK_BYTES };
    if (dictionary) options.dictionary = dictionary;
    zlib().deflateRaw(piece, options, (err, out) => {
      this.compressing--;
      entry.done = true;
      entry.error = err;
      entry.out = err ? null : out;
      if (this.spareStaging.length < SPARE_STAGING_BUFFERS && !this.aborted) this.spareStaging.push(buffer);
      this.pump();
    });
  }

  /** Writes every finished output at the head of the queue, in order; then wakes waiters. */
  private pump(): void {
    while (!this.failure && !this.aborted && this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.kind === 'piece') {
        if (!head.done) break;
        this.queue.shift();
        this.piecesQueued--;
        if (head.error) {
          this.failure = new ToolError('WRITE', `${this.options.name}: compression failed: ${describeSystemError(head.error)}`, {
            cause: head.error,
          });
          break;
        }
        this.emit([head.out!]);
      } else {
        // Sequential output takes a long run in steps, as the pool writer catches up.
        if (this.output.queuedBytes > MAX_UNWRITTEN_BYTES) break;
        head.length -= this.emitZeros(head.length);
        if (head.length === 0) this.queue.shift();
      }
    }
    this.change.wakeAll();
  }

  /** Emits zero units for (the start of) a run of `length` zeros; returns the zeros emitted. */
  private emitZeros(length: number): number {
    const unit = zeroUnitBlock();
    const batch = (this.unitBatch ??= new Array<Buffer>(UNITS_PER_WRITE).fill(unit));
    let units = Math.floor(length / ZERO_UNIT_BYTES);
    const rest = length - units * ZERO_UNIT_BYTES;
    let emitted = 0;
    while (units > UNITS_PER_WRITE) {
      if (!this.emit(batch)) return length; // failed: nothing more is written
      units -= UNITS_PER_WRITE;
      emitted += UNITS_PER_WRITE * ZERO_UNIT_BYTES;
      if (this.output.queuedBytes > MAX_UNWRITTEN_BYTES) return emitted;
    }
    const last = batch.slice(0, units);
    if (rest > 0) last.push(fixedZeroRunBlock(rest));
    if (last.length > 0) this.emit(last);
    return length;
  }

  /** Writes buffers in order; a failure is kept for the next write()/close() to throw. */
  private emit(buffers: Buffer[]): boolean {
    return this.output.write(buffers);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }


}

/** The last WINDOW_BYTES of (window || next), as a new buffer (dictionaries are never modified). */
function slideWindow(window: Buffer, next: Buffer): Buffer {
  if (next.length >= WINDOW_BYTES) return Buffer.from(next.subarray(next.length - WINDOW_BYTES));
  const keep = Math.min(window.length, WINDOW_BYTES - next.length);
  return Buffer.concat([window.subarray(window.length - keep), next]);
}
