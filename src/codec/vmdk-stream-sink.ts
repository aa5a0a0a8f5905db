/**
 * A sink that writes a streamOptimized VMDK in one forward pass, to a regular file or a pipe
 * (never a seek, but for the one below): the layout is format/vmdk-writer.ts's.
 *
 * Guest bytes are assembled into 64 KiB grains; an all-zero grain (or a hole) is omitted, any
 * other is deflated with the zlib wrapper (RFC 1950, as VMware, qemu and VirtualBox read it) on
 * libuv's thread pool, up to MAX_GRAINS_IN_FLIGHT at once (both cores), and the results are
 * written in LBA order as soon as the head of the queue is done. The grain table of a 32 MiB
 * region follows its last grain; the directory, footer and end-of-stream marker end the stream.
 *
 * The header and the descriptor come first and hold the capacity. Unknown (capacityBytes
 * undefined: a stream of unknown length), they are written with what is known then and, in a
 * regular file (position not null), written again at close with the real capacity; to a pipe it
 * cannot be done, and the constructor refuses it.
 *
 * Memory: one grain table, the directory (4 bytes per 32 MiB of disk), the grains in flight and
 * their buffers, and on a pipe at most MAX_UNWRITTEN_BYTES handed to the pool writer.
 *
 * Used by sparsecopy's makeSink and, inside a tar member, by the OVA sink: everything it needs is
 * in its options; fileBytes and populatedBytes say what it wrote.
 */
import path from 'node:path';
import { zlib } from '../builtins.js';
import { ToolError, describeSystemError } from '../errors.js';
import type { Extent } from '../extent/extent.js';
import { isZeroRange } from '../extent/zero-runs.js';
import { type VmdkAdapterType, contentId, vmdkDescriptorText } from '../format/vmdk-descriptor-text.js';
import { SECTOR } from '../format/vmdk-header.js';
import {
  GRAIN_BYTES,
  GRAIN_SECTORS,
  GT_COVERAGE_BYTES,
  MAX_SPARSE_FILE_SECTORS,
  capacitySectorsFor,
  gdBlock,
  grainBlock,
  gtBlock,
  gtCountFor,
  newGrainTable,
  streamHead,
  streamTail,
} from '../format/vmdk-writer.js';
import { writeAllSync } from '../io/write-sync.js';
import { type Sink, type SinkCounters, newCounters } from '../sparsecopy/sink.js';
import { ChangeSignal } from './change-signal.js';
import { OrderedOutput } from './ordered-output.js';

export interface VmdkStreamSinkOptions {
  fd: number;
  /** The destination's name in messages ("stdout", a path, an OVA member). */
  name: string;
  /** The file name in the descriptor's extent line; default: the base name of `name`. */
  fileName?: string;
  /** Where the VMDK starts in a regular file (positional writes); null: sequential writes (a pipe, stdout). */
  position: number | null;
  /** The virtual disk's size (rounded up to a sector); undefined: where the extents end, known at close (files only). */
  capacityBytes?: number;
  adapterType: VmdkAdapterType;
  /** ddb.virtualHWVersion; default "4" (VMware's open-vmdk). */
  hwVersion?: string;
  /** zlib level 1-9; default 6 (zlib's, qemu's). */
  level?: number;
  /** Gives up a sequential write that waits on a pipe nobody reads. */
  signal?: AbortSignal;
}

/** The refusal of a streamOptimized VMDK of unknown size on a stream (its header, first, holds the size). */
export function unknownLengthToStream(name: string): ToolError {
  return new ToolError(
    'UNSUPPORTED_FORMAT',
    `${name}: a streamOptimized VMDK states the disk's size in its first sector, and the source's length is unknown before it ends (a stream): write to a file (its header is rewritten at the end), or decompress to a file first; nothing written`,
  );
}

/** Grains compressing or compressed and waiting for their turn: a few per core. */
const MAX_GRAINS_IN_FLIGHT = 16;
/** Sequential output handed to the pool writer and not yet written, at most. */
const MAX_UNWRITTEN_BYTES = 8 << 20;
/** Output gathered before one write call (a grain is a few KiB compressed). */
const BATCH_BYTES = 1 << 20;
const ZERO_PADDING = Buffer.alloc(SECTOR);

interface Grain {
  lba: number;
  buffer: Buffer;
  out: Buffer | null;
  error: Error | null;
  done: boolean;
}

