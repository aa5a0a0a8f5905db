/**
 * Whole-table GPT operations as sfdisk and sgdisk (gptfdisk 1.0.9) do them, found by experiment on
 * images: the backup relocations (`sfdisk --relocate gpt-bak-std|gpt-bak-mini`, `sgdisk -e`), the
 * sectors `sgdisk -z`/`-Z` zero, and new GUIDs in place (`sgdisk -G`). Pure: tables and sectors in,
 * sector writes out.
 */
import { crc32 } from '../codec/crc32.js';
import { ToolError } from '../errors.js';
import { GPT_DEFAULT_TABLE_LENGTH, GPT_ENTRY_BYTES, gptEntriesSectors, partitionEnd } from './align.js';
import {
  GPT_ENTRY,
  GPT_HEADER,
  GPT_PROTECTIVE_TYPE,
  gptHeaderCrc,
  parseGptHeader,
  protectiveMbr,
  relocateBackup,
  serializeGpt,
} from './gpt.js';
import { isZeroGuid, randomGuid, writeGuid } from './guid.js';
import { MBR, MBR_BOOT_CODE_BYTES, MBR_ENTRY } from './mbr.js';
import type { PartitionTable, SectorWrite } from './model.js';

export const RELOCATE_MODES = ['gpt-bak-std', 'gpt-bak-mini', 'sgdisk-e'] as const;
export type RelocateMode = (typeof RELOCATE_MODES)[number];

const refused = (message: string): ToolError => new ToolError('REFUSED', message);

/**
 * CHS bytes (head, sector|cylinder-high, cylinder-low) of an LBA as sgdisk computes them with its
 * default 255-head, 63-sector geometry; past 1024 cylinders the maximum FE FF FF.
 */
export function sgdiskChs(lba: number): [number, number, number] {
  const HEADS = 255;
  const SECTORS = 63;
  if (lba === 0) return [0, 0, 0];
  if (lba >= HEADS * SECTORS * 1024) return [0xfe, 0xff, 0xff];
  const cylinder = Math.floor(lba / (HEADS * SECTORS));
  const rest = lba - cylinder * HEADS * SECTORS;
  const head = Math.floor(rest / SECTORS);
  const sector = rest - head * SECTORS;
  return [head, (sector + 1 + (cylinder >> 8) * 64) & 0xff, cylinder & 0xff];
}

/**
 * The protective MBR sgdisk writes (MakeProtectiveMBR): the existing boot code kept, the disk
 * signature and the two bytes after it zero, one 0xEE entry from LBA 1 over the disk with its CHS
 * computed (libfdisk writes FF FF FF as the end instead).
 */
export function sgdiskProtectiveMbr(existingSector0: Buffer, diskSectors: number, sectorSize: number): Buffer {
  const b = Buffer.alloc(sectorSize);
  existingSector0.copy(b, 0, 0, MBR_BOOT_CODE_BYTES);
  const o = MBR.entries;
  const size = diskSectors - 1 < 0xffffffff ? diskSectors - 1 : 0xffffffff;
  Buffer.from(sgdiskChs(1)).copy(b, o + MBR_ENTRY.chsStart);
  b[o + MBR_ENTRY.type] = GPT_PROTECTIVE_TYPE;
  Buffer.from(sgdiskChs(size)).copy(b, o + MBR_ENTRY.chsEnd);
  b.writeUInt32LE(1, o + MBR_ENTRY.lbaStart);
  b.writeUInt32LE(size, o + MBR_ENTRY.sectors);
  b[MBR.bootSignature] = 0x55;
  b[MBR.bootSignature + 1] = 0xaa;
  return b;
}

/** Whether sector 0 holds nothing but a 0xEE entry (sgdisk's "protective", not hybrid, MBR). */
function isProtectiveOnly(sector0: Buffer): boolean {
  let protective = false;
  for (let i = 0; i < 4; i++) {
    const type = sector0[MBR.entries + i * 16 + MBR_ENTRY.type];
    if (type === GPT_PROTECTIVE_TYPE) protective = true;
    else if (type !== 0) return false;
  }
  return protective;
}

