/**
 * The two binary backup formats of a partition table. Pure: names, sectors and file bytes.
 *
 * sfdisk --backup-pt-sectors (and -b): one file per table area, the bytes at that offset, named
 *   PREFIX-DEVNAME-0xOFFSET.bak (offset in bytes, %08x; PREFIX defaults to $HOME/sfdisk). Areas as
 *   libfdisk locates them: dos "MBR" (0, 512 bytes) and one "EBR" (512 bytes) per logical
 *   partition; gpt "PMBR" (0, 512), "GPT Header" (LBA 1, 512), "GPT Entries" (the primary array,
 *   entries x entry size), "GPT Backup Entries" (where the backup header says), "GPT Backup
 *   Header" (where the primary header says).
 *
 * sgdisk -b/-l: one file of 512-byte units: the MBR, the primary header (512 bytes), the backup
 *   header (512 bytes), then the entry array (entries x entry size).
 */
import path from 'node:path';
import { crc32 } from '../codec/crc32.js';
import { GPT_ENTRY_BYTES } from './align.js';
import { GPT_HEADER, GPT_HEADER_SIZE, GPT_SIGNATURE, gptHeaderCrc, parseGptHeader, type GptHeader, UnsafeValueError } from './gpt.js';
import type { PartitionTable, SectorReader } from './model.js';

export interface TableArea {
  /** libfdisk's name: "MBR", "EBR", "PMBR", "GPT Header", ... */
  name: string;
  offset: number;
  size: number;
}

const HEADER_AREA_BYTES = 512;

/**
 * The areas `sfdisk --backup-pt-sectors` saves for the table that was read from the disk. A GPT
 * header that fails its checks is replaced as libfdisk replaces it: a bad primary by a copy of the
 * backup (entries at LBA 2), a bad backup by the primary's mirror (entries before its header).
 */
export function tableAreas(table: PartitionTable, read: SectorReader): TableArea[] {
  const ss = table.sectorSize;
  if (table.label === 'dos') {
    const ebrs = table.partitions.filter((p) => p.number > 4 && p.ebrLba !== undefined).map((p) => ({ name: 'EBR', offset: p.ebrLba! * ss, size: 512 }));
    return [{ name: 'MBR', offset: 0, size: 512 }, ...ebrs];
  }
  const at = (lba: number): GptHeader | null => (lba >= 1 && lba < table.diskSectors ? validGptHeader(read(lba, 1).subarray(0, ss)) : null);
  const found = at(1);
  const backupFound = at(found ? found.alternateLba : table.diskSectors - 1);
  const primary = found ?? (backupFound ? { ...backupFound, entriesLba: 2, alternateLba: backupFound.myLba } : null);
  if (!primary) return [{ name: 'PMBR', offset: 0, size: 512 }];
  const arraySectors = Math.ceil((primary.entryCount * primary.entrySize) / ss);
  const backup = backupFound ?? { ...primary, entriesLba: primary.alternateLba - arraySectors };
  return [
    { name: 'PMBR', offset: 0, size: 512 },
    { name: 'GPT Header', offset: ss, size: HEADER_AREA_BYTES },
    { name: 'GPT Entries', offset: primary.entriesLba * ss, size: primary.entryCount * primary.entrySize },
    { name: 'GPT Backup Entries', offset: backup.entriesLba * ss, size: backup.entryCount * backup.entrySize },
    { name: 'GPT Backup Header', offset: primary.alternateLba * ss, size: HEADER_AREA_BYTES },
  ];
}

/** The header in `sector` when it passes signature, size, CRC and entry-geometry checks. */
export function validGptHeader(sector: Buffer): GptHeader | null {
  try {
    return checkedHeader(sector, 0, 'header');
  } catch (err) {
    if (err instanceof BackupFileError) return null;
    throw err;
  }
}

/** sfdisk's file name for the area at `offset` of `devicePath` (PREFIX-DEVNAME-0x%08x.bak). */
export function sfdiskBackupName(prefix: string, devicePath: string, offset: number): string {
  return `${prefix}-${path.basename(devicePath)}-0x${offset.toString(16).padStart(8, '0')}.bak`;
}

/** The byte offset a backup file's name gives (…-0xOFFSET.bak), or null when it names none. */
export function offsetFromBackupName(file: string): number | null {
  const m = /-0x([0-9a-fA-F]{1,16})\.bak$/.exec(path.basename(file));
  if (!m) return null;
  const offset = Number.parseInt(m[1]!, 16);
  return Number.isSafeInteger(offset) ? offset : null;
}

/** The line sfdisk prints for one saved area. */
export const backupLine = (area: TableArea, file: string): string =>
  `${area.name.padStart(12)} (offset ${String(area.offset).padStart(5)}, size ${String(area.size).padStart(5)}): ${file}`;

// ---------------------------------------------------------------------------------------------
// sgdisk -b / -l

const UNIT = 512;
const MAX_ENTRY_ARRAY_BYTES = 16 * 1024 * 1024;

