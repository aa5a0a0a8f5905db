/**
 * A sink that writes a qcow2 version 3 image into a new regular file in one pass, metadata last:
 * the header cluster is reserved, data clusters are appended one after another as the guest
 * clusters they hold are completed (all-zero clusters and holes stay unallocated: without a
 * backing file they read as zeros), each L2 table is appended once the extents have passed the
 * virtual range it maps, and close() appends the L1 table, the refcount blocks and the refcount
 * table, then writes the header. Host offsets only grow, so the file has no holes.
 *
 * A whole cluster of a source extent is not copied: the batch holds a view of the source's buffer,
 * released once written. Batches go to the writer thread when they are all shared memory (no
 * --compress), overlapped with the reads (raw -> qcow2 of a 2 GiB image 0.59 -> 0.35 s).
 *
 * Memory: one guest cluster being assembled, one L2 table, the L1 entries written so far (one per
 * L2 table), a write batch and MAX_POSTED_BYTES on the writer thread, and with --compress the clusters compressing (a bounded number) and
 * one 16-bit refcount per host cluster (compressed clusters share host clusters: 2 bytes per
 * cluster of output, 32 KiB per GiB at 64 KiB clusters).
 *
 * --compress deflates each cluster as qemu does (raw deflate, 4 KiB window, zlib's default level)
 * on libuv's thread pool, a bounded number at once, and places the results in cluster order;
 * compressed clusters are packed byte after byte, anything else starts on a cluster boundary.
 *
 * With a backing file (--backing BASE) each guest cluster, completed or a hole of the source, is
 * judged against BASE (format/qcow2-backing-diff.ts): only what differs is stored, zeros over
 * BASE's data as zero clusters; the header names BASE and its format.
 */
import type zlibTypes from 'node:zlib';
import { zlib } from '../builtins.js';
import { ToolError, describeSystemError } from '../errors.js';
import type { Extent } from '../extent/extent.js';
import { isZeroRange } from '../extent/zero-runs.js';
import { type BackingDisk, BackingComparison } from '../format/qcow2-backing-diff.js';
import {
  type Qcow2WriteGeometry,
  clustersTouched,
  encodeHeaderCluster,
  encodeRefcountBlock,
  encodeRefcountTable,
  l1Clusters,
  l1EntriesFor,
  maxVirtualSize,
  refcountMetadataFor,
  setCompressedEntry,
  setCopiedEntry,
  setZeroEntry,
  writeGeometry,
} from '../format/qcow2-writer.js';
import { ftruncate } from '../io/fd-io.js';
import { allocAligned } from '../io/aligned.js';
import { BUFFERED_CALL_BYTES, writeAllSync } from '../io/write-sync.js';
import { type WriterThread, allShared, takeWriterThread } from '../io/writer-thread.js';
import { type Sink, type SinkCounters, newCounters } from '../sparsecopy/sink.js';
import { ChangeSignal } from './change-signal.js';

export interface Qcow2SinkOptions {
  fd: number;
  /** Name used in messages. */
  name: string;
  clusterBits: number;
  compress: boolean;
  /** The virtual disk's size, asked at close: the source's length, or where its last extent (or --pad) ended; rounded up to 512 bytes. */
  virtualSize: () => number;
  /** The image's backing file: its name as stored, its format, its virtual disk and size. */
  backing?: Qcow2SinkBacking;
  /**
   * Write the batches on the writer thread (io/writer-thread.ts), overlapped with the reading of
   * what follows, as the raw file sink does: without --compress (deflate's output is not shared
   * memory), for clusters of 4 KiB or more (each cluster buffer of its own is page-aligned shared
   * memory). A batch holding anything else is written here.
   */
  writerThread?: boolean;
}

export interface Qcow2SinkBacking {
  name: string;
  format: 'raw' | 'qcow2';
  disk: BackingDisk;
  virtualSize: number;
}