export class VmdkStreamSink implements Sink {
  private readonly counters = newCounters();
  private readonly level: number;
  private readonly fileName: string;
  private readonly cid: number;
  private readonly capacityBytes: number | null;
  /** The next extent's expected offset (guest bytes). */
  private total = 0;
  private current: { index: number; buffer: Buffer } | null = null;
  private readonly spare: Buffer[] = [];
  private readonly queue: Grain[] = [];
  private compressing = 0;
  /** Sectors emitted so far: where the next marker goes. */
  private sectors = 0;
  private grains = 0;
  private gt = newGrainTable();
  private gtRegion = -1;
  /** GDEs so far (regions without a table stay 0). */
  private gd: Uint32Array;
  private headWritten = false;
  private closed = false;
  private aborted = false;
  private readonly change = new ChangeSignal();
  private readonly output: OrderedOutput;
  /** Bytes emitted and not yet written or handed over: one batch. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly options: VmdkStreamSinkOptions) {
    this.level = options.level ?? 6;
    if (!Number.isInteger(this.level) || this.level < 1 || this.level > 9) throw new RangeError(`VMDK grain compression level must be 1-9, not ${this.level}`);
    this.capacityBytes = options.capacityBytes ?? null;
    if (this.capacityBytes === null && options.position === null) {
      throw unknownLengthToStream(options.name);
    }
    this.fileName = options.fileName ?? path.basename(options.name);
    this.output = new OrderedOutput({ fd: options.fd, name: options.name, position: options.position, signal: options.signal, change: this.change });
    this.cid = contentId(capacitySectorsFor(this.capacityBytes ?? 0));
    this.gd = new Uint32Array(this.capacityBytes === null ? 16 : gtCountFor(capacitySectorsFor(this.capacityBytes)));
  }

  /** Bytes of the VMDK written so far (all of it once closed). */
  get fileBytes(): number {
    return this.sectors * SECTOR;
  }

  /** Guest bytes held in data grains (what OVF calls the populated size). */
  get populatedBytes(): number {
    return this.grains * GRAIN_BYTES;
  }

  async write(extent: Extent): Promise<void> {
    try {
      if (this.aborted) return;
      this.throwIfFailed();
      if (this.closed) throw new Error('VmdkStreamSink: write after close');
      if (extent.offset < this.total) throw new Error(`VmdkStreamSink: extent at ${extent.offset} goes back before ${this.total}`);
      const end = extent.offset + extent.length;
      if (this.capacityBytes !== null && end > capacitySectorsFor(this.capacityBytes) * SECTOR) {
        throw new Error(`VmdkStreamSink: ${this.options.name}: extent ending at byte ${end} is past the capacity of ${this.capacityBytes} bytes`);
      }
      this.writeHead();
      if (extent.data) {
        this.counters.real += extent.length;
        await this.assemble(extent.offset, extent.data);
      } else {
        this.counters.sparse += extent.length;
      }
      this.total = end;
    } finally {
      extent.release?.();
    }
  }

  async close(): Promise<SinkCounters> {
    this.throwIfFailed();
    if (this.closed || this.aborted) throw new Error('VmdkStreamSink: closed twice or after abort');
    this.writeHead();
    if (this.current) await this.finishGrain();
    while (this.queue.length > 0 && !this.failure) await this.change.next();
    this.throwIfFailed();
    const capacitySectors = capacitySectorsFor(this.capacityBytes ?? this.total);
    if (this.gtRegion >= 0) this.emitGrainTable();
    const gd = this.gd.length === gtCountFor(capacitySectors) ? this.gd : copyResized(this.gd, gtCountFor(capacitySectors));
    const gdOffset = this.sectors + 1;
    this.emit([gdBlock(gd)]);
    this.emit([streamTail(capacitySectors, gdOffset)]);
    this.flushPending();
    while (!this.output.idle && !this.failure) await this.change.next();
    this.throwIfFailed();
    if (this.capacityBytes === null) this.rewriteHead(capacitySectors);
    this.closed = true;
    this.counters.written = this.output.written;
    return { ...this.counters };
  }

  async abort(): Promise<void> {
    this.aborted = true;
    this.change.wakeAll();
    // Grains compressing finish soon; a write to a pipe nobody reads may never: not waited for.
    while (this.compressing > 0) await this.change.next();
    this.queue.length = 0;
    this.output.stop();
    this.pending = [];
    this.pendingBytes = 0;
    this.current = null;
  }

  private writeHead(): void {
    if (this.headWritten) return;
    this.headWritten = true;
    this.emit([streamHead(capacitySectorsFor(this.capacityBytes ?? 0), this.descriptor(capacitySectorsFor(this.capacityBytes ?? 0)))]);
    this.throwIfFailed();
  }

  private descriptor(capacitySectors: number): string {
    return vmdkDescriptorText({
      createType: 'streamOptimized',
      cid: this.cid,
      extents: [{ sectors: capacitySectors, type: 'SPARSE', fileName: this.fileName }],
      capacitySectors,
      adapterType: this.options.adapterType,
      hwVersion: this.options.hwVersion ?? '4',
    });
  }

  /** The capacity learnt at the end, in the header and descriptor of a file (same length: only numbers change). */
  private rewriteHead(capacitySectors: number): void {
    try {
      writeAllSync(this.options.fd, [streamHead(capacitySectors, this.descriptor(capacitySectors))], this.options.position);
    } catch (err) {
      throw new ToolError('WRITE', `${this.options.name}: write failed at byte ${this.options.position}: ${describeSystemError(err)}`, { cause: err });
    }
  }

