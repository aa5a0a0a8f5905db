/**
 * The ext2/3/4 superblock as Linux judges it at mount time (pure): geometry (fs-detect.ts's
 * extSuperblockProblem), the INCOMPAT features Linux 6.1 knows, the metadata_csum checksum, and a
 * block count that fits in the image. What Linux would refuse to mount, fsmaker refuses to boot.
 *
 * Field offsets: the kernel's Documentation/filesystems/ext4/super.rst; the feature set:
 * fs/ext4/ext4.h (EXT4_FEATURE_INCOMPAT_SUPP), checks: fs/ext4/super.c (ext4_fill_super).
 */
import { ExtError, corrupt, hex } from './ext4-error.js';
import { fsChecksumSeed, superblockChecksum } from './ext4-checksums.js';
import { extSuperblockProblem } from './fs-detect.js';

export const SB_OFFSET = 1024;
const EXT_MAGIC = 0xef53;

export const INCOMPAT = { FILETYPE: 0x2, META_BG: 0x10, EXTENTS: 0x40, BIT64: 0x80, FLEX_BG: 0x200, CSUM_SEED: 0x2000, LARGEDIR: 0x4000 } as const;
export const RO_COMPAT = { SPARSE_SUPER: 0x1, HUGE_FILE: 0x8, GDT_CSUM: 0x10, BIGALLOC: 0x200, METADATA_CSUM: 0x400 } as const;
const COMPAT_DIR_INDEX = 0x20;

/** Every INCOMPAT bit Linux 6.1 mounts (EXT4_FEATURE_INCOMPAT_SUPP), by name. */
const LINUX_INCOMPAT: Record<number, string> = {
  0x2: 'filetype', 0x4: 'needs_recovery', 0x10: 'meta_bg', 0x40: 'extent', 0x80: '64bit', 0x100: 'mmp', 0x200: 'flex_bg',
  0x400: 'ea_inode', 0x2000: 'metadata_csum_seed', 0x4000: 'large_dir', 0x8000: 'inline_data', 0x10000: 'encrypt', 0x20000: 'casefold',
};
/** Bits with a name that Linux does not mount. */
const FOREIGN_INCOMPAT: Record<number, string> = { 0x1: 'compression', 0x8: 'journal_dev', 0x1000: 'dirdata' };

export interface ExtSuperblock {
  blockSize: number;
  inodeSize: number;
  inodesCount: number;
  blocksCount: number;
  inodesPerGroup: number;
  blocksPerGroup: number;
  firstDataBlock: number;
  groupCount: number;
  descSize: number;
  featureCompat: number;
  featureIncompat: number;
  featureRoCompat: number;
  revLevel: number;
}

/** The superblock plus what the rest of the reader derives from it once. */
export interface ExtGeometry extends ExtSuperblock {
  firstIno: number;
  firstMetaBg: number;
  reservedGdtBlocks: number;
  /** Blocks of the group descriptor table (all groups' descriptors). */
  gdtBlocks: number;
  /** Blocks of one group's inode table. */
  inodeTableBlocks: number;
  /** Group descriptors that carry a checksum (gdt_csum or metadata_csum). */
  groupCsum: boolean;
  metadataCsum: boolean;
  /** Seed of every metadata_csum checksum. */
  csumSeed: number;
  /** Inode checksums are kept (metadata_csum on a filesystem made by Linux's tools). */
  inodeCsum: boolean;
  uuid: Buffer;
  hasFiletype: boolean;
  /** is_dx(): directories flagged as htrees are read as such only with dir_index. */
  dirIndex: boolean;
  largeDir: boolean;
}

const names = (bits: number): string => {
  const out: string[] = [];
  for (let b = 0; b < 32; b++) {
    const bit = 2 ** b;
    if (bits & bit) out.push(FOREIGN_INCOMPAT[bit] ?? `bit ${b}`);
  }
  return out.join(', ');
};

const u64 = (lo: number, hi: number): number => hi * 0x1_0000_0000 + lo;

/**
 * Parses and judges the 1024-byte superblock. `imageBytes` (when known) is the size of the image
 * or device it was read from: a filesystem larger than that is truncated.
 */
