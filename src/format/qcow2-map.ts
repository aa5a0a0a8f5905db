/**
 * The qcow2 cluster map: L1 and L2 entries decoded into runs of the virtual disk, each one of
 * not allocated here (read the backing file, or zeros), zeros, data at a host offset, or part of
 * a compressed cluster. Pure: the tables come from an accessor the caller backs with reads, and
 * every entry is checked against the file's size before anything would be read through it.
 * Layout from qemu's docs/interop/qcow2.rst ("Cluster mapping", "Compressed Clusters Descriptor",
 * "Extended L2 Entries").
 */
import { type Qcow2Header, Qcow2Error } from './qcow2-header.js';

/** A run of the virtual disk [offset, offset + length). */
export type MapRun =
  /** Not allocated in this image: its backing file's bytes, or zeros without one. */
  | { kind: 'below'; offset: number; length: number }
  | { kind: 'zero'; offset: number; length: number }
  /** Stored as it is: the run's first byte is at `host` in the image file. */
  | { kind: 'data'; offset: number; length: number; host: number }
  /** Part of the compressed cluster starting at virtual `clusterOffset`, `bytes` of it at `host`. */
  | { kind: 'compressed'; offset: number; length: number; host: number; bytes: number; clusterOffset: number };

/** Where the map's tables come from: the caller reads and caches them. */
export interface Qcow2Tables {
  /** The 8 bytes of L1 entry `index`. */
  l1Entry(index: number): Buffer;
  /** The L2 table (one cluster) at `hostOffset`, already checked to lie in the file. */
  l2Table(hostOffset: number): Buffer;
}

const SUBCLUSTERS = 32;
/** The unit of a compressed descriptor's length (qcow2.rst). */
export const COMPRESSED_SECTOR = 512;
/** Bits 9-55 of an entry's high word: the top 24 bits of a host offset. */
const HIGH_OFFSET_MASK = 0x00ffffff;
const LOW_OFFSET_MASK = 0xfffffe00;
export const COMPRESSED_FLAG = 0x40000000; // bit 62, in the high word
export const ZERO_FLAG = 1; // bit 0, in the low word

/** The host offset in bits 9-55 of an L1 or standard L2 entry. */
const hostOffsetOf = (entry: Buffer, at: number): number => (entry.readUInt32BE(at) & HIGH_OFFSET_MASK) * 2 ** 32 + ((entry.readUInt32BE(at + 4) & LOW_OFFSET_MASK) >>> 0);

/** Geometry derived once from the header. */
export interface Qcow2Geometry {
  clusterSize: number;
  subclusterSize: number;
  entryBytes: number;
  l2Entries: number;
  /** Virtual bytes one L2 table maps. */
  l2Span: number;
  virtualSize: number;
  fileSize: number;
  /** Bits of a compressed descriptor holding the host offset (62 - (cluster_bits - 8)). */
  compressedOffsetBits: number;
  extendedL2: boolean;
}

export function qcow2Geometry(header: Qcow2Header, fileSize: number): Qcow2Geometry {
  const entryBytes = header.extendedL2 ? 16 : 8;
  const l2Entries = header.clusterSize / entryBytes;
  return {
    clusterSize: header.clusterSize,
    subclusterSize: header.extendedL2 ? header.clusterSize / SUBCLUSTERS : header.clusterSize,
    entryBytes,
    l2Entries,
    l2Span: l2Entries * header.clusterSize,
    virtualSize: header.virtualSize,
    fileSize,
    compressedOffsetBits: 62 - (header.clusterBits - 8),
    extendedL2: header.extendedL2,
  };
}

/**
 * The L2 table offset of L1 entry `index`, or 0 when the range it maps is not allocated here.
 * `entryOffset` is the entry's byte offset in the file, for messages.
 */
export function decodeL1Entry(g: Qcow2Geometry, entry: Buffer, entryOffset: number): number {
  const l2 = hostOffsetOf(entry, 0);
  if (l2 === 0) return 0;
  if (l2 % g.clusterSize !== 0) throw new Qcow2Error(`L2 table offset ${l2} is not cluster aligned`, entryOffset);
  if (l2 + g.clusterSize > g.fileSize) throw new Qcow2Error(`L2 table at byte ${l2} is past the end of the file (${g.fileSize} bytes)`, entryOffset);
  return l2;
}

