/**
 * The sink for regular files and block devices: positional writes, several in flight.
 *
 * Zero extents are never written blindly. Beyond `checkLimit` (the destination's old length: a new
 * or truncated file has 0) a zero range is a hole for free. Below it, unless the destination is
 * trusted to be zero (--nocheck), the destination is read back block by block and zeros are
 * written only where it holds data (v0.10's "nonzerodest"), so the result is byte-exact.
 */
import type { Extent } from '../extent/extent.js';
import { isZeroRange } from '../extent/zero-runs.js';
import { ToolError, describeSystemError } from '../errors.js';
import { fdatasync, readAt, writeAt } from '../io/fd-io.js';
import { type Sink, type SinkCounters, newCounters } from './sink.js';

export interface PositionalSinkOptions {
  fd: number;
  /** Name used in messages. */
  name: string;
  /** Where source offset 0 lands in the destination (--seek). */
  baseOffset: number;
  /** Destination bytes below this offset may hold data and need checking before skipping zeros. */
  checkLimit: number;
  /** Trust the destination to be zero where zeros are skipped (--nocheck). */
  noCheck: boolean;
  /** Check granularity, in source coordinates (--blocksize). */
  blockSize: number;
  /** fdatasync after this many bytes written (--syncevery); 0: never. */
  syncEveryBytes: number;
  /** Bytes the destination can hold (a block device); writing past it fails with DOES_NOT_FIT. */
  capacity?: number | null;
  /** Final step once every write is done (truncate a file, re-read a partition table). */
  finish?: () => Promise<void>;
  maxWritesInFlight?: number;
}

const CHECK_CHUNK_BYTES = 1 << 20;

export class PositionalSink implements Sink {
  private readonly counters = newCounters();
  private readonly inFlight = new Set<Promise<void>>();
  private failure: ToolError | null = null;
  private writtenSinceSync = 0;
  private readonly maxInFlight: number;
  private checkBuffer: Buffer | null = null;

  constructor(private readonly options: PositionalSinkOptions) {
    this.maxInFlight = options.maxWritesInFlight ?? Number(process.env.SC_WIF ?? 4);
  }

  async write(extent: Extent): Promise<void> {
    this.throwIfFailed();
    const { capacity, baseOffset, name } = this.options;
    if (capacity != null && baseOffset + extent.offset + extent.length > capacity) {
      // Only a stream's size is unknown up front; a file or device source was refused earlier.
      throw new ToolError(
        'DOES_NOT_FIT',
        `sparsecopy: ${name}: source does not fit in the device (${capacity} bytes): it goes on past byte ${capacity - baseOffset} of the source`,
      );
    }
    if (extent.data) {
      this.counters.real += extent.length;
      await this.enqueueWrite(extent.data, this.options.baseOffset + extent.offset, extent.release);
    } else {
      extent.release?.();
      await this.skipZeros(extent.offset, extent.length);
    }
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private async enqueueWrite(data: Buffer, position: number, release?: () => void): Promise<void> {
    while (this.inFlight.size >= this.maxInFlight) {
      await Promise.race(this.inFlight);
      this.throwIfFailed();
    }
    const p: Promise<void> = writeAt(this.options.fd, data, position)
      .then(release)
      .catch((err: unknown) => {
        this.failure ??= new ToolError(
          'WRITE',
          `sparsecopy: ${this.options.name}: write failed at byte ${position}: ${describeSystemError(err)}`,
          { cause: err },
        );
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
    this.writtenSinceSync += data.length;
    if (this.options.syncEveryBytes > 0 && this.writtenSinceSync >= this.options.syncEveryBytes) {
      this.writtenSinceSync = 0;
      await this.drain();
      await this.sync();
    }
  }

  private async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
    this.throwIfFailed();
  }

  private async sync(): Promise<void> {
    try {
      await fdatasync(this.options.fd);
    } catch (err) {
      throw new ToolError('WRITE', `sparsecopy: ${this.options.name}: fdatasync failed: ${describeSystemError(err)}`, { cause: err });
    }
  }

  /** Zeros at source [offset, offset+length): skip, or check the destination first. */
  private async skipZeros(offset: number, length: number): Promise<void> {
    const { baseOffset, checkLimit, noCheck } = this.options;
    const destStart = baseOffset + offset;
    const checkedEnd = noCheck ? destStart : Math.min(destStart + length, Math.max(checkLimit, destStart));
    if (checkedEnd > destStart) await this.checkAndZero(offset, checkedEnd - destStart);
    this.counters.sparse += length - (checkedEnd - destStart);
  }

  private async checkAndZero(offset: number, length: number): Promise<void> {
    const { blockSize, baseOffset, fd, name } = this.options;
    this.checkBuffer ??= Buffer.alloc(Math.max(CHECK_CHUNK_BYTES, blockSize));
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      // Read whole blocks (in source coordinates) up to a chunk at a time.
      const chunkEnd = Math.min(end, pos + Math.max(blockSize, Math.floor(CHECK_CHUNK_BYTES / blockSize) * blockSize));
      const readLength = chunkEnd - pos;
      const buffer = this.checkBuffer.length >= readLength ? this.checkBuffer : Buffer.alloc(readLength);
      let got: number;
      try {
        got = await readAt(fd, buffer, readLength, baseOffset + pos);
      } catch (err) {
        throw new ToolError('DEST_CHECK_READ', `sparsecopy: ${name}: check read failed at byte ${baseOffset + pos}: ${describeSystemError(err)}`, {
          cause: err,
        });
      }
      this.counters.checkedBytes += got;
      if (!isZeroRange(buffer, 0, got)) {
        // Zero writes use buffers of their own, so the check buffer is free again at once.
        await this.zeroNonZeroBlocks(buffer, got, pos);
      } else {
        this.counters.sparse += got;
      }
      // Past the destination's end (a short read) there is nothing to check: a hole.
      this.counters.sparse += readLength - got;
      pos = chunkEnd;
    }
  }

  /** Write zeros over each block of the chunk read at source `offset` that holds data. */
  private async zeroNonZeroBlocks(chunk: Buffer, length: number, offset: number): Promise<void> {
    const { blockSize, baseOffset } = this.options;
    let blockStart = 0;
    while (blockStart < length) {
      const blockEnd = Math.min(length, blockStart + blockSize - ((offset + blockStart) % blockSize));
      const size = blockEnd - blockStart;
      if (isZeroRange(chunk, blockStart, blockEnd)) {
        this.counters.sparse += size;
      } else {
        this.counters.nonzerodest += size;
        this.counters.real += size;
        await this.enqueueWrite(Buffer.alloc(size), baseOffset + offset + blockStart);
      }
      blockStart = blockEnd;
    }
  }

  async close(): Promise<SinkCounters> {
    await this.drain();
    if (this.options.syncEveryBytes > 0 && this.writtenSinceSync > 0) await this.sync();
    await this.options.finish?.();
    return { ...this.counters };
  }

  async abort(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }
}