const SECTOR_BYTES = 512;
/** Clusters below this are written on the main thread: a page-aligned shared buffer each would cost more than it saves. */
const MIN_WRITER_CLUSTER_BYTES = 4096;
/** Bytes handed to the writer thread and not yet written, at most: the reads run this far ahead. */
const MAX_POSTED_BYTES = 8 << 20;
/** Host bytes gathered before one positional write (cut into calls of BUFFERED_CALL_BYTES). */
const BATCH_BYTES = 1 << 20;
/** Bytes of clusters compressing at once: a few per core, whatever the cluster size. */
const COMPRESS_IN_FLIGHT_BYTES = 4 << 20;
const MIN_COMPRESS_IN_FLIGHT = 4;
const MAX_COMPRESS_IN_FLIGHT = 64;
/** qemu's deflate parameters (qcow2-threads.c): raw deflate, 4 KiB window; its readers inflate with that window. */
const QEMU_WINDOW_BITS = 12;
const QEMU_MEM_LEVEL = 9;

interface Compressing {
  index: number;
  /** null: a zero cluster, kept in the queue to keep the cluster order. */
  raw: Buffer | null;
  out: Buffer | null;
  error: Error | null;
  done: boolean;
}

/** A virtual disk of `size` bytes that 2^clusterBits-byte clusters cannot map (qemu's L1 limit), or null. */
export function qcow2TooLarge(name: string, size: number, clusterBits: number): ToolError | null {
  const max = maxVirtualSize(writeGeometry(clusterBits));
  if (size <= max) return null;
  return new ToolError(
    'DOES_NOT_FIT',
    `${name}: a virtual disk of ${size} bytes is larger than a qcow2 with ${2 ** clusterBits}-byte clusters can map (${max} bytes, qemu's L1 limit); use a larger --cluster-size; nothing written`,
  );
}

/** A backing file whose virtual size is not the source's: the layer would not read as the source. */
export function backingSizeMismatch(name: string, backing: Pick<Qcow2SinkBacking, 'name' | 'virtualSize'>, sourceSize: number): ToolError {
  return new ToolError(
    'BACKING_MISMATCH',
    `${name}: --backing ${backing.name} is a disk of ${backing.virtualSize} bytes, the source one of ${sourceSize} bytes; a layer and its backing file have one size; nothing written`,
  );
}

export class Qcow2Sink implements Sink {
  private readonly g: Qcow2WriteGeometry;
  private readonly counters = newCounters();
  private readonly maxVirtual: number;
  /** The next extent's expected offset. */
  private total = 0;
  /** The guest cluster being assembled. */
  private current: { index: number; buffer: Buffer } | null = null;
  private readonly spare: Buffer[] = [];
  private readonly maxSpare: number;
  /** Where the next appended byte goes: the file's length once the batch is written. */
  private hostEnd = 0;
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private batchStart = 0;
  /** Cluster buffers in the batch, reusable once it is written. */
  private batchRecycled: Buffer[] = [];
  /** Releases of source extents whose buffers the batch views (assemble's whole clusters). */
  private batchReleases: (() => void)[] = [];
  /** The L2 table of the region being placed, and its index. */
  private l2Table: Buffer | null = null;
  private l2Region = -1;
  /** L1 entries: the regions that have an L2 table, and where. */
  private readonly l1Regions: number[] = [];
  private readonly l1Offsets: number[] = [];
  /** With --compress: the refcount of every host cluster so far (else every one is exactly 1). */
  private refcounts: Uint16Array | null;
  private readonly queue: Compressing[] = [];
  private readonly maxInFlight: number;
  private compressing = 0;
  private readonly change = new ChangeSignal();
  private failure: Error | null = null;
  private aborted = false;
  private readonly padding: Buffer;
  private readonly comparison: BackingComparison | null;
  private readonly writer: WriterThread | null;
  /** Batches on the writer thread: sequence numbers, bytes, and what each frees once written. */
  private readonly posted: { seq: number; bytes: number; recycle: Buffer[]; releases: (() => void)[] }[] = [];
  private postedBytes = 0;
  private writerClosed = false;

