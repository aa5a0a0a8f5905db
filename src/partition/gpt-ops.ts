/**
 * Whole-table GPT operations as sfdisk and sgdisk (gptfdisk 1.0.9) do them, found by experiment on
 * images: the backup relocations (`sfdisk --relocate gpt-bak-std|gpt-bak-mini`, `sgdisk -e`), the
 * sectors `sgdisk -z`/`-Z` zero, new GUIDs in place (`sgdisk -G`), what `sgdisk -l` writes from a
 * backup file and the MBR to GPT conversion (`sgdisk -g`). Pure: tables and sectors in, sector
 * writes out.
 */
import { crc32 } from '../codec/crc32.js';
import { ToolError } from '../errors.js';
import { GPT_DEFAULT_TABLE_LENGTH, GPT_ENTRY_BYTES, gptEntriesSectors, isExtendedType, partitionEnd } from './align.js';
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
 *   nothing written) unless the backup is already at the end, so this does too; on a table
 *   without partitions it writes a backup header over the primary entries, which this refuses.
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
    // sfdisk 2.38.1 puts the backup header at LBA 34 then, over the primary entries: a broken table.
    if (used.length === 0) throw refused('no partition to put the backup behind: gpt-bak-mini needs at least one (sfdisk 2.38.1 writes a broken table here)');
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

// ---------------------------------------------------------------------------------------------
// sgdisk -g: MBR to GPT

const LINUX_FILESYSTEM: readonly [string, string] = ['0FC63DAF-8483-4772-8E79-3D69D8477DE4', 'Linux filesystem'];

/**
 * The GPT type and name sgdisk 1.0.9 gives a converted MBR partition, by MBR type byte (read off
 * sgdisk -g for every byte): any other type becomes "Linux filesystem".
 */
const SGDISK_MBR_TYPES: Readonly<Record<number, readonly [string, string]>> = {
  0x1: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0x4: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0x6: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0x7: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0xb: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0xc: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0xe: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0x11: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0x14: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0x16: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0x17: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0x1b: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0x1c: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0x1e: ['EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', 'Microsoft basic data'],
  0x27: ['DE94BBA4-06D1-4D40-A16A-BFD50179D6AC', 'Windows RE'],
  0x30: ['7412F7D5-A156-4B13-81DC-867174929325', 'ONIE boot'],
  0x39: ['C91818F9-8025-47AF-89D2-F030D7000C2C', 'Plan 9'],
  0x41: ['9E1A2D38-C612-4316-AA26-8B49521E5A8B', 'PowerPC PReP boot'],
  0x42: ['AF9B60A0-1431-4F62-BC68-3311714A69AD', 'Windows LDM data'],
  0x7f: ['FE3A2A5D-4F32-41A7-B725-ACCC3285A309', 'ChromeOS kernel'],
  0x82: ['0657FD6D-A4AB-43C4-84E5-0933C84B4F4F', 'Linux swap'],
  0x84: ['D3BFE2DE-3DAF-11DF-BA40-E3A556D89593', 'Intel Rapid Start'],
  0x8e: ['E6D6D379-F507-44C2-A23C-238F2A3DF928', 'Linux LVM'],
  0xa0: ['2568845D-2332-4675-BC39-8FA5A4748D15', 'Android bootloader'],
  0xa2: ['734E5AFE-F61A-11E6-BC64-92361F002671', 'Atari TOS basic data'],
  0xa5: ['516E7CB4-6ECF-11D6-8FF8-00022D09712B', 'FreeBSD disklabel'],
  0xa6: ['824CC7A0-36A8-11E3-890A-952519AD3F61', 'OpenBSD disklabel'],
  0xa8: ['55465300-0000-11AA-AA11-00306543ECAC', 'Apple UFS'],
  0xa9: ['516E7CB4-6ECF-11D6-8FF8-00022D09712B', 'FreeBSD disklabel'],
  0xab: ['426F6F74-0000-11AA-AA11-00306543ECAC', 'Recovery HD'],
  0xaf: ['48465300-0000-11AA-AA11-00306543ECAC', 'Apple HFS/HFS+'],
  0xb0: ['3DE21764-95BD-54BD-A5C3-4ABE786F38A8', 'U-Boot boot loader'],
  0xb3: ['CEF5A9AD-73BC-4601-89F3-CDEEEEE321A1', 'QNX6 Power-Safe'],
  0xbb: ['4778ED65-BF42-45FA-9C5B-287A1DC4AAB1', 'Barebox boot loader'],
  0xbc: ['0311FC50-01CA-4725-AD77-9ADBB20ACE98', 'Acronis Secure Zone'],
  0xbe: ['6A82CB45-1DD2-11B2-99A6-080020736631', 'Solaris boot'],
  0xbf: ['6A85CF4D-1DD2-11B2-99A6-080020736631', 'Solaris root'],
  0xe1: ['7412F7D5-A156-4B13-81DC-867174929325', 'ONIE boot'],
  0xe9: ['8C8F8EFF-AC95-4770-814A-21994F2DBC8F', 'Veracrypt data'],
  0xea: ['BC13C2FF-59E6-4262-A352-B275FD6F7172', 'XBOOTLDR partition'],
  0xeb: ['42465331-3BA3-10F1-802A-4861696B7521', 'Haiku BFS'],
  0xed: ['F4019732-066E-4E12-8273-346C5641494F', 'Sony system partition'],
  0xef: ['C12A7328-F81F-11D2-BA4B-00A0C93EC93B', 'EFI system partition'],
  0xf1: ['FE8A2634-5E2E-46BA-99E3-3A192091A350', 'Fuchsia boot loader (slot A/B/R)'],
  0xf8: ['4FBD7E29-9D25-41B8-AFD0-062C0CEFF05D', 'Ceph OSD'],
  0xfb: ['AA31E02A-400F-11DB-9590-000C2911D1B8', 'VMWare VMFS'],
  0xfc: ['9D275380-40AD-11DB-BF97-000C2911D1B8', 'VMWare kcore crash protection'],
  0xfd: ['A19D880F-05FC-4D3B-A006-743F0F84911E', 'Linux RAID'],
};

