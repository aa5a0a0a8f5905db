/**
 * The qcow2 header (versions 2 and 3) and its extensions, as qemu's docs/interop/qcow2.rst
 * defines them: what a reader needs to map the virtual disk (cluster size, L1 table, subclusters,
 * compression type) and to find its backing file. Refcounts and snapshots are not needed to read
 * the active disk and are ignored. Pure: the bytes of the header cluster in, a value out; every
 * problem a Qcow2Error with the byte offset it concerns.
 */

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"

/** Header fields (big-endian), qcow2.rst "Header": read here, written by qcow2-writer.ts. */
export const HEADER = {
  magic: 0, // u32
  version: 4, // u32: 2 or 3
  backingFileOffset: 8, // u64: 0 = no backing file
  backingFileSize: 16, // u32: at most 1023
  clusterBits: 20, // u32
  size: 24, // u64: virtual disk size in bytes
  cryptMethod: 32, // u32: 0 none, 1 AES, 2 LUKS
  l1Size: 36, // u32: entries
  l1TableOffset: 40, // u64
  refcountTableOffset: 48, // u64: not needed to read
  refcountTableClusters: 56, // u32: not needed to read
  // nb_snapshots 60, snapshots_offset 64: none written, not needed to read
  incompatibleFeatures: 72, // u64 (v3)
  compatibleFeatures: 80, // u64 (v3)
  autoclearFeatures: 88, // u64 (v3)
  refcountOrder: 96, // u32 (v3)
  headerLength: 100, // u32 (v3)
  compressionType: 104, // u8 (v3, when header_length > 104)
} as const;

const V2_HEADER_LENGTH = 72;
const V3_MIN_HEADER_LENGTH = 104;
/** What qemu writes for version 3: up to compression_type and its padding. */
export const V3_HEADER_LENGTH = 112;

/** Incompatible feature bits this reader understands (qcow2.rst). */
export const INCOMPAT_DIRTY = 0; // refcounts may be stale: irrelevant for reading
export const INCOMPAT_CORRUPT = 1; // qemu opens such an image read-only: so do we
export const INCOMPAT_DATA_FILE = 2; // external data file: refused
export const INCOMPAT_COMPRESSION = 3; // compression_type field is valid
export const INCOMPAT_EXTENDED_L2 = 4; // 128-bit L2 entries with subclusters
const KNOWN_INCOMPAT = [INCOMPAT_DIRTY, INCOMPAT_CORRUPT, INCOMPAT_DATA_FILE, INCOMPAT_COMPRESSION, INCOMPAT_EXTENDED_L2];

/** Header extension types (qcow2.rst "Header extensions"). */
export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_NAMES = 0x6803f857;
const EXT_DATA_FILE = 0x44415441;
const EXT_FDE = 0x0537be77;

export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21; // qemu's limit: 2 MiB clusters
const MIN_EXTENDED_L2_CLUSTER_BITS = 14; // 32 subclusters of at least 512 bytes
/** qemu refuses larger L1 tables (QCOW_MAX_L1_SIZE): so does this reader, bounding what it reads. */
export const MAX_L1_BYTES = 32 << 20;
export const MAX_BACKING_NAME_BYTES = 1023;

export type Qcow2Compression = 'deflate' | 'zstd';

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  clusterSize: number;
  virtualSize: number;
  l1Size: number;
  l1TableOffset: number;
  /** 128-bit L2 entries with 32 subclusters each. */
  extendedL2: boolean;
  compression: Qcow2Compression;
  /** The backing file's name as stored (relative names are relative to the image's directory). */
  backingFile: string | null;
  /** The backing format extension ("raw", "qcow2"...), if present. */
  backingFormat: string | null;
}

/** A problem with the image's metadata at a byte offset of the image file. */
export class Qcow2Error extends Error {
  constructor(
    message: string,
    readonly fileOffset: number,
    /** 'corrupt' (exit 18) or 'unsupported' (a valid image using what is not read: exit 28). */
    readonly kind: 'corrupt' | 'unsupported' = 'corrupt',
  ) {
    super(message);
    this.name = 'Qcow2Error';
  }
}

