/**
 * NTFS as libblkid accepts it (__probe_ntfs): "NTFS    " at 3, a sane BIOS parameter block, and
 * "FILE" at the start of the MFT's first record and of its $Volume record. Also the dos prober's
 * test: an NTFS boot sector's 55 AA is not an MBR.
 */
import { type Prober, magic } from './types.js';
import type { AreaView } from './view.js';

/** ntfs_super_block fields (little-endian). */
const NTFS = { sectorSize: 0x0b, sectorsPerCluster: 0x0d, reservedSectors: 0x0e, fats: 0x10, rootEntries: 0x11, sectors: 0x13, sectorsPerFat: 0x16, largeSectors: 0x20, numberOfSectors: 0x28, mftCluster: 0x30, mftMirrorCluster: 0x38, clustersPerMftRecord: 0x40 } as const;
const NTFS_SB_BYTES = 0x54;
const NTFS_MAGICS = [magic('NTFS    ', 3)];
const MAX_CLUSTER_BYTES = 2 * 1024 * 1024;
const MFT_RECORD_VOLUME = 3n;
const U64 = (1n << 64n) - 1n;
const FILE_MAGIC = Buffer.from('FILE', 'latin1');

function sectorsPerClusterOf(code: number): number | null {
  if ([1, 2, 4, 8, 16, 32, 64, 128].includes(code)) return code;
  if (code < 240 || code > 249) return null;
  return 2 ** (256 - code);
}

/** "FILE" at `offset`, where libblkid reads a whole record of `recordBytes` (so the record must fit). */
function mftRecordAt(view: AreaView, offset: bigint, recordBytes: number): boolean {
  if (offset + BigInt(recordBytes) > BigInt(view.areaBytes)) return false;
  const head = view.read(Number(offset), FILE_MAGIC.length);
  return head !== null && head.equals(FILE_MAGIC);
}

function validNtfs(view: AreaView): boolean {
  const ns = view.read(0, NTFS_SB_BYTES);
  if (!ns) return false;
  const sectorSize = ns.readUInt16LE(NTFS.sectorSize);
  if (sectorSize < 256 || sectorSize > 4096) return false;
  const sectorsPerCluster = sectorsPerClusterOf(ns[NTFS.sectorsPerCluster]!);
  if (sectorsPerCluster === null || sectorSize * sectorsPerCluster > MAX_CLUSTER_BYTES) return false;
  if (ns.readUInt16LE(NTFS.reservedSectors) || ns.readUInt16LE(NTFS.rootEntries) || ns.readUInt16LE(NTFS.sectors) || ns.readUInt16LE(NTFS.sectorsPerFat) || ns.readUInt32LE(NTFS.largeSectors) || ns[NTFS.fats]) return false;
  const perRecord = ns.readInt8(NTFS.clustersPerMftRecord);
  const perRecordByte = perRecord & 0xff;
  if ((perRecordByte < 0xe1 || perRecordByte > 0xf7) && ![1, 2, 4, 8, 16, 32, 64].includes(perRecord)) return false;
  // C computes in 32 bits; 1 << 31 becomes 2^31 once stored unsigned.
  const recordBytes = perRecord > 0 ? Math.imul(Math.imul(perRecord, sectorsPerCluster), sectorSize) >>> 0 : 2 ** -perRecord;
  const clusters = ns.readBigUInt64LE(NTFS.numberOfSectors) / BigInt(sectorsPerCluster);
  const mftCluster = ns.readBigUInt64LE(NTFS.mftCluster);
  if (mftCluster > clusters || ns.readBigUInt64LE(NTFS.mftMirrorCluster) > clusters) return false;
  if (recordBytes < 4) return false;
  const mftOffset = (mftCluster * BigInt(sectorSize) * BigInt(sectorsPerCluster)) & U64;
  if (!mftRecordAt(view, mftOffset, recordBytes)) return false;
  return mftRecordAt(view, (mftOffset + MFT_RECORD_VOLUME * BigInt(recordBytes)) & U64, recordBytes);
}

/** libblkid's blkid_probe_is_ntfs. */
export function isNtfsBootSector(view: AreaView): boolean {
  return view.matchMagic(NTFS_MAGICS) !== null && validNtfs(view);
}

const ntfs: Prober = { type: 'ntfs', usage: 'filesystem', magics: NTFS_MAGICS, check: validNtfs };

export const NTFS_PROBERS: readonly Prober[] = [ntfs];