  /** Copies data into grains; a grain completed (the data moved past it) goes to be compressed. */
  private async assemble(offset: number, data: Buffer): Promise<void> {
    for (let done = 0; done < data.length; ) {
      const at = offset + done;
      const index = Math.floor(at / GRAIN_BYTES);
      if (this.current && this.current.index !== index) await this.finishGrain();
      this.current ??= { index, buffer: this.takeBuffer() };
      const inGrain = at - index * GRAIN_BYTES;
      const n = Math.min(data.length - done, GRAIN_BYTES - inGrain);
      data.copy(this.current.buffer, inGrain, done, done + n);
      done += n;
      if (inGrain + n === GRAIN_BYTES) await this.finishGrain();
    }
  }

  private takeBuffer(): Buffer {
    const buffer = this.spare.pop() ?? Buffer.allocUnsafeSlow(GRAIN_BYTES);
    return buffer.fill(0);
  }

  /** The current grain: omitted when all zero, else queued and compressed once fewer than the maximum are in flight. */
  private async finishGrain(): Promise<void> {
    const { index, buffer } = this.current!;
    this.current = null;
    if (isZeroRange(buffer)) {
      this.spare.push(buffer);
      return;
    }
    while (this.queue.length >= MAX_GRAINS_IN_FLIGHT || this.output.queuedBytes > MAX_UNWRITTEN_BYTES) {
      if (this.failure || this.aborted) break;
      await this.change.next();
    }
    this.throwIfFailed();
    if (this.aborted) return;
    const grain: Grain = { lba: index * GRAIN_SECTORS, buffer, out: null, error: null, done: false };
    this.queue.push(grain);
    this.compressing++;
    zlib().deflate(buffer, { level: this.level }, (err, out) => {
      this.compressing--;
      grain.done = true;
      grain.error = err;
      grain.out = err ? null : out;
      this.pump();
    });
  }

  /** Writes every compressed grain at the head of the queue, in order, each region's table after its grains. */
  private pump(): void {
    while (!this.failure && !this.aborted && this.queue.length > 0 && this.queue[0]!.done) {
      const grain = this.queue.shift()!;
      if (this.spare.length < MAX_GRAINS_IN_FLIGHT + 1) this.spare.push(grain.buffer);
      if (grain.error) {
        this.failure = new ToolError('WRITE', `${this.options.name}: compression failed: ${describeSystemError(grain.error)}`, { cause: grain.error });
        break;
      }
      this.placeGrain(grain.lba, grain.out!);
    }
    this.change.wakeAll();
  }

  private placeGrain(lba: number, compressed: Buffer): void {
    const region = Math.floor((lba * SECTOR) / GT_COVERAGE_BYTES);
    if (region !== this.gtRegion) {
      if (this.gtRegion >= 0) this.emitGrainTable();
      this.gtRegion = region;
    }
    const block = grainBlock(lba, compressed.length);
    if (this.sectors + block.sectors > MAX_SPARSE_FILE_SECTORS) {
      this.failure = new ToolError('DOES_NOT_FIT', `${this.options.name}: a streamOptimized VMDK's grain offsets are 32-bit sectors, and its grains pass 2 TiB of file at guest byte ${lba * SECTOR}`);
      return;
    }
    this.gt[(lba / GRAIN_SECTORS) % this.gt.length] = this.sectors;
    this.grains++;
    const parts = [block.marker, compressed];
    if (block.paddingBytes > 0) parts.push(ZERO_PADDING.subarray(0, block.paddingBytes));
    this.emit(parts);
  }

  /** The open region's GT marker and table; its GDE points at the table (the sector after the marker). */
  private emitGrainTable(): void {
    const region = this.gtRegion;
    if (region >= this.gd.length) this.gd = copyResized(this.gd, Math.max(region + 1, this.gd.length * 2));
    this.gd[region] = this.sectors + 1;
    this.emit([gtBlock(this.gt)]);
    this.gt = newGrainTable();
    this.gtRegion = -1;
  }

  /** Queues buffers in order (each call a whole number of sectors), written in batches of BATCH_BYTES. */
  private emit(buffers: Buffer[]): void {
    if (this.failure) return;
    for (const b of buffers) {
      this.pending.push(b);
      this.pendingBytes += b.length;
      this.sectors += b.length / SECTOR;
    }
    if (this.pendingBytes >= BATCH_BYTES) this.flushPending();
  }

  /** Writes the batch: here into a file, or handed to the pool writer for a pipe; a failure is kept for the next write()/close() to throw. */
  private flushPending(): void {
    if (this.pendingBytes === 0 || this.failure) return;
    const buffers = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.output.write(buffers);
  }

  /** The output's failure or this sink's own (compression, the 2 TiB limit): one, thrown at the next call. */
  private get failure(): Error | null {
    return this.output.failure;
  }

  private set failure(err: Error | null) {
    this.output.failure = err;
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }
}

function copyResized(from: Uint32Array, length: number): Uint32Array {
  const to = new Uint32Array(length);
  to.set(from.subarray(0, Math.min(from.length, length)));
  return to;
}