/** A u64 that must fit in a number (offsets and sizes), else the image is corrupt. */
function safeU64(view: DataView, offset: number, field: string): number {
  const value = view.getBigUint64(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Qcow2Error(`${field} ${value} is beyond 2^53`, offset);
  return Number(value);
}

/** Bits set in a u64 feature field, as bit numbers. */
function bitsOf(view: DataView, offset: number): number[] {
  const value = view.getBigUint64(offset);
  const bits: number[] = [];
  for (let bit = 0; bit < 64; bit++) if ((value >> BigInt(bit)) & 1n) bits.push(bit);
  return bits;
}

/**
 * The header of a qcow2 image from the start of its file: at least the first cluster, or the
 * whole file when it is shorter (extensions and the backing file name live in the first cluster).
 * `fileSize` bounds the L1 table.
 */
export function parseQcow2Header(head: Buffer, fileSize: number): Qcow2Header {
  if (head.length < V2_HEADER_LENGTH) throw new Qcow2Error(`header truncated: ${head.length} bytes, expected at least ${V2_HEADER_LENGTH}`, head.length);
  const view = new DataView(head.buffer, head.byteOffset, head.length);
  const magic = view.getUint32(HEADER.magic);
  if (magic !== QCOW2_MAGIC) throw new Qcow2Error(`bad magic 0x${magic.toString(16)}, expected 0x${QCOW2_MAGIC.toString(16)}`, HEADER.magic);
  const version = view.getUint32(HEADER.version);
  if (version !== 2 && version !== 3) throw new Qcow2Error(`version ${version}, expected 2 or 3`, HEADER.version, 'unsupported');

  const clusterBits = view.getUint32(HEADER.clusterBits);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw new Qcow2Error(`cluster_bits ${clusterBits} out of range (expected ${MIN_CLUSTER_BITS} to ${MAX_CLUSTER_BITS})`, HEADER.clusterBits);
  }
  const clusterSize = 2 ** clusterBits;

  let headerLength = V2_HEADER_LENGTH;
  let incompatible: number[] = [];
  if (version === 3) {
    if (head.length < V3_MIN_HEADER_LENGTH) throw new Qcow2Error(`version 3 header truncated: ${head.length} bytes, expected at least ${V3_MIN_HEADER_LENGTH}`, head.length);
    headerLength = view.getUint32(HEADER.headerLength);
    if (headerLength < V3_MIN_HEADER_LENGTH || headerLength % 8 !== 0 || headerLength > clusterSize) {
      throw new Qcow2Error(`header_length ${headerLength} is invalid (expected a multiple of 8 from ${V3_MIN_HEADER_LENGTH} to the cluster size ${clusterSize})`, HEADER.headerLength);
    }
    if (headerLength > head.length) throw new Qcow2Error(`header_length ${headerLength} is past the end of the file (${head.length} bytes)`, HEADER.headerLength);
    incompatible = bitsOf(view, HEADER.incompatibleFeatures);
  }
  const extensions = readExtensions(head, view, headerLength, clusterSize, safeU64(view, HEADER.backingFileOffset, 'backing_file_offset'));

  const unknown = incompatible.filter((bit) => !KNOWN_INCOMPAT.includes(bit));
  if (unknown.length > 0) {
    const named = unknown.map((bit) => (extensions.featureNames.get(bit) ? `${bit} (${extensions.featureNames.get(bit)})` : `${bit}`));
    throw new Qcow2Error(`unknown incompatible feature bit${unknown.length > 1 ? 's' : ''} ${named.join(', ')}`, HEADER.incompatibleFeatures, 'unsupported');
  }
  if (incompatible.includes(INCOMPAT_DATA_FILE) || extensions.dataFile) {
    throw new Qcow2Error(`its data is in an external data file${extensions.dataFile ? ` (${extensions.dataFile})` : ''}, which sparsecopy does not read`, HEADER.incompatibleFeatures, 'unsupported');
  }
  const cryptMethod = view.getUint32(HEADER.cryptMethod);
  if (cryptMethod !== 0 || extensions.encrypted) {
    const how = cryptMethod === 1 ? 'AES' : cryptMethod === 2 ? 'LUKS' : `method ${cryptMethod}`;
    throw new Qcow2Error(`the image is encrypted (${how}), which sparsecopy does not read`, HEADER.cryptMethod, 'unsupported');
  }
  const extendedL2 = incompatible.includes(INCOMPAT_EXTENDED_L2);
  if (extendedL2 && clusterBits < MIN_EXTENDED_L2_CLUSTER_BITS) {
    throw new Qcow2Error(`extended L2 entries need clusters of at least ${2 ** MIN_EXTENDED_L2_CLUSTER_BITS} bytes, found ${clusterSize}`, HEADER.clusterBits);
  }
  let compression: Qcow2Compression = 'deflate';
  if (incompatible.includes(INCOMPAT_COMPRESSION)) {
    const type = headerLength > HEADER.compressionType ? head[HEADER.compressionType]! : 0;
    if (type > 1) throw new Qcow2Error(`compression_type ${type} is unknown (expected 0 deflate or 1 zstd)`, HEADER.compressionType, 'unsupported');
    compression = type === 1 ? 'zstd' : 'deflate';
  } else if (headerLength > HEADER.compressionType && head[HEADER.compressionType] !== 0) {
    throw new Qcow2Error(`compression_type ${head[HEADER.compressionType]} without its incompatible feature bit`, HEADER.compressionType);
  }

  const virtualSize = safeU64(view, HEADER.size, 'size');
  const l1Size = view.getUint32(HEADER.l1Size);
  const l1TableOffset = safeU64(view, HEADER.l1TableOffset, 'l1_table_offset');
  const l2Entries = clusterSize / (extendedL2 ? 16 : 8);
  const needed = Math.ceil(virtualSize / (clusterSize * l2Entries));
  if (l1Size < needed) throw new Qcow2Error(`L1 table too small: ${l1Size} entries for a virtual size of ${virtualSize} bytes (needs ${needed})`, HEADER.l1Size);
  if (l1Size * 8 > MAX_L1_BYTES) throw new Qcow2Error(`L1 table of ${l1Size} entries is larger than qemu allows (${MAX_L1_BYTES / 8})`, HEADER.l1Size);
  if (l1Size > 0) {
    if (l1TableOffset % clusterSize !== 0) throw new Qcow2Error(`L1 table offset ${l1TableOffset} is not cluster aligned`, HEADER.l1TableOffset);
    if (l1TableOffset === 0 || l1TableOffset + l1Size * 8 > fileSize) {
      throw new Qcow2Error(`L1 table (${l1Size} entries at byte ${l1TableOffset}) lies outside the file (${fileSize} bytes)`, HEADER.l1TableOffset);
    }
  }

  return {
    version,
    clusterBits,
    clusterSize,
    virtualSize,
    l1Size,
    l1TableOffset,
    extendedL2,
    compression,
    backingFile: readBackingName(head, view, clusterSize),
    backingFormat: extensions.backingFormat,
  };
}