export function parseSuperblock(sb: Buffer, imageBytes?: number): ExtGeometry {
  const at = (field: number) => SB_OFFSET + field;
  if (sb.readUInt16LE(0x38) !== EXT_MAGIC) throw new ExtError('NOT_EXT', 'no ext2/3/4 superblock (magic 0xEF53 missing)');
  const problem = extSuperblockProblem(sb);
  if (problem) throw corrupt(`corrupt ext superblock: ${problem}`, SB_OFFSET);

  const featureCompat = sb.readUInt32LE(0x5c);
  const featureIncompat = sb.readUInt32LE(0x60);
  const featureRoCompat = sb.readUInt32LE(0x64);
  let known = 0;
  for (const bit of Object.keys(LINUX_INCOMPAT)) known |= Number(bit);
  const unknown = (featureIncompat & ~known) >>> 0;
  if (unknown !== 0) {
    throw new ExtError('UNSUPPORTED', `unsupported INCOMPAT features ${hex(unknown, 1)} (${names(unknown)}): Linux 6.1 would not mount this filesystem`, at(0x60));
  }
  const metadataCsum = (featureRoCompat & RO_COMPAT.METADATA_CSUM) !== 0;
  if (metadataCsum) {
    const type = sb[0x175]!;
    if (type !== 1) throw corrupt(`unknown metadata checksum type ${type} (Linux knows 1, crc32c)`, at(0x175));
    const stored = sb.readUInt32LE(0x3fc);
    const computed = superblockChecksum(sb);
    if (stored !== computed) throw corrupt(`superblock checksum ${hex(stored, 8)} does not match its contents (${hex(computed, 8)})`, at(0x3fc));
  }

  const is64 = (featureIncompat & INCOMPAT.BIT64) !== 0;
  const blockSize = 1024 << sb.readUInt32LE(0x18);
  const revLevel = sb.readUInt32LE(0x4c);
  const inodeSize = revLevel >= 1 ? sb.readUInt16LE(0x58) : 128;
  const blocksCount = u64(sb.readUInt32LE(0x04), is64 ? sb.readUInt32LE(0x150) : 0);
  const blocksPerGroup = sb.readUInt32LE(0x20);
  const inodesPerGroup = sb.readUInt32LE(0x28);
  const firstDataBlock = sb.readUInt32LE(0x14);
  const descSize = is64 ? sb.readUInt16LE(0xfe) : 32;
  const groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);

  if (!(featureRoCompat & RO_COMPAT.BIGALLOC)) {
    // Without bigalloc a cluster is a block: Linux refuses anything else.
    if (sb.readUInt32LE(0x1c) !== sb.readUInt32LE(0x18)) throw corrupt(`cluster size 2^(10+${sb.readUInt32LE(0x1c)}) differs from the block size without bigalloc`, at(0x1c));
    if (sb.readUInt32LE(0x24) !== blocksPerGroup) throw corrupt(`clusters per group ${sb.readUInt32LE(0x24)} differs from blocks per group ${blocksPerGroup} without bigalloc`, at(0x24));
  }
  if (imageBytes !== undefined && blocksCount * blockSize > imageBytes) {
    throw corrupt(`the filesystem has ${blocksCount} blocks of ${blockSize} bytes (${blocksCount * blockSize} bytes) but the image holds only ${imageBytes} bytes: it is truncated`, at(0x04));
  }
  const descPerBlock = blockSize / descSize;
  const gdtBlocks = Math.ceil(groupCount / descPerBlock);
  const firstMetaBg = sb.readUInt32LE(0x104);
  if (featureIncompat & INCOMPAT.META_BG && firstMetaBg > gdtBlocks) {
    throw corrupt(`first meta block group ${firstMetaBg} is past the ${gdtBlocks} group descriptor blocks`, at(0x104));
  }
  const groupCsum = metadataCsum || (featureRoCompat & RO_COMPAT.GDT_CSUM) !== 0;
  return {
    blockSize,
    inodeSize,
    inodesCount: sb.readUInt32LE(0x00),
    blocksCount,
    inodesPerGroup,
    blocksPerGroup,
    firstDataBlock,
    groupCount,
    descSize,
    featureCompat,
    featureIncompat,
    featureRoCompat,
    revLevel,
    firstIno: revLevel >= 1 ? sb.readUInt32LE(0x54) : 11,
    firstMetaBg,
    reservedGdtBlocks: sb.readUInt16LE(0xce),
    gdtBlocks,
    inodeTableBlocks: Math.ceil((inodesPerGroup * inodeSize) / blockSize),
    groupCsum,
    metadataCsum,
    csumSeed: metadataCsum ? fsChecksumSeed(sb, (featureIncompat & INCOMPAT.CSUM_SEED) !== 0) : 0,
    inodeCsum: metadataCsum && sb.readUInt32LE(0x48) === 0, // s_creator_os: Linux
    uuid: Buffer.from(sb.subarray(0x68, 0x78)),
    hasFiletype: (featureIncompat & INCOMPAT.FILETYPE) !== 0,
    dirIndex: (featureCompat & COMPAT_DIR_INDEX) !== 0,
    largeDir: (featureIncompat & INCOMPAT.LARGEDIR) !== 0,
  };
}