  constructor(private readonly options: Qcow2SinkOptions) {
    this.g = writeGeometry(options.clusterBits);
    const { clusterSize } = this.g;
    this.maxVirtual = maxVirtualSize(this.g);
    this.refcounts = options.compress ? new Uint16Array(1024) : null;
    this.maxInFlight = Math.min(MAX_COMPRESS_IN_FLIGHT, Math.max(MIN_COMPRESS_IN_FLIGHT, Math.floor(COMPRESS_IN_FLIGHT_BYTES / clusterSize)));
    this.maxSpare = Math.ceil(BATCH_BYTES / clusterSize) + this.maxInFlight + 2;
    this.writer = options.writerThread && !options.compress && clusterSize >= MIN_WRITER_CLUSTER_BYTES ? takeWriterThread() : null;
    this.padding = this.newBuffer();
    this.comparison = options.backing ? new BackingComparison(options.backing.disk, clusterSize) : null;
    // The header's cluster, written for real at close.
    this.countReference(0);
    this.append(this.padding);
  }

  async write(extent: Extent): Promise<void> {
    let lent = false; // whole clusters of the extent's own buffer are in the batch: released once it is written
    try {
      if (this.aborted) return;
      this.throwIfFailed();
      if (extent.offset < this.total) throw new Error(`Qcow2Sink: extent at ${extent.offset} goes back before ${this.total}`);
      const end = extent.offset + extent.length;
      if (end > this.maxVirtual) throw qcow2TooLarge(this.options.name, end, this.g.clusterBits)!;
      if (!extent.data) {
        this.counters.sparse += extent.length;
      } else {
        this.counters.real += extent.length;
        lent = await this.assemble(extent.offset, extent.data);
        if (lent && extent.release) this.batchReleases.push(extent.release);
        await this.drainTo(MAX_POSTED_BYTES);
      }
      this.total = end;
    } finally {
      if (!lent) extent.release?.();
    }
  }

  async close(): Promise<SinkCounters> {
    this.throwIfFailed();
    if (this.current) await this.submit(this.current.index, this.current.buffer);
    this.current = null;
    // qemu counts a disk in 512-byte sectors, dropping a partial last one (qemu-img convert rounds up, as here).
    const virtualSize = Math.ceil(this.options.virtualSize() / SECTOR_BYTES) * SECTOR_BYTES;
    if (virtualSize > this.maxVirtual) throw qcow2TooLarge(this.options.name, virtualSize, this.g.clusterBits)!;
    const { clusterSize } = this.g;
    const { backing } = this.options;
    // A source of unknown length (a stream) is only measured now: the plan checked a known one.
    if (backing && virtualSize !== Math.ceil(backing.virtualSize / SECTOR_BYTES) * SECTOR_BYTES) throw backingSizeMismatch(this.options.name, backing, virtualSize);
    await this.zeroClustersBefore(Math.ceil(virtualSize / clusterSize));
    while (this.queue.length > 0 && !this.failure) await this.change.next();
    this.throwIfFailed();
    this.finishL2Table();

    const l1Entries = l1EntriesFor(this.g, virtualSize);
    this.alignHost();
    const l1Offset = this.hostEnd;
    const l1 = Buffer.alloc(l1Clusters(this.g, l1Entries) * clusterSize);
    for (let i = 0; i < this.l1Regions.length; i++) setCopiedEntry(l1, this.l1Regions[i]!, this.l1Offsets[i]!);
    for (let c = 0; c * clusterSize < l1.length; c++) this.countReference(l1Offset / clusterSize + c);
    this.append(l1);

    // Every host cluster so far is referenced (padding never fills a whole cluster); the refcount
    // blocks and the table follow, counting themselves.
    const counted = this.hostEnd / clusterSize;
    const meta = refcountMetadataFor(this.g, counted);
    const refcounts = this.refcounts;
    const metadataEnd = counted + meta.blocks + meta.tableClusters;
    const refcountOf = (cluster: number): number => (cluster < counted ? (refcounts ? refcounts[cluster]! : 1) : cluster < metadataEnd ? 1 : 0);
    const blocksOffset = this.hostEnd;
    for (let b = 0; b < meta.blocks; b++) this.append(encodeRefcountBlock(this.g, b, refcountOf));
    const tableOffset = this.hostEnd;
    this.append(encodeRefcountTable(this.g, meta, blocksOffset));
    this.flush();
    // Everything on the writer thread is written before the header that makes it an image.
    await this.closeWriter();
    this.throwIfFailed();

    const header = encodeHeaderCluster(this.g, {
      virtualSize,
      l1Entries,
      l1Offset,
      refcountTableOffset: tableOffset,
      refcountTableClusters: meta.tableClusters,
      ...(backing ? { backing: { name: backing.name, format: backing.format } } : {}),
    });
    this.writeAt([header], 0);
    try {
      await ftruncate(this.options.fd, this.hostEnd);
    } catch (err) {
      throw new ToolError('TRUNCATE', `${this.options.name}: cannot set length to ${this.hostEnd}: ${describeSystemError(err)}`, { cause: err });
    }
    this.counters.written = this.hostEnd;
    return { ...this.counters };
  }

