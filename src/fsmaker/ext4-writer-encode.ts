/**
 * The on-disk structures the ext4 writer produces (pure): inodes, extent tree nodes, linear
 * directory blocks, extended attributes (in-inode and block), the superblock, group descriptors
 * and the jbd2 journal superblock. Offsets from the kernel's Documentation/filesystems/ext4
 * (super.rst, group_descr.rst, inodes.rst, ifork.rst, directory.rst, attributes.rst) and
 * include/linux/jbd2.h; checksums from ext4-checksums.ts, which the reader shares.
 */
import { ToolError } from '../errors.js';
import { crc32c, dirLeafChecksum, extentNodeChecksum, inodeChecksum, inodeChecksumSeed } from './ext4-checksums.js';

export const BLOCK = 4096;
export const INODE_SIZE = 256;
/** i_extra_isize: every field up to i_projid (Linux's sizeof(ext4_inode) - 128). */
export const EXTRA_ISIZE = 32;
const IN_INODE_XATTR_AT = 128 + EXTRA_ISIZE;
const XATTR_MAGIC = 0xea020000;

export const FL_EXTENTS = 0x80000;
const EXTENT_MAGIC = 0xf30a;
/** Longest initialized extent (a length above it marks an unwritten one). */
export const EXTENT_MAX_LEN = 32768;
/** Entries of an extent node that fills a block: (4096 - 12-byte header - 4-byte tail) / 12. */
export const EXTENTS_PER_BLOCK = Math.floor((BLOCK - 12 - 4) / 12);
const DIR_TAIL = 12;

export const FT = { file: 1, dir: 2, char: 3, block: 4, fifo: 5, socket: 6, symlink: 7 } as const;

/** Seconds (with a fraction) as ext4 stores them: low 32 bits, and the extra word (epoch bits, nanoseconds). */
export function encodeTime(t: number): { lo: number; extra: number } {
  const sec = Math.floor(t);
  const nsec = Math.min(999_999_999, Math.round((t - sec) * 1e9));
  // The low word is signed (1901..2038); the two epoch bits extend it to 2446 (inodes.rst).
  const lo = sec | 0;
  const epoch = ((sec - lo) / 0x1_0000_0000) & 3;
  return { lo: lo >>> 0, extra: ((nsec << 2) | epoch) >>> 0 };
}

export interface Extent4 {
  lblk: number;
  pblk: number;
  len: number;
}

/** The 12-byte extent header. */
function header(b: Buffer, at: number, entries: number, max: number, depth: number): void {
  b.writeUInt16LE(EXTENT_MAGIC, at);
  b.writeUInt16LE(entries, at + 2);
  b.writeUInt16LE(max, at + 4);
  b.writeUInt16LE(depth, at + 6);
  b.writeUInt32LE(0, at + 8);
}

function leafEntry(b: Buffer, at: number, e: Extent4): void {
  b.writeUInt32LE(e.lblk, at);
  b.writeUInt16LE(e.len, at + 4);
  b.writeUInt16LE(Math.floor(e.pblk / 0x1_0000_0000), at + 6);
  b.writeUInt32LE(e.pblk >>> 0, at + 8);
}

function indexEntry(b: Buffer, at: number, lblk: number, pblk: number): void {
  b.writeUInt32LE(lblk, at);
  b.writeUInt32LE(pblk >>> 0, at + 4);
  b.writeUInt16LE(Math.floor(pblk / 0x1_0000_0000), at + 8);
  b.writeUInt16LE(0, at + 10);
}

/** An extent tree: the 60-byte root for i_block and the node blocks it needs (allocated by `alloc`). */
export interface ExtentTree {
  root: Buffer;
  blocks: Array<{ pblk: number; data: Buffer }>;
}

/**
 * Builds the tree of `extents` bottom-up: leaves of 340 extents, then index levels until the
 * root's four slots hold the top level. `alloc(n)` returns n block numbers for the nodes; the
 * node checksums start from `inodeSeed` (the owner's inode seed).
 */
