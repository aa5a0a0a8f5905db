/**
 * The VMDK hosted sparse extent header ("KDMV", VMware's Virtual Disk Format 5.0 technote) and the
 * markers of streamOptimized extents: one definition of every field, encoded for the writers and
 * decoded for the readers. Pure: bytes in, values out; every problem a VmdkError with the byte
 * offset it concerns. Little-endian throughout; sizes and offsets in 512-byte sectors as stored.
 */

export const SECTOR = 512;
/** "KDMV" on disk (0x564d444b little-endian). */
export const VMDK_MAGIC = 0x564d444b;
export const HEADER_BYTES = SECTOR;

/** SparseExtentHeader fields (technote "Hosted Sparse Extent Header"). */
export const FIELD = {
  magic: 0, // u32
  version: 4, // u32: 1, 2 (zeroed-grain GTEs), 3 (incompatible flags in use: streamOptimized)
  flags: 8, // u32
  capacity: 12, // u64 sectors
  grainSize: 20, // u64 sectors
  descriptorOffset: 28, // u64 sectors; 0 = no embedded descriptor
  descriptorSize: 36, // u64 sectors
  numGTEsPerGT: 44, // u32
  rgdOffset: 48, // u64 sectors (used only with FLAG_REDUNDANT_GRAIN_TABLE)
  gdOffset: 56, // u64 sectors; GD_AT_END in a streamOptimized header (the footer has the real one)
  overHead: 64, // u64 sectors: metadata before the first grain
  uncleanShutdown: 72, // u8
  newlineChars: 73, // 4 bytes: '\n', ' ', '\r', '\n' (detects text-mode transfers)
  compressAlgorithm: 77, // u16: 0 none, 1 deflate
} as const;

export const FLAG_VALID_NEWLINE_TEST = 1 << 0;
export const FLAG_REDUNDANT_GRAIN_TABLE = 1 << 1;
export const FLAG_ZEROED_GRAIN_GTE = 1 << 2;
export const FLAG_COMPRESSED = 1 << 16;
export const FLAG_MARKERS = 1 << 17;
/** Bits 16-31 are incompatible: a reader must understand each one set. */
const INCOMPATIBLE_FLAGS = 0xffff0000;
const KNOWN_INCOMPATIBLE_FLAGS = FLAG_COMPRESSED | FLAG_MARKERS;

export const COMPRESSION_NONE = 0;
export const COMPRESSION_DEFLATE = 1;

/** gdOffset of a header whose grain directory is at the end, found through the footer. */
export const GD_AT_END = 0xffffffffffffffffn;
export const NEWLINE_CHARS = Buffer.from('\n \r\n', 'latin1');
export const GTES_PER_GT = 512;
/** A grain table entry meaning "a grain of zeros" (version 2 and later, FLAG_ZEROED_GRAIN_GTE). */
export const GTE_ZEROED = 1;

/** Metadata marker types of a streamOptimized extent (a grain marker has a non-zero size instead). */
export const MARKER_EOS = 0;
export const MARKER_GT = 1;
export const MARKER_GD = 2;
export const MARKER_FOOTER = 3;
/** Written by some vSphere versions; a reader skips it as one sector. */
export const MARKER_PROGRESS = 4;
/** A grain marker's header: u64 LBA (sectors), u32 compressed size, then the data. */
export const GRAIN_MARKER_HEADER_BYTES = 12;

export interface SparseExtentHeader {
  version: number;
  flags: number;
  /** Sectors. */
  capacity: number;
  /** Sectors. */
  grainSize: number;
  descriptorOffset: number;
  descriptorSize: number;
  numGTEsPerGT: number;
  rgdOffset: number;
  /** Sectors; null for GD_AT_END. */
  gdOffset: number | null;
  overHead: number;
  uncleanShutdown: boolean;
  compressAlgorithm: number;
}

/** A problem in a VMDK's metadata at a byte offset of the file it is in. */
export class VmdkError extends Error {
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(message);
    this.name = 'VmdkError';
  }
}