  async abort(): Promise<void> {
    this.aborted = true;
    while (this.compressing > 0) await this.change.next();
    await this.closeWriter();
    this.queue.length = 0;
    this.batch = [];
    this.batchRecycled = [];
    for (const release of this.batchReleases.splice(0)) release();
    this.spare.length = 0;
    this.current = null;
  }

  /** The file's length: bytes written once closed. */
  get fileBytes(): number {
    return this.hostEnd;
  }

  /**
   * Copies data into its guest clusters, handing each one on as the data moves past it. A whole
   * cluster of `data` is handed on as a view of it, without a copy, when nothing more is done to it
   * than writing it (no --compress, no backing file): true when any was, and the data's buffer
   * must then live until the batch is written.
   */
  private async assemble(offset: number, data: Buffer): Promise<boolean> {
    const { clusterSize, clusterBits } = this.g;
    const lend = !this.options.compress && !this.comparison;
    let lent = false;
    for (let done = 0; done < data.length; ) {
      const at = offset + done;
      const index = Math.floor(at / 2 ** clusterBits);
      if (this.current && this.current.index !== index) {
        const { index: previous, buffer } = this.current;
        this.current = null;
        await this.submit(previous, buffer);
      }
      if (lend && !this.current && at === index * clusterSize && data.length - done >= clusterSize) {
        const view = data.subarray(done, done + clusterSize);
        if (!isZeroRange(view)) {
          this.placeCluster(index, view, null, false);
          this.throwIfFailed();
          lent = true;
        }
        done += clusterSize;
        continue;
      }
      this.current ??= { index, buffer: this.takeBuffer() };
      const within = at - index * clusterSize;
      const n = Math.min(data.length - done, clusterSize - within);
      data.copy(this.current.buffer, within, done, done + n);
      done += n;
    }
    return lent;
  }

  /** A completed guest cluster: dropped when all zero (or, over a backing file, equal to it), else placed now or once compressed. */
  private async submit(index: number, buffer: Buffer): Promise<void> {
    if (this.comparison) {
      await this.zeroClustersBefore(index);
      const verdict = this.comparison.verdict(index, buffer);
      if (verdict !== 'data') {
        this.recycle(buffer);
        if (verdict === 'zero') await this.placeZero(index);
        return;
      }
    } else if (isZeroRange(buffer)) {
      this.recycle(buffer);
      return;
    }
    if (!this.options.compress) {
      this.placeCluster(index, buffer, null);
      this.throwIfFailed();
      return;
    }
    if (!(await this.roomInQueue())) return;
    const entry: Compressing = { index, raw: buffer, out: null, error: null, done: false };
    this.queue.push(entry);
    this.compressing++;
    const options: zlibTypes.ZlibOptions = { windowBits: QEMU_WINDOW_BITS, memLevel: QEMU_MEM_LEVEL, chunkSize: Math.max(64 << 10, this.g.clusterSize + 1024) };
    zlib().deflateRaw(buffer, options, (err, out) => {
      this.compressing--;
      entry.done = true;
      entry.error = err;
      entry.out = err ? null : out;
      this.pump();
    });
  }

