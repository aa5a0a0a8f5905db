/**
 * The layout of the VMDKs sparsecopy writes, as bytes and numbers, no I/O (the sinks in codec/ place
 * them): which grains and tables a disk has, where they go, and the bytes of the header,
 * descriptor, markers, grain tables, grain directory and footer. Field encodings are
 * vmdk-header.ts's; the descriptor text is vmdk-descriptor-text.ts's.
 *
 *  - streamOptimized (what OVA, vSphere upload and cloud import take), one forward pass: header
 *    (version 3, GD at the end), the embedded descriptor with room after it, then per grain with
 *    data a grain marker and its zlib stream in ascending LBA order, a GT marker and GT after the
 *    grains of each 512-grain region that has any, GD marker and GD, footer marker and footer (the
 *    header with the real gdOffset), and the end-of-stream marker; every marker on a sector.
 *  - monolithicSparse, as qemu-img writes it by default: version 1 header with a redundant GD,
 *    descriptor at sector 1, redundant GD and all its GTs, GD and all its GTs preallocated, then
 *    uncompressed grains in the order they come.
 *  - monolithicFlat / twoGbMaxExtentFlat: a descriptor file and raw extents named as qemu names them.
 */
import {
  COMPRESSION_DEFLATE,
  COMPRESSION_NONE,
  FLAG_COMPRESSED,
  FLAG_MARKERS,
  FLAG_REDUNDANT_GRAIN_TABLE,
  FLAG_VALID_NEWLINE_TEST,
  GRAIN_MARKER_HEADER_BYTES,
  GTES_PER_GT,
  MARKER_EOS,
  MARKER_FOOTER,
  MARKER_GD,
  MARKER_GT,
  SECTOR,
  type SparseExtentHeader,
  encodeGrainMarker,
  encodeMetadataMarker,
  encodeSparseHeader,
} from './vmdk-header.js';
import type { VmdkCreateType } from './vmdk-descriptor-text.js';

export type VmdkSubformat = VmdkCreateType;
export const VMDK_SUBFORMATS: readonly VmdkSubformat[] = ['streamOptimized', 'monolithicSparse', 'monolithicFlat', 'twoGbMaxExtentFlat'];

/** 64 KiB grains and 512-entry tables, as every writer uses them. */
export const GRAIN_SECTORS = 128;
export const GRAIN_BYTES = GRAIN_SECTORS * SECTOR;
/** Bytes of the disk one grain table maps: 32 MiB. */
export const GT_COVERAGE_BYTES = GTES_PER_GT * GRAIN_BYTES;
const GT_BYTES = GTES_PER_GT * 4;
const GT_SECTORS = GT_BYTES / SECTOR;
/** The embedded descriptor's place: sector 1, 20 sectors (qemu's and VMware's), most of them room for lines tools add. */
export const DESCRIPTOR_OFFSET_SECTORS = 1;
export const DESCRIPTOR_SECTORS = 20;
/** GTEs and GDEs are u32 sector offsets: nothing of a sparse extent may lie at or past 2 TiB of its file. */
export const MAX_SPARSE_FILE_SECTORS = 2 ** 32;
/** qemu's split size for twoGbMaxExtentFlat: exactly 2 GiB per extent file. */
export const FLAT_SPLIT_BYTES = 0x80000000;

/** A disk of `bytes` in whole sectors (qemu rounds a size up to one, as the qcow2 sink does). */
export const capacitySectorsFor = (bytes: number): number => Math.ceil(bytes / SECTOR);
/** Grain tables (and GD entries) of a disk of `capacitySectors`. */
export const gtCountFor = (capacitySectors: number): number => Math.ceil(capacitySectors / (GRAIN_SECTORS * GTES_PER_GT));
const sectorsFor = (bytes: number): number => Math.ceil(bytes / SECTOR);

