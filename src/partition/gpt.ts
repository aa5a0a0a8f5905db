/**
 * The GPT label (UEFI 2.x, chapter 5), as libfdisk's gpt.c reads and writes it. Pure: sectors in,
 * values out; values in, sectors out.
 *
 *   LBA 0                      protective MBR: one 0xEE entry over the disk (at most 2^32-1 sectors)
 *   LBA 1                      primary header (GPT_HEADER), rest of the sector zero
 *   LBA entriesLba (2)         primary entry array: tableLength x 128 bytes, padded to whole sectors
 *   firstLba .. lastLba        usable space
 *   LBA last-esects .. last-1  backup entry array (same bytes as the primary one)
 *   LBA last                   backup header: myLba and alternateLba swapped, its own entriesLba
 *
 * Integers are little-endian; GUIDs mixed-endian (guid.ts); names UTF-16LE.
 */
import { crc32 } from '../codec/crc32.js';
import { ToolError } from '../errors.js';
import {
  GPT_DEFAULT_TABLE_LENGTH,
  GPT_ENTRY_BYTES,
  gptDefaultUsableLbas,
  gptEntriesSectors,
  partitionEnd,
} from './align.js';
import { PROTECTIVE_CHS_END, PROTECTIVE_CHS_START } from './chs.js';
import { guidFromBytes, isGuid, isZeroGuid, randomGuid, writeGuid } from './guid.js';
import { MBR, MBR_ENTRY, MBR_ENTRY_COUNT, MBR_ENTRY_SIZE, hasMbrSignature } from './mbr.js';
import type { LabelDriver, Partition, PartitionTable, SectorReader, SectorWrite, TableProblem } from './model.js';

/** GPT header (LBA 1 and the last LBA). */
export const GPT_HEADER = {
  signature: 0, // 8 bytes: "EFI PART"
  revision: 8, // u32 LE: 0x00010000 (1.0)
  headerSize: 12, // u32 LE: 92 (bytes covered by the header CRC); 92..sector size
  headerCrc32: 16, // u32 LE: CRC-32 of headerSize bytes with this field zeroed
  reserved: 20, // u32: zero
  myLba: 24, // u64 LE: LBA of this header
  alternateLba: 32, // u64 LE: LBA of the other header
  firstUsableLba: 40, // u64 LE: first LBA a partition may use
  lastUsableLba: 48, // u64 LE: last LBA a partition may use
  diskGuid: 56, // 16 bytes: disk GUID (mixed-endian), sfdisk's label-id
  entriesLba: 72, // u64 LE: first LBA of this header's entry array
  entryCount: 80, // u32 LE: number of entries (sfdisk's table-length)
  entrySize: 84, // u32 LE: bytes per entry: 128 x 2^n
  entriesCrc32: 88, // u32 LE: CRC-32 of entryCount x entrySize bytes of the array
} as const;

/** One partition entry. */
export const GPT_ENTRY = {
  typeGuid: 0, // 16 bytes: partition type GUID; all zero = unused entry
  uniqueGuid: 16, // 16 bytes: unique partition GUID
  firstLba: 32, // u64 LE: first sector
  lastLba: 40, // u64 LE: last sector (inclusive)
  attributes: 48, // u64 LE: bit 0 required, 1 no block-IO protocol, 2 legacy BIOS bootable, 48-63 type-specific
  name: 56, // 72 bytes: UTF-16LE name, 36 code units, NUL-padded
} as const;

export const GPT_SIGNATURE = Buffer.from('EFI PART', 'latin1');
export const GPT_REVISION_1_0 = 0x00010000;
export const GPT_HEADER_SIZE = 92;
export const GPT_NAME_UNITS = 36;
export const GPT_PRIMARY_HEADER_LBA = 1;
export const GPT_PROTECTIVE_TYPE = 0xee;
/** An entry array larger than this is not a real table (sgdisk refuses far less). */
const MAX_ENTRY_ARRAY_BYTES = 16 * 1024 * 1024;

export interface GptHeader {
  revision: number;
  headerSize: number;
  headerCrc32: number;
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  entriesCrc32: number;
}

/** A 64-bit field whose value a JavaScript number cannot hold exactly. */
export class UnsafeValueError extends Error {
  constructor(
    readonly field: string,
    readonly byteOffset: number,
    readonly value: bigint,
  ) {
    super(`${field} at byte ${byteOffset}: ${value} is above 2^53-1`);
  }
}

