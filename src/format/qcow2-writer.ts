/**
 * The bytes of a qcow2 version 3 image's metadata, as qemu's docs/interop/qcow2.rst defines them:
 * the header cluster (with the feature name table qemu writes), L2 and L1 entries, compressed
 * cluster descriptors, refcount blocks and the refcount table, and the size of the refcount
 * metadata, which counts itself. Pure: no I/O, and no opinion on where metadata goes. A caller
 * that appends data and writes metadata last (qcow2-sink.ts) and one that computes every offset
 * first from a known cluster map (a qcow2 written to a pipe) both place the same structures.
 */
import { COMPRESSED_FLAG, COMPRESSED_SECTOR, ZERO_FLAG } from './qcow2-map.js';
import {
  EXT_BACKING_FORMAT,
  EXT_END,
  EXT_FEATURE_NAMES,
  HEADER,
  INCOMPAT_COMPRESSION,
  INCOMPAT_CORRUPT,
  INCOMPAT_DATA_FILE,
  INCOMPAT_DIRTY,
  INCOMPAT_EXTENDED_L2,
  MAX_BACKING_NAME_BYTES,
  MAX_CLUSTER_BITS,
  MAX_L1_BYTES,
  MIN_CLUSTER_BITS,
  QCOW2_MAGIC,
  V3_HEADER_LENGTH,
} from './qcow2-header.js';

export { MAX_BACKING_NAME_BYTES, MAX_CLUSTER_BITS, MIN_CLUSTER_BITS };

/** 16-bit refcounts, qemu's default (refcount_order 4). */
export const REFCOUNT_ORDER = 4;
const REFCOUNT_BYTES = 2;
const ENTRY_BYTES = 8;
const COPIED_FLAG = 0x80000000; // bit 63 of an L1/L2 entry, in the high word: refcount is exactly 1
const HIGH_WORD = 2 ** 32;

/** The feature names qemu puts in every v3 image it creates (type 0 incompatible, 1 compatible, 2 autoclear). */
const FEATURE_NAMES: readonly [type: number, bit: number, name: string][] = [
  [0, INCOMPAT_DIRTY, 'dirty bit'],
  [0, INCOMPAT_CORRUPT, 'corrupt bit'],
  [0, INCOMPAT_DATA_FILE, 'external data file'],
  [0, INCOMPAT_COMPRESSION, 'compression type'],
  [0, INCOMPAT_EXTENDED_L2, 'extended L2 entries'],
  [1, 0, 'lazy refcounts'],
  [2, 0, 'bitmaps'],
  [2, 1, 'raw external data'],
];
const FEATURE_NAME_BYTES = 48;

/** Geometry of an image written with 2^clusterBits-byte clusters and 64-bit L2 entries. */
export interface Qcow2WriteGeometry {
  clusterBits: number;
  clusterSize: number;
  /** Entries of one L2 table (one cluster). */
  l2Entries: number;
  /** Virtual bytes one L2 table maps. */
  l2Span: number;
  /** Host clusters one refcount block counts. */
  refcountsPerBlock: number;
  /** Refcount blocks one refcount table cluster points at. */
  tableEntriesPerCluster: number;
  /** Bits of a compressed descriptor holding the host offset. */
  compressedOffsetBits: number;
}

export function writeGeometry(clusterBits: number): Qcow2WriteGeometry {
  if (!Number.isInteger(clusterBits) || clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) throw new RangeError(`cluster_bits ${clusterBits} out of range`);
  const clusterSize = 2 ** clusterBits;
  const l2Entries = clusterSize / ENTRY_BYTES;
  return {
    clusterBits,
    clusterSize,
    l2Entries,
    l2Span: l2Entries * clusterSize,
    refcountsPerBlock: clusterSize / REFCOUNT_BYTES,
    tableEntriesPerCluster: clusterSize / ENTRY_BYTES,
    compressedOffsetBits: 62 - (clusterBits - 8),
  };
}

/** L1 entries a virtual disk of `virtualSize` bytes needs. */
export const l1EntriesFor = (g: Qcow2WriteGeometry, virtualSize: number): number => Math.ceil(virtualSize / g.l2Span);

/** The largest virtual size whose L1 table qemu opens (MAX_L1_BYTES): larger clusters map more. */
export const maxVirtualSize = (g: Qcow2WriteGeometry): number => (MAX_L1_BYTES / ENTRY_BYTES) * g.l2Span;

