/**
 * The checksums ext4 keeps in its metadata (pure): CRC-32C for metadata_csum (superblock, group
 * descriptors, inodes, extent tree nodes, directory blocks) and CRC-16 for the older gdt_csum
 * group descriptors. Both as the kernel computes them: a running register with no final
 * inversion (fs/ext4/ext4.h ext4_chksum, lib/crc16.c), so values chain from one field to the next.
 */

function table(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? poly ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

const CRC32C = table(0x82f63b78); // Castagnoli, reflected
const CRC16 = table(0xa001); // 0x8005, reflected

/** CRC-32C of `data` continuing from `crc` (ext4 starts from ~0 and never inverts). */
export function crc32c(crc: number, data: Uint8Array): number {
  let c = crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC32C[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** CRC-16 (the kernel's crc16: polynomial 0x8005 reflected) of `data` continuing from `crc`. */
export function crc16(crc: number, data: Uint8Array): number {
  let c = crc & 0xffff;
  for (let i = 0; i < data.length; i++) c = (CRC16[(c ^ data[i]!) & 0xff]! ^ (c >>> 8)) & 0xffff;
  return c;
}

const le32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

const ZERO2 = Buffer.alloc(2);
const ZERO4 = Buffer.alloc(4);

/** The filesystem's checksum seed: s_checksum_seed with csum_seed, else crc32c(~0, UUID). */
export function fsChecksumSeed(superblock: Buffer, hasCsumSeedFeature: boolean): number {
  return hasCsumSeedFeature ? superblock.readUInt32LE(0x270) : crc32c(0xffffffff, superblock.subarray(0x68, 0x78));
}

/** s_checksum: crc32c(~0) of the superblock's first 0x3FC bytes. */
export const superblockChecksum = (superblock: Buffer): number => crc32c(0xffffffff, superblock.subarray(0, 0x3fc));

/** bg_checksum of group `group`'s descriptor `desc` (descSize bytes): metadata_csum or gdt_csum flavour. */
export function groupDescChecksum(desc: Buffer, group: number, metadataCsum: boolean, seed: number, uuid: Buffer): number {
  const CSUM_AT = 0x1e;
  if (metadataCsum) {
    let c = crc32c(seed, le32(group));
    c = crc32c(c, desc.subarray(0, CSUM_AT));
    c = crc32c(c, ZERO2);
    c = crc32c(c, desc.subarray(CSUM_AT + 2));
    return c & 0xffff;
  }
  let c = crc16(0xffff, uuid);
  c = crc16(c, le32(group));
  c = crc16(c, desc.subarray(0, CSUM_AT));
  return crc16(c, desc.subarray(CSUM_AT + 2)); // only 64-byte descriptors have bytes after it
}

/** The per-inode seed that inode, extent and directory checksums start from. */
export const inodeChecksumSeed = (fsSeed: number, ino: number, generation: number): number => crc32c(crc32c(fsSeed, le32(ino)), le32(generation));

/**
 * The checksum of a raw inode (inodeSize bytes) with its checksum fields taken as zero, and
 * whether the high half is stored (i_checksum_hi fits in i_extra_isize).
 */
export function inodeChecksum(raw: Buffer, inodeSeed: number): { value: number; hasHigh: boolean } {
  const LO = 0x7c;
  const HI = 0x82;
  let c = crc32c(inodeSeed, raw.subarray(0, LO));
  c = crc32c(c, ZERO2);
  c = crc32c(c, raw.subarray(LO + 2, 128));
  if (raw.length <= 128) return { value: c & 0xffff, hasHigh: false };
  const hasHigh = 128 + raw.readUInt16LE(0x80) >= HI + 2;
  c = crc32c(c, raw.subarray(128, HI));
  if (hasHigh) {
    c = crc32c(c, ZERO2);
    c = crc32c(c, raw.subarray(HI + 2));
  } else {
    c = crc32c(c, raw.subarray(HI));
  }
  return { value: hasHigh ? c : c & 0xffff, hasHigh };
}

/** The checksum stored in an extent tree node's tail (the node's bytes before it). */
export const extentNodeChecksum = (node: Buffer, tailOffset: number, inodeSeed: number): number => crc32c(inodeSeed, node.subarray(0, tailOffset));

/** The checksum stored in a directory leaf block's tail entry (the block's bytes before it). */
export const dirLeafChecksum = (block: Buffer, tailOffset: number, inodeSeed: number): number => crc32c(inodeSeed, block.subarray(0, tailOffset));

/** The checksum stored in an htree index block's dx_tail. */
export function dxChecksum(block: Buffer, countOffset: number, count: number, tailOffset: number, inodeSeed: number): number {
  let c = crc32c(inodeSeed, block.subarray(0, countOffset + count * 8));
  c = crc32c(c, block.subarray(tailOffset, tailOffset + 4));
  return crc32c(c, ZERO4);
}
