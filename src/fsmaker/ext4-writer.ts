/**
 * fsmaker's own ext4 writer: a FileTree becomes an ext4 filesystem, planned in memory (inodes,
 * directories, where every block goes) and then streamed as extents in ascending offset order:
 * each group's superblock copy, bitmaps and inode table when the stream reaches it, file data
 * straight from one `tree.contents()` pass (the tree's chunks are passed through, a partial last
 * block padded with one zero tail). Holes (free space, unused inode tables, sparse files) are
 * omitted. Pure format code apart from the tree's I/O.
 *
 * What it makes, and why:
 * - 4 KiB blocks, 32768 blocks per group, no flex_bg: each group starts with its own superblock
 *   copy (sparse_super), descriptors (64-byte, 64bit), bitmaps and inode table. flex_bg only
 *   packs those together; without it the kernel, GRUB and e2fsck are as happy.
 * - 256-byte inodes with extra_isize 32 (nanosecond times, crtime, 32-bit checksums), in-inode
 *   xattrs when they fit in the 92 bytes after it, else one external block.
 * - extents (a tree of any depth), huge_file, large_file, dir_nlink, filetype, metadata_csum (the
 *   seed computed from the UUID, as the kernel does without metadata_csum_seed).
 * - Linear directories, with dir_index set (the kernel indexes a directory itself when it grows
 *   from one block to two; a multi-block linear one stays linear). Why not htree: measured on
 *   Linux 6.1 with a 20 000-entry directory (names of 30 bytes: 197 blocks), cold cache, each
 *   name looked up once: linear 25-31 us per hit, 160-180 us per miss (the whole scan), against
 *   7-11 and 9 us once `e2fsck -fD` had indexed it. The dentry cache keeps both answers, so that
 *   is paid once per name; a rootfs's largest directories (/usr/bin, /usr/lib/x86_64-linux-gnu:
 *   1-3 000 entries, 10-40 blocks) cost a tenth of that. Not worth a hash tree writer (half_md4,
 *   collisions across leaves) here. e2fsck -fn reports nothing for a linear directory; `e2fsck
 *   -fD` rewrites every directory (sorted, compressed, indexed when over one block) if wanted.
 * - A journal in inode 8 of mke2fs's size for the filesystem (ext2fs_default_journal_size),
 *   contiguous, with an empty clean jbd2 superblock: Debian mounts / with it.
 * - lost+found in inode 11 with 4 blocks, as mke2fs makes it; 5% reserved blocks, as mke2fs.
 * - Sizes: `sizeBytes` exactly, or (data + metadata + journal) × 1.2 + 64 MiB, in whole MiB: room
 *   to boot and apt-get. Inodes: one per 16 KiB (mke2fs's inode_ratio), at least the tree's
 *   count × 1.2 + 256.
 * - Reproducible: the UUID and hash seed come from `seed` (random without one); the fs's own
 *   times from `timestamp`; inodes are numbered and blocks allocated in node order, so a file's
 *   blocks are contiguous (but for the group metadata between groups) and in the order the
 *   contents pass reads them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ToolError } from '../errors.js';
import type { Extent, ExtentSource } from '../extent/extent.js';
import { crc32c, fsChecksumSeed, groupDescChecksum, inodeChecksumSeed, superblockChecksum } from './ext4-checksums.js';
import {
  BLOCK,
  BLOCK_XATTR_ROOM,
  EXTENT_MAX_LEN,
  EXTENTS_PER_BLOCK,
  EXTRA_ISIZE,
  FL_EXTENTS,
  FT,
  IN_INODE_XATTR_ROOM,
  INODE_SIZE,
  buildExtentTree,
  directoryBlocks,
  encodeInode,
  journalSuperblock,
  sealDirectoryBlock,
  xattrBlock,
  xattrBytes,
  xattrEntries,
  type DirEntry,
  type Extent4,
  type InodeFields,
  type XattrEntry,
} from './ext4-writer-encode.js';
import type { FileTree, TreeNode } from './tree.js';

export interface Ext4WriterOptions {
  tree: FileTree;
  /** The filesystem's exact size (rounded down to whole blocks); default: what the tree needs plus headroom. */
  sizeBytes?: number;
  /** Makes the UUID and the directory hash seed reproducible; without it they are random. */
  seed?: string;
  /** Volume label (at most 16 bytes). */
  label?: string;
  /** SOURCE_DATE_EPOCH: the filesystem's own times (superblock, lost+found, journal, crtimes); default now. */
  timestamp?: number;
}

export interface Ext4Plan {
  sizeBytes: number;
  uuid: string;
  blockSize: number;
  /** Extents relative to the filesystem's start, ascending; holes omitted. Each call is a new pass over the tree. */
  extents(): ExtentSource;
}

const BLOCKS_PER_GROUP = BLOCK * 8;
const DESC_SIZE = 64;
const INODES_PER_BLOCK = BLOCK / INODE_SIZE;
const ROOT_INO = 2;
const JOURNAL_INO = 8;
const LOST_FOUND_INO = 11;
const FIRST_INO = 11;
const LOST_FOUND_BLOCKS = 4; // mke2fs grows lost+found to 16 KiB
const INODE_RATIO = 16384;
const MiB = 1024 * 1024;
const ZEROS = Buffer.alloc(BLOCK);
const MAX_BATCH = MiB;

const COMPAT = { HAS_JOURNAL: 0x4, EXT_ATTR: 0x8, DIR_INDEX: 0x20 };
const INCOMPAT = { FILETYPE: 0x2, EXTENTS: 0x40, BIT64: 0x80 };
const RO_COMPAT = { SPARSE_SUPER: 0x1, LARGE_FILE: 0x2, HUGE_FILE: 0x8, DIR_NLINK: 0x20, EXTRA_ISIZE: 0x40, METADATA_CSUM: 0x400 };
const BG_INODE_ZEROED = 0x4;