export function buildExtentTree(extents: Extent4[], alloc: (n: number) => number[], inodeSeed: number): ExtentTree {
  const root = Buffer.alloc(60);
  if (extents.length <= 4) {
    header(root, 0, extents.length, 4, 0);
    extents.forEach((e, i) => leafEntry(root, 12 + i * 12, e));
    return { root, blocks: [] };
  }
  const blocks: Array<{ pblk: number; data: Buffer }> = [];
  let level: Array<{ lblk: number; pblk: number }> = [];
  const chunk = <T>(items: T[]): T[][] => {
    const out: T[][] = [];
    for (let i = 0; i < items.length; i += EXTENTS_PER_BLOCK) out.push(items.slice(i, i + EXTENTS_PER_BLOCK));
    return out;
  };
  const node = (depth: number, count: number, fill: (b: Buffer) => void, pblk: number): Buffer => {
    const b = Buffer.alloc(BLOCK);
    header(b, 0, count, EXTENTS_PER_BLOCK, depth);
    fill(b);
    const tail = 12 + EXTENTS_PER_BLOCK * 12;
    b.writeUInt32LE(extentNodeChecksum(b, tail, inodeSeed), tail);
    blocks.push({ pblk, data: b });
    return b;
  };
  const leaves = chunk(extents);
  const leafBlocks = alloc(leaves.length);
  leaves.forEach((group, i) => {
    node(0, group.length, (b) => group.forEach((e, k) => leafEntry(b, 12 + k * 12, e)), leafBlocks[i]!);
    level.push({ lblk: group[0]!.lblk, pblk: leafBlocks[i]! });
  });
  let depth = 1;
  while (level.length > 4) {
    const groups = chunk(level);
    const where = alloc(groups.length);
    const next: typeof level = [];
    groups.forEach((group, i) => {
      node(depth, group.length, (b) => group.forEach((e, k) => indexEntry(b, 12 + k * 12, e.lblk, e.pblk)), where[i]!);
      next.push({ lblk: group[0]!.lblk, pblk: where[i]! });
    });
    level = next;
    depth++;
  }
  header(root, 0, level.length, 4, depth);
  level.forEach((e, i) => indexEntry(root, 12 + i * 12, e.lblk, e.pblk));
  return { root, blocks };
}

export interface DirEntry {
  name: Buffer;
  ino: number;
  fileType: number;
}

/**
 * A linear directory's blocks: "." and ".." first, then `entries` in order, each block ending in
 * the metadata_csum tail, at least `minBlocks` blocks (lost+found's are pre-allocated).
 */
export function directoryBlocks(self: number, parent: number, entries: DirEntry[], minBlocks = 1): Buffer[] {
  const all: DirEntry[] = [{ name: Buffer.from('.'), ino: self, fileType: FT.dir }, { name: Buffer.from('..'), ino: parent, fileType: FT.dir }, ...entries];
  const blocks: Buffer[] = [];
  let block = Buffer.alloc(BLOCK);
  let used = 0;
  let last = -1;
  const close = (): void => {
    if (last < 0) {
      block.writeUInt16LE(BLOCK - DIR_TAIL, 4); // an empty block: one unused entry spanning it
    } else {
      block.writeUInt16LE(BLOCK - DIR_TAIL - last, last + 4);
    }
    blocks.push(block);
  };
  for (const e of all) {
    const need = (8 + e.name.length + 3) & ~3;
    if (used + need > BLOCK - DIR_TAIL) {
      close();
      block = Buffer.alloc(BLOCK);
      used = 0;
      last = -1;
    }
    block.writeUInt32LE(e.ino, used);
    block.writeUInt16LE(need, used + 4);
    block[used + 6] = e.name.length;
    block[used + 7] = e.fileType;
    e.name.copy(block, used + 8);
    last = used;
    used += need;
  }
  close();
  while (blocks.length < minBlocks) {
    const empty = Buffer.alloc(BLOCK);
    empty.writeUInt16LE(BLOCK - DIR_TAIL, 4);
    blocks.push(empty);
  }
  return blocks;
}

/** Writes the checksum tails of a directory's blocks (after the inode's seed is known). */
export function sealDirectoryBlock(block: Buffer, inodeSeed: number): void {
  const at = BLOCK - DIR_TAIL;
  block.writeUInt32LE(0, at);
  block.writeUInt16LE(DIR_TAIL, at + 4);
  block[at + 6] = 0;
  block[at + 7] = 0xde;
  block.writeUInt32LE(dirLeafChecksum(block, at, inodeSeed), at + 8);
}

// Extended attributes (attributes.rst): name prefixes become an index, values a 4-byte-padded run.
const PREFIXES: Array<[string, number]> = [
  ['system.posix_acl_access', 2],
  ['system.posix_acl_default', 3],
  ['user.', 1],
  ['trusted.', 4],
  ['security.', 6],
  ['system.', 7],
];

export interface XattrEntry {
  index: number;
  name: Buffer;
  value: Buffer;
}

const pad4 = (n: number): number => (n + 3) & ~3;

/**
 * POSIX ACLs arrive as the VFS xattr (version 2, every entry 8 bytes: tag, perm, id) and ext4
 * keeps its own compact form (version 1; the owner, group, mask and other entries without an id),
 * as fs/ext4/acl.c converts them.
 */