/** Clusters the L1 table takes (none for an empty disk: qemu-img check counts l1_size * 8 bytes). */
export const l1Clusters = (g: Qcow2WriteGeometry, l1Entries: number): number => Math.ceil((l1Entries * ENTRY_BYTES) / g.clusterSize);

export interface Qcow2HeaderFields {
  virtualSize: number;
  l1Entries: number;
  l1Offset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  /** The backing file's name as the user gave it (qemu resolves it from the image's directory), and its format. */
  backing?: { name: string; format: 'raw' | 'qcow2' };
}

const EXTENSION_HEADER_BYTES = 8;
const pad8 = (n: number): number => Math.ceil(n / 8) * 8;

/**
 * The first cluster: the v3 header (header_length 112, deflate, no features set), the backing
 * format extension, the feature name table, the end marker, and the backing file's name after
 * them, where qemu puts it. The feature name table is optional: left out when the rest would not
 * fit beside it (512-byte clusters with a backing file).
 */
export function encodeHeaderCluster(g: Qcow2WriteGeometry, fields: Qcow2HeaderFields): Buffer {
  const backingName = fields.backing ? Buffer.from(fields.backing.name, 'utf8') : null;
  if (backingName && (backingName.length === 0 || backingName.length > MAX_BACKING_NAME_BYTES)) throw new RangeError(`a backing file name of ${backingName.length} bytes`);
  const backingFormat = fields.backing ? Buffer.from(fields.backing.format, 'latin1') : null;
  const formatBytes = backingFormat ? EXTENSION_HEADER_BYTES + pad8(backingFormat.length) : 0;
  const featureBytes = EXTENSION_HEADER_BYTES + FEATURE_NAMES.length * FEATURE_NAME_BYTES;
  const required = V3_HEADER_LENGTH + formatBytes + EXTENSION_HEADER_BYTES + (backingName?.length ?? 0);
  if (required > g.clusterSize) throw new RangeError(`a qcow2 header does not fit in ${g.clusterSize}-byte clusters`);
  const withFeatureNames = required + featureBytes <= g.clusterSize || !backingName;
  const cluster = Buffer.alloc(Math.max(g.clusterSize, required + (withFeatureNames ? featureBytes : 0)));
  cluster.writeUInt32BE(QCOW2_MAGIC, HEADER.magic);
  cluster.writeUInt32BE(3, HEADER.version);
  cluster.writeUInt32BE(g.clusterBits, HEADER.clusterBits);
  writeU64(cluster, HEADER.size, fields.virtualSize);
  cluster.writeUInt32BE(fields.l1Entries, HEADER.l1Size);
  writeU64(cluster, HEADER.l1TableOffset, fields.l1Offset);
  writeU64(cluster, HEADER.refcountTableOffset, fields.refcountTableOffset);
  cluster.writeUInt32BE(fields.refcountTableClusters, HEADER.refcountTableClusters);
  cluster.writeUInt32BE(REFCOUNT_ORDER, HEADER.refcountOrder);
  cluster.writeUInt32BE(V3_HEADER_LENGTH, HEADER.headerLength);
  // Feature bits, snapshots, compression_type: all zero.
  let at = V3_HEADER_LENGTH;
  if (backingFormat) {
    cluster.writeUInt32BE(EXT_BACKING_FORMAT, at);
    cluster.writeUInt32BE(backingFormat.length, at + 4);
    backingFormat.copy(cluster, at + EXTENSION_HEADER_BYTES);
    at += formatBytes;
  }
  if (withFeatureNames) {
    cluster.writeUInt32BE(EXT_FEATURE_NAMES, at);
    cluster.writeUInt32BE(FEATURE_NAMES.length * FEATURE_NAME_BYTES, at + 4);
    at += EXTENSION_HEADER_BYTES;
    for (const [type, bit, name] of FEATURE_NAMES) {
      cluster[at] = type;
      cluster[at + 1] = bit;
      cluster.write(name, at + 2, FEATURE_NAME_BYTES - 2, 'latin1');
      at += FEATURE_NAME_BYTES;
    }
  }
  cluster.writeUInt32BE(EXT_END, at); // type 0, length 0
  at += EXTENSION_HEADER_BYTES;
  if (backingName) {
    writeU64(cluster, HEADER.backingFileOffset, at);
    cluster.writeUInt32BE(backingName.length, HEADER.backingFileSize);
    backingName.copy(cluster, at);
  }
  if (cluster.length > g.clusterSize) throw new RangeError(`a qcow2 header does not fit in ${g.clusterSize}-byte clusters`);
  return cluster;
}

