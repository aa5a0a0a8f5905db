/**
 * Filesystem detection from superblock magics (pure: every byte comes through `read`).
 *
 * Recognises ext2/3/4, XFS, btrfs, squashfs, EROFS and FAT (vfat), and reports the UUID in the
 * form `blkid` prints, the label and, where the superblock records it, the filesystem size. An ext
 * superblock whose magic is right but whose geometry is impossible is reported with `corrupt`
 * set (and `describeCorruption` says why), so the caller can say "corrupt" instead of "unknown".
 */
import {
  EXT3_INCOMPAT_SUPPORTED,
  EXT3_RO_COMPAT_SUPPORTED,
  EXT_COMPAT_HAS_JOURNAL as COMPAT_HAS_JOURNAL,
  EXT_INCOMPAT_64BIT as INCOMPAT_64BIT,
  EXT_INCOMPAT_JOURNAL_DEV as INCOMPAT_JOURNAL_DEV,
} from '../format/ext-features.js';

export type FsType = 'ext2' | 'ext3' | 'ext4' | 'xfs' | 'btrfs' | 'squashfs' | 'erofs' | 'vfat';

export interface FsInfo {
  type: FsType;
  uuid?: string;
  label?: string;
  sizeBytes?: number;
  /** Set when the magic matched but the superblock holds impossible values: the reason. */
  corrupt?: string;
}

export type ByteReader = (offset: number, length: number) => Buffer;

/** Reads without throwing: null when the read fails or comes back short (past the image end). */
function tryRead(read: ByteReader, offset: number, length: number): Buffer | null {
  try {
    const b = read(offset, length);
    return b.length >= length ? b : null;
  } catch {
    return null;
  }
}