function ext4Acl(vfs: Buffer, where: string): Buffer {
  if (vfs.length < 4 || (vfs.length - 4) % 8 !== 0 || vfs.readUInt32LE(0) !== 2) {
    throw new ToolError('ROOTFS_TREE', `${where}: not a POSIX ACL (expected version 2 and 8-byte entries, found ${vfs.length} bytes)`);
  }
  const parts: Buffer[] = [Buffer.from([1, 0, 0, 0])];
  for (let at = 4; at < vfs.length; at += 8) {
    const tag = vfs.readUInt16LE(at);
    const withId = tag === 0x02 || tag === 0x08; // ACL_USER, ACL_GROUP
    const e = Buffer.alloc(withId ? 8 : 4);
    e.writeUInt16LE(tag, 0);
    e.writeUInt16LE(vfs.readUInt16LE(at + 2), 2);
    if (withId) e.writeUInt32LE(vfs.readUInt32LE(at + 4), 4);
    parts.push(e);
  }
  return Buffer.concat(parts);
}

/** The tree's xattrs as ext4 entries, sorted as the kernel searches a block (index, name length, name). */
export function xattrEntries(xattrs: ReadonlyMap<string, Buffer>, where: string): XattrEntry[] {
  const out: XattrEntry[] = [];
  for (const [full, raw] of xattrs) {
    const prefix = PREFIXES.find(([p, index]) => (index === 2 || index === 3 ? full === p : full.startsWith(p) && full.length > p.length));
    if (!prefix) throw new ToolError('ROOTFS_TREE', `${where}: extended attribute ${JSON.stringify(full)} has no namespace Linux knows (user., trusted., security., system.)`);
    const name = Buffer.from(full.slice(prefix[0].length));
    if (name.length > 255) throw new ToolError('ROOTFS_TREE', `${where}: extended attribute name ${JSON.stringify(full)} is longer than 255 bytes`);
    const value = prefix[1] === 2 || prefix[1] === 3 ? ext4Acl(raw, `${where}: ${full}`) : raw;
    out.push({ index: prefix[1], name, value });
  }
  return out.sort((a, b) => a.index - b.index || a.name.length - b.name.length || Buffer.compare(a.name, b.name));
}

/** ext4_xattr_hash_entry: name bytes as signed chars (x86's char), then the value's 32-bit words. */
function entryHash(e: XattrEntry): number {
  let h = 0;
  for (const c of e.name) h = ((h << 5) ^ (h >>> 27) ^ (c > 127 ? c - 256 : c)) >>> 0;
  const padded = Buffer.alloc(pad4(e.value.length));
  e.value.copy(padded);
  for (let at = 0; at < padded.length; at += 4) h = ((h << 16) ^ (h >>> 16) ^ padded.readUInt32LE(at)) >>> 0;
  return h;
}

/** Bytes the entries and values take in a region (entries, a 4-byte terminator, values). */
export const xattrBytes = (entries: XattrEntry[]): number => entries.reduce((n, e) => n + 16 + pad4(e.name.length) + pad4(e.value.length), 4);

/** Room for entries in an inode after i_extra_isize (the 4-byte magic comes first). */
export const IN_INODE_XATTR_ROOM = INODE_SIZE - IN_INODE_XATTR_AT - 4;
/** Room in an xattr block after its 32-byte header. */
export const BLOCK_XATTR_ROOM = BLOCK - 32;

/**
 * Writes entries at `entriesAt` of `region` and values downwards from its end; value offsets are
 * relative to `base`. Returns the entry hashes.
 */
function writeXattrs(region: Buffer, entriesAt: number, base: number, entries: XattrEntry[]): number[] {
  let at = entriesAt;
  let valueEnd = region.length;
  const hashes: number[] = [];
  for (const e of entries) {
    valueEnd -= pad4(e.value.length);
    e.value.copy(region, valueEnd);
    const hash = entryHash(e);
    region[at] = e.name.length;
    region[at + 1] = e.index;
    region.writeUInt16LE(e.value.length === 0 ? 0 : valueEnd - base, at + 2);
    region.writeUInt32LE(0, at + 4); // e_value_inum: no ea_inode
    region.writeUInt32LE(e.value.length, at + 8);
    region.writeUInt32LE(hash, at + 12);
    e.name.copy(region, at + 16);
    at += 16 + pad4(e.name.length);
    hashes.push(hash);
  }
  return hashes;
}

/** Puts in-inode xattrs into a raw inode (after i_extra_isize). */
function writeInodeXattrs(raw: Buffer, entries: XattrEntry[]): void {
  raw.writeUInt32LE(XATTR_MAGIC, IN_INODE_XATTR_AT);
  writeXattrs(raw, IN_INODE_XATTR_AT + 4, IN_INODE_XATTR_AT + 4, entries);
}

