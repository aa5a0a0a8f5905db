/**
 * Block groups of an ext2/3/4 filesystem (pure over a reader): where each group's descriptor is,
 * the checks Linux makes of every descriptor at mount time (fs/ext4/super.c
 * ext4_check_descriptors: checksum, bitmaps and inode table inside the filesystem, and inside
 * their own group without flex_bg), and the "system zone" of block_validity.c: the blocks no
 * file may own (superblock and descriptor copies, reserved descriptor blocks, bitmaps, inode
 * tables). Descriptors are read block by block when needed, never all kept: memory stays the
 * same whatever the group count.
 */
import { type ByteReader, corrupt, hex, readExactly } from './ext4-error.js';
import { groupDescChecksum } from './ext4-checksums.js';
import { type ExtGeometry, INCOMPAT, RO_COMPAT } from './ext4-superblock.js';

export interface GroupDesc {
  group: number;
  /** Byte offset of the descriptor in the image. */
  byteOffset: number;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
}

/** A range of blocks no file may own, and what it is (for messages). */
export interface SystemZone {
  start: number;
  count: number;
  what: string;
}

const u64 = (lo: number, hi: number): number => hi * 0x1_0000_0000 + lo;

function isPowerOf(n: number, base: number): boolean {
  if (n < 1) return false;
  while (n % base === 0) n /= base;
  return n === 1;
}

export interface Groups {
  /** Group `g`'s descriptor (as read; check() has judged them all). */
  descriptor(g: number): GroupDesc;
  /** Throws CORRUPT at the first descriptor Linux would refuse. */
  check(): void;
  /** Calls `visit` with every system zone, group by group. */
  forEachSystemZone(visit: (zone: SystemZone) => void): void;
}

export function openGroups(geo: ExtGeometry, read: ByteReader): Groups {
  const { blockSize, descSize, blocksPerGroup, firstDataBlock, groupCount } = geo;
  const descPerBlock = blockSize / descSize;
  const metaBg = (geo.featureIncompat & INCOMPAT.META_BG) !== 0;
  const flexBg = (geo.featureIncompat & INCOMPAT.FLEX_BG) !== 0;

  const groupStart = (g: number): number => firstDataBlock + g * blocksPerGroup;
  const hasSuper = (g: number): boolean => {
    if (g <= 1 || !(geo.featureRoCompat & RO_COMPAT.SPARSE_SUPER)) return true;
    return isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
  };
  /** Descriptor blocks stored in group `g` (ext4_bg_num_gdb). */
  const descBlocksIn = (g: number): number => {
    const metaGroup = Math.floor(g / descPerBlock);
    if (!metaBg || metaGroup < geo.firstMetaBg) return hasSuper(g) ? (metaBg ? geo.firstMetaBg : geo.gdtBlocks) : 0;
    const first = metaGroup * descPerBlock;
    return g === first || g === first + 1 || g === first + descPerBlock - 1 ? 1 : 0;
  };
  /** Block holding descriptor `g` (the primary copy). */
  const descBlock = (g: number): number => {
    const index = Math.floor(g / descPerBlock);
    if (!metaBg || index < geo.firstMetaBg) return firstDataBlock + 1 + index;
    // meta_bg: each meta group's descriptor block sits in its first group, after any superblock backup.
    const first = index * descPerBlock;
    return groupStart(first) + (hasSuper(first) ? 1 : 0);
  };

  let cachedBlock = -1;
  let cached: Buffer = Buffer.alloc(0);
  const descriptor = (g: number): GroupDesc => {
    const block = descBlock(g);
    if (block >= geo.blocksCount) throw corrupt(`group ${g}'s descriptor block ${block} is past the filesystem's end`, block * blockSize);
    if (block !== cachedBlock) {
      cached = readExactly(read, block * blockSize, blockSize, `the group descriptor block ${block}`);
      cachedBlock = block;
    }
    const offset = (g % descPerBlock) * descSize;
    const d = cached.subarray(offset, offset + descSize);
    const byteOffset = block * blockSize + offset;
    if (geo.groupCsum) {
      const stored = d.readUInt16LE(0x1e);
      const computed = groupDescChecksum(d, g, geo.metadataCsum, geo.csumSeed, geo.uuid);
      if (stored !== computed) throw corrupt(`group descriptor ${g} fails its checksum (stored ${hex(stored)}, computed ${hex(computed)})`, byteOffset + 0x1e);
    }
    const wide = descSize >= 64;
    return {
      group: g,
      byteOffset,
      blockBitmap: u64(d.readUInt32LE(0x00), wide ? d.readUInt32LE(0x20) : 0),
      inodeBitmap: u64(d.readUInt32LE(0x04), wide ? d.readUInt32LE(0x24) : 0),
      inodeTable: u64(d.readUInt32LE(0x08), wide ? d.readUInt32LE(0x28) : 0),
    };
  };

  const check = (): void => {
    // The primary superblock and descriptor table, which no bitmap or table may overlap.
    const sbBlock = firstDataBlock;
    const lastGdtBlock = sbBlock + descBlocksIn(0);
    for (let g = 0; g < groupCount; g++) {
      const d = descriptor(g);
      const first = flexBg ? firstDataBlock : groupStart(g);
      const last = flexBg || g === groupCount - 1 ? geo.blocksCount - 1 : groupStart(g) + blocksPerGroup - 1;
      const items: Array<[string, number, number, number]> = [
        ['block bitmap', d.blockBitmap, 1, 0x00],
        ['inode bitmap', d.inodeBitmap, 1, 0x04],
        ['inode table', d.inodeTable, geo.inodeTableBlocks, 0x08],
      ];
      for (const [what, start, count, field] of items) {
        const at = d.byteOffset + field;
        if (start <= lastGdtBlock && start + count > sbBlock) throw corrupt(`group ${g}'s ${what} at block ${start} overlaps the superblock or the group descriptors`, at);
        if (start < first || start + count - 1 > last) {
          throw corrupt(`group ${g}'s ${what} at block ${start} (+${count}) is outside ${flexBg ? 'the filesystem' : 'its group'} (blocks ${first}-${last})`, at);
        }
      }
    }
  };

  const forEachSystemZone = (visit: (zone: SystemZone) => void): void => {
    for (let g = 0; g < groupCount; g++) {
      if (hasSuper(g)) {
        const reserved = metaBg ? 0 : geo.reservedGdtBlocks;
        visit({ start: groupStart(g), count: 1 + descBlocksIn(g) + reserved, what: `group ${g}'s superblock and group descriptors` });
      } else if (descBlocksIn(g) > 0) {
        visit({ start: groupStart(g), count: descBlocksIn(g), what: `group ${g}'s group descriptors` });
      }
      const d = descriptor(g);
      visit({ start: d.blockBitmap, count: 1, what: `group ${g}'s block bitmap` });
      visit({ start: d.inodeBitmap, count: 1, what: `group ${g}'s inode bitmap` });
      visit({ start: d.inodeTable, count: geo.inodeTableBlocks, what: `group ${g}'s inode table` });
    }
  };

  return { descriptor, check, forEachSystemZone };
}