/** Limits a reader holds a header to (the technote's, qemu's and VirtualBox's, the strictest that real files meet). */
export const MAX_GRAIN_SECTORS = 1 << 16; // 32 MiB grains: far beyond any writer's 64 KiB
export const MAX_DESCRIPTOR_SECTORS = 20480; // VirtualBox's limit: 10 MiB
/** u64 fields hold sector counts; past 2^53 bytes a number is not exact and no disk is that large. */
const MAX_SAFE_SECTORS = Math.floor(Number.MAX_SAFE_INTEGER / SECTOR);

export const isVmdkHeader = (head: Buffer): boolean => head.length >= 4 && head.readUInt32LE(0) === VMDK_MAGIC;

/** Sectors in a u64 field, refused past what a number holds exactly. */
function sectors(buf: Buffer, field: number, name: string, base: number): number {
  const value = buf.readBigUInt64LE(field);
  if (value > BigInt(MAX_SAFE_SECTORS)) throw new VmdkError(`${name} ${value} sectors is beyond any disk`, base + field);
  return Number(value);
}

/**
 * The header (or footer) at byte `base` of its file. Checks what every reader needs: the magic,
 * a known version, incompatible flags understood, a power-of-two grain, a sane GT size, the newline
 * test when it is declared, a descriptor within bounds. Offsets are checked against the file by
 * the reader, which knows its length.
 */
export function decodeSparseHeader(buf: Buffer, base = 0): SparseExtentHeader {
  if (buf.length < HEADER_BYTES) throw new VmdkError(`sparse extent header cut short (${buf.length} of ${HEADER_BYTES} bytes)`, base);
  if (buf.readUInt32LE(FIELD.magic) !== VMDK_MAGIC) throw new VmdkError('not a VMDK sparse extent header (no KDMV magic)', base);
  const version = buf.readUInt32LE(FIELD.version);
  if (version < 1 || version > 3) throw new VmdkError(`sparse extent version ${version} is not one of 1, 2, 3`, base + FIELD.version);
  const flags = buf.readUInt32LE(FIELD.flags);
  const unknown = flags & INCOMPATIBLE_FLAGS & ~KNOWN_INCOMPATIBLE_FLAGS;
  if (unknown !== 0) throw new VmdkError(`unknown incompatible flags 0x${(unknown >>> 0).toString(16)}`, base + FIELD.flags);
  if (flags & FLAG_MARKERS && !(flags & FLAG_COMPRESSED)) throw new VmdkError('markers without compressed grains', base + FIELD.flags);
  if (flags & FLAG_VALID_NEWLINE_TEST && !buf.subarray(FIELD.newlineChars, FIELD.newlineChars + 4).equals(NEWLINE_CHARS)) {
    throw new VmdkError('newline test bytes damaged (the file was transferred as text?)', base + FIELD.newlineChars);
  }
  const grainSize = sectors(buf, FIELD.grainSize, 'grain size', base);
  if (grainSize < 1 || grainSize > MAX_GRAIN_SECTORS || (grainSize & (grainSize - 1)) !== 0) {
    throw new VmdkError(`grain size ${grainSize} sectors is not a power of two from 1 to ${MAX_GRAIN_SECTORS}`, base + FIELD.grainSize);
  }
  const numGTEsPerGT = buf.readUInt32LE(FIELD.numGTEsPerGT);
  if (numGTEsPerGT < 1 || numGTEsPerGT > GTES_PER_GT || (numGTEsPerGT & (numGTEsPerGT - 1)) !== 0) {
    throw new VmdkError(`${numGTEsPerGT} entries per grain table is not a power of two up to ${GTES_PER_GT}`, base + FIELD.numGTEsPerGT);
  }
  const descriptorSize = sectors(buf, FIELD.descriptorSize, 'descriptor size', base);
  if (descriptorSize > MAX_DESCRIPTOR_SECTORS) throw new VmdkError(`embedded descriptor of ${descriptorSize} sectors (at most ${MAX_DESCRIPTOR_SECTORS})`, base + FIELD.descriptorSize);
  const compressAlgorithm = buf.readUInt16LE(FIELD.compressAlgorithm);
  if (compressAlgorithm !== COMPRESSION_NONE && compressAlgorithm !== COMPRESSION_DEFLATE) {
    throw new VmdkError(`compression algorithm ${compressAlgorithm} is not 0 (none) or 1 (deflate)`, base + FIELD.compressAlgorithm);
  }
  if (flags & FLAG_COMPRESSED && compressAlgorithm !== COMPRESSION_DEFLATE) throw new VmdkError('compressed grains without a compression algorithm', base + FIELD.compressAlgorithm);
  const gd = buf.readBigUInt64LE(FIELD.gdOffset);
  return {
    version,
    flags,
    capacity: sectors(buf, FIELD.capacity, 'capacity', base),
    grainSize,
    descriptorOffset: sectors(buf, FIELD.descriptorOffset, 'descriptor offset', base),
    descriptorSize,
    numGTEsPerGT,
    rgdOffset: sectors(buf, FIELD.rgdOffset, 'redundant grain directory offset', base),
    gdOffset: gd === GD_AT_END ? null : sectors(buf, FIELD.gdOffset, 'grain directory offset', base),
    overHead: sectors(buf, FIELD.overHead, 'overhead', base),
    uncleanShutdown: buf[FIELD.uncleanShutdown] !== 0,
    compressAlgorithm,
  };
}