/** 16 bytes as blkid prints a UUID: 8-4-4-4-12 lower-case hex. */
export function formatUuid(b: Buffer): string {
  const h = b.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function isZero(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/** A NUL-terminated (or full-width) label; undefined when empty. */
function cLabel(b: Buffer): string | undefined {
  const end = b.indexOf(0);
  const s = b.subarray(0, end < 0 ? b.length : end).toString('utf8');
  return s.length > 0 ? s : undefined;
}

function u64le(b: Buffer, off: number): number {
  return b.readUInt32LE(off + 4) * 0x1_0000_0000 + b.readUInt32LE(off);
}

function u64be(b: Buffer, off: number): number {
  return b.readUInt32BE(off) * 0x1_0000_0000 + b.readUInt32BE(off + 4);
}

// ---------------------------------------------------------------------------------------------
// ext2/3/4

const EXT_SB_OFFSET = 1024;
const EXT_MAGIC = 0xef53;

/** Why an ext superblock (given as its 1024 bytes) is impossible, or null when it is sane. */
export function extSuperblockProblem(sb: Buffer): string | null {
  const logBlock = sb.readUInt32LE(0x18);
  if (logBlock > 6) return `block size 2^(10+${logBlock}) is impossible (at most 64 KiB)`;
  const blockSize = 1024 << logBlock;
  const inodesCount = sb.readUInt32LE(0x00);
  const blocksLo = sb.readUInt32LE(0x04);
  const incompat = sb.readUInt32LE(0x60);
  const blocksCount = (incompat & INCOMPAT_64BIT ? sb.readUInt32LE(0x150) * 0x1_0000_0000 : 0) + blocksLo;
  const firstData = sb.readUInt32LE(0x14);
  const blocksPerGroup = sb.readUInt32LE(0x20);
  const inodesPerGroup = sb.readUInt32LE(0x28);
  const rev = sb.readUInt32LE(0x4c);
  if (blocksCount === 0) return 'block count is zero';
  if (inodesCount === 0) return 'inode count is zero';
  if (firstData >= blocksCount) return `first data block ${firstData} is past the last block ${blocksCount - 1}`;
  const bigalloc = (sb.readUInt32LE(0x64) & 0x200) !== 0; // groups then count clusters, not blocks
  if (blocksPerGroup === 0 || (!bigalloc && blocksPerGroup > 8 * blockSize)) return `blocks per group ${blocksPerGroup} is impossible for ${blockSize}-byte blocks`;
  if (inodesPerGroup === 0 || inodesPerGroup > 8 * blockSize) return `inodes per group ${inodesPerGroup} is impossible for ${blockSize}-byte blocks`;
  const groups = Math.ceil((blocksCount - firstData) / blocksPerGroup);
  if (inodesPerGroup * groups !== inodesCount) return `inode count ${inodesCount} is not ${groups} groups x ${inodesPerGroup} inodes per group`;
  if (sb.readUInt32LE(0x0c) > blocksCount) return 'free block count exceeds block count';
  if (sb.readUInt32LE(0x10) > inodesCount) return 'free inode count exceeds inode count';
  if (rev > 1) return `revision ${rev} is unknown`;
  const inodeSize = rev >= 1 ? sb.readUInt16LE(0x58) : 128;
  if (rev >= 1) {
    if (inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) return `inode size ${inodeSize} is impossible`;
    // Linux (ext4_inode_info_init): inodes 1-10 are reserved, so the first ordinary one is 11 or later.
    const firstIno = sb.readUInt32LE(0x54);
    if (firstIno < 11) return `first non-reserved inode ${firstIno} is below 11`;
  }
  if (inodesPerGroup < blockSize / inodeSize) return `inodes per group ${inodesPerGroup} is less than one block of inodes (${blockSize / inodeSize})`;
  if (incompat & INCOMPAT_64BIT) {
    // Linux refuses 64bit descriptors under 64 bytes (EXT4_MIN_DESC_SIZE_64BIT).
    const descSize = sb.readUInt16LE(0xfe);
    if (descSize < 64 || descSize > 1024 || (descSize & (descSize - 1)) !== 0) return `group descriptor size ${descSize} is impossible for 64bit (64 to 1024, a power of two)`;
  }
  return null;
}

function detectExt(read: ByteReader): FsInfo | null {
  const sb = tryRead(read, EXT_SB_OFFSET, 1024);
  if (!sb || sb.readUInt16LE(0x38) !== EXT_MAGIC) return null;
  const compat = sb.readUInt32LE(0x5c);
  const incompat = sb.readUInt32LE(0x60);
  const roCompat = sb.readUInt32LE(0x64);
  if (incompat & INCOMPAT_JOURNAL_DEV) return null; // an external journal, not a filesystem
  let type: FsType;
  if (incompat & ~EXT3_INCOMPAT_SUPPORTED || roCompat & ~EXT3_RO_COMPAT_SUPPORTED) type = 'ext4';
  else if (compat & COMPAT_HAS_JOURNAL) type = 'ext3';
  else type = 'ext2';
  const info: FsInfo = { type };
  const uuid = sb.subarray(0x68, 0x78);
  if (!isZero(uuid)) info.uuid = formatUuid(uuid);
  const label = cLabel(sb.subarray(0x78, 0x88));
  if (label !== undefined) info.label = label;
  const problem = extSuperblockProblem(sb);
  if (problem) {
    info.corrupt = problem;
    return info;
  }
  const blockSize = 1024 << sb.readUInt32LE(0x18);
  const blocks = (incompat & INCOMPAT_64BIT ? sb.readUInt32LE(0x150) * 0x1_0000_0000 : 0) + sb.readUInt32LE(0x04);
  info.sizeBytes = blocks * blockSize;
  return info;
}

// ---------------------------------------------------------------------------------------------
// XFS (big-endian superblock at 0)

function detectXfs(read: ByteReader): FsInfo | null {
  const sb = tryRead(read, 0, 512);
  if (!sb || sb.toString('latin1', 0, 4) !== 'XFSB') return null;
  const blockSize = sb.readUInt32BE(4);
  if (blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) return null;
  const info: FsInfo = { type: 'xfs', sizeBytes: u64be(sb, 8) * blockSize };
  const uuid = sb.subarray(32, 48);
  if (!isZero(uuid)) info.uuid = formatUuid(uuid);
  const label = cLabel(sb.subarray(108, 120));
  if (label !== undefined) info.label = label;
  return info;
}

// ---------------------------------------------------------------------------------------------
// btrfs (primary superblock at 64 KiB, magic at +0x40)

function detectBtrfs(read: ByteReader): FsInfo | null {
  const sb = tryRead(read, 65536, 4096);
  if (!sb || sb.toString('latin1', 0x40, 0x48) !== '_BHRfS_M') return null;
  const info: FsInfo = { type: 'btrfs', sizeBytes: u64le(sb, 0x70) };
  const uuid = sb.subarray(0x20, 0x30);
  if (!isZero(uuid)) info.uuid = formatUuid(uuid);
  const label = cLabel(sb.subarray(0x12b, 0x12b + 256));
  if (label !== undefined) info.label = label;
  return info;
}

// ---------------------------------------------------------------------------------------------
// squashfs 4 (little-endian 'hsqs' at 0; no UUID or label)

function detectSquashfs(read: ByteReader): FsInfo | null {
  const sb = tryRead(read, 0, 96);
  if (!sb || sb.toString('latin1', 0, 4) !== 'hsqs') return null;
  return { type: 'squashfs', sizeBytes: u64le(sb, 40) };
}

// ---------------------------------------------------------------------------------------------
// EROFS (superblock at 1024)

const EROFS_MAGIC = 0xe0f5e1e2;

function detectErofs(read: ByteReader): FsInfo | null {
  const sb = tryRead(read, 1024, 128);
  if (!sb || sb.readUInt32LE(0) !== EROFS_MAGIC) return null;
  const blkszbits = sb.readUInt8(12);
  const info: FsInfo = { type: 'erofs' };
  if (blkszbits >= 9 && blkszbits <= 16) info.sizeBytes = sb.readUInt32LE(36) * 2 ** blkszbits;
  const uuid = sb.subarray(48, 64);
  if (!isZero(uuid)) info.uuid = formatUuid(uuid);
  const label = cLabel(sb.subarray(64, 80));
  if (label !== undefined) info.label = label;
  return info;
}

// ---------------------------------------------------------------------------------------------
// FAT12/16/32

function fatLabel(raw: Buffer): string | undefined {
  const s = raw.toString('latin1').replace(/[ \0]+$/, '');
  return s.length > 0 && s !== 'NO NAME' ? s : undefined;
}

/** The volume-label entry of the root directory (blkid prefers it to the boot sector's copy). */
function fatRootLabel(read: ByteReader, offset: number, length: number): string | null | undefined {
  const dir = tryRead(read, offset, length);
  if (!dir) return undefined;
  for (let p = 0; p + 32 <= dir.length; p += 32) {
    const first = dir[p]!;
    if (first === 0) break;
    if (first === 0xe5) continue;
    const attr = dir[p + 11]!;
    if ((attr & 0x3f) === 0x0f) continue; // long-name entry
    if (attr & 0x08) return fatLabel(dir.subarray(p, p + 11)) ?? null;
  }
  return undefined;
}

function detectVfat(read: ByteReader): FsInfo | null {
  const bs = tryRead(read, 0, 512);
  if (!bs || bs[510] !== 0x55 || bs[511] !== 0xaa) return null;
  const bps = bs.readUInt16LE(0x0b);
  const spc = bs[0x0d]!;
  const reserved = bs.readUInt16LE(0x0e);
  const nfats = bs[0x10]!;
  const rootEntries = bs.readUInt16LE(0x11);
  const total16 = bs.readUInt16LE(0x13);
  const fat16 = bs.readUInt16LE(0x16);
  const total32 = bs.readUInt32LE(0x20);
  if (![512, 1024, 2048, 4096].includes(bps)) return null;
  if (spc === 0 || (spc & (spc - 1)) !== 0 || reserved === 0 || nfats === 0) return null;
  const fat32 = fat16 === 0;
  const typeStr = bs.toString('latin1', fat32 ? 0x52 : 0x36, (fat32 ? 0x52 : 0x36) + 8);
  if (!typeStr.startsWith('FAT')) return null;
  const extOff = fat32 ? 0x40 : 0x24; // drive number; boot signature follows at +2
  const sig = bs[extOff + 2]!;
  const info: FsInfo = { type: 'vfat' };
  const totalSectors = total16 !== 0 ? total16 : total32;
  if (totalSectors > 0) info.sizeBytes = totalSectors * bps;
  let bpbLabel: string | undefined;
  if (sig === 0x29 || sig === 0x28) {
    const id = bs.readUInt32LE(extOff + 3);
    const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
    info.uuid = `${hex(id >>> 16)}-${hex(id & 0xffff)}`;
    if (sig === 0x29) bpbLabel = fatLabel(bs.subarray(extOff + 7, extOff + 18));
  }
  let rootLabel: string | null | undefined;
  if (!fat32) {
    rootLabel = fatRootLabel(read, (reserved + nfats * fat16) * bps, rootEntries * 32);
  } else {
    const fatSize = bs.readUInt32LE(0x24);
    const rootCluster = bs.readUInt32LE(0x2c);
    if (rootCluster >= 2) rootLabel = fatRootLabel(read, (reserved + nfats * fatSize + (rootCluster - 2) * spc) * bps, spc * bps);
  }
  const label = rootLabel === undefined ? bpbLabel : rootLabel ?? undefined;
  if (label !== undefined) info.label = label;
  return info;
}

// ---------------------------------------------------------------------------------------------

/**
 * The filesystem at the start of the bytes `read` serves, or null when none is recognised. Reads
 * that fail or come back short count as "not this filesystem".
 */
export function detectFilesystem(read: ByteReader): FsInfo | null {
  return detectXfs(read) ?? detectSquashfs(read) ?? detectErofs(read) ?? detectExt(read) ?? detectBtrfs(read) ?? detectVfat(read);
}

/**
 * Why the filesystem's superblock is impossible ("inodes per group 0 is impossible ..."), or null
 * when it is sane or there is no ext superblock to judge.
 */
export function describeCorruption(read: ByteReader): string | null {
  const sb = tryRead(read, EXT_SB_OFFSET, 1024);
  if (!sb || sb.readUInt16LE(0x38) !== EXT_MAGIC) return null;
  return extSuperblockProblem(sb);
}
