/**
 * FAT boot sectors as libblkid's vfat prober judges them (fat_valid_superblock), used by the dos
 * prober too: a FAT boot sector's 55 AA is not an MBR.
 */
import { type Magic, magic } from './types.js';
import type { AreaView } from './view.js';

/** msdos_super_block / vfat_super_block fields (little-endian, unaligned). */
const BPB = { sectorSize: 0x0b, clusterSize: 0x0d, reserved: 0x0e, fats: 0x10, dirEntries: 0x11, sectors: 0x13, media: 0x15, fatLength: 0x16, totalSectors: 0x20, fat32Length: 0x24, fat16Magic: 0x36, pmagic: 0x1fe } as const;
const FAT12_MAX = 0xff4;
const FAT16_MAX = 0xfff4;
const FAT32_MAX = 0x0ffffff6;

export const VFAT_MAGICS: readonly Magic[] = [
  magic('MSWIN', 0x52),
  magic('FAT32   ', 0x52),
  magic('MSDOS', 0x36),
  magic('FAT16   ', 0x36),
  magic('FAT12   ', 0x36),
  magic('FAT     ', 0x36),
  magic([0xeb], 0),
  magic([0xe9], 0),
  magic([0x55, 0xaa], 0x1fe),
];

const isPowerOf2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

export interface FatGeometry {
  clusterCount: number;
  fatSectors: number;
}

/** fat_valid_superblock, in C's 32-bit unsigned arithmetic (its wrap-arounds included). */
export function validFatBootSector(bs: Buffer, matched: Magic): FatGeometry | null {
  if (matched.bytes.length <= 2) {
    // Magic-less FATs: old floppies carry an MBR signature; OS/2 puts FAT-like headers on JFS and HPFS.
    if (bs[BPB.pmagic] !== 0x55 || bs[BPB.pmagic + 1] !== 0xaa) return null;
    const label = bs.toString('latin1', BPB.fat16Magic, BPB.fat16Magic + 8);
    if (label === 'JFS     ' || label === 'HPFS    ') return null;
  }
  const fats = bs[BPB.fats]!;
  const reserved = bs.readUInt16LE(BPB.reserved);
  const media = bs[BPB.media]!;
  const clusterSize = bs[BPB.clusterSize]!;
  if (!fats || !reserved) return null;
  if (!(media >= 0xf8 || media === 0xf0)) return null;
  if (!isPowerOf2(clusterSize)) return null;
  const sectorSize = bs.readUInt16LE(BPB.sectorSize);
  if (!isPowerOf2(sectorSize) || sectorSize < 512 || sectorSize > 4096) return null;
  const dirEntries = bs.readUInt16LE(BPB.dirEntries);
  let sectors = bs.readUInt16LE(BPB.sectors);
  if (sectors === 0) sectors = bs.readUInt32LE(BPB.totalSectors);
  const fat16Length = bs.readUInt16LE(BPB.fatLength);
  const fat32Length = bs.readUInt32LE(BPB.fat32Length);
  const fatLength = fat16Length === 0 ? fat32Length : fat16Length;
  const fatSectors = Math.imul(fatLength, fats) >>> 0;
  const dirSectors = Math.floor((dirEntries * 32 + (sectorSize - 1)) / sectorSize);
  const overhead = (reserved + fatSectors + dirSectors) >>> 0;
  const clusterCount = Math.floor(((sectors - overhead) >>> 0) / clusterSize);
  const maxCount = !fat16Length && fat32Length ? FAT32_MAX : clusterCount > FAT12_MAX ? FAT16_MAX : FAT12_MAX;
  if (clusterCount > maxCount) return null;
  // libblkid also rules out BitLocker volumes here; ptable does not probe for BitLocker.
  return { clusterCount, fatSectors };
}

/** libblkid's blkid_probe_is_vfat. */
export function isFatBootSector(view: AreaView): boolean {
  const matched = view.matchMagic(VFAT_MAGICS);
  if (!matched) return false;
  const bs = view.read(0, 512);
  return bs !== null && validFatBootSector(bs, matched.magic) !== null;
}

/** libblkid's blkid_probe_is_ntfs. */
export function isNtfsBootSector(_view: AreaView): boolean {
  return false;
}