/** The embedded descriptor's text, zero-padded to its sectors; refused (a programming error) if it does not fit. */
function descriptorSectors(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const room = DESCRIPTOR_SECTORS * SECTOR;
  // Half the room kept free for tools that add lines (VirtualBox adds its uuids on import).
  if (bytes.length > room / 2) throw new RangeError(`VMDK descriptor of ${bytes.length} bytes leaves too little room in ${DESCRIPTOR_SECTORS} sectors`);
  const out = Buffer.alloc(room);
  bytes.copy(out);
  return out;
}

// ---------------------------------------------------------------- streamOptimized

/** Sectors before the first grain marker: the header and the descriptor's sectors. */
export const STREAM_OVERHEAD_SECTORS = DESCRIPTOR_OFFSET_SECTORS + DESCRIPTOR_SECTORS;

/** The streamOptimized header (gdOffset null: GD_AT_END) or footer (the real gdOffset). */
export function streamHeader(capacitySectors: number, gdOffset: number | null): SparseExtentHeader {
  return {
    version: 3,
    flags: FLAG_VALID_NEWLINE_TEST | FLAG_COMPRESSED | FLAG_MARKERS,
    capacity: capacitySectors,
    grainSize: GRAIN_SECTORS,
    descriptorOffset: DESCRIPTOR_OFFSET_SECTORS,
    descriptorSize: DESCRIPTOR_SECTORS,
    numGTEsPerGT: GTES_PER_GT,
    rgdOffset: 0,
    gdOffset,
    overHead: STREAM_OVERHEAD_SECTORS,
    uncleanShutdown: false,
    compressAlgorithm: COMPRESSION_DEFLATE,
  };
}

/** The first STREAM_OVERHEAD_SECTORS of a streamOptimized extent: header, then descriptor. */
export function streamHead(capacitySectors: number, descriptorText: string): Buffer {
  return Buffer.concat([encodeSparseHeader(streamHeader(capacitySectors, null)), descriptorSectors(descriptorText)]);
}

/** A grain marker and its compressed bytes, padded to a sector: the marker, then how many zero bytes follow the data. */
export function grainBlock(lba: number, compressedBytes: number): { marker: Buffer; paddingBytes: number; sectors: number } {
  const total = GRAIN_MARKER_HEADER_BYTES + compressedBytes;
  const sectors = sectorsFor(total);
  return { marker: encodeGrainMarker(lba, compressedBytes), paddingBytes: sectors * SECTOR - total, sectors };
}

/** A GT marker and the table (512 GTEs: sector offsets of grain markers, 0 for none). */
export function gtBlock(gtes: Uint32Array): Buffer {
  if (gtes.length !== GTES_PER_GT) throw new RangeError(`a grain table has ${GTES_PER_GT} entries, not ${gtes.length}`);
  return Buffer.concat([encodeMetadataMarker(MARKER_GT, GT_SECTORS), Buffer.from(gtes.buffer, gtes.byteOffset, GT_BYTES)]);
}

/** A GD marker and the directory (sector offsets of GTs, 0 for an omitted one), padded to a sector. */
export function gdBlock(gdes: Uint32Array): Buffer {
  const sectors = sectorsFor(gdes.length * 4);
  const out = Buffer.alloc(SECTOR + sectors * SECTOR);
  encodeMetadataMarker(MARKER_GD, sectors).copy(out);
  Buffer.from(gdes.buffer, gdes.byteOffset, gdes.length * 4).copy(out, SECTOR);
  return out;
}

/** The last three sectors: footer marker, footer (the header with the GD's real offset), end-of-stream marker. */
export function streamTail(capacitySectors: number, gdOffset: number): Buffer {
  return Buffer.concat([encodeMetadataMarker(MARKER_FOOTER, 1), encodeSparseHeader(streamHeader(capacitySectors, gdOffset)), encodeMetadataMarker(MARKER_EOS, 0)]);
}

/** GTEs are little-endian u32 on disk: a table in memory as stored (this project runs little-endian only). */
export const newGrainTable = (): Uint32Array => new Uint32Array(GTES_PER_GT);

// ---------------------------------------------------------------- monolithicSparse

export interface SparseLayout {
  capacitySectors: number;
  gtCount: number;
  gdSectors: number;
  rgdOffset: number;
  gdOffset: number;
  /** The first grain's sector (overHead): after the tables, on a grain boundary. */
  grainOffset: number;
}