function u64(view: DataView, byteOffset: number, field: string): number {
  const v = view.getBigUint64(byteOffset, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnsafeValueError(field, byteOffset, v);
  return Number(v);
}

const viewOf = (b: Buffer): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Parses the header fields of a sector (no validation: see the ladder in examineHeader). */
export function parseGptHeader(sector: Buffer): GptHeader {
  const v = viewOf(sector);
  const H = GPT_HEADER;
  return {
    revision: v.getUint32(H.revision, true),
    headerSize: v.getUint32(H.headerSize, true),
    headerCrc32: v.getUint32(H.headerCrc32, true),
    myLba: u64(v, H.myLba, 'my LBA'),
    alternateLba: u64(v, H.alternateLba, 'alternate LBA'),
    firstUsableLba: u64(v, H.firstUsableLba, 'first usable LBA'),
    lastUsableLba: u64(v, H.lastUsableLba, 'last usable LBA'),
    diskGuid: guidFromBytes(sector, H.diskGuid),
    entriesLba: u64(v, H.entriesLba, 'partition entries LBA'),
    entryCount: v.getUint32(H.entryCount, true),
    entrySize: v.getUint32(H.entrySize, true),
    entriesCrc32: v.getUint32(H.entriesCrc32, true),
  };
}

/** CRC-32 of the first `headerSize` bytes of a header sector, with the CRC field taken as zero. */
export function gptHeaderCrc(sector: Buffer, headerSize: number): number {
  const copy = Buffer.from(sector.subarray(0, headerSize));
  copy.writeUInt32LE(0, GPT_HEADER.headerCrc32);
  return crc32(copy);
}

/** A header sector (`sectorSize` bytes, zero after the 92-byte header) with its CRC computed. */
export function serializeGptHeader(
  h: Omit<GptHeader, 'headerCrc32' | 'revision' | 'headerSize' | 'entrySize'>,
  sectorSize: number,
): Buffer {
  const b = Buffer.alloc(sectorSize);
  const v = viewOf(b);
  const H = GPT_HEADER;
  GPT_SIGNATURE.copy(b, H.signature);
  v.setUint32(H.revision, GPT_REVISION_1_0, true);
  v.setUint32(H.headerSize, GPT_HEADER_SIZE, true);
  v.setBigUint64(H.myLba, BigInt(h.myLba), true);
  v.setBigUint64(H.alternateLba, BigInt(h.alternateLba), true);
  v.setBigUint64(H.firstUsableLba, BigInt(h.firstUsableLba), true);
  v.setBigUint64(H.lastUsableLba, BigInt(h.lastUsableLba), true);
  writeGuid(b, H.diskGuid, h.diskGuid);
  v.setBigUint64(H.entriesLba, BigInt(h.entriesLba), true);
  v.setUint32(H.entryCount, h.entryCount, true);
  v.setUint32(H.entrySize, GPT_ENTRY_BYTES, true);
  v.setUint32(H.entriesCrc32, h.entriesCrc32, true);
  v.setUint32(H.headerCrc32, gptHeaderCrc(b, GPT_HEADER_SIZE), true);
  return b;
}

/** Decodes a UTF-16LE name up to its first NUL code unit. */
function decodeName(bytes: Buffer): string {
  let units = 0;
  while (units < bytes.length / 2 && bytes.readUInt16LE(units * 2) !== 0) units++;
  return bytes.subarray(0, units * 2).toString('utf16le');
}

/** The used entries of an entry array, numbered from 1 by slot. */
export function parseGptEntries(array: Buffer, entryCount: number, entrySize: number): Partition[] {
  const partitions: Partition[] = [];
  for (let i = 0; i < entryCount; i++) {
    const o = i * entrySize;
    if (o + GPT_ENTRY_BYTES > array.length) break;
    if (isZeroGuid(array, o + GPT_ENTRY.typeGuid)) continue;
    const e = array.subarray(o, o + GPT_ENTRY_BYTES);
    const v = viewOf(e);
    const where = (field: string): string => `entry ${i + 1} ${field}`;
    const first = u64(v, GPT_ENTRY.firstLba, where('first LBA'));
    const last = u64(v, GPT_ENTRY.lastLba, where('last LBA'));
    partitions.push({
      number: i + 1,
      start: first,
      size: last - first + 1,
      type: guidFromBytes(e, GPT_ENTRY.typeGuid),
      uuid: guidFromBytes(e, GPT_ENTRY.uniqueGuid),
      name: decodeName(e.subarray(GPT_ENTRY.name, GPT_ENTRY.name + GPT_NAME_UNITS * 2)),
      attributes: v.getBigUint64(GPT_ENTRY.attributes, true),
    });
  }
  return partitions;
}

/** Encodes a partition name; throws when it needs more than 36 UTF-16 code units. */
export function encodeGptName(name: string): Buffer {
  const b = Buffer.from(name, 'utf16le');
  if (b.length > GPT_NAME_UNITS * 2) {
    throw new ToolError('USAGE', `GPT partition name "${name}" is ${b.length / 2} UTF-16 code units long; at most ${GPT_NAME_UNITS} fit`);
  }
  return b;
}

/**
 * The entry array for `partitions` (entryCount x 128 bytes, unused slots zero). Partitions without
 * a uuid must have been given one by the caller (serializeGpt does).
 */
export function serializeGptEntries(partitions: Partition[], entryCount: number): Buffer {
  const array = Buffer.alloc(entryCount * GPT_ENTRY_BYTES);
  for (const p of partitions) {
    const o = (p.number - 1) * GPT_ENTRY_BYTES;
    const e = array.subarray(o, o + GPT_ENTRY_BYTES);
    const v = viewOf(e);
    writeGuid(e, GPT_ENTRY.typeGuid, p.type);
    writeGuid(e, GPT_ENTRY.uniqueGuid, p.uuid!);
    v.setBigUint64(GPT_ENTRY.firstLba, BigInt(p.start), true);
    v.setBigUint64(GPT_ENTRY.lastLba, BigInt(partitionEnd(p)), true);
    v.setBigUint64(GPT_ENTRY.attributes, BigInt.asUintN(64, p.attributes ?? 0n), true);
    encodeGptName(p.name ?? '').copy(e, GPT_ENTRY.name);
  }
  return array;
}

/**
 * The protective MBR libfdisk writes: one entry, boot flag 0, CHS 0/0/2 to FF FF FF, type 0xEE,
 * start 1, size min(disk - 1, 2^32 - 1); disk signature and boot code zero (mergeMbrSector keeps an
 * existing disk's boot code).
 */
export function protectiveMbr(diskSectors: number, sectorSize: number): Buffer {
  const b = Buffer.alloc(sectorSize);
  const o = MBR.entries;
  b[o + MBR_ENTRY.bootIndicator] = 0;
  Buffer.from(PROTECTIVE_CHS_START).copy(b, o + MBR_ENTRY.chsStart);
  b[o + MBR_ENTRY.type] = GPT_PROTECTIVE_TYPE;
  Buffer.from(PROTECTIVE_CHS_END).copy(b, o + MBR_ENTRY.chsEnd);
  b.writeUInt32LE(1, o + MBR_ENTRY.lbaStart);
  b.writeUInt32LE(Math.min(diskSectors - 1, 0xffffffff), o + MBR_ENTRY.sectors);
  b[MBR.bootSignature] = 0x55;
  b[MBR.bootSignature + 1] = 0xaa;
  return b;
}

// ---------------------------------------------------------------------------------------------
// Reading and checking

function readSectors(read: SectorReader, lba: number, count: number, sectorSize: number): Buffer {
  const b = read(lba, count);
  if (b.length >= count * sectorSize) return b.subarray(0, count * sectorSize);
  const out = Buffer.alloc(count * sectorSize);
  b.copy(out);
  return out;
}

const problem = (severity: TableProblem['severity'], code: string, message: string, lba?: number, partitions?: number[]): TableProblem => {
  const p: TableProblem = { severity, code, message };
  if (lba !== undefined) p.lba = lba;
  if (partitions !== undefined) p.partitions = partitions;
  return p;
};

/** Sectors that hold the table (protective MBR, a header, an entry array), for overlap checks. */
interface TableSectors {
  from: number;
  to: number;
  what: string;
}

/** What the validation ladder found at one header location. */
interface HeaderExam {
  lba: number;
  role: 'primary' | 'backup';
  /** Passed signature, size and header CRC: its fields can be believed. */
  trusted: boolean;
  /** Passed every rung. */
  valid: boolean;
  header?: GptHeader;
  partitions?: Partition[];
  /** Where its entry array lies, when its geometry could be believed. */
  entries?: TableSectors;
  problems: TableProblem[];
}

/**
 * The validation ladder for the header at `lba`, in libfdisk's order: signature, header size
 * bounds, header CRC (CRC field zeroed), entry geometry, entries CRC, LBA sanity, and "my LBA is
 * where I read it". The first three make the header untrustworthy and stop the ladder; the others
 * are all evaluated so that check() can list each of them.
 */
function examineHeader(read: SectorReader, sectorSize: number, diskSectors: number, lba: number, role: HeaderExam['role']): HeaderExam {
  const exam: HeaderExam = { lba, role, trusted: false, valid: false, problems: [] };
  const what = `${role} GPT header (LBA ${lba})`;
  const add = (severity: TableProblem['severity'], code: string, message: string, at = lba): void => {
    exam.problems.push(problem(severity, code, message, at));
  };
  if (lba < 0 || lba >= diskSectors) {
    add('error', role === 'backup' ? 'missing-backup' : 'bad-signature', `${what} is past the end of the disk (last LBA ${diskSectors - 1})`);
    return exam;
  }
  const sector = readSectors(read, lba, 1, sectorSize);
  if (!sector.subarray(0, 8).equals(GPT_SIGNATURE)) {
    const found = JSON.stringify(sector.subarray(0, 8).toString('latin1'));
    if (role === 'backup') add('error', 'missing-backup', `${what}: no backup GPT header here (expected signature "EFI PART", found ${found})`);
    else add('error', 'bad-signature', `${what} at byte ${lba * sectorSize}: expected signature "EFI PART", found ${found}`);
    return exam;
  }
  const headerSize = sector.readUInt32LE(GPT_HEADER.headerSize);
  if (headerSize < GPT_HEADER_SIZE || headerSize > sectorSize) {
    add('error', 'bad-header-size', `${what}: header size ${headerSize}, expected ${GPT_HEADER_SIZE}..${sectorSize}`);
    return exam;
  }
  const stored = sector.readUInt32LE(GPT_HEADER.headerCrc32);
  const computed = gptHeaderCrc(sector, headerSize);
  if (stored !== computed) {
    add('error', 'bad-header-crc', `${what}: header CRC-32 expected 0x${computed.toString(16).padStart(8, '0')}, found 0x${stored.toString(16).padStart(8, '0')}`);
    return exam;
  }
  let h: GptHeader;
  try {
    h = parseGptHeader(sector);
  } catch (err) {
    if (!(err instanceof UnsafeValueError)) throw err;
    add('error', 'value-too-large', `${what}: ${err.message}`);
    return exam;
  }
  exam.trusted = true;
  exam.header = h;
  if (h.revision !== GPT_REVISION_1_0) {
    add('warning', 'unknown-revision', `${what}: revision 0x${h.revision.toString(16).padStart(8, '0')}, expected 0x00010000`);
  }

  // Entry geometry, then the entries and their CRC.
  let entriesOk = true;
  if (h.entrySize < GPT_ENTRY_BYTES || h.entrySize % 8 !== 0) {
    add('error', 'bad-entry-size', `${what}: entry size ${h.entrySize}, expected 128 x 2^n`);
    entriesOk = false;
  } else if (h.entryCount === 0 || h.entryCount * h.entrySize > MAX_ENTRY_ARRAY_BYTES) {
    add('error', 'bad-entry-count', `${what}: ${h.entryCount} entries of ${h.entrySize} bytes, expected 1..${Math.floor(MAX_ENTRY_ARRAY_BYTES / h.entrySize)}`);
    entriesOk = false;
  }
  const arrayBytes = h.entryCount * h.entrySize;
  const entriesSectors = Math.ceil(arrayBytes / sectorSize);
  if (entriesOk && (h.entriesLba < 1 || h.entriesLba + entriesSectors > diskSectors)) {
    add('error', 'bad-lba', `${what}: entry array at LBA ${h.entriesLba}-${h.entriesLba + entriesSectors - 1} is outside the disk (last LBA ${diskSectors - 1})`, h.entriesLba);
    entriesOk = false;
  }
  if (entriesOk) {
    exam.entries = { from: h.entriesLba, to: h.entriesLba + entriesSectors - 1, what: `the ${role} GPT entry array` };
    const array = readSectors(read, h.entriesLba, entriesSectors, sectorSize).subarray(0, arrayBytes);
    const crc = crc32(array);
    if (crc !== h.entriesCrc32) {
      add('error', 'bad-entries-crc', `${what}: entry array at LBA ${h.entriesLba}: CRC-32 expected 0x${h.entriesCrc32.toString(16).padStart(8, '0')}, found 0x${crc.toString(16).padStart(8, '0')}`, h.entriesLba);
    } else {
      try {
        exam.partitions = parseGptEntries(array, h.entryCount, h.entrySize);
      } catch (err) {
        if (!(err instanceof UnsafeValueError)) throw err;
        add('error', 'value-too-large', `${what}: partition ${err.message}`, h.entriesLba);
      }
    }
  }

  // LBA sanity.
  const last = diskSectors - 1;
  if (h.lastUsableLba < h.firstUsableLba) {
    add('error', 'bad-lba', `${what}: last usable LBA ${h.lastUsableLba} is before first usable LBA ${h.firstUsableLba}`);
  }
  if (h.firstUsableLba > last || h.lastUsableLba > last) {
    add('error', 'bad-lba', `${what}: usable LBAs ${h.firstUsableLba}-${h.lastUsableLba} go past the end of the disk (last LBA ${last})`);
  }
  if (h.firstUsableLba <= lba && lba <= h.lastUsableLba) {
    add('error', 'bad-lba', `${what}: the header lies inside the usable LBAs ${h.firstUsableLba}-${h.lastUsableLba}`);
  }
  if (entriesOk && h.entriesLba <= h.lastUsableLba && h.entriesLba + entriesSectors - 1 >= h.firstUsableLba) {
    add('error', 'bad-lba', `${what}: entry array LBA ${h.entriesLba}-${h.entriesLba + entriesSectors - 1} overlaps the usable LBAs ${h.firstUsableLba}-${h.lastUsableLba}`, h.entriesLba);
  }
  if (h.myLba !== lba) {
    add('error', 'wrong-my-lba', `${what}: header says it is at LBA ${h.myLba}, but was read at LBA ${lba}`);
  }
  exam.valid = exam.problems.every((p) => p.severity !== 'error') && exam.partitions !== undefined;
  return exam;
}

/** Protective MBR problems (warnings: sfdisk and sgdisk fix them on write). */
function examineProtectiveMbr(sector0: Buffer, diskSectors: number): TableProblem[] {
  const problems: TableProblem[] = [];
  if (!hasMbrSignature(sector0)) {
    problems.push(problem('warning', 'no-protective-mbr', 'LBA 0: no MBR signature 55aa: the protective MBR is missing', 0));
    return problems;
  }
  let protective = -1;
  let others = 0;
  for (let i = 0; i < MBR_ENTRY_COUNT; i++) {
    const type = sector0[MBR.entries + i * MBR_ENTRY_SIZE + MBR_ENTRY.type];
    if (type === GPT_PROTECTIVE_TYPE && protective < 0) protective = i;
    else if (type !== 0) others++;
  }
  if (protective < 0) {
    problems.push(problem('warning', 'no-protective-mbr', 'LBA 0: the MBR has no 0xEE (GPT protective) entry', 0));
    return problems;
  }
  if (others > 0) problems.push(problem('warning', 'hybrid-mbr', `LBA 0: hybrid MBR: ${others} partition(s) besides the 0xEE entry`, 0));
  const o = MBR.entries + protective * MBR_ENTRY_SIZE;
  const start = sector0.readUInt32LE(o + MBR_ENTRY.lbaStart);
  const size = sector0.readUInt32LE(o + MBR_ENTRY.sectors);
  if (start !== 1) problems.push(problem('warning', 'pmbr-bad-start', `LBA 0: protective entry starts at LBA ${start}, expected 1`, 0));
  const expected = Math.min(diskSectors - 1, 0xffffffff);
  if (others === 0 && size !== expected && size !== 0xffffffff) {
    problems.push(problem('warning', 'pmbr-size-mismatch', `LBA 0: protective entry covers ${size} sectors, expected ${expected}`, 0));
  }
  return problems;
}

function hasProtectiveEntry(sector0: Buffer): boolean {
  if (!hasMbrSignature(sector0)) return false;
  for (let i = 0; i < MBR_ENTRY_COUNT; i++) {
    if (sector0[MBR.entries + i * MBR_ENTRY_SIZE + MBR_ENTRY.type] === GPT_PROTECTIVE_TYPE) return true;
  }
  return false;
}

/**
 * Whether the disk carries a GPT: a protective (or hybrid) MBR, or no MBR at all but a GPT header
 * signature at LBA 1. A valid dos MBR without a 0xEE entry is a dos disk, whatever leftovers a
 * former GPT left at the end (libfdisk also requires the protective MBR).
 */
export function probeGpt(read: SectorReader, sectorSize: number, diskSectors: number): boolean {
  if (diskSectors < 3) return false;
  const s = readSectors(read, 0, 2, sectorSize);
  const sector0 = s.subarray(0, sectorSize);
  if (hasProtectiveEntry(sector0)) return true;
  if (hasMbrSignature(sector0)) return false;
  return s.subarray(sectorSize, sectorSize + 8).equals(GPT_SIGNATURE);
}

interface GptAnalysis {
  table: PartitionTable | null;
  problems: TableProblem[];
  /**
   * What check() examines the partitions of: the table, or when no header passed every rung, the
   * entries of a header whose CRCs hold (e.g. a truncated image: LBA sanity fails, yet its
   * partitions past the end are worth naming).
   */
  bestEffort: PartitionTable | null;
  /** The sectors the table occupies, wherever its headers say (a partition must not cover them). */
  tableSectors: TableSectors[];
}

function tableFrom(exam: HeaderExam, sectorSize: number, diskSectors: number, entriesLba: number): PartitionTable {
  const h = exam.header!;
  return {
    label: 'gpt',
    id: h.diskGuid,
    sectorSize,
    diskSectors,
    firstLba: h.firstUsableLba,
    lastLba: h.lastUsableLba,
    tableLength: h.entryCount,
    entriesLba,
    partitions: exam.partitions!,
  };
}

function analyze(read: SectorReader, sectorSize: number, diskSectors: number): GptAnalysis {
  const problems: TableProblem[] = [];
  const lastLba = diskSectors - 1;
  problems.push(...examineProtectiveMbr(readSectors(read, 0, 1, sectorSize), diskSectors));

  const primary = examineHeader(read, sectorSize, diskSectors, GPT_PRIMARY_HEADER_LBA, 'primary');
  problems.push(...primary.problems);

  // The backup is where the primary says, when the primary can be believed; else at the last LBA.
  let backupLba = lastLba;
  if (primary.trusted) {
    const alt = primary.header!.alternateLba;
    if (alt < lastLba) {
      problems.push(problem('error', 'backup-not-at-end', `backup GPT header at LBA ${alt}, not at the last LBA ${lastLba}: the disk grew; relocate the backup to the end (ptable relocate)`, alt));
      backupLba = alt;
    } else if (alt > lastLba) {
      problems.push(problem('error', 'backup-past-end', `backup GPT header LBA ${alt} is past the end of the disk (last LBA ${lastLba}): the disk shrank or the image was truncated`, alt));
    }
  }
  let backup = examineHeader(read, sectorSize, diskSectors, backupLba, 'backup');
  if (!backup.valid && backupLba !== lastLba) {
    // The pointer may be stale while a backup sits at the true end.
    const atEnd = examineHeader(read, sectorSize, diskSectors, lastLba, 'backup');
    if (atEnd.valid) backup = atEnd;
  }
  problems.push(...backup.problems);
  if (backup.trusted && backup.header!.alternateLba !== GPT_PRIMARY_HEADER_LBA) {
    problems.push(problem('warning', 'bad-lba', `backup GPT header (LBA ${backup.lba}): alternate LBA ${backup.header!.alternateLba}, expected 1`, backup.lba));
  }

  if (primary.valid && backup.valid) {
    const a = primary.header!;
    const b = backup.header!;
    const diffs: string[] = [];
    if (a.diskGuid !== b.diskGuid) diffs.push(`disk GUID ${a.diskGuid} vs ${b.diskGuid}`);
    if (a.firstUsableLba !== b.firstUsableLba || a.lastUsableLba !== b.lastUsableLba) {
      diffs.push(`usable LBAs ${a.firstUsableLba}-${a.lastUsableLba} vs ${b.firstUsableLba}-${b.lastUsableLba}`);
    }
    if (a.entryCount !== b.entryCount || a.entrySize !== b.entrySize) diffs.push(`${a.entryCount}x${a.entrySize} entries vs ${b.entryCount}x${b.entrySize}`);
    if (a.entriesCrc32 !== b.entriesCrc32) diffs.push('different partition entries');
    if (diffs.length > 0) {
      problems.push(problem('error', 'headers-differ', `primary and backup GPT disagree: ${diffs.join('; ')}`, backup.lba));
    }
  }

  const tableSectors: TableSectors[] = [{ from: 0, to: 0, what: 'the protective MBR' }];
  for (const exam of [primary, backup]) {
    if (!exam.trusted) continue;
    tableSectors.push({ from: exam.lba, to: exam.lba, what: `the ${exam.role} GPT header` });
    if (exam.entries) tableSectors.push(exam.entries);
  }
  if (!primary.trusted) tableSectors.push({ from: GPT_PRIMARY_HEADER_LBA, to: GPT_PRIMARY_HEADER_LBA, what: 'the primary GPT header' });

  if (primary.valid) {
    const table = tableFrom(primary, sectorSize, diskSectors, primary.header!.entriesLba);
    return { table, problems, bestEffort: table, tableSectors };
  }
  if (backup.valid) {
    const why = primary.problems.filter((p) => p.severity === 'error').map((p) => p.code).join(', ');
    problems.push(problem('warning', 'read-from-backup', `primary GPT is damaged (${why}); using the backup GPT at LBA ${backup.lba}, as sgdisk does`, backup.lba));
    const entriesLba = primary.trusted ? primary.header!.entriesLba : 2;
    const table = tableFrom(backup, sectorSize, diskSectors, entriesLba);
    return { table, problems, bestEffort: table, tableSectors };
  }
  const readable = [primary, backup].find((e) => e.trusted && e.partitions !== undefined);
  const bestEffort = readable ? tableFrom(readable, sectorSize, diskSectors, readable.header!.entriesLba) : null;
  return { table: null, problems, bestEffort, tableSectors };
}

/**
 * Problems of the partitions: past the end, outside the usable LBAs, end before start, overlaps
 * with each other and with the table's own sectors (which usable LBAs that a damaged header moved
 * would not catch).
 */
function checkPartitions(table: PartitionTable, tableSectors: TableSectors[]): TableProblem[] {
  const problems: TableProblem[] = [];
  const first = table.firstLba ?? 0;
  const last = table.lastLba ?? table.diskSectors - 1;
  for (const p of table.partitions) {
    const end = partitionEnd(p);
    if (p.size <= 0) {
      problems.push(problem('error', 'start-after-end', `partition ${p.number}: last LBA ${end} is before first LBA ${p.start}`, p.start, [p.number]));
      continue;
    }
    if (end >= table.diskSectors) {
      problems.push(problem('error', 'past-end', `partition ${p.number} (LBA ${p.start}-${end}) ends past the end of the disk (last LBA ${table.diskSectors - 1})`, p.start, [p.number]));
    } else if (p.start < first || end > last) {
      problems.push(problem('error', 'outside-usable', `partition ${p.number} (LBA ${p.start}-${end}) is outside the usable LBAs ${first}-${last}`, p.start, [p.number]));
    }
    for (const t of tableSectors) {
      if (p.start <= t.to && end >= t.from) {
        const from = Math.max(p.start, t.from);
        problems.push(problem('error', 'overlap', `partition ${p.number} (LBA ${p.start}-${end}) covers ${t.what} (LBA ${t.from}-${t.to})`, from, [p.number]));
      }
    }
  }
  problems.push(...overlapProblems(table.partitions.filter((p) => p.size > 0)));
  return problems;
}

/** Overlapping pairs listed one by one up to this many; the rest in one problem naming them all. */
const MAX_LISTED_OVERLAPS = 64;

/**
 * Overlaps between partitions in O(n log n), whatever the entry count (a hostile array may hold
 * 131072 entries): a sweep in start order lists pairs while there are few, and every partition
 * that overlaps any other is named in the problems (writeHazards relies on it).
 */
function overlapProblems(used: Partition[]): TableProblem[] {
  const problems: TableProblem[] = [];
  const sorted = [...used].sort((a, b) => a.start - b.start || a.number - b.number);
  for (let i = 0; i < sorted.length && problems.length < MAX_LISTED_OVERLAPS; i++) {
    const a = sorted[i]!;
    for (let j = i + 1; j < sorted.length && sorted[j]!.start <= partitionEnd(a) && problems.length < MAX_LISTED_OVERLAPS; j++) {
      const b = sorted[j]!;
      const [x, y] = a.number < b.number ? [a, b] : [b, a];
      const to = Math.min(partitionEnd(a), partitionEnd(b));
      problems.push(problem('error', 'overlap', `partitions ${x.number} and ${y.number} overlap (LBA ${b.start}-${to})`, b.start, [x.number, y.number]));
    }
  }
  if (problems.length < MAX_LISTED_OVERLAPS) return problems;
  // A partition overlaps another iff it starts before the furthest end so far, or the next one
  // starts before it ends.
  const overlapping: number[] = [];
  let furthestEnd = -1;
  sorted.forEach((p, i) => {
    const next = sorted[i + 1];
    if (p.start <= furthestEnd || (next !== undefined && next.start <= partitionEnd(p))) overlapping.push(p.number);
    furthestEnd = Math.max(furthestEnd, partitionEnd(p));
  });
  overlapping.sort((a, b) => a - b);
  problems.push(problem('error', 'overlap', `${overlapping.length} partitions overlap others (the first ${MAX_LISTED_OVERLAPS} overlaps are listed)`, undefined, overlapping));
  return problems;
}

/**
 * Reads the GPT: the primary when valid, else the backup with a 'read-from-backup' warning (as
 * sgdisk does). When a table comes back, its problems are warnings; when none can be read, errors.
 */
export function readGpt(read: SectorReader, sectorSize: number, diskSectors: number): { table: PartitionTable | null; problems: TableProblem[] } {
  const { table, problems } = analyze(read, sectorSize, diskSectors);
  return { table, problems: table ? problems.map((p) => ({ ...p, severity: 'warning' as const })) : problems };
}

/** Every problem: protective MBR, both headers and entry arrays, backup placement, partitions. */
export function checkGpt(read: SectorReader, sectorSize: number, diskSectors: number): TableProblem[] {
  const { bestEffort, problems, tableSectors } = analyze(read, sectorSize, diskSectors);
  return bestEffort ? [...problems, ...checkPartitions(bestEffort, tableSectors)] : problems;
}

// ---------------------------------------------------------------------------------------------
// Writing

const bad = (message: string): ToolError => new ToolError('USAGE', `gpt partition table: ${message}`);

/** The table with sfdisk's defaults filled in: table length 128, entries at LBA 2, usable LBAs. */
export function withGptDefaults(table: PartitionTable): PartitionTable & { firstLba: number; lastLba: number; tableLength: number; entriesLba: number } {
  const tableLength = table.tableLength ?? GPT_DEFAULT_TABLE_LENGTH;
  const usable = gptDefaultUsableLbas(table.diskSectors, table.sectorSize, tableLength);
  return {
    ...table,
    tableLength,
    entriesLba: table.entriesLba ?? 2,
    firstLba: table.firstLba ?? usable.firstLba,
    lastLba: table.lastLba ?? usable.lastLba,
  };
}

/**
 * The sectors sfdisk writes for `table`: protective MBR (LBA 0), primary header (LBA 1), primary
 * entries (entriesLba), backup entries and backup header (at the end). Missing defaults are
 * sfdisk's (withGptDefaults); partitions without a uuid get a random one.
 */
export function serializeGpt(table: PartitionTable): SectorWrite[] {
  if (table.label !== 'gpt') throw bad(`label is "${table.label}", expected "gpt"`);
  const t = withGptDefaults(table);
  const { sectorSize, diskSectors, tableLength, entriesLba, firstLba, lastLba } = t;
  if (sectorSize < 512 || sectorSize % 512 !== 0) throw bad(`sector size ${sectorSize} is not a multiple of 512`);
  if (!Number.isInteger(tableLength) || tableLength < 1 || tableLength * GPT_ENTRY_BYTES > MAX_ENTRY_ARRAY_BYTES) {
    throw bad(`table length ${tableLength} is out of range`);
  }
  if (!isGuid(t.id)) throw bad(`disk GUID "${t.id}" is not a GUID`);
  const entriesSectors = gptEntriesSectors(tableLength, sectorSize);
  const backupHeaderLba = diskSectors - 1;
  const backupEntriesLba = backupHeaderLba - entriesSectors;
  if (entriesLba < 2) throw bad(`entry array LBA ${entriesLba} must be 2 or more`);
  if (entriesLba + entriesSectors > firstLba) {
    throw bad(`first usable LBA ${firstLba} overlaps the entry array (LBA ${entriesLba}-${entriesLba + entriesSectors - 1})`);
  }
  if (lastLba >= backupEntriesLba) {
    throw bad(`last usable LBA ${lastLba} overlaps the backup entry array at LBA ${backupEntriesLba} (disk of ${diskSectors} sectors)`);
  }
  if (lastLba < firstLba) throw bad(`last usable LBA ${lastLba} is before first usable LBA ${firstLba}`);

  const seen = new Set<number>();
  const partitions = t.partitions.map((p) => {
    if (!Number.isInteger(p.number) || p.number < 1 || p.number > tableLength) {
      throw bad(`partition number ${p.number} is outside 1..${tableLength} (the table length)`);
    }
    if (seen.has(p.number)) throw bad(`partition number ${p.number} appears twice`);
    seen.add(p.number);
    if (!isGuid(p.type) || /^[0-]+$/.test(p.type)) throw bad(`partition ${p.number}: type "${p.type}" is not a non-zero GUID`);
    if (p.uuid !== undefined && !isGuid(p.uuid)) throw bad(`partition ${p.number}: uuid "${p.uuid}" is not a GUID`);
    if (!Number.isSafeInteger(p.start) || !Number.isSafeInteger(p.size) || p.size < 1) {
      throw bad(`partition ${p.number}: start ${p.start} and size ${p.size} must be integers, size at least 1`);
    }
    const end = partitionEnd(p);
    if (p.start < firstLba || end > lastLba) {
      throw bad(`partition ${p.number} (LBA ${p.start}-${end}) is outside the usable LBAs ${firstLba}-${lastLba}`);
    }
    encodeGptName(p.name ?? '');
    return p.uuid === undefined ? { ...p, uuid: randomGuid() } : p;
  });
  const sorted = [...partitions].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (b.start <= partitionEnd(a)) throw bad(`partitions ${a.number} and ${b.number} overlap (LBA ${b.start}-${Math.min(partitionEnd(a), partitionEnd(b))})`);
  }

  const array = serializeGptEntries(partitions, tableLength);
  const entriesCrc32 = crc32(array);
  const padded = Buffer.alloc(entriesSectors * sectorSize);
  array.copy(padded);
  const common = { firstUsableLba: firstLba, lastUsableLba: lastLba, diskGuid: t.id.toUpperCase(), entryCount: tableLength, entriesCrc32 };
  const primaryHeader = serializeGptHeader({ ...common, myLba: GPT_PRIMARY_HEADER_LBA, alternateLba: backupHeaderLba, entriesLba }, sectorSize);
  const backupHeader = serializeGptHeader({ ...common, myLba: backupHeaderLba, alternateLba: GPT_PRIMARY_HEADER_LBA, entriesLba: backupEntriesLba }, sectorSize);
  return [
    { lba: 0, data: protectiveMbr(diskSectors, sectorSize) },
    { lba: GPT_PRIMARY_HEADER_LBA, data: primaryHeader },
    { lba: entriesLba, data: padded },
    { lba: backupEntriesLba, data: Buffer.from(padded) },
    { lba: backupHeaderLba, data: backupHeader },
  ];
}

