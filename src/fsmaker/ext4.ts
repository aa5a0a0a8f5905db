/**
 * A read-only ext2/3/4 reader, pure over a `read(offset, length)` callback: it reads only the
 * superblock, the group descriptors, inodes, and the blocks of the files asked for (the image is
 * never loaded whole).
 *
 * Supported: 1-64 KiB blocks, 32- and 64-byte group descriptors (64bit), meta_bg descriptor
 * placement, extent trees of any depth (unwritten extents read as zeros), ext2/3 indirect block
 * maps (single, double, triple), holes, linear and htree directories (htree leaves are ordinary
 * directory blocks; the index blocks look like empty dirents, so a linear read is complete), fast
 * and slow symlinks, and path resolution following symlinks. Not supported: inline_data files and
 * directories, encrypted names, and compression.
 *
 * It judges what it reads as Linux 6.1 would, so that what fsmaker accepts, Linux mounts and
 * reads: the superblock (ext4-superblock.ts) and every group descriptor (ext4-groups.ts) when
 * opened, then, as they are read, inode, extent node and directory block checksums
 * (metadata_csum), the extent header and entry checks of fs/ext4/extents.c (__ext4_ext_check),
 * directory entry checks (__ext4_check_dir_entry), inodes referenced by a directory that are unused
 * or of no type (ext4_iget), and data that would overlap filesystem metadata (block_validity.c)
 * or itself. Every failure is an ExtError saying where.
 *
 * Layout references: the kernel's Documentation/filesystems/ext4 (super.rst, group_descr.rst,
 * inodes.rst, ifork.rst, directory.rst).
 */
import { type ByteReader, ExtError, corrupt, hex, readExactly } from './ext4-error.js';
import { dirLeafChecksum, dxChecksum, extentNodeChecksum, inodeChecksum, inodeChecksumSeed } from './ext4-checksums.js';
import { openGroups } from './ext4-groups.js';
import { type ExtSuperblock, RO_COMPAT, SB_OFFSET, parseSuperblock } from './ext4-superblock.js';

export { ExtError, type ExtErrorCode, type ByteReader } from './ext4-error.js';
export type { ExtSuperblock } from './ext4-superblock.js';

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
  /** i_generation (part of the seed of the inode's checksums). */
  generation: number;
  /** Byte offset of the inode in the image. */
  byteOffset: number;
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