/** The runs of one cluster from its L2 entry (at `entryOffset` of the file), `clusterOffset` its virtual offset. */
export function* clusterRuns(g: Qcow2Geometry, table: Buffer, index: number, clusterOffset: number, entryOffset: number): Generator<MapRun> {
  const at = index * g.entryBytes;
  const high = table.readUInt32BE(at);
  const length = Math.min(g.clusterSize, g.virtualSize - clusterOffset);
  if (high & COMPRESSED_FLAG) {
    yield compressedRun(g, table, at, clusterOffset, length, entryOffset);
    return;
  }
  const host = hostOffsetOf(table, at);
  if (host !== 0) {
    if (host % g.clusterSize !== 0) throw new Qcow2Error(`data cluster offset ${host} is not cluster aligned`, entryOffset);
    if (host >= g.fileSize) throw new Qcow2Error(`data cluster at byte ${host} is past the end of the file (${g.fileSize} bytes)`, entryOffset);
  }
  if (!g.extendedL2) {
    if (table.readUInt32BE(at + 4) & ZERO_FLAG) yield { kind: 'zero', offset: clusterOffset, length };
    else if (host === 0) yield { kind: 'below', offset: clusterOffset, length };
    else yield { kind: 'data', offset: clusterOffset, length, host };
    return;
  }
  // Extended L2: the bitmap's bits 32-63 (the first word) say reads-as-zero, bits 0-31 allocated.
  const zeros = table.readUInt32BE(at + 8);
  const allocated = table.readUInt32BE(at + 12);
  if (host === 0 && allocated !== 0) throw new Qcow2Error(`unallocated cluster with allocated subclusters (bitmap 0x${allocated.toString(16)})`, entryOffset + 8);
  if ((zeros & allocated) !== 0) throw new Qcow2Error(`subclusters both allocated and zero (bitmap 0x${(zeros & allocated).toString(16)})`, entryOffset + 8);
  for (let sub = 0; sub < SUBCLUSTERS; sub++) {
    const offset = clusterOffset + sub * g.subclusterSize;
    if (offset >= clusterOffset + length) return;
    const subLength = Math.min(g.subclusterSize, clusterOffset + length - offset);
    const bit = 1 << sub;
    if (zeros & bit) yield { kind: 'zero', offset, length: subLength };
    else if (allocated & bit) yield { kind: 'data', offset, length: subLength, host: host + sub * g.subclusterSize };
    else yield { kind: 'below', offset, length: subLength };
  }
}

/**
 * A compressed cluster's descriptor: the host byte offset in its low bits, then the number of
 * 512-byte sectors it spans after the one it starts in; the bytes are those to the end of that
 * sector count, which is at most two clusters' worth (the count field is cluster_bits - 8 wide).
 */
function compressedRun(g: Qcow2Geometry, table: Buffer, at: number, clusterOffset: number, length: number, entryOffset: number): MapRun {
  const descriptor = table.readBigUInt64BE(at) & ((1n << 62n) - 1n);
  const offsetBits = BigInt(g.compressedOffsetBits);
  const hostBig = descriptor & ((1n << offsetBits) - 1n);
  if (hostBig >= BigInt(g.fileSize)) throw new Qcow2Error(`compressed cluster at byte ${hostBig} is past the end of the file (${g.fileSize} bytes)`, entryOffset);
  const host = Number(hostBig);
  const sectors = Number(descriptor >> offsetBits) + 1;
  const stored = sectors * COMPRESSED_SECTOR - (host % COMPRESSED_SECTOR);
  // The last cluster of a file need not fill its last sector.
  return { kind: 'compressed', offset: clusterOffset, length, host, bytes: Math.min(stored, g.fileSize - host), clusterOffset };
}

/** Whether `next` continues `run` as one run (compressed clusters stay one run each). */
function continues(run: MapRun, next: MapRun): boolean {
  if (run.kind !== next.kind || run.offset + run.length !== next.offset) return false;
  if (run.kind === 'compressed') return false;
  if (run.kind === 'data') return next.kind === 'data' && run.host + run.length === next.host;
  return true;
}

/** `run` cut to [start, end). */
function clip(run: MapRun, start: number, end: number): MapRun {
  const from = Math.max(run.offset, start);
  const to = Math.min(run.offset + run.length, end);
  if (from === run.offset && to === run.offset + run.length) return run;
  if (run.kind === 'data') return { ...run, offset: from, length: to - from, host: run.host + (from - run.offset) };
  return { ...run, offset: from, length: to - from };
}

/**
 * The runs covering [start, end) of the virtual disk (end clamped to its size), in order, adjacent
 * runs of one kind merged (data only where the host bytes follow on too). L1 entries that map
 * nothing cost one run for all of them; only L2 tables that exist are read.
 */
export function* mapRuns(g: Qcow2Geometry, tables: Qcow2Tables, l1TableOffset: number, start: number, end: number): Generator<MapRun> {
  const stop = Math.min(end, g.virtualSize);
  let pending: MapRun | null = null;
  const add = function* (run: MapRun): Generator<MapRun> {
    const piece = clip(run, start, stop);
    if (piece.length <= 0) return;
    if (pending && continues(pending, piece)) {
      pending = { ...pending, length: pending.length + piece.length };
      return;
    }
    if (pending) yield pending;
    pending = piece;
  };
  for (let l1Index = Math.floor(start / g.l2Span); l1Index * g.l2Span < stop; l1Index++) {
    const spanStart = l1Index * g.l2Span;
    const entryOffset = l1TableOffset + l1Index * 8;
    const l2 = decodeL1Entry(g, tables.l1Entry(l1Index), entryOffset);
    if (l2 === 0) {
      yield* add({ kind: 'below', offset: spanStart, length: Math.min(g.l2Span, g.virtualSize - spanStart) });
      continue;
    }
    const table = tables.l2Table(l2);
    const first = Math.max(0, Math.floor((start - spanStart) / g.clusterSize));
    for (let index = first; index < g.l2Entries; index++) {
      const clusterOffset = spanStart + index * g.clusterSize;
      if (clusterOffset >= stop) break;
      for (const run of clusterRuns(g, table, index, clusterOffset, l2 + index * g.entryBytes)) yield* add(run);
    }
  }
  if (pending) yield pending;
}