  /** The source's holes before guest cluster `end` that are zero clusters over BASE's data. */
  private async zeroClustersBefore(end: number): Promise<void> {
    if (!this.comparison) return;
    for (const index of this.comparison.zeroClustersBefore(end)) await this.placeZero(index);
  }

  /** A zero cluster, in cluster order: after the clusters compressing before it. */
  private async placeZero(index: number): Promise<void> {
    if (!this.options.compress) {
      this.setZero(index);
      return;
    }
    if (!(await this.roomInQueue())) return;
    this.queue.push({ index, raw: null, out: null, error: null, done: true });
    this.pump();
  }

  /** Waits for a place in the compression queue; false once aborted. */
  private async roomInQueue(): Promise<boolean> {
    while (this.queue.length >= this.maxInFlight && !this.failure && !this.aborted) await this.change.next();
    this.throwIfFailed();
    return !this.aborted;
  }

  /** Places every compressed cluster at the head of the queue, in cluster order. */
  private pump(): void {
    while (!this.failure && !this.aborted && this.queue[0]?.done) {
      const head = this.queue.shift()!;
      if (head.error) {
        this.failure = new ToolError('WRITE', `${this.options.name}: compression failed: ${describeSystemError(head.error)}`, { cause: head.error });
        break;
      }
      if (!head.raw) {
        this.setZero(head.index);
        continue;
      }
      // Not smaller than the cluster: stored as it is, as qemu does.
      const smaller = head.out!.length < this.g.clusterSize ? head.out! : null;
      this.placeCluster(head.index, head.raw, smaller);
    }
    this.change.wakeAll();
  }

  /**
   * Appends a data cluster (compressed, or as it is) and records it in its region's L2 table. `owned`:
   * `raw` is one of the sink's cluster buffers (reused once written), not a view of the source's.
   */
  private placeCluster(index: number, raw: Buffer, compressed: Buffer | null, owned = true): void {
    const table = this.l2TableFor(index);
    const entry = index % this.g.l2Entries;
    if (compressed) {
      setCompressedEntry(this.g, table, entry, this.hostEnd, compressed.length);
      const { first, last } = clustersTouched(this.g, this.hostEnd, compressed.length);
      for (let c = first; c <= last; c++) this.countReference(c);
      this.recycle(raw);
      this.append(compressed);
    } else {
      this.alignHost();
      setCopiedEntry(table, entry, this.hostEnd);
      this.countReference(this.hostEnd / this.g.clusterSize);
      this.append(raw, owned);
    }
  }

  private setZero(index: number): void {
    setZeroEntry(this.l2TableFor(index), index % this.g.l2Entries);
  }

  /** The L2 table of guest cluster `index`'s region: the current one, or a new one once the previous is appended. */
  private l2TableFor(index: number): Buffer {
    const region = Math.floor(index / this.g.l2Entries);
    if (region !== this.l2Region || !this.l2Table) {
      this.finishL2Table();
      this.l2Region = region;
      this.l2Table = this.newBuffer();
    }
    return this.l2Table;
  }

  /** Appends the L2 table of the region placed so far, and gives it its L1 entry. */
  private finishL2Table(): void {
    if (!this.l2Table) return;
    this.alignHost();
    this.l1Regions.push(this.l2Region);
    this.l1Offsets.push(this.hostEnd);
    this.countReference(this.hostEnd / this.g.clusterSize);
    this.append(this.l2Table);
    this.l2Table = null;
  }

  /** Zeros up to the next cluster boundary, after packed compressed clusters. */
  private alignHost(): void {
    const pad = (this.g.clusterSize - (this.hostEnd % this.g.clusterSize)) % this.g.clusterSize;
    if (pad > 0) this.append(this.padding.subarray(0, pad));
  }

