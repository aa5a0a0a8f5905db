/**
 * A qcow2 laid out metadata first, for a destination that cannot seek (a pipe, stdout), as qemu's
 * scripts/qcow2-to-stdout.py lays it out: from a map of the guest clusters that hold data and of
 * those that are zero clusters (a first pass over the source), every offset is known before the
 * first byte: header, refcount table, refcount blocks, L1 table, L2 tables, then the data clusters
 * in guest order. Pure: the metadata clusters are generated one at a time, so memory is the map
 * (a bit per guest cluster up to the last data cluster: 2 MiB per TiB at 64 KiB clusters; a second
 * bitmap holds the zero clusters of a layer over a backing file), the L1 table and one cluster.
 */
import {
  type Qcow2WriteGeometry,
  type RefcountMetadata,
  encodeHeaderCluster,
  encodeRefcountBlock,
  encodeRefcountTable,
  l1Clusters,
  l1EntriesFor,
  refcountMetadataFor,
  setCopiedEntry,
  setZeroEntry,
} from './qcow2-writer.js';

/** One bit per guest cluster, growing as clusters are set. */
export class ClusterBitmap {
  private bits = new Uint8Array(1024);
  private setCount = 0;

  set(index: number): void {
    const byte = index >>> 3;
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.bits.length * 2));
      grown.set(this.bits);
      this.bits = grown;
    }
    const mask = 1 << (index & 7);
    if ((this.bits[byte]! & mask) === 0) this.setCount++;
    this.bits[byte]! |= mask;
  }

  has(index: number): boolean {
    const byte = index >>> 3;
    return byte < this.bits.length && (this.bits[byte]! & (1 << (index & 7))) !== 0;
  }

  get count(): number {
    return this.setCount;
  }

  /** The first set index in [from, to), or -1: whole zero bytes are skipped. */
  firstIn(from: number, to: number): number {
    let i = from;
    const end = Math.min(to, this.bits.length * 8);
    while (i < end) {
      if ((i & 7) === 0 && this.bits[i >>> 3] === 0) {
        i += 8;
        continue;
      }
      if (this.has(i)) return i;
      i++;
    }
    return -1;
  }
}

/** What the first pass found: the virtual size, and which guest clusters are data or zero clusters. */
export interface ClusterMap {
  virtualSize: number;
  data: ClusterBitmap;
  zero: ClusterBitmap;
}

export interface StreamLayout {
  virtualSize: number;
  l1Entries: number;
  refcountTableOffset: number;
  refcount: RefcountMetadata;
  refcountBlocksOffset: number;
  l1Offset: number;
  /** The L2 regions that hold an entry, in order; their tables follow the L1 table in that order. */
  l2Regions: number[];
  l2Offset: number;
  /** Where the first data cluster goes; the others follow in guest order. */
  dataOffset: number;
  /** Bytes of the whole image. */
  fileBytes: number;
}

/** Every offset of the image, from the map. */
export function streamLayout(g: Qcow2WriteGeometry, map: ClusterMap): StreamLayout {
  const clusters = Math.ceil(map.virtualSize / g.clusterSize);
  const l2Regions: number[] = [];
  for (let region = 0; region * g.l2Entries < clusters; region++) {
    const from = region * g.l2Entries;
    const to = from + g.l2Entries;
    if (map.data.firstIn(from, to) >= 0 || map.zero.firstIn(from, to) >= 0) l2Regions.push(region);
  }
  const l1Entries = l1EntriesFor(g, map.virtualSize);
  const l1ClusterCount = l1Clusters(g, l1Entries);
  const others = 1 + l1ClusterCount + l2Regions.length + map.data.count;
  const refcount = refcountMetadataFor(g, others);
  const { clusterSize } = g;
  const refcountTableOffset = clusterSize;
  const refcountBlocksOffset = refcountTableOffset + refcount.tableClusters * clusterSize;
  const l1Offset = refcountBlocksOffset + refcount.blocks * clusterSize;
  const l2Offset = l1Offset + l1ClusterCount * clusterSize;
  const dataOffset = l2Offset + l2Regions.length * clusterSize;
  return {
    virtualSize: map.virtualSize,
    l1Entries,
    refcountTableOffset,
    refcount,
    refcountBlocksOffset,
    l1Offset,
    l2Regions,
    l2Offset,
    dataOffset,
    fileBytes: dataOffset + map.data.count * clusterSize,
  };
}

/** The metadata clusters of the image, in file order, up to the first data cluster. */
export function* streamMetadata(g: Qcow2WriteGeometry, map: ClusterMap, layout: StreamLayout, backing?: { name: string; format: 'raw' | 'qcow2' }): Generator<Buffer> {
  const { clusterSize } = g;
  yield encodeHeaderCluster(g, {
    virtualSize: layout.virtualSize,
    l1Entries: layout.l1Entries,
    l1Offset: layout.l1Offset,
    refcountTableOffset: layout.refcountTableOffset,
    refcountTableClusters: layout.refcount.tableClusters,
    ...(backing ? { backing } : {}),
  });
  yield encodeRefcountTable(g, layout.refcount, layout.refcountBlocksOffset);
  // Every cluster of the file is referenced once: nothing is shared (no compressed clusters).
  const hostClusters = layout.fileBytes / clusterSize;
  for (let b = 0; b < layout.refcount.blocks; b++) yield encodeRefcountBlock(g, b, (cluster) => (cluster < hostClusters ? 1 : 0));
  const l1 = Buffer.alloc(l1Clusters(g, layout.l1Entries) * clusterSize);
  layout.l2Regions.forEach((region, i) => setCopiedEntry(l1, region, layout.l2Offset + i * clusterSize));
  for (let at = 0; at < l1.length; at += clusterSize) yield l1.subarray(at, at + clusterSize);
  let dataRank = 0;
  for (const region of layout.l2Regions) {
    const table = Buffer.alloc(clusterSize);
    const first = region * g.l2Entries;
    for (let entry = 0; entry < g.l2Entries; entry++) {
      const index = first + entry;
      if (map.data.has(index)) setCopiedEntry(table, entry, layout.dataOffset + dataRank++ * clusterSize);
      else if (map.zero.has(index)) setZeroEntry(table, entry);
    }
    yield table;
  }
}
