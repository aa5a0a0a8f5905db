/**
 * A qcow2 written to a pipe or stdout, in two passes over a source that can be read twice, as
 * qemu's scripts/qcow2-to-stdout.py writes one: the first pass (ClusterMapper) only finds which
 * guest clusters hold data (and, over a backing file, which are zero clusters), the second
 * (Qcow2StreamSink) writes the metadata computed from that map (format/qcow2-stream-layout.ts) and
 * then the data clusters in guest order, checking that each cluster is what the first pass saw: a
 * source that changed between the passes fails rather than making a wrong image.
 */
import { ToolError, describeSystemError } from '../errors.js';
import type { Extent } from '../extent/extent.js';
import { type BackingDisk, BackingComparison, type ClusterVerdict } from '../format/qcow2-backing-diff.js';
import { ClusterBitmap, type ClusterMap, type StreamLayout, streamLayout, streamMetadata } from '../format/qcow2-stream-layout.js';
import { type Qcow2WriteGeometry, writeGeometry } from '../format/qcow2-writer.js';
import { writeAt } from '../io/fd-io.js';
import { type Sink, type SinkCounters, newCounters } from '../sparsecopy/sink.js';
import type { Qcow2SinkBacking } from './qcow2-sink.js';

const SECTOR_BYTES = 512;
/** Bytes gathered before one write to the stream (clusters may be 512 bytes). */
const BATCH_BYTES = 1 << 20;
const NO_BACKING: BackingDisk = { readAt: () => Buffer.alloc(0), mayHoldData: () => [][Symbol.iterator]() };

/**
 * The guest clusters of a disk's extents, in order, judged as a qcow2 layer stores them (over its
 * backing file when it has one): `onCluster` hears of every data cluster (with its bytes, valid
 * until it returns) and every zero cluster, never of an unallocated one.
 */
export class ClusterWalk {
  private readonly comparison: BackingComparison;
  private current: { index: number; buffer: Buffer } | null = null;
  private spare: Buffer | null = null;
  private end = 0;

  constructor(
    private readonly g: Qcow2WriteGeometry,
    backing: BackingDisk | null,
    private readonly onCluster: (index: number, verdict: Exclude<ClusterVerdict, 'unallocated'>, data: Buffer | null) => Promise<void> | void,
  ) {
    this.comparison = new BackingComparison(backing ?? NO_BACKING, g.clusterSize);
  }

  async add(extent: Extent): Promise<void> {
    try {
      this.end = Math.max(this.end, extent.offset + extent.length);
      if (!extent.data) return;
      const { clusterSize } = this.g;
      for (let done = 0; done < extent.length; ) {
        const at = extent.offset + done;
        const index = Math.floor(at / clusterSize);
        if (this.current && this.current.index !== index) await this.judgeCurrent();
        this.current ??= { index, buffer: this.takeBuffer() };
        const n = Math.min(extent.length - done, clusterSize - (at - index * clusterSize));
        extent.data.copy(this.current.buffer, at - index * clusterSize, done, done + n);
        done += n;
      }
    } finally {
      extent.release?.();
    }
  }

  /** The last cluster, and the zero clusters among the holes up to the disk's end; returns the virtual size (whole sectors, as qemu counts). */
  async finish(): Promise<number> {
    if (this.current) await this.judgeCurrent();
    const virtualSize = Math.ceil(this.end / SECTOR_BYTES) * SECTOR_BYTES;
    await this.zeroClustersBefore(Math.ceil(virtualSize / this.g.clusterSize));
    return virtualSize;
  }

  private async judgeCurrent(): Promise<void> {
    const { index, buffer } = this.current!;
    this.current = null;
    await this.zeroClustersBefore(index);
    const verdict = this.comparison.verdict(index, buffer);
    if (verdict !== 'unallocated') await this.onCluster(index, verdict, verdict === 'data' ? buffer : null);
    this.spare = buffer;
  }

  private async zeroClustersBefore(end: number): Promise<void> {
    for (const index of this.comparison.zeroClustersBefore(end)) await this.onCluster(index, 'zero', null);
  }

  private takeBuffer(): Buffer {
    const buffer = this.spare ?? Buffer.alloc(this.g.clusterSize);
    this.spare = null;
    return buffer.fill(0);
  }
}

/** The first pass: the map of data and zero clusters of the disk's extents. */
export async function mapClusters(extents: AsyncIterable<Extent>, clusterBits: number, backing: BackingDisk | null, signal?: AbortSignal): Promise<ClusterMap> {
  const data = new ClusterBitmap();
  const zero = new ClusterBitmap();
  const walk = new ClusterWalk(writeGeometry(clusterBits), backing, (index, verdict) => (verdict === 'data' ? data : zero).set(index));
  for await (const extent of extents) {
    if (signal?.aborted) throw signal.reason;
    await walk.add(extent);
  }
  return { virtualSize: await walk.finish(), data, zero };
}

export interface Qcow2StreamSinkOptions {
  fd: number;
  /** The destination's name in messages ("stdout"). */
  name: string;
  /** The source's name: a source that changed between the passes is named. */
  sourceName: string;
  clusterBits: number;
  map: ClusterMap;
  backing?: Qcow2SinkBacking;
  signal?: AbortSignal;
}