export interface ExtOpenOptions {
  /** Size of the image or device: a filesystem that claims more is truncated (CORRUPT). */
  imageBytes?: number;
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

const ROOT_INO = 2;
const MAX_SYMLINKS = 40; // Linux's MAXSYMLINKS
/** Path components one lookup may walk (through all its links): far above any real path. */
const MAX_COMPONENTS = 4096;
/** The most one readFile may return (a Buffer's limit is a little above). */
const MAX_READ_BYTES = 2 ** 31;

const FL_INDEX = 0x1000;
const FL_HUGE_FILE = 0x40000;
const FL_EXTENTS = 0x80000;
const FL_EA_INODE = 0x200000;
const FL_INLINE_DATA = 0x10000000;

const EXTENT_MAGIC = 0xf30a;
const EXT_INIT_MAX_LEN = 32768;
const MAX_EXTENT_DEPTH = 5;
const DIR_TAIL_FILE_TYPE = 0xde;

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

/** A run of blocks of a file: data (lblk >= 0), or a block of its map (extent node, indirect block). */
interface BlockRun {
  lblk: number;
  pblk: number;
  count: number;
  unwritten: boolean;
  /** Byte offset of the entry that points here (for messages). */
  at: number;
}

interface MapBlock {
  pblk: number;
  what: string;
  at: number;
}

/** Opens the ext2/3/4 filesystem `read` serves; throws ExtError NOT_EXT, UNSUPPORTED or CORRUPT. */
export function openExt(read: ByteReader, options: ExtOpenOptions = {}): ExtFs {
  const readExact = (offset: number, length: number, what: string): Buffer => readExactly(read, offset, length, what);

  const geo = parseSuperblock(readExact(SB_OFFSET, 1024, 'the superblock'), options.imageBytes);
  const { blockSize } = geo;
  const groups = openGroups(geo, read);
  groups.check();
  const sb: ExtSuperblock = {
    blockSize,
    inodeSize: geo.inodeSize,
    inodesCount: geo.inodesCount,
    blocksCount: geo.blocksCount,
    inodesPerGroup: geo.inodesPerGroup,
    blocksPerGroup: geo.blocksPerGroup,
    firstDataBlock: geo.firstDataBlock,
    groupCount: geo.groupCount,
    descSize: geo.descSize,
    featureCompat: geo.featureCompat,
    featureIncompat: geo.featureIncompat,
    featureRoCompat: geo.featureRoCompat,
    revLevel: geo.revLevel,
  };

  const blockAt = (block: number): number => block * blockSize;
  const readBlock = (block: number, what: string, at: number): Buffer => {
    if (block <= geo.firstDataBlock) throw corrupt(`${what}: block ${block} is the boot block or the superblock`, at);
    if (block >= geo.blocksCount) throw corrupt(`${what}: block ${block} is past the filesystem's last block ${geo.blocksCount - 1}`, at);
    return readExact(blockAt(block), blockSize, `${what} (block ${block})`);
  };

  // --- inodes ---------------------------------------------------------------------------------

  const tableCache = new Map<number, number>();
  const inodeTable = (g: number): number => {
    let table = tableCache.get(g);
    if (table === undefined) {
      table = groups.descriptor(g).inodeTable;
      if (tableCache.size >= 1024) tableCache.clear();
      tableCache.set(g, table);
    }
    return table;
  };

  const readInode = (ino: number): Inode => {
    if (!Number.isInteger(ino) || ino < 1 || ino > geo.inodesCount) throw corrupt(`inode number ${ino} is out of range (1-${geo.inodesCount})`);
    const g = Math.floor((ino - 1) / geo.inodesPerGroup);
    const byteOffset = blockAt(inodeTable(g)) + ((ino - 1) % geo.inodesPerGroup) * geo.inodeSize;
    const raw = readExact(byteOffset, geo.inodeSize, `inode ${ino}`);
    if (geo.inodeSize > 128) {
      const extra = raw.readUInt16LE(0x80);
      if (128 + extra > geo.inodeSize || extra % 4 !== 0) throw corrupt(`inode ${ino}: extra size ${extra} is impossible for ${geo.inodeSize}-byte inodes`, byteOffset + 0x80);
    }
    const generation = raw.readUInt32LE(0x64);
    if (geo.inodeCsum) {
      const { value, hasHigh } = inodeChecksum(raw, inodeChecksumSeed(geo.csumSeed, ino, generation));
      const stored = raw.readUInt16LE(0x7c) + (hasHigh ? raw.readUInt16LE(0x82) * 0x10000 : 0);
      if (stored !== value) throw corrupt(`inode ${ino} fails its checksum (stored ${hex(stored, 8)}, computed ${hex(value, 8)})`, byteOffset + 0x7c);
    }
    const mode = raw.readUInt16LE(0x00);
    const kind = kindOf(mode);
    const flags = raw.readUInt32LE(0x20);
    // ext4_isize: the high half counts for regular files, and for directories only with large_dir.
    const sizeHigh = kind === 'file' || geo.largeDir ? raw.readUInt32LE(0x6c) : 0;
    if (sizeHigh > 0x1fffff) {
      const size = (BigInt(sizeHigh) << 32n) | BigInt(raw.readUInt32LE(0x04));
      throw corrupt(`inode ${ino}: size ${size} is impossible (more than 2^53 bytes)`, byteOffset + 0x6c);
    }
    let blocks = u64(raw.readUInt32LE(0x1c), geo.featureRoCompat & RO_COMPAT.HUGE_FILE ? raw.readUInt16LE(0x74) : 0);
    if (flags & FL_HUGE_FILE) blocks *= blockSize / 512;
    return {
      ino,
      kind,
      mode,
      size: u64(raw.readUInt32LE(0x04), sizeHigh),
      links: raw.readUInt16LE(0x1a),
      uid: raw.readUInt16LE(0x02) + raw.readUInt16LE(0x78) * 65536,
      gid: raw.readUInt16LE(0x18) + raw.readUInt16LE(0x7a) * 65536,
      mtime: raw.readUInt32LE(0x10),
      flags,
      blocks,
      iBlock: Buffer.from(raw.subarray(0x28, 0x28 + 60)),
      fileAcl: u64(raw.readUInt32LE(0x68), raw.readUInt16LE(0x76)),
      generation,
      byteOffset,
    };
  };

  const seedOf = (inode: Inode): number => inodeChecksumSeed(geo.csumSeed, inode.ino, inode.generation);

  // --- block mapping ------------------------------------------------------------------------

  const maxEntries = (isRoot: boolean): number => Math.floor(((isRoot ? 60 : blockSize) - 12) / 12);

  /** Extents of an extent-mapped inode, and the blocks of its tree's nodes. */
  const extentRuns = (inode: Inode): { runs: BlockRun[]; map: MapBlock[] } => {
    const runs: BlockRun[] = [];
    const map: MapBlock[] = [];
    const visited = new Set<number>();
    const who = `inode ${inode.ino}`;
    // Entries in all of the tree: a file's blocks plus any preallocated ones past its end, with room.
    let entryBudget = Math.ceil(inode.size / blockSize) + 65536;
    const walk = (node: Buffer, nodeAt: number, expectDepth: number | null, firstLblk: number | null, where: string): void => {
      const isRoot = expectDepth === null;
      const magic = node.readUInt16LE(0);
      if (magic !== EXTENT_MAGIC) throw corrupt(`${who}: bad extent header magic ${hex(magic)} in ${where}`, nodeAt);
      const entries = node.readUInt16LE(2);
      const max = node.readUInt16LE(4);
      const depth = node.readUInt16LE(6);
      if (isRoot ? depth > MAX_EXTENT_DEPTH : depth !== expectDepth) {
        throw corrupt(`${who}: extent tree depth ${depth} in ${where}${isRoot ? ` is more than ${MAX_EXTENT_DEPTH}` : `, expected ${expectDepth}`}`, nodeAt + 6);
      }
      if (max === 0 || max > maxEntries(isRoot)) throw corrupt(`${who}: ${where} claims room for ${max} extent entries (at most ${maxEntries(isRoot)})`, nodeAt + 4);
      if (entries > max) throw corrupt(`${who}: ${entries} extent entries in ${where}, more than its maximum ${max}`, nodeAt + 2);
      if (entries === 0 && depth > 0) throw corrupt(`${who}: ${where} has no entries but depth ${depth}`, nodeAt + 2);
      if (!isRoot && geo.metadataCsum) {
        const tail = 12 + 12 * max;
        const stored = node.readUInt32LE(tail);
        const computed = extentNodeChecksum(node, tail, seedOf(inode));
        if (stored !== computed) throw corrupt(`${who}: ${where} fails its checksum (stored ${hex(stored, 8)}, computed ${hex(computed, 8)})`, nodeAt + tail);
      }
      entryBudget -= entries;
      if (entryBudget < 0) throw corrupt(`${who}: extent tree has more entries than a file of ${inode.size} bytes can use`, nodeAt + 2);
      let nextLblk = 0; // where the next entry may start: entries are sorted and do not overlap
      for (let i = 0; i < entries; i++) {
        const e = 12 + i * 12;
        const at = nodeAt + e;
        const lblk = node.readUInt32LE(e);
        if (i === 0 && firstLblk !== null && lblk !== firstLblk) throw corrupt(`${who}: ${where} starts at file block ${lblk}, its index entry says ${firstLblk}`, at);
        if (i > 0 && lblk < nextLblk) throw corrupt(`${who}: extent at file block ${lblk} overlaps the previous one (which ends at file block ${nextLblk - 1})`, at);
        if (depth === 0) {
          const rawLen = node.readUInt16LE(e + 4);
          const unwritten = rawLen > EXT_INIT_MAX_LEN;
          const count = unwritten ? rawLen - EXT_INIT_MAX_LEN : rawLen;
          const pblk = u64(node.readUInt32LE(e + 8), node.readUInt16LE(e + 6));
          if (count === 0) throw corrupt(`${who}: zero-length extent at file block ${lblk}`, at);
          if (lblk + count > 2 ** 32) throw corrupt(`${who}: extent at file block ${lblk} (+${count}) passes the last file block`, at);
          if (pblk <= geo.firstDataBlock) throw corrupt(`${who}: extent at block ${pblk} lies in the boot block or the superblock`, at);
          if (pblk + count > geo.blocksCount) throw corrupt(`${who}: extent at block ${pblk} (+${count}) is past the filesystem's last block ${geo.blocksCount - 1}`, at);
          runs.push({ lblk, pblk, count, unwritten, at });
          nextLblk = lblk + count;
        } else {
          const child = u64(node.readUInt32LE(e + 4), node.readUInt16LE(e + 8));
          if (visited.has(child)) throw corrupt(`${who}: extent tree node at block ${child} is referenced twice`, at);
          visited.add(child);
          map.push({ pblk: child, what: 'extent tree node', at });
          walk(readBlock(child, `${who}'s extent tree node`, at), blockAt(child), depth - 1, lblk, `the extent node at block ${child}`);
          nextLblk = lblk + 1;
        }
      }
    };
    walk(inode.iBlock, inode.byteOffset + 0x28, null, null, 'the inode');
    return { runs, map };
  };

  /** Blocks of an ext2/3 block-mapped inode (direct, single, double and triple indirect). */
  const blockMapRuns = (inode: Inode): { runs: BlockRun[]; map: MapBlock[] } => {
    const runs: BlockRun[] = [];
    const map: MapBlock[] = [];
    const visited = new Set<number>();
    const who = `inode ${inode.ino}`;
    const perBlock = blockSize / 4;
    const fileBlocks = Math.ceil(inode.size / blockSize);
    const valid = (pblk: number, at: number): void => {
      if (pblk <= geo.firstDataBlock) throw corrupt(`${who}: block ${pblk} lies in the boot block or the superblock`, at);
      if (pblk >= geo.blocksCount) throw corrupt(`${who}: block ${pblk} is past the filesystem's last block ${geo.blocksCount - 1}`, at);
    };
    const push = (lblk: number, pblk: number, at: number): void => {
      if (pblk === 0 || lblk >= fileBlocks) return;
      valid(pblk, at);
      const last = runs[runs.length - 1];
      if (last && last.lblk + last.count === lblk && last.pblk + last.count === pblk) last.count++;
      else runs.push({ lblk, pblk, count: 1, unwritten: false, at });
    };
    // Maps the subtree of `level` indirection under block `pblk`, covering logical blocks from `lblk`.
    const indirect = (pblk: number, level: number, lblk: number, at: number): void => {
      if (pblk === 0 || lblk >= fileBlocks) return;
      valid(pblk, at);
      if (visited.has(pblk)) throw corrupt(`${who}: indirect block ${pblk} is referenced twice`, at);
      visited.add(pblk);
      map.push({ pblk, what: 'indirect block', at });
      const b = readBlock(pblk, `${who}'s indirect block`, at);
      const span = perBlock ** (level - 1);
      for (let i = 0; i < perBlock; i++) {
        const child = b.readUInt32LE(i * 4);
        const childL = lblk + i * span;
        if (childL >= fileBlocks) break;
        if (level === 1) push(childL, child, blockAt(pblk) + i * 4);
        else indirect(child, level - 1, childL, blockAt(pblk) + i * 4);
      }
    };
    const slot = (i: number): number => inode.byteOffset + 0x28 + i * 4;
    for (let i = 0; i < 12; i++) push(i, inode.iBlock.readUInt32LE(i * 4), slot(i));
    indirect(inode.iBlock.readUInt32LE(48), 1, 12, slot(12));
    indirect(inode.iBlock.readUInt32LE(52), 2, 12 + perBlock, slot(13));
    indirect(inode.iBlock.readUInt32LE(56), 3, 12 + perBlock + perBlock * perBlock, slot(14));
    return { runs, map };
  };

  /**
   * Refuses a file whose blocks (data and map) overlap each other or filesystem metadata: Linux
   * would refuse to read it (block_validity), and copying it would copy metadata as data.
   */
  const checkPlacement = (inode: Inode, runs: BlockRun[], map: MapBlock[]): void => {
    const who = `inode ${inode.ino}`;
    const spans = [
      ...runs.map((r) => ({ start: r.pblk, count: r.count, at: r.at, what: `data block ${r.pblk} (file block ${r.lblk})` })),
      ...map.map((m) => ({ start: m.pblk, count: 1, at: m.at, what: `${m.what} ${m.pblk}` })),
    ].sort((a, b) => a.start - b.start);
    for (let i = 1; i < spans.length; i++) {
      const prev = spans[i - 1]!;
      const cur = spans[i]!;
      if (cur.start < prev.start + prev.count) throw corrupt(`${who}: ${cur.what} overlaps its ${prev.what}`, cur.at);
    }
    if (spans.length === 0) return;
    groups.forEachSystemZone((zone) => {
      // The first span ending after the zone starts: it overlaps the zone unless it starts after it.
      let lo = 0;
      let hi = spans.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (spans[mid]!.start + spans[mid]!.count <= zone.start) lo = mid + 1;
        else hi = mid;
      }
      const hit = spans[lo];
      if (hit && hit.start < zone.start + zone.count) {
        throw corrupt(`${who}: ${hit.what} lies in ${zone.what} (blocks ${zone.start}-${zone.start + zone.count - 1})`, hit.at);
      }
    });
  };