export interface SgdiskBackup {
  /** The MBR as saved (512 bytes). */
  mbr: Buffer;
  /** Header areas (512 bytes each, the 92-byte header at their start). */
  primary: Buffer;
  backup: Buffer;
  primaryHeader: GptHeader;
  backupHeader: GptHeader;
  /** The entry array (entries x entry size bytes). */
  entries: Buffer;
}

/** A backup file's bytes: MBR, primary header, backup header, entries (sgdisk -b's layout). */
export function serializeSgdiskBackup(mbr: Buffer, primary: Buffer, backup: Buffer, entries: Buffer): Buffer {
  const unit = (b: Buffer): Buffer => {
    const u = Buffer.alloc(UNIT);
    b.copy(u, 0, 0, Math.min(b.length, UNIT));
    return u;
  };
  return Buffer.concat([unit(mbr), unit(primary), unit(backup), entries]);
}

/** A problem with a backup file: `offset` is the byte of the file it concerns. */
export class BackupFileError extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

function checkedHeader(file: Buffer, at: number, what: string): GptHeader {
  const sector = file.subarray(at, at + UNIT);
  if (!sector.subarray(0, 8).equals(GPT_SIGNATURE)) throw new BackupFileError(at, `${what}: no "EFI PART" signature`);
  const size = sector.readUInt32LE(GPT_HEADER.headerSize);
  if (size < GPT_HEADER_SIZE || size > UNIT) throw new BackupFileError(at + GPT_HEADER.headerSize, `${what}: header size ${size}, expected ${GPT_HEADER_SIZE}..${UNIT}`);
  const stored = sector.readUInt32LE(GPT_HEADER.headerCrc32);
  const computed = gptHeaderCrc(sector, size);
  if (stored !== computed) throw new BackupFileError(at + GPT_HEADER.headerCrc32, `${what}: header CRC-32 0x${stored.toString(16).padStart(8, '0')}, computed 0x${computed.toString(16).padStart(8, '0')}`);
  let h: GptHeader;
  try {
    h = parseGptHeader(sector);
  } catch (err) {
    if (err instanceof UnsafeValueError) throw new BackupFileError(at + err.byteOffset, `${what}: ${err.message}`);
    throw err;
  }
  if (h.entrySize < GPT_ENTRY_BYTES || h.entrySize % 8 !== 0) throw new BackupFileError(at + GPT_HEADER.entrySize, `${what}: entry size ${h.entrySize}, expected 128 x 2^n`);
  if (h.entryCount === 0 || h.entryCount * h.entrySize > MAX_ENTRY_ARRAY_BYTES) throw new BackupFileError(at + GPT_HEADER.entryCount, `${what}: ${h.entryCount} entries of ${h.entrySize} bytes`);
  return h;
}

/**
 * Parses an sgdisk backup file, checking what sgdisk -l relies on: the length, both headers
 * (signature, size, CRC, entry geometry, the same entry array) and the entry array's CRC.
 */
export function parseSgdiskBackup(file: Buffer): SgdiskBackup {
  if (file.length < 3 * UNIT) throw new BackupFileError(file.length, `${file.length} bytes; an sgdisk backup holds at least ${3 * UNIT} (MBR and two headers)`);
  if (file[510] !== 0x55 || file[511] !== 0xaa) throw new BackupFileError(510, 'the saved MBR has no 55 AA signature');
  const primaryHeader = checkedHeader(file, UNIT, 'primary header');
  const backupHeader = checkedHeader(file, 2 * UNIT, 'backup header');
  if (backupHeader.entryCount !== primaryHeader.entryCount || backupHeader.entrySize !== primaryHeader.entrySize) {
    throw new BackupFileError(2 * UNIT + GPT_HEADER.entryCount, `backup header: ${backupHeader.entryCount} entries of ${backupHeader.entrySize} bytes, the primary ${primaryHeader.entryCount} of ${primaryHeader.entrySize}`);
  }
  const arrayBytes = primaryHeader.entryCount * primaryHeader.entrySize;
  if (file.length !== 3 * UNIT + arrayBytes) throw new BackupFileError(file.length, `${file.length} bytes, expected ${3 * UNIT + arrayBytes} (three 512-byte units and ${arrayBytes} bytes of entries)`);
  const entries = file.subarray(3 * UNIT);
  const crc = crc32(entries);
  if (crc !== primaryHeader.entriesCrc32) throw new BackupFileError(3 * UNIT, `entry array CRC-32 0x${crc.toString(16).padStart(8, '0')}, the header says 0x${primaryHeader.entriesCrc32.toString(16).padStart(8, '0')}`);
  return {
    mbr: file.subarray(0, UNIT),
    primary: file.subarray(UNIT, 2 * UNIT),
    backup: file.subarray(2 * UNIT, 3 * UNIT),
    primaryHeader,
    backupHeader,
    entries,
  };
}