const TYPE_MODE: Record<TreeNode['type'], number> = { file: 0x8000, dir: 0x4000, symlink: 0xa000, char: 0x2000, block: 0x6000, fifo: 0x1000, socket: 0xc000 };

/** One inode to write: its metadata, and where its blocks went once allocated. */
interface InodeRec {
  ino: number;
  node: TreeNode;
  /** Index into tree.nodes (-1 for lost+found and a root the tree lacks). */
  index: number;
  links: number;
  subdirs: number;
  entries: DirEntry[];
  parent: number;
  xattrs: XattrEntry[];
  xattrInBlock: boolean;
  /** Filled by allocation. */
  fields?: InodeFields;
  /** Regular files: logical block ranges with data, merged. */
  logical?: Array<{ start: number; count: number }>;
  extents?: Extent4[];
}

function isPowerOf(n: number, base: number): boolean {
  while (n > 1 && n % base === 0) n /= base;
  return n === 1;
}
const hasSuper = (g: number): boolean => g <= 1 || isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);

/** ext2fs_default_journal_size (e2fsprogs 1.47), in blocks. */
function journalBlocksFor(blocks: number): number {
  if (blocks < 32768) return 1024;
  if (blocks < 256 * 1024) return 4096;
  if (blocks < 512 * 1024) return 8192;
  if (blocks < 4096 * 1024) return 16384;
  if (blocks < 8192 * 1024) return 32768;
  if (blocks < 16384 * 1024) return 65536;
  if (blocks < 32768 * 1024) return 131072;
  return 262144;
}

interface Geometry {
  blocks: number;
  groups: number;
  inodesPerGroup: number;
  inodeTableBlocks: number;
  gdtBlocks: number;
  journalBlocks: number;
}

const groupStart = (g: number): number => g * BLOCKS_PER_GROUP;
const superBlocks = (geo: Geometry, g: number): number => (hasSuper(g) ? 1 + geo.gdtBlocks : 0);
const groupEnd = (geo: Geometry, g: number): number => Math.min(geo.blocks, groupStart(g + 1));
/** Where group g's bitmaps and inode table sit. */
const blockBitmapAt = (geo: Geometry, g: number): number => groupStart(g) + superBlocks(geo, g);
const overhead = (geo: Geometry, g: number): number => superBlocks(geo, g) + 2 + geo.inodeTableBlocks;

/** The geometry of a `blocks`-block filesystem holding `inodesNeeded` inodes, or why not. */
function geometry(blocks: number, inodesNeeded: number): Geometry | string {
  let groups = Math.ceil(blocks / BLOCKS_PER_GROUP);
  const want = Math.max(Math.ceil((blocks * BLOCK) / INODE_RATIO), Math.ceil(inodesNeeded * 1.2) + 256);
  const build = (): Geometry => {
    let ipg = Math.ceil(want / groups / INODES_PER_BLOCK) * INODES_PER_BLOCK;
    ipg = Math.min(ipg, BLOCKS_PER_GROUP); // a group's inode bitmap is one block
    return { blocks, groups, inodesPerGroup: ipg, inodeTableBlocks: ipg / INODES_PER_BLOCK, gdtBlocks: Math.ceil((groups * DESC_SIZE) / BLOCK), journalBlocks: journalBlocksFor(blocks) };
  };
  let geo = build();
  // A last group too small for its own metadata is dropped, as mke2fs does.
  const lastSize = blocks - groupStart(groups - 1);
  if (groups > 1 && lastSize < overhead(geo, groups - 1) + 50) {
    blocks = groupStart(groups - 1);
    groups--;
    geo = build();
  }
  if (geo.inodesPerGroup * groups < inodesNeeded) return `${inodesNeeded} inodes (at most ${geo.inodesPerGroup * groups} fit)`;
  if (blocks - groupStart(groups - 1) < overhead(geo, groups - 1) + 1) return 'room for its group metadata';
  return geo;
}

/** Sequential block allocation that steps over each group's metadata. */
class Allocator {
  next: number;
  constructor(readonly geo: Geometry) {
    this.next = overhead(geo, 0);
  }
  /** `count` blocks as runs, each within one group; null when the filesystem is full. */
  runs(count: number): Array<{ pblk: number; count: number }> | null {
    const out: Array<{ pblk: number; count: number }> = [];
    while (count > 0) {
      const g = Math.floor(this.next / BLOCKS_PER_GROUP);
      if (g >= this.geo.groups) return null;
      const dataStart = groupStart(g) + overhead(this.geo, g);
      if (this.next < dataStart) this.next = dataStart;
      const room = groupEnd(this.geo, g) - this.next;
      if (room <= 0) {
        this.next = groupStart(g + 1);
        continue;
      }
      const take = Math.min(room, count);
      const last = out[out.length - 1];
      if (last && last.pblk + last.count === this.next) last.count += take;
      else out.push({ pblk: this.next, count: take });
      this.next += take;
      count -= take;
    }
    return out;
  }
}

class Full extends Error {}

const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const parentOf = (p: string): string => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');

