/**
 * A read-only ext2/3/4 reader, pure over a `read(offset, length)` callback: it reads only the
 * superblock, the group descriptors it needs, inodes, and the blocks of the files asked for (the
 * image is never loaded whole).
 *
 * Supported: 1-64 KiB blocks, 32- and 64-byte group descriptors (64bit), meta_bg descriptor
 * placement, extent trees of any depth (unwritten extents read as zeros), ext2/3 indirect block
 * maps (single, double, triple), holes, linear and htree directories (htree leaves are ordinary
 * directory blocks; the index blocks look like empty dirents, so a linear read is complete), fast
 * and slow symlinks, and path resolution following symlinks. Not supported: inline_data files and
 * directories, encrypted names, and compression.
 *
 * Layout references: the kernel's Documentation/filesystems/ext4 (super.rst, group_descr.rst,
 * inodes.rst, ifork.rst, directory.rst).
 */
import { extSuperblockProblem } from './fs-detect.js';

export type ByteReader = (offset: number, length: number) => Buffer;

export type ExtErrorCode = 'NOT_EXT' | 'CORRUPT' | 'UNSUPPORTED' | 'NOT_A_DIRECTORY' | 'NOT_FOUND' | 'SYMLINK_LOOP';

/** Every failure of this module: `code` is stable, the message says what and where. */
export class ExtError extends Error {
  readonly code: ExtErrorCode;
  constructor(code: ExtErrorCode, message: string) {
    super(message);
    this.name = 'ExtError';
    this.code = code;
  }
}

export type InodeKind = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket' | 'unknown';

export interface Inode {
  ino: number;
  kind: InodeKind;
  /** The full i_mode (type and permission bits). */
  mode: number;
  size: number;
  links: number;
  uid: number;
  gid: number;
  mtime: number;
  /** i_flags (EXT4_EXTENTS_FL 0x80000, EXT4_INDEX_FL 0x1000, EXT4_INLINE_DATA_FL 0x10000000, ...). */
  flags: number;
  /** i_blocks in 512-byte units (fs blocks when the huge_file flag is set on the inode). */
  blocks: number;
  /** The 60 bytes of i_block: extent root, block map, or a fast symlink's target. */
  iBlock: Buffer;
  fileAcl: number;
}

export interface FileExtent {
  /** Byte offset in the file. */
  fileOffset: number;
  /** Byte offset in the image. */
  diskOffset: number;
  /** Length in bytes (whole blocks; the last may run past the file's size). */
  length: number;
  /** An unwritten (preallocated) extent: reads as zeros. */
  unwritten?: boolean;
}

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

export interface ExtFs {
  superblock: ExtSuperblock;
  /** The inode at `path` (absolute; symlinks followed, the last one too unless `follow` is false), or null. */
  lookup(path: string, options?: { follow?: boolean }): Inode | null;
  /** The inode by number. */
  inode(ino: number): Inode;
  /** Up to `length` bytes from `offset` (clamped to the file's size; holes read as zeros). */
  readFile(inode: Inode, offset?: number, length?: number): Buffer;
  /** The names in the directory at `path` ("." and ".." left out), in on-disk order. */
  listDir(path: string): string[];
  /** Entries of a directory inode, with inode numbers and file types ("." and ".." left out). */
  readDir(inode: Inode): Array<{ name: string; ino: number; fileType: number }>;
  /** A symlink's target. */
  readLink(inode: Inode): string;
  /** Where the file's data lies, in file order, adjacent runs merged; holes are absent. */
  fileExtents(inode: Inode): FileExtent[];
}

const SB_OFFSET = 1024;
const EXT_MAGIC = 0xef53;
const ROOT_INO = 2;
const MAX_SYMLINKS = 40;

const INCOMPAT_FILETYPE = 0x2;
const INCOMPAT_META_BG = 0x10;
const INCOMPAT_64BIT = 0x80;
const RO_COMPAT_SPARSE_SUPER = 0x1;
const RO_COMPAT_HUGE_FILE = 0x8;

const FL_HUGE_FILE = 0x40000;
const FL_EXTENTS = 0x80000;
const FL_INLINE_DATA = 0x10000000;

const EXTENT_MAGIC = 0xf30a;
const EXT_INIT_MAX_LEN = 32768;

function u64(lo: number, hi: number): number {
  return hi * 0x1_0000_0000 + lo;
}