/** The backup header of `writes` (the last one) with its entry array moved to `entriesLba`. */
function moveBackupEntries(writes: SectorWrite[], entriesLba: number): SectorWrite[] {
  const header = writes[writes.length - 1]!;
  const entries = writes[writes.length - 2]!;
  const data = Buffer.from(header.data);
  data.writeBigUInt64LE(BigInt(entriesLba), GPT_HEADER.entriesLba);
  data.writeUInt32LE(gptHeaderCrc(data, parseGptHeader(data).headerSize), GPT_HEADER.headerCrc32);
  return [...writes.slice(0, -2), { lba: entriesLba, data: entries.data }, { lba: header.lba, data }];
}

export interface RelocateInput {
  /** The table as read (a GPT). */
  table: PartitionTable;
  /** The disk's size in sectors now. */
  diskSectors: number;
  /** The alternate LBA the primary header names (where it says the backup is). */
  primaryAlternateLba: number;
  /** Sector 0 as it is on the disk. */
  sector0: Buffer;
}

/**
 * The sectors each relocation writes (LBA 0 as the relocation leaves it: the caller's one writer
 * keeps the boot code).
 * - gpt-bak-std (sfdisk): backup header at the last LBA, its entries right before it, last usable
 *   LBA right before those; a libfdisk protective MBR.
 * - gpt-bak-mini (sfdisk): the backup right behind the last partition (the last usable LBA is the
 *   sector after it); the protective MBR still covers the disk. sfdisk 2.38.1 refuses (exit 1,
 *   nothing written) unless the backup is already at the end, so this does too.
 * - sgdisk-e: backup header at the last LBA, last usable LBA = disk size - first usable LBA (as
 *   far from the end as the first is from the start), the backup entries right after it (a gap
 *   before the header when the first usable LBA is above 34); when the last usable LBA changes,
 *   sgdisk's protective MBR, else sector 0 as it is.
 */
export function relocatedWrites(input: RelocateInput, mode: RelocateMode): SectorWrite[] {
  const { table, diskSectors } = input;
  const sectorSize = table.sectorSize;
  if (mode === 'gpt-bak-std') return serializeGpt(relocateBackup(table, diskSectors));
  if (mode === 'gpt-bak-mini') {
    if (input.primaryAlternateLba !== diskSectors - 1) {
      throw refused(`the backup GPT header is at LBA ${input.primaryAlternateLba}, not at the last LBA ${diskSectors - 1}: gpt-bak-mini moves a backup that is at the end (relocate it with gpt-bak-std first, as sfdisk 2.38.1 requires)`);
    }
    const used = table.partitions.filter((p) => p.size > 0);
    if (used.length === 0) return serializeGpt(relocateBackup(table, diskSectors));
    const lastEnd = Math.max(...used.map(partitionEnd));
    const entriesSectors = gptEntriesSectors(table.tableLength ?? GPT_DEFAULT_TABLE_LENGTH, sectorSize);
    const minimal = lastEnd + 1 + entriesSectors + 2;
    const writes = serializeGpt(relocateBackup(table, minimal));
    writes[0] = { lba: 0, data: protectiveMbr(diskSectors, sectorSize) };
    return writes;
  }
  const moved = relocateBackup(table, diskSectors, { lastLba: 'sgdisk' });
  const entriesSectors = gptEntriesSectors(moved.tableLength ?? GPT_DEFAULT_TABLE_LENGTH, sectorSize);
  if (moved.lastLba! + entriesSectors >= diskSectors - 1) {
    throw refused(`sgdisk -e would put the backup entries (LBA ${moved.lastLba! + 1}-${moved.lastLba! + entriesSectors}) over the backup header at LBA ${diskSectors - 1}: the first usable LBA ${moved.firstLba} is too low`);
  }
  // serializeGpt checks the last usable LBA against entries before the header: give it that place,
  // then move the entries to where sgdisk puts them.
  const writes = moveBackupEntries(serializeGpt({ ...moved, lastLba: Math.min(moved.lastLba!, diskSectors - 2 - entriesSectors) }), moved.lastLba! + 1);
  for (const w of writes) {
    if (w.lba !== 1 && w.lba !== diskSectors - 1) continue;
    w.data.writeBigUInt64LE(BigInt(moved.lastLba!), GPT_HEADER.lastUsableLba);
    w.data.writeUInt32LE(gptHeaderCrc(w.data, parseGptHeader(w.data).headerSize), GPT_HEADER.headerCrc32);
  }
  const lastChanged = moved.lastLba !== table.lastLba;
  writes[0] = { lba: 0, data: lastChanged && isProtectiveOnly(input.sector0) ? sgdiskProtectiveMbr(input.sector0, diskSectors, sectorSize) : Buffer.from(input.sector0) };
  return writes;
}