/** An external xattr block at `pblk` (refcount 1, its hash and checksum). */
export function xattrBlock(entries: XattrEntry[], pblk: number, fsSeed: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.writeUInt32LE(XATTR_MAGIC, 0);
  b.writeUInt32LE(1, 4); // h_refcount
  b.writeUInt32LE(1, 8); // h_blocks
  const hashes = writeXattrs(b, 32, 0, entries);
  let h = 0;
  for (const e of hashes) h = ((h << 16) ^ (h >>> 16) ^ e) >>> 0; // ext4_xattr_rehash
  b.writeUInt32LE(h, 0x0c);
  const blockNr = Buffer.alloc(8);
  blockNr.writeUInt32LE(pblk >>> 0, 0);
  blockNr.writeUInt32LE(Math.floor(pblk / 0x1_0000_0000), 4);
  // ext4_xattr_block_csum: the fs seed, the block number, the block with h_checksum as zero.
  b.writeUInt32LE(crc32c(crc32c(fsSeed, blockNr), b), 0x10);
  return b;
}

export interface InodeFields {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  /** In 512-byte sectors. */
  sectors: number;
  flags: number;
  iBlock: Buffer;
  atime: number;
  ctime: number;
  mtime: number;
  crtime: number;
  fileAcl: number;
  inlineXattrs?: XattrEntry[];
}

/** A 256-byte inode with its checksum (generation 0). */
export function encodeInode(f: InodeFields, ino: number, fsSeed: number): Buffer {
  const b = Buffer.alloc(INODE_SIZE);
  const a = encodeTime(f.atime);
  const c = encodeTime(f.ctime);
  const m = encodeTime(f.mtime);
  const cr = encodeTime(f.crtime);
  b.writeUInt16LE(f.mode, 0x00);
  b.writeUInt16LE(f.uid & 0xffff, 0x02);
  b.writeUInt32LE(f.size >>> 0, 0x04);
  b.writeUInt32LE(a.lo, 0x08);
  b.writeUInt32LE(c.lo, 0x0c);
  b.writeUInt32LE(m.lo, 0x10);
  b.writeUInt16LE(f.gid & 0xffff, 0x18);
  b.writeUInt16LE(f.links, 0x1a);
  b.writeUInt32LE(f.sectors >>> 0, 0x1c);
  b.writeUInt32LE(f.flags, 0x20);
  f.iBlock.copy(b, 0x28);
  b.writeUInt32LE(f.fileAcl >>> 0, 0x68);
  b.writeUInt32LE(Math.floor(f.size / 0x1_0000_0000), 0x6c);
  b.writeUInt16LE(Math.floor(f.sectors / 0x1_0000_0000), 0x74); // huge_file: i_blocks_high
  b.writeUInt16LE(Math.floor(f.fileAcl / 0x1_0000_0000), 0x76);
  b.writeUInt16LE(f.uid >>> 16, 0x78);
  b.writeUInt16LE(f.gid >>> 16, 0x7a);
  b.writeUInt16LE(EXTRA_ISIZE, 0x80);
  b.writeUInt32LE(c.extra, 0x84);
  b.writeUInt32LE(m.extra, 0x88);
  b.writeUInt32LE(a.extra, 0x8c);
  b.writeUInt32LE(cr.lo, 0x90);
  b.writeUInt32LE(cr.extra, 0x94);
  if (f.inlineXattrs && f.inlineXattrs.length > 0) writeInodeXattrs(b, f.inlineXattrs);
  const sum = inodeChecksum(b, inodeChecksumSeed(fsSeed, ino, 0));
  b.writeUInt16LE(sum.value & 0xffff, 0x7c);
  b.writeUInt16LE(sum.value >>> 16, 0x82);
  return b;
}

/** An empty, clean jbd2 (v2) superblock for an internal journal of `blocks` blocks. */
export function journalSuperblock(blocks: number, uuid: Buffer): Buffer {
  const b = Buffer.alloc(1024);
  b.writeUInt32BE(0xc03b3998, 0x00); // h_magic
  b.writeUInt32BE(4, 0x04); // JBD2_SUPERBLOCK_V2
  b.writeUInt32BE(BLOCK, 0x0c); // s_blocksize
  b.writeUInt32BE(blocks, 0x10); // s_maxlen
  b.writeUInt32BE(1, 0x14); // s_first: the log starts after this block
  b.writeUInt32BE(1, 0x18); // s_sequence
  b.writeUInt32BE(0, 0x1c); // s_start 0: nothing to replay
  uuid.copy(b, 0x30);
  b.writeUInt32BE(1, 0x40); // s_nr_users: this filesystem
  return b;
}