function kindOf(mode: number): InodeKind {
  switch (mode & 0xf000) {
    case 0x8000:
      return 'file';
    case 0x4000:
      return 'dir';
    case 0xa000:
      return 'symlink';
    case 0x2000:
      return 'chardev';
    case 0x6000:
      return 'blockdev';
    case 0x1000:
      return 'fifo';
    case 0xc000:
      return 'socket';
    default:
      return 'unknown';
  }
}

function isPowerOf(n: number, base: number): boolean {
  if (n < 1) return false;
  while (n % base === 0) n /= base;
  return n === 1;
}

/** Opens the ext2/3/4 filesystem `read` serves; throws ExtError NOT_EXT or CORRUPT. */
export function openExt(read: ByteReader): ExtFs {
  const readExact = (offset: number, length: number, what: string): Buffer => {
    let b: Buffer;
    try {
      b = read(offset, length);
    } catch (err) {
      throw new ExtError('CORRUPT', `cannot read ${what} at byte ${offset}: ${(err as Error).message}`);
    }
    if (b.length < length) throw new ExtError('CORRUPT', `${what} at byte ${offset} is past the end of the image`);
    return b;
  };

  const sbBuf = readExact(SB_OFFSET, 1024, 'the superblock');
  if (sbBuf.readUInt16LE(0x38) !== EXT_MAGIC) throw new ExtError('NOT_EXT', 'no ext2/3/4 superblock (magic 0xEF53 missing)');
  const problem = extSuperblockProblem(sbBuf);
  if (problem) throw new ExtError('CORRUPT', `corrupt ext superblock: ${problem}`);

  const featureIncompat = sbBuf.readUInt32LE(0x60);
  const featureRoCompat = sbBuf.readUInt32LE(0x64);
  const is64 = (featureIncompat & INCOMPAT_64BIT) !== 0;
  const revLevel = sbBuf.readUInt32LE(0x4c);
  const blockSize = 1024 << sbBuf.readUInt32LE(0x18);
  const sb: ExtSuperblock = {
    blockSize,
    inodeSize: revLevel >= 1 ? sbBuf.readUInt16LE(0x58) : 128,
    inodesCount: sbBuf.readUInt32LE(0x00),
    blocksCount: u64(sbBuf.readUInt32LE(0x04), is64 ? sbBuf.readUInt32LE(0x150) : 0),
    inodesPerGroup: sbBuf.readUInt32LE(0x28),
    blocksPerGroup: sbBuf.readUInt32LE(0x20),
    firstDataBlock: sbBuf.readUInt32LE(0x14),
    groupCount: 0,
    descSize: is64 ? sbBuf.readUInt16LE(0xfe) : 32,
    featureCompat: sbBuf.readUInt32LE(0x5c),
    featureIncompat,
    featureRoCompat,
    revLevel,
  };
  sb.groupCount = Math.ceil((sb.blocksCount - sb.firstDataBlock) / sb.blocksPerGroup);
  const firstMetaBg = sbBuf.readUInt32LE(0x104);
  const descPerBlock = blockSize / sb.descSize;
  const hasFiletype = (featureIncompat & INCOMPAT_FILETYPE) !== 0;

  const readBlocks = (block: number, count: number, what: string): Buffer => {
    if (block >= sb.blocksCount || block + count > sb.blocksCount) throw new ExtError('CORRUPT', `${what}: block ${block} is past the filesystem's last block ${sb.blocksCount - 1}`);
    return readExact(block * blockSize, count * blockSize, what);
  };

  const groupHasSuper = (g: number): boolean => {
    if (g <= 1 || !(featureRoCompat & RO_COMPAT_SPARSE_SUPER)) return true;
    return isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
  };

  /** Block holding group `g`'s descriptor, and the descriptor's byte offset inside it. */
  const descLocation = (g: number): { block: number; offset: number } => {
    const descBlockIndex = Math.floor(g / descPerBlock);
    const offset = (g % descPerBlock) * sb.descSize;
    if (!(featureIncompat & INCOMPAT_META_BG) || descBlockIndex < firstMetaBg) {
      return { block: sb.firstDataBlock + 1 + descBlockIndex, offset };
    }
    // meta_bg: each meta group's descriptor block sits in its first group, after any superblock backup.
    const firstGroup = descBlockIndex * descPerBlock;
    const groupStart = sb.firstDataBlock + firstGroup * sb.blocksPerGroup;
    return { block: groupStart + (groupHasSuper(firstGroup) ? 1 : 0), offset };
  };

  const inodeTableCache = new Map<number, number>();
  const inodeTable = (g: number): number => {
    const cached = inodeTableCache.get(g);
    if (cached !== undefined) return cached;
    const { block, offset } = descLocation(g);
    const d = readExact(block * blockSize + offset, sb.descSize, `group descriptor ${g}`);
    const table = u64(d.readUInt32LE(0x08), sb.descSize >= 64 ? d.readUInt32LE(0x28) : 0);
    if (table === 0 || table >= sb.blocksCount) throw new ExtError('CORRUPT', `group ${g}'s inode table block ${table} is outside the filesystem`);
    inodeTableCache.set(g, table);
    return table;
  };

  const readInode = (ino: number): Inode => {
    if (!Number.isInteger(ino) || ino < 1 || ino > sb.inodesCount) throw new ExtError('CORRUPT', `inode number ${ino} is out of range (1-${sb.inodesCount})`);
    const g = Math.floor((ino - 1) / sb.inodesPerGroup);
    const index = (ino - 1) % sb.inodesPerGroup;
    const raw = readExact(inodeTable(g) * blockSize + index * sb.inodeSize, 128, `inode ${ino}`);
    const mode = raw.readUInt16LE(0x00);
    const flags = raw.readUInt32LE(0x20);
    let blocks = u64(raw.readUInt32LE(0x1c), featureRoCompat & RO_COMPAT_HUGE_FILE ? raw.readUInt16LE(0x74) : 0);
    if (flags & FL_HUGE_FILE) blocks *= blockSize / 512;
    return {
      ino,
      kind: kindOf(mode),
      mode,
      size: u64(raw.readUInt32LE(0x04), raw.readUInt32LE(0x6c)),
      links: raw.readUInt16LE(0x1a),
      uid: raw.readUInt16LE(0x02) + raw.readUInt16LE(0x78) * 65536,
      gid: raw.readUInt16LE(0x18) + raw.readUInt16LE(0x7a) * 65536,
      mtime: raw.readUInt32LE(0x10),
      flags,
      blocks,
      iBlock: Buffer.from(raw.subarray(0x28, 0x28 + 60)),
      fileAcl: u64(raw.readUInt32LE(0x68), raw.readUInt16LE(0x76)),
    };
  };

  // --- block mapping ------------------------------------------------------------------------

  /** Raw extents in logical-block units, in file order. */
  interface BlockRun {
    lblk: number;
    pblk: number;
    count: number;
    unwritten: boolean;
  }

  const extentRuns = (inode: Inode): BlockRun[] => {
    const runs: BlockRun[] = [];
    const walk = (node: Buffer, expectDepth: number | null, where: string, budget: { nodes: number }): void => {
      if (node.readUInt16LE(0) !== EXTENT_MAGIC) throw new ExtError('CORRUPT', `inode ${inode.ino}: bad extent header magic in ${where}`);
      const entries = node.readUInt16LE(2);
      const depth = node.readUInt16LE(6);
      if (depth > 5 || (expectDepth !== null && depth !== expectDepth)) throw new ExtError('CORRUPT', `inode ${inode.ino}: extent tree depth ${depth} is wrong in ${where}`);
      if (12 + entries * 12 > node.length) throw new ExtError('CORRUPT', `inode ${inode.ino}: ${entries} extent entries overflow ${where}`);
      for (let i = 0; i < entries; i++) {
        const e = 12 + i * 12;
        if (depth === 0) {
          const rawLen = node.readUInt16LE(e + 4);
          const unwritten = rawLen > EXT_INIT_MAX_LEN;
          const count = unwritten ? rawLen - EXT_INIT_MAX_LEN : rawLen;
          const pblk = u64(node.readUInt32LE(e + 8), node.readUInt16LE(e + 6));
          if (count === 0) continue;
          if (pblk + count > sb.blocksCount) throw new ExtError('CORRUPT', `inode ${inode.ino}: extent at block ${pblk} (+${count}) runs past the filesystem`);
          runs.push({ lblk: node.readUInt32LE(e), pblk, count, unwritten });
        } else {
          const child = u64(node.readUInt32LE(e + 4), node.readUInt16LE(e + 8));
          if (--budget.nodes < 0) throw new ExtError('CORRUPT', `inode ${inode.ino}: extent tree too large (loop?)`);
          walk(readBlocks(child, 1, `inode ${inode.ino}'s extent tree node`), depth - 1, `extent node at block ${child}`, budget);
        }
      }
    };
    walk(inode.iBlock, null, 'the inode', { nodes: 1 + Math.ceil(inode.size / blockSize) + 16 });
    runs.sort((a, b) => a.lblk - b.lblk);
    return runs;
  };

  const blockMapRuns = (inode: Inode): BlockRun[] => {
    const runs: BlockRun[] = [];
    const perBlock = blockSize / 4;
    const fileBlocks = Math.ceil(inode.size / blockSize);
    const push = (lblk: number, pblk: number): void => {
      if (pblk === 0 || lblk >= fileBlocks) return;
      if (pblk >= sb.blocksCount) throw new ExtError('CORRUPT', `inode ${inode.ino}: block ${pblk} is past the filesystem`);
      const last = runs[runs.length - 1];
      if (last && last.lblk + last.count === lblk && last.pblk + last.count === pblk) last.count++;
      else runs.push({ lblk, pblk, count: 1, unwritten: false });
    };
    // Maps the subtree of `level` indirection under block `pblk`, covering logical blocks from `lblk`.
    const indirect = (pblk: number, level: number, lblk: number): void => {
      if (pblk === 0 || lblk >= fileBlocks) return;
      const b = readBlocks(pblk, 1, `inode ${inode.ino}'s indirect block`);
      const span = perBlock ** (level - 1);
      for (let i = 0; i < perBlock; i++) {
        const child = b.readUInt32LE(i * 4);
        const childL = lblk + i * span;
        if (childL >= fileBlocks) break;
        if (level === 1) push(childL, child);
        else indirect(child, level - 1, childL);
      }
    };
    for (let i = 0; i < 12; i++) push(i, inode.iBlock.readUInt32LE(i * 4));
    indirect(inode.iBlock.readUInt32LE(48), 1, 12);
    indirect(inode.iBlock.readUInt32LE(52), 2, 12 + perBlock);
    indirect(inode.iBlock.readUInt32LE(56), 3, 12 + perBlock + perBlock * perBlock);
    return runs;
  };

  const runsCache = new Map<number, BlockRun[]>();
  const runsOf = (inode: Inode): BlockRun[] => {
    if (inode.flags & FL_INLINE_DATA) throw new ExtError('UNSUPPORTED', `inode ${inode.ino} keeps its data inline (inline_data is not supported)`);
    const cached = runsCache.get(inode.ino);
    if (cached) return cached;
    const runs = inode.flags & FL_EXTENTS ? extentRuns(inode) : blockMapRuns(inode);
    if (runsCache.size > 256) runsCache.clear();
    runsCache.set(inode.ino, runs);
    return runs;
  };

  const fileExtents = (inode: Inode): FileExtent[] => {
    const out: FileExtent[] = [];
    for (const r of runsOf(inode)) {
      const ext: FileExtent = { fileOffset: r.lblk * blockSize, diskOffset: r.pblk * blockSize, length: r.count * blockSize };
      if (r.unwritten) ext.unwritten = true;
      const last = out[out.length - 1];
      if (last && !last.unwritten && !r.unwritten && last.fileOffset + last.length === ext.fileOffset && last.diskOffset + last.length === ext.diskOffset) last.length += ext.length;
      else out.push(ext);
    }
    return out;
  };

  const readFile = (inode: Inode, offset = 0, length?: number): Buffer => {
    if (offset < 0 || !Number.isFinite(offset)) throw new RangeError(`bad offset ${offset}`);
    const start = Math.min(offset, inode.size);
    const end = Math.min(inode.size, length === undefined ? inode.size : start + Math.max(0, length));
    const out = Buffer.alloc(end - start);
    if (end <= start) return out;
    if (inode.kind === 'symlink' && isFastSymlink(inode)) {
      inode.iBlock.copy(out, 0, start, end);
      return out;
    }
    for (const r of runsOf(inode)) {
      if (r.unwritten) continue;
      const rs = r.lblk * blockSize;
      const re = rs + r.count * blockSize;
      const s = Math.max(rs, start);
      const e = Math.min(re, end);
      if (s >= e) continue;
      const data = readExact(r.pblk * blockSize + (s - rs), e - s, `inode ${inode.ino}'s data`);
      data.copy(out, s - start, 0, e - s);
    }
    return out;
  };

  // --- symlinks and directories ------------------------------------------------------------

  const isFastSymlink = (inode: Inode): boolean => {
    if (inode.flags & (FL_EXTENTS | FL_INLINE_DATA)) return false;
    const eaBlocks = inode.fileAcl !== 0 ? blockSize / 512 : 0;
    return inode.size < 60 && inode.blocks - eaBlocks === 0;
  };

  const readLink = (inode: Inode): string => {
    if (inode.kind !== 'symlink') throw new ExtError('UNSUPPORTED', `inode ${inode.ino} is not a symlink`);
    if (inode.size > 65536) throw new ExtError('CORRUPT', `symlink inode ${inode.ino} is ${inode.size} bytes long`);
    return readFile(inode).toString('utf8');
  };

  const readDir = (inode: Inode): Array<{ name: string; ino: number; fileType: number }> => {
    if (inode.kind !== 'dir') throw new ExtError('NOT_A_DIRECTORY', `inode ${inode.ino} is not a directory`);
    const out: Array<{ name: string; ino: number; fileType: number }> = [];
    const nblocks = Math.ceil(inode.size / blockSize);
    for (let bi = 0; bi < nblocks; bi++) {
      const blk = readFile(inode, bi * blockSize, blockSize);
      let p = 0;
      while (p + 8 <= blk.length) {
        const ino = blk.readUInt32LE(p);
        const recLen = blk.readUInt16LE(p + 4);
        const nameLen = hasFiletype ? blk[p + 6]! : blk.readUInt16LE(p + 6);
        const fileType = hasFiletype ? blk[p + 7]! : 0;
        // rec_len 0 with 64 KiB blocks means the whole block (the kernel's encoding of 65536).
        const len = recLen === 0 && blockSize === 65536 ? 65536 : recLen;
        if (len < 8 || len % 4 !== 0 || p + len > blk.length) {
          if (p === 0 && ino === 0 && recLen === 0) break; // a hole in the directory
          throw new ExtError('CORRUPT', `directory inode ${inode.ino}: bad record length ${recLen} at byte ${p} of block ${bi}`);
        }
        if (ino !== 0 && nameLen > 0) {
          if (8 + nameLen > len) throw new ExtError('CORRUPT', `directory inode ${inode.ino}: name overflows its record at byte ${p} of block ${bi}`);
          const name = blk.toString('utf8', p + 8, p + 8 + nameLen);
          if (name !== '.' && name !== '..') out.push({ name, ino, fileType });
        }
        p += len;
      }
    }
    return out;
  };

  const findEntry = (dir: Inode, name: string): number | null => {
    if (name === '.') return dir.ino;
    const nameBytes = Buffer.from(name, 'utf8');
    if (name === '..') {
      // ".." is the second entry of the first block.
      const blk = readFile(dir, 0, blockSize);
      const first = blk.readUInt16LE(4);
      if (first + 8 > blk.length) throw new ExtError('CORRUPT', `directory inode ${dir.ino} has no '..'`);
      return blk.readUInt32LE(first);
    }
    for (const e of readDir(dir)) if (e.name.length === name.length && Buffer.from(e.name, 'utf8').equals(nameBytes)) return e.ino;
    return null;
  };

  /** Resolves `path` from directory `cwd`; null when a component is missing. */
  const resolve = (path: string, cwd: Inode, follow: boolean, depth: { links: number }): Inode | null => {
    let cur = path.startsWith('/') ? readInode(ROOT_INO) : cwd;
    const parts = path.split('/').filter((p) => p.length > 0);
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      if (cur.kind !== 'dir') return null;
      const ino = findEntry(cur, name);
      if (ino === null) return null;
      let next = readInode(ino);
      const last = i === parts.length - 1;
      if (next.kind === 'symlink' && (!last || follow)) {
        if (++depth.links > MAX_SYMLINKS) throw new ExtError('SYMLINK_LOOP', `too many levels of symbolic links resolving ${path}`);
        const target = readLink(next);
        const resolved = resolve(target, cur, true, depth);
        if (resolved === null) return null;
        next = resolved;
      }
      cur = next;
    }
    return cur;
  };

  const lookup = (path: string, options?: { follow?: boolean }): Inode | null => resolve(path, readInode(ROOT_INO), options?.follow ?? true, { links: 0 });

  const listDir = (path: string): string[] => {
    const inode = lookup(path);
    if (inode === null) throw new ExtError('NOT_FOUND', `${path}: no such file or directory`);
    if (inode.kind !== 'dir') throw new ExtError('NOT_A_DIRECTORY', `${path}: not a directory`);
    return readDir(inode).map((e) => e.name);
  };

  return { superblock: sb, lookup, inode: readInode, readFile, listDir, readDir, readLink, fileExtents };
}