export interface RelocateOptions {
  /**
   * The new last usable LBA: 'max' (default) right before the backup entries, as sfdisk computes it
   * and as `sfdisk --relocate gpt-bak-std` writes; 'sgdisk' as `sgdisk -e` (1.0.9) writes it:
   * disk size minus the first usable LBA, symmetric with the start.
   */
  lastLba?: 'max' | 'sgdisk';
}

/**
 * The backup moved to the end of a disk now `newDiskSectors` long, on the model: the backup header
 * goes to its last LBA (serialize puts it there, the entries right before it) and the last usable
 * LBA moves with it: by default as `sfdisk --relocate gpt-bak-std` moves it (what ptable relocate,
 * grow and sparsecopy --relocate-gpt do); sgdisk -e's full placement is gpt-ops.ts relocatedWrites.
 * Refuses a disk too small for the partitions.
 */
export function relocateBackup(table: PartitionTable, newDiskSectors: number, options: RelocateOptions = {}): PartitionTable {
  if (table.label !== 'gpt') throw bad(`label is "${table.label}", expected "gpt"`);
  const t = withGptDefaults(table);
  const lastLba =
    options.lastLba === 'sgdisk'
      ? newDiskSectors - t.firstLba
      : gptDefaultUsableLbas(newDiskSectors, t.sectorSize, t.tableLength).lastLba;
  for (const p of t.partitions) {
    if (partitionEnd(p) > lastLba) {
      throw bad(`partition ${p.number} (LBA ${p.start}-${partitionEnd(p)}) would end past the last usable LBA ${lastLba} of a ${newDiskSectors}-sector disk`);
    }
  }
  return { ...t, diskSectors: newDiskSectors, lastLba, partitions: t.partitions.map((p) => ({ ...p })) };
}

export const gptDriver: LabelDriver = {
  label: 'gpt',
  probe: probeGpt,
  read: readGpt,
  check: checkGpt,
  serialize: serializeGpt,
};