/** The inodes of the tree: numbers in node order, directory entries, link counts. */
function inodesOf(tree: FileTree, timestamp: number): { recs: InodeRec[]; byIndex: Int32Array } {
  const where = (n: TreeNode): string => `${tree.name}: /${n.path}`;
  const recs: InodeRec[] = [];
  const byPath = new Map<string, InodeRec>();
  const byIndex = new Int32Array(tree.nodes.length).fill(-1);
  const fsDir = (path: string, mode: number): TreeNode => ({ path, type: 'dir', mode, uid: 0, gid: 0, mtime: timestamp, size: 0 });
  const add = (ino: number, node: TreeNode, index: number): InodeRec => {
    const rec: InodeRec = { ino, node, index, links: 1, subdirs: 0, entries: [], parent: ROOT_INO, xattrs: node.xattrs ? xattrEntries(node.xattrs, where(node)) : [], xattrInBlock: false };
    recs[ino] = rec;
    byPath.set(node.path, rec);
    if (index >= 0) byIndex[index] = ino;
    return rec;
  };
  const rootIndex = tree.nodes.findIndex((n) => n.path === '');
  if (rootIndex >= 0 && tree.nodes[rootIndex]!.type !== 'dir') throw new ToolError('ROOTFS_TREE', `${tree.name}: the root is a ${tree.nodes[rootIndex]!.type}, not a directory`);
  add(ROOT_INO, rootIndex >= 0 ? tree.nodes[rootIndex]! : fsDir('', 0o755), rootIndex);
  const lfIndex = tree.nodes.findIndex((n) => n.path === 'lost+found');
  if (lfIndex >= 0 && (tree.nodes[lfIndex]!.type !== 'dir' || tree.nodes[lfIndex]!.linkTo !== undefined)) {
    throw new ToolError('ROOTFS_TREE', `${tree.name}: /lost+found is a ${tree.nodes[lfIndex]!.linkTo !== undefined ? 'hard link' : tree.nodes[lfIndex]!.type}; ext4 keeps a directory there (inode 11, for e2fsck)`);
  }
  add(LOST_FOUND_INO, lfIndex >= 0 ? tree.nodes[lfIndex]! : fsDir('lost+found', 0o700), lfIndex);
  if (lfIndex < 0) {
    // The tree has none: make it as mke2fs does (root's, 0700).
    byPath.get('')!.entries.push({ name: Buffer.from('lost+found'), ino: LOST_FOUND_INO, fileType: FT.dir });
    byPath.get('')!.subdirs++;
  }

  let nextIno = FIRST_INO + 1;
  tree.nodes.forEach((node, index) => {
    if (node.path === '') return;
    if (byPath.has(node.path) && index !== lfIndex) throw new ToolError('ROOTFS_TREE', `${where(node)}: the path is in the tree twice`);
    const name = Buffer.from(basename(node.path));
    if (name.length > 255) throw new ToolError('ROOTFS_TREE', `${where(node)}: the name is ${name.length} bytes long; ext4 names are at most 255`);
    const parent = byPath.get(parentOf(node.path));
    if (!parent || parent.node.type !== 'dir') throw new ToolError('ROOTFS_TREE', `${where(node)}: its parent directory /${parentOf(node.path)} is not in the tree before it`);
    let rec: InodeRec;
    if (node.linkTo !== undefined) {
      const target = byPath.get(node.linkTo);
      if (!target || target.node.type === 'dir') throw new ToolError('ROOTFS_TREE', `${where(node)}: a hard link to ${target ? 'a directory' : 'nothing earlier in the tree'} (/${node.linkTo})`);
      // Linux's EXT4_LINK_MAX: link() refuses more, and i_links_count is 16 bits.
      if (++target.links > 65000) throw new ToolError('ROOTFS_TREE', `${where(node)}: more than 65000 hard links to /${target.node.path}`);
      rec = target;
      byIndex[index] = target.ino;
      byPath.set(node.path, target);
    } else {
      rec = index === lfIndex ? recs[LOST_FOUND_INO]! : add(nextIno++, node, index);
      if (node.type === 'dir') {
        rec.parent = parent.ino;
        parent.subdirs++;
      }
    }
    parent.entries.push({ name, ino: rec.ino, fileType: FT[rec.node.type] });
  });
  return { recs, byIndex };
}

/** Merged logical block ranges of a regular file's data. */
function logicalRanges(node: TreeNode, where: string): Array<{ start: number; count: number }> {
  const ranges = node.dataRanges ?? (node.size > 0 ? [{ offset: 0, length: node.size }] : []);
  const out: Array<{ start: number; count: number }> = [];
  let prevEnd = 0;
  for (const r of ranges) {
    if (r.length === 0) continue;
    if (r.offset < prevEnd || r.offset + r.length > node.size) throw new ToolError('ROOTFS_TREE', `${where}: data ranges overlap or run past the file's ${node.size} bytes`);
    prevEnd = r.offset + r.length;
    const start = Math.floor(r.offset / BLOCK);
    const end = Math.ceil((r.offset + r.length) / BLOCK);
    const last = out[out.length - 1];
    if (last && last.start + last.count >= start) last.count = Math.max(last.count, end - last.start);
    else out.push({ start, count: end - start });
  }
  if (Math.ceil(node.size / BLOCK) > 0xffffffff) throw new ToolError('ROOTFS_TREE', `${where}: ${node.size} bytes is more than ext4's 16 TiB per file`);
  return out;
}