/** The second pass: metadata first, then the data clusters, each checked against the first pass's map. */
export class Qcow2StreamSink implements Sink {
  private readonly g: Qcow2WriteGeometry;
  private readonly layout: StreamLayout;
  private readonly walk: ClusterWalk;
  private readonly counters = newCounters();
  private position = 0;
  private readonly batch = Buffer.alloc(BATCH_BYTES);
  private batched = 0;
  private metadataWritten = false;
  /** The first guest cluster after the last one written (or checked as a zero cluster). */
  private checkedUpTo = 0;
  private dataWritten = 0;

  constructor(private readonly options: Qcow2StreamSinkOptions) {
    this.g = writeGeometry(options.clusterBits);
    this.layout = streamLayout(this.g, options.map);
    this.walk = new ClusterWalk(this.g, options.backing?.disk ?? null, (index, verdict, data) => this.place(index, verdict, data));
  }

  /** The image's length, known from the first pass. */
  get fileBytes(): number {
    return this.layout.fileBytes;
  }

  async write(extent: Extent): Promise<void> {
    if (extent.data) this.counters.real += extent.length;
    else this.counters.sparse += extent.length;
    await this.writeMetadataOnce();
    await this.walk.add(extent);
  }

  async close(): Promise<SinkCounters> {
    await this.writeMetadataOnce();
    const virtualSize = await this.walk.finish();
    const { map } = this.options;
    this.expectNothingFirstPassHadBefore(Infinity);
    if (virtualSize !== map.virtualSize || this.dataWritten !== map.data.count) {
      throw this.changed(`it ended at byte ${virtualSize} with ${this.dataWritten} data clusters, the first pass at byte ${map.virtualSize} with ${map.data.count}`);
    }
    await this.flush();
    this.counters.written = this.position;
    return { ...this.counters };
  }

  async abort(): Promise<void> {}

  private async writeMetadataOnce(): Promise<void> {
    if (this.metadataWritten) return;
    this.metadataWritten = true;
    const { backing } = this.options;
    for (const cluster of streamMetadata(this.g, this.options.map, this.layout, backing ? { name: backing.name, format: backing.format } : undefined)) await this.put(cluster);
  }

  /** A data or zero cluster of the second pass: what the first pass saw there, and nothing it saw before it skipped. */
  private async place(index: number, verdict: 'data' | 'zero', data: Buffer | null): Promise<void> {
    this.expectNothingFirstPassHadBefore(index);
    const { map } = this.options;
    const before = map.data.has(index) ? 'data' : map.zero.has(index) ? 'zero' : 'unallocated';
    if (before !== verdict) throw this.changedAt(index, before, verdict);
    this.checkedUpTo = index + 1;
    if (data) {
      await this.put(data);
      this.dataWritten++;
    }
  }

  /** The first pass had no data or zero cluster in [checkedUpTo, end), which the second pass has found unallocated. */
  private expectNothingFirstPassHadBefore(end: number): void {
    const { map } = this.options;
    const data = map.data.firstIn(this.checkedUpTo, end);
    const zero = map.zero.firstIn(this.checkedUpTo, end);
    const first = data < 0 ? zero : zero < 0 ? data : Math.min(data, zero);
    if (first >= 0) throw this.changedAt(first, first === data ? 'data' : 'zero', 'unallocated');
  }

  private changedAt(index: number, before: ClusterVerdict, now: ClusterVerdict): ToolError {
    const start = index * this.g.clusterSize;
    return this.changed(`guest cluster ${index} (bytes ${start} to ${start + this.g.clusterSize}) was ${describe(before)} in the first pass and is ${describe(now)} in the second`);
  }

  private changed(what: string): ToolError {
    return new ToolError(
      'SOURCE_READ',
      `${this.options.sourceName}: changed while a qcow2 was written from it to ${this.options.name} in two passes: ${what}; the output sent is incomplete and must be discarded`,
    );
  }

  /** Copies `data` into the batch (the caller reuses its buffer), writing the batch when full. */
  private async put(data: Buffer): Promise<void> {
    for (let done = 0; done < data.length; ) {
      const n = data.copy(this.batch, this.batched, done);
      this.batched += n;
      done += n;
      if (this.batched === BATCH_BYTES) await this.flush();
    }
  }

  private async flush(): Promise<void> {
    if (this.batched === 0) return;
    const data = this.batch.subarray(0, this.batched);
    this.batched = 0;
    try {
      await writeAt(this.options.fd, data, null, this.options.signal);
    } catch (err) {
      if (this.options.signal?.aborted && err === this.options.signal.reason) throw err;
      const at = this.position + ((err as { bytesWritten?: number }).bytesWritten ?? 0);
      throw new ToolError('WRITE', `${this.options.name}: write failed at byte ${at}: ${describeSystemError(err)}`, { cause: err });
    }
    this.position += data.length;
  }
}

const describe = (verdict: ClusterVerdict): string => (verdict === 'data' ? 'data' : verdict === 'zero' ? 'a zero cluster' : 'zeros (unallocated)');