/** Where qemu puts a monolithicSparse's tables: RGD at sector 21, its GTs, GD, its GTs, grains from the next grain boundary. */
export function sparseLayout(capacitySectors: number): SparseLayout {
  const gtCount = gtCountFor(capacitySectors);
  const gdSectors = sectorsFor(gtCount * 4);
  const rgdOffset = DESCRIPTOR_OFFSET_SECTORS + DESCRIPTOR_SECTORS;
  const gdOffset = rgdOffset + gdSectors + gtCount * GT_SECTORS;
  const grainOffset = Math.ceil((gdOffset + gdSectors + gtCount * GT_SECTORS) / GRAIN_SECTORS) * GRAIN_SECTORS;
  return { capacitySectors, gtCount, gdSectors, rgdOffset, gdOffset, grainOffset };
}

/** Whether a monolithicSparse of `capacitySectors` keeps every offset within u32 sectors, even with every grain allocated. */
export const sparseFits = (capacitySectors: number): boolean => {
  const l = sparseLayout(capacitySectors);
  return l.grainOffset + l.gtCount * GTES_PER_GT * GRAIN_SECTORS <= MAX_SPARSE_FILE_SECTORS;
};

export function sparseHeader(l: SparseLayout): SparseExtentHeader {
  return {
    version: 1,
    flags: FLAG_VALID_NEWLINE_TEST | FLAG_REDUNDANT_GRAIN_TABLE,
    capacity: l.capacitySectors,
    grainSize: GRAIN_SECTORS,
    descriptorOffset: DESCRIPTOR_OFFSET_SECTORS,
    descriptorSize: DESCRIPTOR_SECTORS,
    numGTEsPerGT: GTES_PER_GT,
    rgdOffset: l.rgdOffset,
    gdOffset: l.gdOffset,
    overHead: l.grainOffset,
    uncleanShutdown: false,
    compressAlgorithm: COMPRESSION_NONE,
  };
}

export function sparseHead(l: SparseLayout, descriptorText: string): Buffer {
  return Buffer.concat([encodeSparseHeader(sparseHeader(l)), descriptorSectors(descriptorText)]);
}

/** Sector of grain table `index` after the directory at `directorySector` (both copies are laid out alike). */
export const sparseGtSector = (l: SparseLayout, directorySector: number, index: number): number => directorySector + l.gdSectors + index * GT_SECTORS;

/** A directory (the GD or the RGD at `directorySector`): every GT preallocated right after it. */
export function sparseDirectory(l: SparseLayout, directorySector: number): Buffer {
  const out = Buffer.alloc(l.gdSectors * SECTOR);
  for (let i = 0; i < l.gtCount; i++) out.writeUInt32LE(sparseGtSector(l, directorySector, i), i * 4);
  return out;
}

// ---------------------------------------------------------------- flat

export interface FlatExtent {
  fileName: string;
  /** Where in the virtual disk it starts, and its bytes (whole sectors). */
  offset: number;
  bytes: number;
}

/**
 * The extent files of a flat disk named `destBase` (the descriptor's base name), as qemu names
 * them: its name without the extension, "-flat" or "-f001", "-f002"..., then the extension again.
 */
export function flatExtents(destBase: string, capacitySectors: number, split: boolean): FlatExtent[] {
  const dot = destBase.lastIndexOf('.');
  const prefix = dot > 0 ? destBase.slice(0, dot) : destBase;
  const postfix = dot > 0 ? destBase.slice(dot) : '';
  const total = capacitySectors * SECTOR;
  if (!split) return [{ fileName: `${prefix}-flat${postfix}`, offset: 0, bytes: total }];
  const out: FlatExtent[] = [];
  for (let offset = 0, i = 1; offset < total || i === 1; offset += FLAT_SPLIT_BYTES, i++) {
    out.push({ fileName: `${prefix}-f${String(i).padStart(3, '0')}${postfix}`, offset, bytes: Math.min(FLAT_SPLIT_BYTES, total - offset) });
  }
  return out;
}