/** Logical ranges laid on physical runs: extents, none longer than 32768 blocks. */
function zipExtents(logical: Array<{ start: number; count: number }>, physical: Array<{ pblk: number; count: number }>): Extent4[] {
  const out: Extent4[] = [];
  let j = 0;
  let used = 0; // blocks of physical[j] already taken
  for (const l of logical) {
    let lblk = l.start;
    let left = l.count;
    while (left > 0) {
      const p = physical[j]!;
      const take = Math.min(left, p.count - used, EXTENT_MAX_LEN);
      const pblk = p.pblk + used;
      const prev = out[out.length - 1];
      if (prev && prev.lblk + prev.len === lblk && prev.pblk + prev.len === pblk && prev.len + take <= EXTENT_MAX_LEN) prev.len += take;
      else out.push({ lblk, pblk, len: take });
      lblk += take;
      left -= take;
      used += take;
      if (used === p.count) {
        j++;
        used = 0;
      }
    }
  }
  return out;
}

const expectedBytes = (r: InodeRec): number => (r.node.dataRanges ?? [{ offset: 0, length: r.node.size }]).reduce((s, x) => s + x.length, 0);

/** Blocks the tree needs apart from group metadata and the journal (an upper bound on extent nodes). */
function dataDemand(recs: InodeRec[], dirBlocks: Map<number, Buffer[]>): number {
  let blocks = 0;
  for (const rec of recs) {
    if (!rec) continue;
    if (rec.xattrInBlock) blocks++;
    if (rec.node.type === 'dir') blocks += dirBlocks.get(rec.ino)!.length + 1;
    else if (rec.node.type === 'symlink' && Buffer.byteLength(rec.node.target ?? '') >= 60) blocks++;
    else if (rec.logical) {
      const n = rec.logical.reduce((s, r) => s + r.count, 0);
      const extents = rec.logical.length + Math.ceil(n / (BLOCKS_PER_GROUP - 1024)) * 2;
      blocks += n + (extents > 4 ? Math.ceil(extents / EXTENTS_PER_BLOCK) * 2 : 0);
    }
  }
  return blocks;
}

const totalOverhead = (geo: Geometry): number => {
  let n = 0;
  for (let g = 0; g < geo.groups; g++) n += overhead(geo, g);
  return n;
};

function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function derived(seed: string | undefined, what: string): Buffer {
  return seed === undefined ? randomBytes(16) : createHash('sha256').update(`fsmaker ext4 ${what}\0${seed}`).digest().subarray(0, 16);
}

/** Everything allocated: where each inode's blocks are, the metadata blocks' bytes. */
interface Layout {
  geo: Geometry;
  /** Blocks holding metadata other than group headers (directories, xattrs, symlinks, extent nodes, journal superblock), ascending. */
  metaBlocks: Array<{ pblk: number; data: Buffer }>;
  /** End of the allocated blocks (all blocks before it, outside group metadata, are in use). */
  allocatedEnd: number;
  journalExtents: Extent4[];
  journalRoot: Buffer;
  journalNodeBlocks: number;
}