/** An L2 entry that reads as zeros whatever the backing file holds there (v3 zero flag, no host cluster). */
export function setZeroEntry(table: Buffer, index: number): void {
  table.writeUInt32BE(0, index * ENTRY_BYTES);
  table.writeUInt32BE(ZERO_FLAG, index * ENTRY_BYTES + 4);
}

/** A cluster-aligned host offset with the COPIED flag (refcount 1), as L1 and standard L2 entries hold it. */
export function setCopiedEntry(table: Buffer, index: number, hostOffset: number): void {
  const at = index * ENTRY_BYTES;
  table.writeUInt32BE((COPIED_FLAG | Math.floor(hostOffset / HIGH_WORD)) >>> 0, at);
  table.writeUInt32BE(hostOffset % HIGH_WORD, at + 4);
}

/**
 * A compressed cluster's L2 entry: its host byte offset, and the number of 512-byte sectors it
 * occupies after the one it starts in. Never COPIED: compressed clusters are not written in place.
 */
export function setCompressedEntry(g: Qcow2WriteGeometry, table: Buffer, index: number, hostOffset: number, bytes: number): void {
  if (bytes <= 0 || bytes > g.clusterSize) throw new RangeError(`a compressed cluster of ${bytes} bytes`);
  const additionalSectors = Math.floor((hostOffset + bytes - 1) / COMPRESSED_SECTOR) - Math.floor(hostOffset / COMPRESSED_SECTOR);
  const descriptor = (BigInt(additionalSectors) << BigInt(g.compressedOffsetBits)) | BigInt(hostOffset);
  table.writeBigUInt64BE(descriptor | (BigInt(COMPRESSED_FLAG) << 32n), index * ENTRY_BYTES);
}

/** The host clusters a compressed cluster's bytes touch: each one it touches counts it once. */
export function clustersTouched(g: Qcow2WriteGeometry, hostOffset: number, bytes: number): { first: number; last: number } {
  return { first: Math.floor(hostOffset / g.clusterSize), last: Math.floor((hostOffset + bytes - 1) / g.clusterSize) };
}

export interface RefcountMetadata {
  blocks: number;
  tableClusters: number;
}

/**
 * How many refcount blocks and refcount table clusters count `otherClusters` host clusters and
 * themselves: the blocks count the table and each other, so more blocks may need more blocks
 * (iterated until it stops growing, as qemu's qcow2-to-stdout.py does).
 */
export function refcountMetadataFor(g: Qcow2WriteGeometry, otherClusters: number): RefcountMetadata {
  let blocks = 0;
  let tableClusters = 0;
  for (;;) {
    const nextBlocks = Math.ceil((otherClusters + blocks + tableClusters) / g.refcountsPerBlock);
    const nextTable = Math.max(1, Math.ceil(nextBlocks / g.tableEntriesPerCluster));
    if (nextBlocks === blocks && nextTable === tableClusters) return { blocks, tableClusters };
    blocks = nextBlocks;
    tableClusters = nextTable;
  }
}

/** Refcount block `index`: the counts of host clusters index * refcountsPerBlock onwards. */
export function encodeRefcountBlock(g: Qcow2WriteGeometry, index: number, refcountOf: (hostCluster: number) => number): Buffer {
  const block = Buffer.alloc(g.clusterSize);
  const first = index * g.refcountsPerBlock;
  for (let i = 0; i < g.refcountsPerBlock; i++) {
    const count = refcountOf(first + i);
    if (count > 0xffff) throw new RangeError(`refcount ${count} of host cluster ${first + i} overflows 16 bits`);
    if (count !== 0) block.writeUInt16BE(count, i * REFCOUNT_BYTES);
  }
  return block;
}

/** The refcount table: entry i points at refcount block i, the blocks lying one after another from `firstBlockOffset`. */
export function encodeRefcountTable(g: Qcow2WriteGeometry, meta: RefcountMetadata, firstBlockOffset: number): Buffer {
  const table = Buffer.alloc(meta.tableClusters * g.clusterSize);
  for (let i = 0; i < meta.blocks; i++) writeU64(table, i * ENTRY_BYTES, firstBlockOffset + i * g.clusterSize);
  return table;
}

function writeU64(buffer: Buffer, at: number, value: number): void {
  buffer.writeUInt32BE(Math.floor(value / HIGH_WORD), at);
  buffer.writeUInt32BE(value % HIGH_WORD, at + 4);
}
