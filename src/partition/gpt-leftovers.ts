/**
 * GPT headers left on a disk whose label is no longer GPT: what sfdisk wipes when a dos table
 * replaces a GPT, and what `ptable check` reports on a dos disk. A header counts when blkid would
 * accept it (signature, header CRC, my LBA, entry-array CRC), at LBA 1 or at the last LBA, the
 * two places blkid looks. Pure.
 */
import { crc32 } from '../codec/crc32.js';
import { GPT_HEADER, GPT_HEADER_SIZE, GPT_SIGNATURE } from './gpt.js';
import type { SectorReader } from './model.js';

/** Bound on an entry array checked for its CRC (sgdisk refuses far less). */
const MAX_ENTRY_ARRAY_BYTES = 16 * 1024 * 1024;

/** Whether the sector at `lba` is a GPT header blkid would accept (and so wipe). */
export function isValidGptHeaderAt(read: SectorReader, sectorSize: number, diskSectors: number, lba: number): boolean {
  if (lba < 1 || lba >= diskSectors) return false;
  const sector = read(lba, 1);
  if (sector.length < sectorSize || !sector.subarray(0, 8).equals(GPT_SIGNATURE)) return false;
  const headerSize = sector.readUInt32LE(GPT_HEADER.headerSize);
  if (headerSize < GPT_HEADER_SIZE || headerSize > sectorSize) return false;
  const copy = Buffer.from(sector.subarray(0, headerSize));
  copy.writeUInt32LE(0, GPT_HEADER.headerCrc32);
  if (crc32(copy) !== sector.readUInt32LE(GPT_HEADER.headerCrc32)) return false;
  if (sector.readBigUInt64LE(GPT_HEADER.myLba) !== BigInt(lba)) return false;
  const entriesLba = sector.readBigUInt64LE(GPT_HEADER.entriesLba);
  const bytes = sector.readUInt32LE(GPT_HEADER.entryCount) * sector.readUInt32LE(GPT_HEADER.entrySize);
  if (bytes === 0 || bytes > MAX_ENTRY_ARRAY_BYTES || entriesLba >= BigInt(diskSectors)) return false;
  const first = Number(entriesLba);
  const count = Math.ceil(bytes / sectorSize);
  if (first + count > diskSectors) return false;
  return crc32(read(first, count).subarray(0, bytes)) === sector.readUInt32LE(GPT_HEADER.entriesCrc32);
}

/** Where blkid looks for GPT headers: LBA 1 and the last LBA. */
const headerPlaces = (diskSectors: number): number[] => [1, diskSectors - 1].filter((lba, i, all) => lba >= 1 && lba < diskSectors && all.indexOf(lba) === i);

/** The valid GPT headers at LBA 1 and the last LBA. */
export function leftoverGptHeaders(read: SectorReader, sectorSize: number, diskSectors: number): number[] {
  return headerPlaces(diskSectors).filter((lba) => isValidGptHeaderAt(read, sectorSize, diskSectors, lba));
}

/** LBA 1 and the last LBA where they carry "EFI PART" but no valid header. */
export function strayGptSignatures(read: SectorReader, sectorSize: number, diskSectors: number): number[] {
  return headerPlaces(diskSectors).filter((lba) => read(lba, 1).subarray(0, 8).equals(GPT_SIGNATURE) && !isValidGptHeaderAt(read, sectorSize, diskSectors, lba));
}