function readBackingName(head: Buffer, view: DataView, clusterSize: number): string | null {
  const offset = safeU64(view, HEADER.backingFileOffset, 'backing_file_offset');
  if (offset === 0) return null;
  const size = view.getUint32(HEADER.backingFileSize);
  if (size === 0 || size > MAX_BACKING_NAME_BYTES) throw new Qcow2Error(`backing file name of ${size} bytes (expected 1 to ${MAX_BACKING_NAME_BYTES})`, HEADER.backingFileSize);
  if (offset + size > clusterSize) throw new Qcow2Error(`backing file name at byte ${offset} (${size} bytes) is outside the first cluster`, HEADER.backingFileOffset);
  if (offset + size > head.length) throw new Qcow2Error(`backing file name at byte ${offset} (${size} bytes) is past the end of the file`, HEADER.backingFileOffset);
  const name = head.toString('utf8', offset, offset + size);
  if (name.includes('\0')) throw new Qcow2Error('backing file name contains a NUL byte', offset);
  return name;
}

interface Extensions {
  backingFormat: string | null;
  featureNames: Map<number, string>;
  dataFile: string | null;
  encrypted: boolean;
}

/**
 * The header extensions from `start` to the end marker, inside the first cluster (and before the
 * backing file name, which follows them). Unknown types are skipped, as the spec allows; version
 * 2 images have them too (qemu writes the backing format there).
 */
function readExtensions(head: Buffer, view: DataView, start: number, clusterSize: number, backingOffset: number): Extensions {
  const found: Extensions = { backingFormat: null, featureNames: new Map(), dataFile: null, encrypted: false };
  const end = Math.min(backingOffset > start ? backingOffset : clusterSize, clusterSize, head.length);
  let offset = start;
  while (offset + 8 <= end) {
    const type = view.getUint32(offset);
    const length = view.getUint32(offset + 4);
    if (type === EXT_END) return found;
    const data = offset + 8;
    if (data + length > end) throw new Qcow2Error(`header extension 0x${type.toString(16)} of ${length} bytes runs past byte ${end}`, offset + 4);
    if (type === EXT_BACKING_FORMAT) found.backingFormat = head.toString('latin1', data, data + length);
    else if (type === EXT_DATA_FILE) found.dataFile = head.toString('utf8', data, data + length);
    else if (type === EXT_FDE) found.encrypted = true;
    else if (type === EXT_FEATURE_NAMES) {
      for (let entry = data; entry + 48 <= data + length; entry += 48) {
        if (head[entry] === 0) found.featureNames.set(head[entry + 1]!, head.toString('latin1', entry + 2, entry + 48).replace(/\0.*$/s, ''));
      }
    }
    offset = data + Math.ceil(length / 8) * 8;
  }
  return found; // no end marker before the space ends: nothing more to read
}