/** The 512 bytes of a header (or a footer: the same with the real gdOffset). */
export function encodeSparseHeader(h: SparseExtentHeader): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES);
  buf.writeUInt32LE(VMDK_MAGIC, FIELD.magic);
  buf.writeUInt32LE(h.version, FIELD.version);
  buf.writeUInt32LE(h.flags >>> 0, FIELD.flags);
  buf.writeBigUInt64LE(BigInt(h.capacity), FIELD.capacity);
  buf.writeBigUInt64LE(BigInt(h.grainSize), FIELD.grainSize);
  buf.writeBigUInt64LE(BigInt(h.descriptorOffset), FIELD.descriptorOffset);
  buf.writeBigUInt64LE(BigInt(h.descriptorSize), FIELD.descriptorSize);
  buf.writeUInt32LE(h.numGTEsPerGT, FIELD.numGTEsPerGT);
  buf.writeBigUInt64LE(BigInt(h.rgdOffset), FIELD.rgdOffset);
  buf.writeBigUInt64LE(h.gdOffset === null ? GD_AT_END : BigInt(h.gdOffset), FIELD.gdOffset);
  buf.writeBigUInt64LE(BigInt(h.overHead), FIELD.overHead);
  buf[FIELD.uncleanShutdown] = h.uncleanShutdown ? 1 : 0;
  NEWLINE_CHARS.copy(buf, FIELD.newlineChars);
  buf.writeUInt16LE(h.compressAlgorithm, FIELD.compressAlgorithm);
  return buf;
}

/** What a marker at the start of a sector of a streamOptimized extent says. */
export type StreamMarker =
  | { kind: 'grain'; lba: number; size: number }
  | { kind: 'metadata'; type: number; numSectors: number };

/** Decodes the marker in `buf` (at least 16 bytes), which sits at byte `at` of its file. */
export function decodeMarker(buf: Buffer, at: number): StreamMarker {
  if (buf.length < 16) throw new VmdkError(`marker cut short (${buf.length} of 16 bytes)`, at);
  const value = buf.readBigUInt64LE(0);
  const size = buf.readUInt32LE(8);
  if (size !== 0) {
    if (value > BigInt(MAX_SAFE_SECTORS)) throw new VmdkError(`grain marker LBA ${value} is beyond any disk`, at);
    return { kind: 'grain', lba: Number(value), size };
  }
  if (value > BigInt(MAX_SAFE_SECTORS)) throw new VmdkError(`metadata marker of ${value} sectors`, at);
  return { kind: 'metadata', type: buf.readUInt32LE(12), numSectors: Number(value) };
}

/** A grain marker's 12 bytes: the grain's first sector and its compressed length. */
export function encodeGrainMarker(lba: number, compressedBytes: number): Buffer {
  const buf = Buffer.alloc(GRAIN_MARKER_HEADER_BYTES);
  buf.writeBigUInt64LE(BigInt(lba), 0);
  buf.writeUInt32LE(compressedBytes, 8);
  return buf;
}

/** A metadata marker's sector: how many sectors of metadata follow (0 for EOS), and its type. */
export function encodeMetadataMarker(type: number, numSectors: number): Buffer {
  const buf = Buffer.alloc(SECTOR);
  buf.writeBigUInt64LE(BigInt(numSectors), 0);
  buf.writeUInt32LE(type, 12);
  return buf;
}