/** The GPT type GUID and partition name sgdisk -g gives an MBR partition of `mbrType` (hex). */
export function sgdiskGptTypeOf(mbrType: string): { type: string; name: string } {
  const [type, name] = SGDISK_MBR_TYPES[Number.parseInt(mbrType, 16)] ?? LINUX_FILESYSTEM;
  return { type, name };
}

/**
 * What `sgdisk -g` writes for a dos table: primaries keep their numbers, logical partitions keep
 * theirs (5...), the extended partition and its EBRs go; types and names from sgdiskGptTypeOf,
 * attributes 0 (the boot flag is dropped), new random GUIDs; 128 entries, first usable LBA right
 * after them, last usable = disk size - first usable; sgdisk's protective MBR with the boot code
 * kept. A partition over a sector the GPT needs is refused by name, as sgdisk refuses (exit 4).
 */
export function convertedToGpt(dos: PartitionTable, sector0: Buffer): SectorWrite[] {
  const { sectorSize, diskSectors } = dos;
  const entriesSectors = gptEntriesSectors(GPT_DEFAULT_TABLE_LENGTH, sectorSize);
  const firstLba = entriesSectors + 2;
  const lastLba = diskSectors - firstLba;
  if (lastLba < firstLba) throw refused(`a disk of ${diskSectors} sectors is too small for a GPT`);
  const partitions = dos.partitions
    .filter((p) => p.size > 0 && !isExtendedType(p.type))
    .map((p) => {
      if (p.start < firstLba) throw refused(`partition ${p.number} (LBA ${p.start}-${partitionEnd(p)}) covers the primary GPT (LBA 1-${firstLba - 1}); nothing written`);
      if (partitionEnd(p) > lastLba) throw refused(`partition ${p.number} (LBA ${p.start}-${partitionEnd(p)}) covers the backup GPT (LBA ${lastLba + 1}-${diskSectors - 1}); nothing written`);
      if (p.number > GPT_DEFAULT_TABLE_LENGTH) throw refused(`partition ${p.number}: a GPT of ${GPT_DEFAULT_TABLE_LENGTH} entries has no slot for it; nothing written`);
      const { type, name } = sgdiskGptTypeOf(p.type);
      return { number: p.number, start: p.start, size: p.size, type, name, uuid: randomGuid(), attributes: 0n };
    });
  const gpt: PartitionTable = { label: 'gpt', id: randomGuid(), sectorSize, diskSectors, firstLba, lastLba, tableLength: GPT_DEFAULT_TABLE_LENGTH, entriesLba: 2, partitions };
  const writes = serializeGpt(gpt);
  writes[0] = { lba: 0, data: sgdiskProtectiveMbr(sector0, diskSectors, sectorSize) };
  return writes;
}
