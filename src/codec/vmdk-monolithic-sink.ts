/**
 * A sink that writes a monolithicSparse VMDK into a new regular file as qemu-img lays one out by
 * default (format/vmdk-writer.ts sparseLayout): header, descriptor, redundant GD and GD with all
 * their grain tables preallocated (written up front: every GDE is known), then uncompressed 64 KiB
 * grains appended in the order they come; all-zero grains are not stored. Each 32 MiB region's
 * table is written, in both copies, once the extents have passed it; a region without grains keeps
 * its preallocated table as a hole (all zeros: unallocated). The file has no holes but those.
 *
 * Memory: one write batch (the grains being gathered) and one grain table.
 */
import path from 'node:path';
import { ToolError, describeSystemError } from '../errors.js';
import type { Extent } from '../extent/extent.js';
import { isZeroRange } from '../extent/zero-runs.js';
import { type VmdkAdapterType, contentId, vmdkDescriptorText } from '../format/vmdk-descriptor-text.js';
import { SECTOR } from '../format/vmdk-header.js';
import { GRAIN_BYTES, GT_COVERAGE_BYTES, type SparseLayout, capacitySectorsFor, newGrainTable, sparseDirectory, sparseGtSector, sparseHead, sparseLayout } from '../format/vmdk-writer.js';
import { ftruncate } from '../io/fd-io.js';
import { writeAllSync } from '../io/write-sync.js';
import { type Sink, type SinkCounters, newCounters } from '../sparsecopy/sink.js';

export interface VmdkMonolithicSinkOptions {
  fd: number;
  name: string;
  /** The file name in the descriptor's extent line; default: the base name of `name`. */
  fileName?: string;
  /** The virtual disk's size (rounded up to a sector): the tables are laid out for it. */
  capacityBytes: number;
  adapterType: VmdkAdapterType;
  hwVersion?: string;
}

/** Grains gathered before one write. */
const BATCH_GRAINS = 16;

export class VmdkMonolithicSink implements Sink {
  private readonly counters = newCounters();
  private readonly layout: SparseLayout;
  private readonly capacityBytes: number;
  private total = 0;
  private readonly batch = Buffer.alloc(BATCH_GRAINS * GRAIN_BYTES);
  private batched = 0;
  /** The grain being assembled: its index, in the batch's next slot. */
  private current = -1;
  /** The sector where the batch goes. */
  private batchSector: number;
  private gt = newGrainTable();
  private gtRegion = -1;
  private gtUsed = false;

  constructor(private readonly options: VmdkMonolithicSinkOptions) {
    const capacitySectors = capacitySectorsFor(options.capacityBytes);
    this.capacityBytes = capacitySectors * SECTOR;
    const l = (this.layout = sparseLayout(capacitySectors));
    this.batchSector = l.grainOffset;
    const descriptor = vmdkDescriptorText({
      createType: 'monolithicSparse',
      cid: contentId(capacitySectors),
      extents: [{ sectors: capacitySectors, type: 'SPARSE', fileName: options.fileName ?? path.basename(options.name) }],
      capacitySectors,
      adapterType: options.adapterType,
      hwVersion: options.hwVersion ?? '4',
    });
    this.put([sparseHead(l, descriptor)], 0);
    this.put([sparseDirectory(l, l.rgdOffset)], l.rgdOffset);
    this.put([sparseDirectory(l, l.gdOffset)], l.gdOffset);
  }

  async write(extent: Extent): Promise<void> {
    try {
      if (extent.offset < this.total) throw new Error(`VmdkMonolithicSink: extent at ${extent.offset} goes back before ${this.total}`);
      const end = extent.offset + extent.length;
      if (end > this.capacityBytes) throw new Error(`VmdkMonolithicSink: ${this.options.name}: extent ending at byte ${end} is past the capacity of ${this.capacityBytes} bytes`);
      if (!extent.data) {
        this.counters.sparse += extent.length;
      } else {
        this.counters.real += extent.length;
        this.assemble(extent.offset, extent.data);
      }
      this.total = end;
    } finally {
      extent.release?.();
    }
  }

  async close(): Promise<SinkCounters> {
    if (this.current >= 0) this.finishGrain();
    this.flushBatch();
    if (this.gtRegion >= 0) this.writeGrainTable();
    const length = this.batchSector * SECTOR;
    try {
      await ftruncate(this.options.fd, length);
    } catch (err) {
      throw new ToolError('TRUNCATE', `${this.options.name}: cannot set length to ${length}: ${describeSystemError(err)}`, { cause: err });
    }
    this.counters.written = length;
    return { ...this.counters };
  }

  async abort(): Promise<void> {}

  /** Bytes of the file (all of it once closed). */
  get fileBytes(): number {
    return this.batchSector * SECTOR + this.batched;
  }

  private assemble(offset: number, data: Buffer): void {
    for (let done = 0; done < data.length; ) {
      const at = offset + done;
      const index = Math.floor(at / GRAIN_BYTES);
      if (this.current >= 0 && this.current !== index) this.finishGrain();
      if (this.current < 0) {
        this.current = index;
        this.batch.fill(0, this.batched, this.batched + GRAIN_BYTES);
      }
      const inGrain = at - index * GRAIN_BYTES;
      const n = Math.min(data.length - done, GRAIN_BYTES - inGrain);
      data.copy(this.batch, this.batched + inGrain, done, done + n);
      done += n;
      if (inGrain + n === GRAIN_BYTES) this.finishGrain();
    }
  }

  /** The grain in the batch's next slot: kept unless all zero; its GTE points where it will land. */
  private finishGrain(): void {
    const index = this.current;
    this.current = -1;
    if (isZeroRange(this.batch, this.batched, this.batched + GRAIN_BYTES)) return;
    const region = Math.floor((index * GRAIN_BYTES) / GT_COVERAGE_BYTES);
    if (region !== this.gtRegion) {
      if (this.gtRegion >= 0) this.writeGrainTable();
      this.gtRegion = region;
    }
    this.gt[index % this.gt.length] = this.batchSector + this.batched / SECTOR;
    this.gtUsed = true;
    this.batched += GRAIN_BYTES;
    if (this.batched === this.batch.length) this.flushBatch();
  }

  private flushBatch(): void {
    if (this.batched === 0) return;
    this.put([this.batch.subarray(0, this.batched)], this.batchSector);
    this.batchSector += this.batched / SECTOR;
    this.batched = 0;
  }

  /** The region's table, in its preallocated place under the GD and under the RGD. */
  private writeGrainTable(): void {
    if (this.gtUsed) {
      const bytes = Buffer.from(this.gt.buffer, this.gt.byteOffset, this.gt.byteLength);
      this.put([bytes], sparseGtSector(this.layout, this.layout.gdOffset, this.gtRegion));
      this.put([bytes], sparseGtSector(this.layout, this.layout.rgdOffset, this.gtRegion));
    }
    this.gt = newGrainTable();
    this.gtRegion = -1;
    this.gtUsed = false;
  }

  private put(buffers: Buffer[], sector: number): void {
    try {
      writeAllSync(this.options.fd, buffers, sector * SECTOR);
    } catch (err) {
      throw new ToolError('WRITE', `${this.options.name}: write failed at byte ${sector * SECTOR}: ${describeSystemError(err)}`, { cause: err });
    }
  }
}