function allocate(geo: Geometry, recs: InodeRec[], dirBlocks: Map<number, Buffer[]>, fsSeed: number, now: number): Layout {
  const alloc = new Allocator(geo);
  const metaBlocks: Layout['metaBlocks'] = [];
  const runs = (n: number): Array<{ pblk: number; count: number }> => {
    const r = alloc.runs(n);
    if (!r) throw new Full();
    return r;
  };
  const singles = (n: number): number[] => runs(n).flatMap((r) => Array.from({ length: r.count }, (_, i) => r.pblk + i));
  const seedOf = (ino: number): number => inodeChecksumSeed(fsSeed, ino, 0);
  const treeFor = (ino: number, logical: Array<{ start: number; count: number }>, physical: Array<{ pblk: number; count: number }>): { root: Buffer; extents: Extent4[]; nodeBlocks: number } => {
    const extents = zipExtents(logical, physical);
    const t = buildExtentTree(extents, singles, seedOf(ino));
    metaBlocks.push(...t.blocks);
    return { root: t.root, extents, nodeBlocks: t.blocks.length };
  };

  // Metadata first (directories, xattr blocks, slow symlinks), in inode order, then the journal,
  // then file data in node order: the contents pass then writes forward only.
  for (const rec of recs) {
    if (!rec) continue;
    const n = rec.node;
    const base: InodeFields = {
      mode: TYPE_MODE[n.type] | (n.mode & 0o7777),
      uid: n.uid,
      gid: n.gid,
      size: 0,
      links: rec.links,
      sectors: 0,
      flags: 0,
      iBlock: Buffer.alloc(60),
      atime: n.atime ?? n.mtime,
      ctime: n.ctime ?? n.mtime,
      mtime: n.mtime,
      crtime: now,
      fileAcl: 0,
    };
    if (rec.xattrInBlock) {
      const [pblk] = singles(1);
      metaBlocks.push({ pblk: pblk!, data: xattrBlock(rec.xattrs, pblk!, fsSeed) });
      base.fileAcl = pblk!;
      base.sectors += BLOCK / 512;
    } else if (rec.xattrs.length > 0) {
      base.inlineXattrs = rec.xattrs;
    }
    if (n.type === 'dir') {
      const blocks = dirBlocks.get(rec.ino)!;
      const physical = runs(blocks.length);
      let k = 0;
      for (const r of physical) for (let i = 0; i < r.count; i++) metaBlocks.push({ pblk: r.pblk + i, data: blocks[k++]! });
      for (const b of blocks) sealDirectoryBlock(b, seedOf(rec.ino));
      const t = treeFor(rec.ino, [{ start: 0, count: blocks.length }], physical);
      base.links = rec.subdirs + 2 > 65000 ? 1 : rec.subdirs + 2; // dir_nlink: 1 means "many"
      base.size = blocks.length * BLOCK;
      base.flags = FL_EXTENTS;
      base.iBlock = t.root;
      base.sectors += (blocks.length + t.nodeBlocks) * (BLOCK / 512);
    } else if (n.type === 'symlink') {
      const target = Buffer.from(n.target ?? '');
      base.size = target.length;
      if (target.length < 60) {
        target.copy(base.iBlock); // a fast symlink: the target in i_block
      } else {
        const physical = runs(1);
        const data = Buffer.alloc(BLOCK);
        target.copy(data);
        metaBlocks.push({ pblk: physical[0]!.pblk, data });
        const t = treeFor(rec.ino, [{ start: 0, count: 1 }], physical);
        base.flags = FL_EXTENTS;
        base.iBlock = t.root;
        base.sectors += (1 + t.nodeBlocks) * (BLOCK / 512);
      }
    } else if (n.type === 'char' || n.type === 'block') {
      const { major, minor } = n.rdev ?? { major: 0, minor: 0 };
      // The kernel's encoding: old (8:8 bits in i_block[0]) when it fits, else new in i_block[1].
      if (major < 256 && minor < 256) base.iBlock.writeUInt32LE((major << 8) | minor, 0);
      else base.iBlock.writeUInt32LE(((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0, 4);
    } else if (n.type === 'file') {
      base.size = n.size;
      base.flags = FL_EXTENTS;
    }
    rec.fields = base;
  }

  const journalPhysical = runs(geo.journalBlocks);
  const journalExtents = zipExtents([{ start: 0, count: geo.journalBlocks }], journalPhysical);
  const journalTree = buildExtentTree(journalExtents, singles, seedOf(JOURNAL_INO));
  const journalFirst = Buffer.alloc(BLOCK);
  metaBlocks.push({ pblk: journalPhysical[0]!.pblk, data: journalFirst }); // filled once the UUID is known
  metaBlocks.push(...journalTree.blocks);

  for (const rec of recs) {
    if (!rec || !rec.logical) continue;
    const count = rec.logical.reduce((s, r) => s + r.count, 0);
    const f = rec.fields!;
    if (count === 0) {
      f.iBlock = buildExtentTree([], singles, 0).root;
      continue;
    }
    const t = treeFor(rec.ino, rec.logical, runs(count));
    rec.extents = t.extents;
    f.iBlock = t.root;
    f.sectors += (count + t.nodeBlocks) * (BLOCK / 512);
  }
  metaBlocks.sort((a, b) => a.pblk - b.pblk);
  return { geo, metaBlocks, allocatedEnd: alloc.next, journalExtents, journalRoot: journalTree.root, journalNodeBlocks: journalTree.blocks.length };
}

/** Blocks in use in group g (its metadata, then allocated blocks from its data start). */
function usedInGroup(layout: Layout, g: number): number {
  const { geo } = layout;
  const dataStart = groupStart(g) + overhead(geo, g);
  return overhead(geo, g) + Math.max(0, Math.min(groupEnd(geo, g), layout.allocatedEnd) - dataStart);
}

function bitmaps(layout: Layout, lastIno: number, g: number): { block: Buffer; inode: Buffer; inodesUsed: number } {
  const { geo } = layout;
  const setBits = (b: Buffer, from: number, to: number): void => {
    for (let i = from; i < to; ) {
      if (i % 8 === 0 && i + 8 <= to) {
        const bytes = Math.floor((to - i) / 8);
        b.fill(0xff, i / 8, i / 8 + bytes);
        i += bytes * 8;
      } else {
        b[i >> 3] = b[i >> 3]! | (1 << (i & 7));
        i++;
      }
    }
  };
  const block = Buffer.alloc(BLOCK);
  setBits(block, 0, usedInGroup(layout, g));
  setBits(block, groupEnd(geo, g) - groupStart(g), BLOCKS_PER_GROUP); // past the end of a short last group
  const inode = Buffer.alloc(BLOCK);
  const inodesUsed = Math.max(0, Math.min(geo.inodesPerGroup, lastIno - g * geo.inodesPerGroup));
  setBits(inode, 0, inodesUsed);
  setBits(inode, geo.inodesPerGroup, BLOCK * 8); // padding
  return { block, inode, inodesUsed };
}

export async function planExt4(options: Ext4WriterOptions): Promise<Ext4Plan> {
  const { tree } = options;
  const now = options.timestamp ?? Date.now() / 1000;
  const label = Buffer.from(options.label ?? '');
  if (label.length > 16) throw new ToolError('ROOTFS_TREE', `the ext4 label ${JSON.stringify(options.label)} is ${label.length} bytes; at most 16 fit`);
  const uuid = derived(options.seed, 'uuid');
  uuid[6] = (uuid[6]! & 0x0f) | 0x40; // an RFC 4122 version 4 UUID, as mke2fs makes
  uuid[8] = (uuid[8]! & 0x3f) | 0x80;
  const hashSeed = derived(options.seed, 'hash seed');
  const fsSeed = crc32c(0xffffffff, uuid);

  const { recs, byIndex } = inodesOf(tree, now);
  const lastIno = recs.length - 1;
  const dirBlocks = new Map<number, Buffer[]>();
  for (const rec of recs) {
    if (!rec) continue;
    const where = `${tree.name}: /${rec.node.path}`;
    if (rec.xattrs.length > 0 && xattrBytes(rec.xattrs) > IN_INODE_XATTR_ROOM) {
      if (xattrBytes(rec.xattrs) > BLOCK_XATTR_ROOM) throw new ToolError('ROOTFS_TREE', `${where}: its extended attributes take ${xattrBytes(rec.xattrs)} bytes; one ${BLOCK}-byte xattr block holds ${BLOCK_XATTR_ROOM}`);
      rec.xattrInBlock = true;
    }
    if (rec.node.type === 'dir') dirBlocks.set(rec.ino, directoryBlocks(rec.ino, rec.parent, rec.entries, rec.ino === LOST_FOUND_INO ? LOST_FOUND_BLOCKS : 1));
    if (rec.node.type === 'symlink' && Buffer.byteLength(rec.node.target ?? '') >= BLOCK) throw new ToolError('ROOTFS_TREE', `${where}: the link target is ${Buffer.byteLength(rec.node.target ?? '')} bytes; at most ${BLOCK - 1}`);
    if (rec.node.type === 'file') rec.logical = logicalRanges(rec.node, where);
  }
  const demand = dataDemand(recs, dirBlocks);

  /** The smallest geometry that holds the tree (for the message when sizeBytes is too small). */
  const minimal = (): Geometry => {
    let blocks = demand + 1024;
    for (;;) {
      const geo = geometry(blocks, lastIno);
      if (typeof geo !== 'string') {
        const need = demand + totalOverhead(geo) + geo.journalBlocks;
        if (need <= geo.blocks) return geo;
        blocks = Math.max(blocks + 256, need + 64);
      } else blocks = Math.ceil(blocks * 1.1) + 256;
    }
  };

  let geo: Geometry;
  if (options.sizeBytes !== undefined) {
    const blocks = Math.floor(options.sizeBytes / BLOCK);
    const g = blocks >= 2048 ? geometry(blocks, lastIno) : 'room for its metadata and journal';
    const tooSmall = (why: string): ToolError => {
      const need = minimal().blocks * BLOCK;
      return new ToolError('ROOTFS_TOO_LARGE', `${tree.name} does not fit in an ext4 filesystem of ${options.sizeBytes} bytes (${why}): it needs at least ${need} bytes (${Math.ceil(need / MiB)} MiB)`);
    };
    if (typeof g === 'string') throw tooSmall(`no ${g}`);
    geo = g;
    if (demand + totalOverhead(geo) + geo.journalBlocks > geo.blocks) throw tooSmall(`${demand} blocks of data and directories, ${geo.journalBlocks} of journal`);
  } else {
    const min = minimal();
    const used = demand + totalOverhead(min) + min.journalBlocks;
    let blocks = Math.ceil((used * 1.2 + (64 * MiB) / BLOCK) / (MiB / BLOCK)) * (MiB / BLOCK);
    let g = geometry(blocks, lastIno);
    while (typeof g === 'string' || demand + totalOverhead(g) + g.journalBlocks > g.blocks) {
      blocks += 8 * (MiB / BLOCK);
      g = geometry(blocks, lastIno);
    }
    geo = g;
  }

  let layout: Layout;
  try {
    layout = allocate(geo, recs, dirBlocks, fsSeed, now);
  } catch (err) {
    if (err instanceof Full) throw new ToolError('ROOTFS_TOO_LARGE', `${tree.name} does not fit in an ext4 filesystem of ${geo.blocks * BLOCK} bytes`);
    throw err;
  }
  const sizeBytes = options.sizeBytes ?? geo.blocks * BLOCK;

  // The journal's superblock, and inode 8.
  const journalStart = layout.journalExtents[0]!.pblk;
  journalSuperblock(geo.journalBlocks, uuid).copy(layout.metaBlocks.find((m) => m.pblk === journalStart)!.data);
  const journalFields: InodeFields = {
    mode: 0x8000 | 0o600,
    uid: 0,
    gid: 0,
    size: geo.journalBlocks * BLOCK,
    links: 1,
    sectors: (geo.journalBlocks + layout.journalNodeBlocks) * (BLOCK / 512),
    flags: FL_EXTENTS,
    iBlock: layout.journalRoot,
    atime: now,
    ctime: now,
    mtime: now,
    crtime: now,
    fileAcl: 0,
  };

  // Group descriptors (with their bitmaps' checksums) and the superblock.
  const gdt = Buffer.alloc(geo.gdtBlocks * BLOCK);
  let freeBlocks = 0;
  const dirsPerGroup = new Array<number>(geo.groups).fill(0);
  for (const rec of recs) if (rec && rec.node.type === 'dir') dirsPerGroup[Math.floor((rec.ino - 1) / geo.inodesPerGroup)]!++;
  for (let g = 0; g < geo.groups; g++) {
    const d = gdt.subarray(g * DESC_SIZE, (g + 1) * DESC_SIZE);
    const bm = bitmaps(layout, lastIno, g);
    const free = groupEnd(geo, g) - groupStart(g) - usedInGroup(layout, g);
    freeBlocks += free;
    const freeInodes = geo.inodesPerGroup - bm.inodesUsed;
    const bb = blockBitmapAt(geo, g);
    const put = (lo: number, hi: number, v: number, bits: 16 | 32): void => {
      const span = bits === 16 ? 0x10000 : 0x1_0000_0000;
      if (bits === 16) d.writeUInt16LE(v % span, lo);
      else d.writeUInt32LE(v % span, lo);
      if (bits === 16) d.writeUInt16LE(Math.floor(v / span), hi);
      else d.writeUInt32LE(Math.floor(v / span), hi);
    };
    put(0x00, 0x20, bb, 32);
    put(0x04, 0x24, bb + 1, 32);
    put(0x08, 0x28, bb + 2, 32);
    put(0x0c, 0x2c, free, 16);
    put(0x0e, 0x2e, freeInodes, 16);
    put(0x10, 0x30, dirsPerGroup[g]!, 16);
    d.writeUInt16LE(BG_INODE_ZEROED, 0x12);
    const blockSum = crc32c(fsSeed, bm.block);
    const inodeSum = crc32c(fsSeed, bm.inode.subarray(0, geo.inodesPerGroup / 8));
    d.writeUInt16LE(blockSum & 0xffff, 0x18);
    d.writeUInt16LE(inodeSum & 0xffff, 0x1a);
    d.writeUInt16LE(blockSum >>> 16, 0x38);
    d.writeUInt16LE(inodeSum >>> 16, 0x3a);
    put(0x1c, 0x32, freeInodes, 16); // itable_unused: every inode after the used ones
    d.writeUInt16LE(groupDescChecksum(d, g, true, fsSeed, uuid), 0x1e);
  }

  const sb = Buffer.alloc(1024);
  const t = Math.floor(now) >>> 0;
  sb.writeUInt32LE(geo.inodesPerGroup * geo.groups, 0x00);
  sb.writeUInt32LE(geo.blocks >>> 0, 0x04);
  const reserved = Math.floor(geo.blocks * 0.05);
  sb.writeUInt32LE(reserved >>> 0, 0x08);
  sb.writeUInt32LE(freeBlocks >>> 0, 0x0c);
  sb.writeUInt32LE(geo.inodesPerGroup * geo.groups - lastIno, 0x10);
  sb.writeUInt32LE(0, 0x14); // s_first_data_block: 0 with 4 KiB blocks
  sb.writeUInt32LE(2, 0x18); // log2(4096) - 10
  sb.writeUInt32LE(2, 0x1c);
  sb.writeUInt32LE(BLOCKS_PER_GROUP, 0x20);
  sb.writeUInt32LE(BLOCKS_PER_GROUP, 0x24);
  sb.writeUInt32LE(geo.inodesPerGroup, 0x28);
  sb.writeUInt32LE(t, 0x30); // s_wtime
  sb.writeUInt16LE(0xffff, 0x36); // s_max_mnt_count -1: no mount-count checks
  sb.writeUInt16LE(0xef53, 0x38);
  sb.writeUInt16LE(1, 0x3a); // clean
  sb.writeUInt16LE(1, 0x3c); // errors: continue
  sb.writeUInt32LE(t, 0x40); // s_lastcheck
  sb.writeUInt32LE(1, 0x4c); // dynamic revision
  sb.writeUInt32LE(FIRST_INO, 0x54);
  sb.writeUInt16LE(INODE_SIZE, 0x58);
  sb.writeUInt32LE(COMPAT.HAS_JOURNAL | COMPAT.EXT_ATTR | COMPAT.DIR_INDEX, 0x5c);
  sb.writeUInt32LE(INCOMPAT.FILETYPE | INCOMPAT.EXTENTS | INCOMPAT.BIT64, 0x60);
  sb.writeUInt32LE(RO_COMPAT.SPARSE_SUPER | RO_COMPAT.LARGE_FILE | RO_COMPAT.HUGE_FILE | RO_COMPAT.DIR_NLINK | RO_COMPAT.EXTRA_ISIZE | RO_COMPAT.METADATA_CSUM, 0x64);
  uuid.copy(sb, 0x68);
  label.copy(sb, 0x78);
  sb.writeUInt32LE(JOURNAL_INO, 0xe0);
  hashSeed.copy(sb, 0xec);
  sb[0xfc] = 1; // s_def_hash_version: half_md4, as mke2fs
  sb[0xfd] = 1; // s_jnl_backup_type: i_block copied into s_jnl_blocks
  sb.writeUInt16LE(DESC_SIZE, 0xfe);
  sb.writeUInt32LE(0x0c, 0x100); // default mount options user_xattr,acl (mke2fs)
  sb.writeUInt32LE(t, 0x108); // s_mkfs_time
  for (let i = 0; i < 15; i++) sb.writeUInt32LE(layout.journalRoot.readUInt32LE(i * 4), 0x10c + i * 4);
  sb.writeUInt32LE(Math.floor(journalFields.size / 0x1_0000_0000), 0x10c + 15 * 4);
  sb.writeUInt32LE(journalFields.size >>> 0, 0x10c + 16 * 4);
  sb.writeUInt32LE(Math.floor(geo.blocks / 0x1_0000_0000), 0x150);
  sb.writeUInt32LE(Math.floor(reserved / 0x1_0000_0000), 0x154);
  sb.writeUInt32LE(Math.floor(freeBlocks / 0x1_0000_0000), 0x158);
  sb.writeUInt16LE(EXTRA_ISIZE, 0x15c);
  sb.writeUInt16LE(EXTRA_ISIZE, 0x15e);
  sb.writeUInt32LE(1, 0x160); // s_flags: signed directory hash (x86's char)
  sb[0x175] = 1; // crc32c
  if (fsChecksumSeed(sb, false) !== fsSeed) throw new Error('ext4 writer bug: checksum seed');
  const superblockFor = (g: number): Buffer => {
    const copy = Buffer.from(sb);
    copy.writeUInt16LE(g, 0x5a); // s_block_group_nr
    copy.writeUInt32LE(superblockChecksum(copy), 0x3fc);
    return copy;
  };

  const inodeBytes = (ino: number): Buffer | null => {
    if (ino === JOURNAL_INO) return encodeInode(journalFields, ino, fsSeed);
    const rec = recs[ino];
    return rec ? encodeInode(rec.fields!, ino, fsSeed) : null;
  };

  /** Group g's header: superblock and descriptor copies, bitmaps, the used part of the inode table. */
  const groupHeader = (g: number): Buffer => {
    const parts: Buffer[] = [];
    if (hasSuper(g)) {
      const first = Buffer.alloc(BLOCK);
      superblockFor(g).copy(first, g === 0 ? 1024 : 0);
      parts.push(first, gdt);
    }
    const bm = bitmaps(layout, lastIno, g);
    parts.push(bm.block, bm.inode);
    if (bm.inodesUsed > 0) {
      const table = Buffer.alloc(Math.ceil(bm.inodesUsed / INODES_PER_BLOCK) * BLOCK);
      for (let i = 0; i < bm.inodesUsed; i++) inodeBytes(g * geo.inodesPerGroup + i + 1)?.copy(table, i * INODE_SIZE);
      parts.push(table);
    }
    return Buffer.concat(parts);
  };

  async function* extents(): AsyncGenerator<Extent> {
    let pos = 0;
    /** Zeros from `pos` to `to` where they share a block with data; whole blocks between stay holes. */
    function* fillTo(to: number): Generator<Extent> {
      if (to < pos) throw new Error(`ext4 writer bug: extent at ${to} before ${pos}`);
      if (pos % BLOCK !== 0) {
        const head = Math.min(to, pos + BLOCK - (pos % BLOCK));
        yield { offset: pos, length: head - pos, data: ZEROS.subarray(0, head - pos) };
        pos = head;
      }
      const blockStart = to - (to % BLOCK);
      if (to % BLOCK !== 0 && blockStart >= pos) {
        yield { offset: blockStart, length: to - blockStart, data: ZEROS.subarray(0, to - blockStart) };
      }
      pos = to;
    }
    function* put(offset: number, data: Buffer): Generator<Extent> {
      yield* fillTo(offset);
      yield { offset, length: data.length, data };
      pos = offset + data.length;
    }
    // In-memory pieces (group headers, metadata blocks) in block order, batched when adjacent.
    let nextGroup = 0;
    let nextMeta = 0;
    const metas = layout.metaBlocks;
    function* flushBefore(block: number): Generator<Extent> {
      for (;;) {
        const groupAt = nextGroup < geo.groups ? groupStart(nextGroup) : Infinity;
        const metaAt = nextMeta < metas.length ? metas[nextMeta]!.pblk : Infinity;
        if (Math.min(groupAt, metaAt) >= block) return;
        if (groupAt < metaAt) {
          yield* put(groupAt * BLOCK, groupHeader(nextGroup));
          nextGroup++;
          continue;
        }
        const batch: Buffer[] = [metas[nextMeta]!.data];
        let end = metaAt + 1;
        nextMeta++;
        while (nextMeta < metas.length && metas[nextMeta]!.pblk === end && end < block && end !== groupStart(nextGroup) && batch.length < MAX_BATCH / BLOCK) {
          batch.push(metas[nextMeta]!.data);
          end++;
          nextMeta++;
        }
        yield* put(metaAt * BLOCK, batch.length === 1 ? batch[0]! : Buffer.concat(batch));
      }
    }

    // The files whose bytes the contents pass must give, in its order.
    const withData = recs.filter((r) => r && r.extents && r.extents.length > 0 && expectedBytes(r) > 0).sort((a, b) => a.index - b.index);
    let next = 0;
    let current = -1;
    let rec: InodeRec | undefined;
    let k = 0;
    let bytes = 0;
    let fileEnd = 0; // where the file's previous chunk ended
    const finishFile = (): void => {
      if (rec && bytes !== expectedBytes(rec)) throw new ToolError('ROOTFS_TREE', `${tree.name}: /${rec.node.path}: the contents pass gave ${bytes} bytes where the tree said ${expectedBytes(rec)}`);
    };
    for await (const chunk of tree.contents()) {
      if (chunk.node !== current) {
        finishFile();
        rec = withData[next++];
        if (!rec || rec.index !== chunk.node) {
          throw new ToolError('ROOTFS_TREE', `${tree.name}: the contents pass gave bytes for node ${chunk.node} where ${rec ? `/${rec.node.path} (node ${rec.index})` : 'no more'} was expected`);
        }
        current = chunk.node;
        k = 0;
        bytes = 0;
        fileEnd = 0;
      }
      const ext = rec!.extents!;
      let offset = chunk.offset;
      let data = chunk.data;
      if (offset < fileEnd) throw new ToolError('ROOTFS_TREE', `${tree.name}: /${rec!.node.path}: the contents pass gave bytes at ${offset} after bytes up to ${fileEnd} (chunks out of order)`);
      fileEnd = offset + data.length;
      bytes += data.length;
      while (data.length > 0) {
        const lblk = Math.floor(offset / BLOCK);
        while (k < ext.length && ext[k]!.lblk + ext[k]!.len <= lblk) k++;
        const e = ext[k];
        if (!e || lblk < e.lblk || offset + data.length > rec!.node.size) {
          throw new ToolError('ROOTFS_TREE', `${tree.name}: /${rec!.node.path}: the contents pass gave bytes at ${offset}, outside the file's data ranges`);
        }
        const at = (e.pblk + lblk - e.lblk) * BLOCK + (offset % BLOCK);
        const take = Math.min(data.length, (e.lblk + e.len) * BLOCK - offset);
        yield* flushBefore(Math.floor(at / BLOCK) + 1);
        yield* put(at, take === data.length ? data : data.subarray(0, take));
        data = data.subarray(take);
        offset += take;
      }
    }
    finishFile();
    if (next < withData.length) throw new ToolError('ROOTFS_TREE', `${tree.name}: /${withData[next]!.node.path}: the contents pass ended without its bytes`);
    yield* flushBefore(Infinity);
    if (pos % BLOCK !== 0) yield* fillTo(pos + BLOCK - (pos % BLOCK));
  }

  return { sizeBytes, uuid: uuidText(uuid), blockSize: BLOCK, extents };
}