  private countReference(cluster: number): void {
    if (!this.refcounts) return;
    if (cluster >= this.refcounts.length) {
      const grown = new Uint16Array(Math.max(cluster + 1, this.refcounts.length * 2));
      grown.set(this.refcounts);
      this.refcounts = grown;
    }
    this.refcounts[cluster]!++;
  }

  private append(buffer: Buffer, recycle = false): void {
    this.batch.push(buffer);
    if (recycle) this.batchRecycled.push(buffer);
    this.batchBytes += buffer.length;
    this.hostEnd += buffer.length;
    if (this.batchBytes >= BATCH_BYTES) this.flush();
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const releases = this.batchReleases;
    // Batches never overlap: one on the writer thread and one written here may land in any order.
    if (this.writer && !this.writerClosed && !this.failure && !this.aborted && allShared(this.batch)) {
      const seq = this.writer.post({ fd: this.options.fd, buffers: this.batch, position: this.batchStart, maxCallBytes: BUFFERED_CALL_BYTES });
      this.posted.push({ seq, bytes: this.batchBytes, recycle: this.batchRecycled, releases });
      this.postedBytes += this.batchBytes;
    } else {
      this.writeAt(this.batch, this.batchStart);
      for (const buffer of this.batchRecycled) this.recycle(buffer);
      for (const release of releases) release();
    }
    this.batch = [];
    this.batchBytes = 0;
    this.batchStart = this.hostEnd;
    this.batchRecycled = [];
    this.batchReleases = [];
    this.reap();
  }

  /** Frees what the writer thread has written; records its failure. */
  private reap(): void {
    const writer = this.writer;
    if (!writer) return;
    const done = writer.done; // before the failure: a command counts as done only once its failure is recorded
    const failure = writer.failure;
    if (failure && !this.failure) {
      const why = describeSystemError(failure.error);
      this.failure = new ToolError('WRITE', `${this.options.name}: write failed: ${why}`, { cause: failure.error });
    }
    while (this.posted.length > 0 && this.posted[0]!.seq < done) {
      const batch = this.posted.shift()!;
      this.postedBytes -= batch.bytes;
      for (const buffer of batch.recycle) this.recycle(buffer);
      for (const release of batch.releases) release();
    }
  }

  /** Waits until at most `bytes` are on the writer thread. */
  private async drainTo(bytes: number): Promise<void> {
    if (!this.writer) return;
    this.reap();
    while (this.postedBytes > bytes && !this.failure) {
      await this.writer.waitUntilDone(this.posted[0]!.seq + 1);
      this.reap();
    }
    this.throwIfFailed();
  }

  /** Once everything posted is done (written, or skipped after a failure), the thread ends. */
  private async closeWriter(): Promise<void> {
    const writer = this.writer;
    if (!writer || this.writerClosed) return;
    this.writerClosed = true;
    await writer.waitUntilDone((this.posted.at(-1)?.seq ?? -1) + 1);
    this.reap();
    await writer.close();
  }

  private writeAt(buffers: Buffer[], position: number): void {
    if (this.failure || this.aborted) return;
    try {
      writeAllSync(this.options.fd, buffers, position);
    } catch (err) {
      this.failure = new ToolError('WRITE', `${this.options.name}: write failed at byte ${position}: ${describeSystemError(err)}`, { cause: err });
    }
  }

  private takeBuffer(): Buffer {
    const buffer = this.spare.pop();
    if (!buffer) return this.newBuffer();
    buffer.fill(0);
    return buffer;
  }

  /** A zeroed cluster: in shared memory when the writer thread writes them. */
  private newBuffer(): Buffer {
    return this.writer ? allocAligned(this.g.clusterSize) : Buffer.alloc(this.g.clusterSize);
  }

  private recycle(buffer: Buffer): void {
    if (this.spare.length < this.maxSpare) this.spare.push(buffer);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }


}
