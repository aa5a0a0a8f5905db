/**
 * Field edits on ext2/3/4 images for the hostile-input tests, written independently of the reader
 * under test: the superblock, group descriptors, inodes, extent tree nodes and directory blocks are
 * located from the image's own superblock and group descriptors (or from debugfs), edited in a
 * Buffer, and their metadata_csum checksums repaired, so that an edit reaches the structural checks
 * behind the checksum check. Layouts: the kernel's Documentation/filesystems/ext4.
 */
import { execFileSync } from 'node:child_process';

const SB = 1024;

/** CRC-32C (Castagnoli, reflected 0x82F63B78) as ext4 uses it: no final inversion. */
const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32cRaw(crc: number, data: Uint8Array): number {
  let c = crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

const le32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

export interface Geometry {
  blockSize: number;
  inodeSize: number;
  inodesPerGroup: number;
  blocksPerGroup: number;
  firstDataBlock: number;
  descSize: number;
  groupCount: number;
  metadataCsum: boolean;
  /** s_csum_seed: crc32c of the UUID, or s_checksum_seed with the csum_seed feature. */
  csumSeed: number;
}

export function geometry(img: Buffer): Geometry {
  const incompat = img.readUInt32LE(SB + 0x60);
  const is64 = (incompat & 0x80) !== 0;
  const blockSize = 1024 << img.readUInt32LE(SB + 0x18);
  const blocks = img.readUInt32LE(SB + 0x04) + (is64 ? img.readUInt32LE(SB + 0x150) * 2 ** 32 : 0);
  const firstDataBlock = img.readUInt32LE(SB + 0x14);
  const blocksPerGroup = img.readUInt32LE(SB + 0x20);
  const uuid = img.subarray(SB + 0x68, SB + 0x78);
  return {
    blockSize,
    inodeSize: img.readUInt16LE(SB + 0x58),
    inodesPerGroup: img.readUInt32LE(SB + 0x28),
    blocksPerGroup,
    firstDataBlock,
    descSize: is64 ? img.readUInt16LE(SB + 0xfe) : 32,
    groupCount: Math.ceil((blocks - firstDataBlock) / blocksPerGroup),
    metadataCsum: (img.readUInt32LE(SB + 0x64) & 0x400) !== 0,
    csumSeed: incompat & 0x2000 ? img.readUInt32LE(SB + 0x270) : crc32cRaw(0xffffffff, uuid),
  };
}

/** Byte offset of group `g`'s descriptor in the primary table (no meta_bg). */
export function groupDescOffset(img: Buffer, g: number): number {
  const geo = geometry(img);
  return (geo.firstDataBlock + 1) * geo.blockSize + g * geo.descSize;
}

/** Byte offset of inode `ino` in its group's inode table. */
export function inodeOffset(img: Buffer, ino: number): number {
  const geo = geometry(img);
  const g = Math.floor((ino - 1) / geo.inodesPerGroup);
  const d = groupDescOffset(img, g);
  const table = img.readUInt32LE(d + 0x08) + (geo.descSize >= 64 ? img.readUInt32LE(d + 0x28) * 2 ** 32 : 0);
  return table * geo.blockSize + ((ino - 1) % geo.inodesPerGroup) * geo.inodeSize;
}

export function repairSuperblock(img: Buffer): void {
  if (!geometry(img).metadataCsum) return;
  img.writeUInt32LE(crc32cRaw(0xffffffff, img.subarray(SB, SB + 0x3fc)), SB + 0x3fc);
}

export function repairGroupDesc(img: Buffer, g: number): void {
  const geo = geometry(img);
  if (!geo.metadataCsum) return;
  const d = img.subarray(groupDescOffset(img, g), groupDescOffset(img, g) + geo.descSize);
  let c = crc32cRaw(geo.csumSeed, le32(g));
  c = crc32cRaw(c, d.subarray(0, 0x1e));
  c = crc32cRaw(c, Buffer.alloc(2));
  c = crc32cRaw(c, d.subarray(0x20));
  d.writeUInt16LE(c & 0xffff, 0x1e);
}

/** The per-inode checksum seed: crc32c(fs seed, inode number, generation). */
function inodeSeed(img: Buffer, ino: number): number {
  const geo = geometry(img);
  const raw = img.subarray(inodeOffset(img, ino));
  return crc32cRaw(crc32cRaw(geo.csumSeed, le32(ino)), raw.subarray(0x64, 0x68));
}

export function repairInode(img: Buffer, ino: number): void {
  const geo = geometry(img);
  if (!geo.metadataCsum) return;
  const raw = img.subarray(inodeOffset(img, ino), inodeOffset(img, ino) + geo.inodeSize);
  const extra = geo.inodeSize > 128 ? raw.readUInt16LE(0x80) : 0;
  const hasHi = geo.inodeSize > 128 && 128 + extra >= 0x84;
  const copy = Buffer.from(raw);
  copy.writeUInt16LE(0, 0x7c);
  if (hasHi) copy.writeUInt16LE(0, 0x82);
  const c = crc32cRaw(inodeSeed(img, ino), copy);
  raw.writeUInt16LE(c & 0xffff, 0x7c);
  if (hasHi) raw.writeUInt16LE(c >>> 16, 0x82);
}

/** Repairs the tail checksum of extent tree node `block` of inode `ino`. */
export function repairExtentNode(img: Buffer, block: number, ino: number): void {
  const geo = geometry(img);
  if (!geo.metadataCsum) return;
  const node = img.subarray(block * geo.blockSize, (block + 1) * geo.blockSize);
  const tail = 12 + 12 * node.readUInt16LE(4);
  if (tail + 4 > node.length) return; // eh_max itself is broken: no tail to repair
  node.writeUInt32LE(crc32cRaw(inodeSeed(img, ino), node.subarray(0, tail)), tail);
}

/**
 * Repairs the checksum of directory block `block` of directory `ino`: the dx_tail of an htree
 * index block (`index`), else the fake dirent at the block's end.
 */
export function repairDirBlock(img: Buffer, block: number, ino: number, index: boolean): void {
  const geo = geometry(img);
  if (!geo.metadataCsum) return;
  const b = img.subarray(block * geo.blockSize, (block + 1) * geo.blockSize);
  const seed = inodeSeed(img, ino);
  if (!index) {
    const t = geo.blockSize - 12;
    b.writeUInt32LE(crc32cRaw(seed, b.subarray(0, t)), t + 8);
    return;
  }
  const countOffset = b.readUInt16LE(4) === geo.blockSize ? 8 : 32;
  const limit = b.readUInt16LE(countOffset);
  const count = b.readUInt16LE(countOffset + 2);
  const tail = countOffset + limit * 8;
  if (tail + 8 > b.length || count > limit) return;
  let c = crc32cRaw(seed, b.subarray(0, countOffset + count * 8));
  c = crc32cRaw(c, b.subarray(tail, tail + 4));
  c = crc32cRaw(c, Buffer.alloc(4));
  b.writeUInt32LE(c, tail + 4);
}

/** Edits inode `ino`'s raw bytes (all inodeSize of them) and repairs its checksum. */
export function editInode(img: Buffer, ino: number, edit: (raw: Buffer) => void): void {
  const geo = geometry(img);
  edit(img.subarray(inodeOffset(img, ino), inodeOffset(img, ino) + geo.inodeSize));
  repairInode(img, ino);
}

/** Edits the superblock (1024 bytes at 1024) and repairs its checksum. */
export function editSuperblock(img: Buffer, edit: (sb: Buffer) => void): void {
  edit(img.subarray(SB, SB + 1024));
  repairSuperblock(img);
}

// --- locating things with debugfs (independent of the reader under test) ------------------

function debugfs(image: string, request: string): string {
  return execFileSync('debugfs', ['-R', request, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

/** The inode number at `path` (symlinks not followed). */
export function inodeNumber(image: string, path: string): number {
  const m = /Inode:\s+(\d+)/.exec(debugfs(image, `stat ${path}`));
  if (!m) throw new Error(`debugfs: no inode at ${path}`);
  return Number(m[1]);
}

/** The data blocks of `path`, in file order (extent tree nodes left out, which `blocks` lists too). */
export function dataBlocks(image: string, path: string): number[] {
  const out: number[] = [];
  for (const line of debugfs(image, `ex ${path}`).split('\n')) {
    const m = /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)\s*-\s*(\d+)/.exec(line);
    if (m && m[1] === m[2]) for (let b = Number(m[3]); b <= Number(m[4]); b++) out.push(b);
  }
  if (out.length > 0) return out;
  return debugfs(image, `blocks ${path}`).trim().split(/\s+/).filter(Boolean).map(Number); // a block-mapped file
}

/** The blocks of the extent tree nodes below the inode's root, with their depth. */
export function extentNodes(image: string, path: string): Array<{ block: number; level: number; depth: number }> {
  const out: Array<{ block: number; level: number; depth: number }> = [];
  for (const line of debugfs(image, `ex ${path}`).split('\n')) {
    const m = /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)/.exec(line);
    // A line above the leaves is an index entry; its physical block is the child node.
    if (m && Number(m[1]) < Number(m[2])) out.push({ block: Number(m[3]), level: Number(m[1]) + 1, depth: Number(m[2]) });
  }
  return out;
}