/** sgdisk's table size whatever the disk holds: 128 entries of 128 bytes (ClearGPTData). */
const SGDISK_TABLE_BYTES = GPT_DEFAULT_TABLE_LENGTH * GPT_ENTRY_BYTES;

/**
 * The sector runs `sgdisk -z` zeroes (`all`: `-Z`, sector 0 too). sgdisk resets its GPT to the
 * defaults before zeroing, so the places are the default ones whatever the disk holds: LBA 1 and
 * the 128-entry array after it, the last LBA and the array before it. A backup left mid-disk by a
 * grown disk, or a larger table, is not touched, exactly as sgdisk.
 */
export function zapRuns(diskSectors: number, sectorSize: number, all: boolean): { lba: number; count: number }[] {
  const tableSectors = Math.ceil(SGDISK_TABLE_BYTES / sectorSize);
  const runs = [
    { lba: all ? 0 : 1, count: all ? tableSectors + 2 : tableSectors + 1 },
    { lba: diskSectors - 1 - tableSectors, count: tableSectors + 1 },
  ];
  if (diskSectors < 2 * tableSectors + 3) throw refused(`a disk of ${diskSectors} sectors is too small for a GPT (sgdisk's zap needs ${2 * tableSectors + 3})`);
  return runs;
}

/**
 * `sgdisk -G` on one copy of the table (a header sector and its entry array): the disk GUID and
 * every used entry's unique GUID replaced by the given ones, both CRCs recomputed; nothing else
 * changes. `uniques[i]` is the GUID of entry i (unused entries are left zero).
 */
export function withNewGuids(headerSector: Buffer, entryArray: Buffer, diskGuid: string, uniques: readonly string[]): { header: Buffer; entries: Buffer } {
  const header = Buffer.from(headerSector);
  const entries = Buffer.from(entryArray);
  const h = parseGptHeader(header);
  writeGuid(header, GPT_HEADER.diskGuid, diskGuid);
  for (let i = 0; i < h.entryCount && (i + 1) * h.entrySize <= entries.length; i++) {
    const o = i * h.entrySize;
    if (isZeroGuid(entries, o + GPT_ENTRY.typeGuid)) continue;
    writeGuid(entries, o + GPT_ENTRY.uniqueGuid, uniques[i] ?? randomGuid());
  }
  header.writeUInt32LE(crc32(entries.subarray(0, h.entryCount * h.entrySize)), GPT_HEADER.entriesCrc32);
  header.writeUInt32LE(gptHeaderCrc(header, h.headerSize), GPT_HEADER.headerCrc32);
  return { header, entries };
}

/** New GUIDs for a disk of `entryCount` entries: one disk GUID, one unique GUID per entry. */
export function freshGuids(entryCount: number): { diskGuid: string; uniques: string[] } {
  return { diskGuid: randomGuid(), uniques: Array.from({ length: entryCount }, () => randomGuid()) };
}