  const runsCache = new Map<number, BlockRun[]>();
  const runsOf = (inode: Inode): BlockRun[] => {
    if (inode.flags & FL_INLINE_DATA) throw new ExtError('UNSUPPORTED', `inode ${inode.ino} keeps its data inline (inline_data is not supported)`, inode.byteOffset + 0x20);
    const cached = runsCache.get(inode.ino);
    if (cached) return cached;
    const { runs, map } = inode.flags & FL_EXTENTS ? extentRuns(inode) : blockMapRuns(inode);
    checkPlacement(inode, runs, map);
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

  // --- symlinks ---------------------------------------------------------------------------------

  /** ext4_inode_is_fast_symlink: the target is in i_block when the link owns no blocks. */
  const isFastSymlink = (inode: Inode): boolean => {
    if (inode.flags & FL_EA_INODE) return inode.size > 0 && inode.size < 60;
    if (inode.flags & FL_INLINE_DATA) return false;
    const eaBlocks = inode.fileAcl !== 0 ? blockSize / 512 : 0;
    return inode.blocks - eaBlocks === 0;
  };

  const readFile = (inode: Inode, offset = 0, length?: number): Buffer => {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new ExtError('BAD_ARGUMENT', `readFile: bad offset ${offset}`);
    const start = Math.min(offset, inode.size);
    const end = Math.min(inode.size, length === undefined ? inode.size : start + Math.max(0, length));
    if (end - start > MAX_READ_BYTES) throw new ExtError('BAD_ARGUMENT', `readFile: ${end - start} bytes of inode ${inode.ino} at once is more than ${MAX_READ_BYTES}`);
    const out = Buffer.alloc(end - start);
    if (end <= start) return out;
    if (inode.kind === 'symlink' && isFastSymlink(inode)) {
      inode.iBlock.copy(out, 0, Math.min(start, 60), Math.min(end, 60));
      return out;
    }
    for (const r of runsOf(inode)) {
      if (r.unwritten) continue;
      const rs = r.lblk * blockSize;
      const re = rs + r.count * blockSize;
      const s = Math.max(rs, start);
      const e = Math.min(re, end);
      if (s >= e) continue;
      const data = readExact(blockAt(r.pblk) + (s - rs), e - s, `inode ${inode.ino}'s data`);
      data.copy(out, s - start, 0, e - s);
    }
    return out;
  };

  const readLink = (inode: Inode): string => {
    if (inode.kind !== 'symlink') throw new ExtError('UNSUPPORTED', `inode ${inode.ino} is not a symlink`);
    // Linux ends a target at its first NUL, at 59 bytes in i_block, at a block less one byte else.
    const limit = isFastSymlink(inode) ? 59 : blockSize - 1;
    const target = readFile(inode, 0, Math.min(inode.size, limit));
    const nul = target.indexOf(0);
    return target.subarray(0, nul < 0 ? target.length : nul).toString('utf8');
  };

  // --- directories ------------------------------------------------------------------------------

  interface DirEntry {
    name: string;
    nameBytes: Buffer;
    ino: number;
    fileType: number;
    /** Byte offset of the entry in the image. */
    at: number;
  }

  /** Verifies a directory block's checksum the way __ext4_read_dirblock does. */
  const checkDirBlock = (dir: Inode, blk: Buffer, bi: number, at: number): void => {
    const who = `directory inode ${dir.ino}`;
    const firstRecLen = blk.readUInt16LE(4);
    const isIndex = geo.dirIndex && (dir.flags & FL_INDEX) !== 0 && (bi === 0 || firstRecLen === blockSize || (firstRecLen === 0 && blockSize === 65536));
    if (isIndex) {
      let countOffset: number;
      if (firstRecLen === blockSize || firstRecLen === 0) countOffset = 8;
      else if (firstRecLen === 12 && blk.readUInt16LE(12 + 4) === blockSize - 12 && blk.readUInt32LE(24) === 0 && blk[24 + 5] === 8) countOffset = 32;
      else throw corrupt(`${who}: htree index block ${bi} is not laid out as one (run e2fsck -D)`, at);
      const limit = blk.readUInt16LE(countOffset);
      const count = blk.readUInt16LE(countOffset + 2);
      const tail = countOffset + limit * 8;
      if (tail + 8 > blockSize || count > limit) throw corrupt(`${who}: htree index block ${bi} has no room for its checksum (limit ${limit}, count ${count})`, at + countOffset);
      const stored = blk.readUInt32LE(tail + 4);
      const computed = dxChecksum(blk, countOffset, count, tail, seedOf(dir));
      if (stored !== computed) throw corrupt(`${who}: htree index block ${bi} fails its checksum (stored ${hex(stored, 8)}, computed ${hex(computed, 8)})`, at + tail + 4);
      return;
    }
    const t = blockSize - 12;
    if (blk.readUInt32LE(t) !== 0 || blk.readUInt16LE(t + 4) !== 12 || blk[t + 6] !== 0 || blk[t + 7] !== DIR_TAIL_FILE_TYPE) {
      throw corrupt(`${who}: block ${bi} has no checksum tail`, at + t);
    }
    const stored = blk.readUInt32LE(t + 8);
    const computed = dirLeafChecksum(blk, t, seedOf(dir));
    if (stored !== computed) throw corrupt(`${who}: block ${bi} fails its checksum (stored ${hex(stored, 8)}, computed ${hex(computed, 8)})`, at + t + 8);
  };

  /** The entries of a directory, block by block (holes skipped), "." and ".." included. */
  function* dirEntries(dir: Inode): Generator<DirEntry> {
    if (dir.kind !== 'dir') throw new ExtError('NOT_A_DIRECTORY', `inode ${dir.ino} is not a directory`);
    const who = `directory inode ${dir.ino}`;
    const nblocks = Math.ceil(dir.size / blockSize);
    for (const r of runsOf(dir)) {
      if (r.unwritten) continue;
      for (let bi = r.lblk; bi < r.lblk + r.count && bi < nblocks; bi++) {
        const at = blockAt(r.pblk + (bi - r.lblk));
        const blk = readExact(at, blockSize, `${who}'s block ${bi}`);
        if (geo.metadataCsum) checkDirBlock(dir, blk, bi, at);
        let p = 0;
        while (p < blockSize) {
          if (p + 8 > blockSize) throw corrupt(`${who}: an entry overruns block ${bi}`, at + p);
          const ino = blk.readUInt32LE(p);
          const recLen = blk.readUInt16LE(p + 4);
          const nameLen = geo.hasFiletype ? blk[p + 6]! : blk.readUInt16LE(p + 6);
          const fileType = geo.hasFiletype ? blk[p + 7]! : 0;
          // rec_len 0 with 64 KiB blocks means the whole block (the kernel's encoding of 65536).
          const len = recLen === 0 && blockSize === 65536 ? 65536 : recLen;
          // __ext4_check_dir_entry's rules.
          if (len < 12 || len % 4 !== 0 || p + len > blockSize) throw corrupt(`${who}: bad record length ${recLen} in block ${bi}`, at + p + 4);
          if (8 + nameLen > len) throw corrupt(`${who}: name of ${nameLen} bytes overflows its ${len}-byte record in block ${bi}`, at + p + 6);
          if (ino > geo.inodesCount) throw corrupt(`${who}: entry in block ${bi} names inode ${ino}, past the last inode ${geo.inodesCount}`, at + p);
          if (ino !== 0 && nameLen > 0) {
            const nameBytes = blk.subarray(p + 8, p + 8 + nameLen);
            yield { name: nameBytes.toString('utf8'), nameBytes, ino, fileType, at: at + p };
          }
          p += len;
        }
      }
    }
  }

  const readDir = (inode: Inode): Array<{ name: string; ino: number; fileType: number }> => {
    const out: Array<{ name: string; ino: number; fileType: number }> = [];
    for (const e of dirEntries(inode)) if (e.name !== '.' && e.name !== '..') out.push({ name: e.name, ino: e.ino, fileType: e.fileType });
    return out;
  };

  /**
   * The inode a directory entry names, as ext4_lookup judges it: a valid number, in use, of a
   * known type.
   */
  const entryInode = (dir: Inode, entry: DirEntry): Inode => {
    const { ino, name } = entry;
    const where = `directory inode ${dir.ino}: entry '${name}'`;
    if (ino !== ROOT_INO && ino < geo.firstIno) throw corrupt(`${where} names reserved inode ${ino}`, entry.at);
    const inode = readInode(ino);
    if (inode.links === 0) throw corrupt(`${where} points at unused inode ${ino}`, inode.byteOffset + 0x1a);
    if (inode.kind === 'unknown') throw corrupt(`${where} points at inode ${ino} of no file type (mode ${hex(inode.mode)})`, inode.byteOffset);
    return inode;
  };

  const findEntry = (dir: Inode, name: string): DirEntry | null => {
    const nameBytes = Buffer.from(name, 'utf8');
    for (const e of dirEntries(dir)) if (e.nameBytes.equals(nameBytes)) return e;
    return null;
  };

  const root = readInode(ROOT_INO);
  if (root.kind !== 'dir') throw corrupt(`the root directory (inode 2) is not a directory (mode ${hex(root.mode)})`, root.byteOffset);
  if (root.size === 0 || root.blocks === 0) throw corrupt('the root directory (inode 2) is empty', root.byteOffset + 0x04);

  /** Resolves `path` from directory `cwd`; null when a component is missing. */
  const resolve = (path: string, cwd: Inode, follow: boolean, budget: { links: number; components: number }, whole: string): Inode | null => {
    let cur = path.startsWith('/') ? root : cwd;
    const parts = path.split('/').filter((p) => p.length > 0 && p !== '.');
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      if (cur.kind !== 'dir') return null;
      if (++budget.components > MAX_COMPONENTS) throw new ExtError('SYMLINK_LOOP', `too many path components resolving ${whole} (a symlink loop?)`);
      const entry = findEntry(cur, name);
      if (entry === null) return null;
      let next = entry.ino === cur.ino ? cur : entryInode(cur, entry);
      const last = i === parts.length - 1;
      if (next.kind === 'symlink' && (!last || follow)) {
        if (++budget.links > MAX_SYMLINKS) throw new ExtError('SYMLINK_LOOP', `too many levels of symbolic links resolving ${whole}`, next.byteOffset);
        const target = readLink(next);
        if (target === '') return null; // an empty target names nothing (ENOENT)
        const resolved = resolve(target, cur, true, budget, whole);
        if (resolved === null) return null;
        next = resolved;
      }
      cur = next;
    }
    return cur;
  };

  const lookup = (path: string, options?: { follow?: boolean }): Inode | null => resolve(path, root, options?.follow ?? true, { links: 0, components: 0 }, path);

  const listDir = (path: string): string[] => {
    const inode = lookup(path);
    if (inode === null) throw new ExtError('NOT_FOUND', `${path}: no such file or directory`);
    if (inode.kind !== 'dir') throw new ExtError('NOT_A_DIRECTORY', `${path}: not a directory`);
    return readDir(inode).map((e) => e.name);
  };

  return { superblock: sb, lookup, inode: readInode, readFile, listDir, readDir, readLink, fileExtents };
}