/** A header area (the 92+ bytes at its start) as a sector with its fields edited and CRC redone. */
function editedHeader(area: Buffer, sectorSize: number, edit: (h: Buffer) => void): Buffer {
  const h = Buffer.alloc(sectorSize);
  area.copy(h, 0, 0, Math.min(area.length, sectorSize));
  edit(h);
  h.writeUInt32LE(gptHeaderCrc(h, h.readUInt32LE(GPT_HEADER.headerSize)), GPT_HEADER.headerCrc32);
  return h;
}

const padded = (data: Buffer, sectorSize: number): Buffer => {
  const b = Buffer.alloc(Math.ceil(data.length / sectorSize) * sectorSize);
  data.copy(b);
  return b;
};

export interface SgdiskBackupParts {
  mbr: Buffer;
  primary: Buffer;
  backup: Buffer;
  primaryHeader: { firstUsableLba: number; lastUsableLba: number; entriesLba: number; alternateLba: number };
  backupHeader: { myLba: number; entriesLba: number };
  entries: Buffer;
}

/**
 * What `sgdisk -l FILE` writes: the saved MBR, headers and entries where the headers say. When
 * the saved backup header is not at this disk's last LBA, sgdisk moves it there as -e does (last
 * usable LBA = disk size - first usable LBA, backup entries after it, a protective MBR of its own
 * when that changed the last usable LBA). Refuses what does not fit this disk.
 */
export function sgdiskRestoreWrites(b: SgdiskBackupParts, diskSectors: number, sectorSize: number, sector0: Buffer, usedEnds: readonly number[]): SectorWrite[] {
  const entriesSectors = Math.ceil(b.entries.length / sectorSize);
  const p = b.primaryHeader;
  let lastUsable = p.lastUsableLba;
  let backupLba = b.backupHeader.myLba;
  let backupEntriesLba = b.backupHeader.entriesLba;
  let mbr: Buffer = Buffer.concat([b.mbr, sector0.subarray(512, sectorSize)]);
  if (backupLba !== diskSectors - 1) {
    backupLba = diskSectors - 1;
    const moved = diskSectors - p.firstUsableLba;
    if (moved !== lastUsable && isProtectiveOnly(b.mbr)) mbr = sgdiskProtectiveMbr(b.mbr, diskSectors, sectorSize);
    lastUsable = moved;
    backupEntriesLba = lastUsable + 1;
  }
  const tooBig = usedEnds.find((end) => end > lastUsable);
  if (tooBig !== undefined) throw refused(`a partition of the backup ends at LBA ${tooBig}, past the last usable LBA ${lastUsable} of this ${diskSectors}-sector disk; nothing written`);
  if (p.entriesLba < 2 || p.entriesLba + entriesSectors > p.firstUsableLba || backupEntriesLba + entriesSectors > backupLba || lastUsable < p.firstUsableLba) {
    throw refused(`the backup's table (entries at LBA ${p.entriesLba} and ${backupEntriesLba}, usable LBAs ${p.firstUsableLba}-${lastUsable}) does not fit this ${diskSectors}-sector disk; nothing written`);
  }
  const primary = editedHeader(b.primary, sectorSize, (h) => {
    h.writeBigUInt64LE(BigInt(backupLba), GPT_HEADER.alternateLba);
    h.writeBigUInt64LE(BigInt(lastUsable), GPT_HEADER.lastUsableLba);
  });
  const backup = editedHeader(b.backup, sectorSize, (h) => {
    h.writeBigUInt64LE(BigInt(backupLba), GPT_HEADER.myLba);
    h.writeBigUInt64LE(BigInt(lastUsable), GPT_HEADER.lastUsableLba);
    h.writeBigUInt64LE(BigInt(backupEntriesLba), GPT_HEADER.entriesLba);
  });
  const entries = padded(b.entries, sectorSize);
  return [
    { lba: 0, data: mbr },
    { lba: 1, data: primary },
    { lba: p.entriesLba, data: entries },
    { lba: backupEntriesLba, data: Buffer.from(entries) },
    { lba: backupLba, data: backup },
  ];
}
