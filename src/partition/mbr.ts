/**
 * The "dos" label: MBR in sector 0, and for an extended partition a chain of EBRs, as libfdisk's
 * dos.c reads and writes them. Pure: sectors in, values out; values in, sectors out.
 *
 * Layout (all multi-byte fields little-endian):
 *
 *   sector 0: MBR                      every EBR: same layout, boot code and signature zero
 *     0x000 boot code (440 bytes)        entry 1: the logical partition, start relative to the EBR
 *     0x1B8 disk signature (u32)         entry 2: link to the next EBR (type 0x05), start relative
 *     0x1BC reserved (u16, 0)                     to the extended partition, size covering the next
 *     0x1BE 4 entries of 16 bytes                 EBR up to the end of the next logical partition
 *     0x1FE 0x55 0xAA                    entries 3-4: zero
 *
 * The signature sits at byte 510 whatever the sector size; the rest of a 4096-byte sector is zero.
 */
import { ToolError } from '../errors.js';
import {
  MBR_MAX_SECTORS,
  extendedPartition,
  isExtendedType,
  logicalEbrLbas,
  partitionEnd,
} from './align.js';
import { readChs, writeChs, type Chs } from './chs.js';
import type { LabelDriver, Partition, PartitionTable, SectorReader, SectorWrite, TableProblem } from './model.js';

/** Sector 0 (and every EBR). */
export const MBR = {
  bootCode: 0x000, // 440 bytes: boot loader code, kept from the existing disk (mergeMbrSector)
  diskSignature: 0x1b8, // u32 LE: the disk identifier, sfdisk's label-id
  reserved: 0x1bc, // u16: zero
  entries: 0x1be, // 4 x MBR_ENTRY
  bootSignature: 0x1fe, // 2 bytes: 0x55 0xAA
} as const;

/** One 16-byte partition entry. */
export const MBR_ENTRY = {
  bootIndicator: 0, // u8: 0x80 active ("bootable"), 0x00 otherwise
  chsStart: 1, // 3 bytes: CHS of the first sector (chs.ts)
  type: 4, // u8: partition type ("system id")
  chsEnd: 5, // 3 bytes: CHS of the last sector
  lbaStart: 8, // u32 LE: first sector, relative (MBR: to the disk; EBR: see above)
  sectors: 12, // u32 LE: length in sectors
} as const;

export const MBR_ENTRY_SIZE = 16;
export const MBR_ENTRY_COUNT = 4;
export const MBR_BOOT_CODE_BYTES = 440;
export const MBR_SIGNATURE = [0x55, 0xaa] as const;
/** The bytes that describe the table (disk signature onwards); a real MBR occupies 512 bytes. */
export const MBR_BYTES = 512;
const ACTIVE_FLAG = 0x80;
/** Type of the link entries sfdisk writes in EBRs, whatever the extended partition's own type. */
const EBR_LINK_TYPE = 0x05;
/** libfdisk reads at most 60 partitions: 4 primaries and this many EBRs. */
const MAX_LOGICALS = 56;

/** One raw entry as stored (relative start). */
export interface MbrEntry {
  bootIndicator: number;
  chsStart: Chs;
  type: number;
  chsEnd: Chs;
  lbaStart: number;
  sectors: number;
}

export function hasMbrSignature(sector: Uint8Array): boolean {
  return sector.length >= MBR_BYTES && sector[MBR.bootSignature] === 0x55 && sector[MBR.bootSignature + 1] === 0xaa;
}

/** Reads the 4 entries of an MBR or EBR sector. */
export function parseMbrEntries(sector: Buffer): MbrEntry[] {
  const entries: MbrEntry[] = [];
  for (let i = 0; i < MBR_ENTRY_COUNT; i++) {
    const o = MBR.entries + i * MBR_ENTRY_SIZE;
    entries.push({
      bootIndicator: sector[o + MBR_ENTRY.bootIndicator]!,
      chsStart: readChs(sector, o + MBR_ENTRY.chsStart),
      type: sector[o + MBR_ENTRY.type]!,
      chsEnd: readChs(sector, o + MBR_ENTRY.chsEnd),
      lbaStart: sector.readUInt32LE(o + MBR_ENTRY.lbaStart),
      sectors: sector.readUInt32LE(o + MBR_ENTRY.sectors),
    });
  }
  return entries;
}

/** An entry with every byte zero is unused (libfdisk's is_cleared_partition). */
function isCleared(sector: Buffer, index: number): boolean {
  const o = MBR.entries + index * MBR_ENTRY_SIZE;
  for (let i = o; i < o + MBR_ENTRY_SIZE; i++) if (sector[i] !== 0) return false;
  return true;
}

/**
 * Writes one entry at slot `index`: `relativeStart` goes in the LBA field, while the CHS fields
 * address the absolute sectors `absoluteStart` .. `absoluteEnd`.
 */
function writeEntry(
  sector: Buffer,
  index: number,
  e: { boot: boolean; type: number; relativeStart: number; sectors: number; absoluteStart: number; absoluteEnd: number },
): void {
  const o = MBR.entries + index * MBR_ENTRY_SIZE;
  sector[o + MBR_ENTRY.bootIndicator] = e.boot ? ACTIVE_FLAG : 0;
  writeChs(sector, o + MBR_ENTRY.chsStart, e.absoluteStart);
  sector[o + MBR_ENTRY.type] = e.type;
  writeChs(sector, o + MBR_ENTRY.chsEnd, e.absoluteEnd);
  sector.writeUInt32LE(e.relativeStart, o + MBR_ENTRY.lbaStart);
  sector.writeUInt32LE(e.sectors, o + MBR_ENTRY.sectors);
}

/**
 * A new sector 0 for an existing disk: the boot code (bytes 0..0x1B7) of `existingSector0`, the
 * rest (disk signature, entries, 0x55AA, and for big sectors the remainder) from `newSector0`.
 * libfdisk keeps the boot code the same way when it creates a label.
 */
export function mergeMbrSector(existingSector0: Buffer, newSector0: Buffer): Buffer {
  const out = Buffer.from(newSector0);
  existingSector0.copy(out, 0, 0, Math.min(MBR_BOOT_CODE_BYTES, existingSector0.length));
  return out;
}

/** "0x%08x", as sfdisk prints a disk identifier. */
export const formatDiskId = (id: number): string => `0x${(id >>> 0).toString(16).padStart(8, '0')}`;

/** Parses a dos label-id ("0x12345678" or "12345678", hex). */
export function parseDiskId(text: string): number {
  const m = /^(?:0x)?([0-9a-f]{1,8})$/i.exec(text.trim());
  if (!m) throw new ToolError('USAGE', `dos label-id "${text}": expected up to 8 hex digits (0x12345678)`);
  return Number.parseInt(m[1]!, 16) >>> 0;
}

/** The type byte of a dos partition type string ("83", "c", "0x0c"). */
export function parseMbrType(type: string): number {
  const m = /^(?:0x)?([0-9a-f]{1,2})$/i.exec(type.trim());
  if (!m) throw new ToolError('USAGE', `dos partition type "${type}": expected a hex byte (83, c, 0x0c)`);
  return Number.parseInt(m[1]!, 16);
}

/** Reads one sector, zero-filled if the reader returns less (past the end of a short image). */
function readSector(read: SectorReader, lba: number, sectorSize: number): Buffer {
  const b = read(lba, 1);
  if (b.length >= sectorSize) return b.subarray(0, sectorSize);
  const out = Buffer.alloc(sectorSize);
  b.copy(out);
  return out;
}

const problem = (severity: TableProblem['severity'], code: string, message: string, lba?: number, partitions?: number[]): TableProblem => {
  const p: TableProblem = { severity, code, message };
  if (lba !== undefined) p.lba = lba;
  if (partitions !== undefined) p.partitions = partitions;
  return p;
};

interface MbrAnalysis {
  table: PartitionTable | null;
  problems: TableProblem[];
  /** LBAs of the EBRs found in the chain (for overlap checks). */
  ebrLbas: number[];
  /** Number of the extended partition whose EBR chain was followed. */
  extendedNumber?: number;
}

/** One EBR of the chain as libfdisk reads it: the entry it takes as the logical partition, and its link. */
interface EbrRead {
  ebr: number;
  data: MbrEntry;
  dataCleared: boolean;
  linkCleared: boolean;
  /** The size of the previous EBR's link to this one (not for the first EBR). */
  linkSectors?: number;
}

/**
 * The entries of an EBR that libfdisk (read_extended) takes as the logical partition and as the
 * link: the first entry with a size and an extended type is the link, the first with a size and a
 * non-zero type the partition; when one is missing, entry 1 stands for it (entry 2 when entry 1 is
 * the other one). So an entry of type 0 with a size is still a partition (sfdisk and the kernel
 * number it), and an EBR without one gives an empty partition that is dropped afterwards.
 */
function ebrEntries(sector: Buffer, ebr: number, problems: TableProblem[]): { data: number; link: number } {
  let data = -1;
  let link = -1;
  parseMbrEntries(sector).forEach((e, i) => {
    if (e.sectors === 0) return;
    if (isExtendedType(e.type.toString(16))) {
      if (link >= 0) problems.push(problem('warning', 'extra-ebr-entries', `EBR at LBA ${ebr}: extra link entry ${i + 1} ignored`, ebr));
      else link = i;
    } else if (e.type !== 0) {
      if (data >= 0) problems.push(problem('warning', 'extra-ebr-entries', `EBR at LBA ${ebr}: extra partition entry ${i + 1} ignored`, ebr));
      else data = i;
    }
  });
  if (data < 0) data = link === 0 ? 1 : 0;
  if (link < 0) link = data === 0 ? 1 : 0;
  return { data, link };
}

/**
 * One EBR as the chain is read: the entry taken as its logical partition, and the LBA of the next
 * EBR (null: the chain ends here). Pure; problems with the EBR go to `problems`.
 */
export function readEbr(
  sector: Buffer,
  ebr: number,
  extendedStart: number,
  problems: TableProblem[] = [],
): { partition: MbrEntry; next: number | null; nextLinkSectors: number; dataCleared: boolean; linkCleared: boolean } {
  const { data, link } = ebrEntries(sector, ebr, problems);
  const entries = parseMbrEntries(sector);
  const l = entries[link]!;
  return {
    partition: entries[data]!,
    next: isExtendedType(l.type.toString(16)) ? extendedStart + l.lbaStart : null,
    nextLinkSectors: l.sectors,
    dataCleared: isCleared(sector, data),
    linkCleared: isCleared(sector, link),
  };
}

/**
 * Follows the EBR chain from the extended partition `ext` as libfdisk does: wherever the links
 * point (inside the extended partition or not: check() reports that), until a link entry without
 * an extended type, a loop, the end of the disk, or sfdisk's limit of partition 60.
 */
function readEbrChain(read: SectorReader, sectorSize: number, diskSectors: number, ext: { start: number }, problems: TableProblem[]): { chain: EbrRead[]; ebrLbas: number[] } {
  const chain: EbrRead[] = [];
  const ebrLbas: number[] = [];
  let next: number | null = ext.start;
  let linkSectors = 0;
  while (next !== null) {
    const ebr: number = next;
    next = null;
    if (ebrLbas.includes(ebr)) {
      problems.push(problem('error', 'ebr-loop', `EBR chain loops back to LBA ${ebr}`, ebr));
      break;
    }
    if (ebr >= diskSectors) {
      problems.push(problem('error', 'bad-ebr-link', `EBR link points to LBA ${ebr}, past the end of the disk (last LBA ${diskSectors - 1})`, ebr));
      break;
    }
    if (chain.length >= MAX_LOGICALS) {
      problems.push(problem('error', 'too-many-logicals', `more than ${MAX_LOGICALS} EBRs: partitions after ${4 + MAX_LOGICALS} are omitted, as sfdisk omits them`, ebr));
      break;
    }
    ebrLbas.push(ebr);
    const sector = readSector(read, ebr, sectorSize);
    if (!hasMbrSignature(sector)) {
      const found = sector.subarray(MBR.bootSignature, MBR.bootSignature + 2).toString('hex');
      problems.push(problem('warning', 'bad-ebr-signature', `EBR at LBA ${ebr}: expected signature 55aa, found ${found}`, ebr));
    }
    const taken = readEbr(sector, ebr, ext.start, problems);
    const read_: EbrRead = { ebr, data: taken.partition, dataCleared: taken.dataCleared, linkCleared: taken.linkCleared };
    if (chain.length > 0) read_.linkSectors = linkSectors;
    chain.push(read_);
    next = taken.next;
    linkSectors = taken.nextLinkSectors;
  }
  // libfdisk drops a last EBR with nothing in it, then every empty (0-sector) partition but a
  // lone logical partition of type 0, renumbering the ones after it.
  const last = chain[chain.length - 1];
  if (last && last.dataCleared && last.linkCleared) chain.pop();
  for (;;) {
    const firstType = chain[0]?.data.type ?? 0;
    const empty = chain.findIndex((c) => c.data.sectors === 0 && (chain.length > 1 || firstType !== 0));
    if (empty < 0) break;
    chain.splice(empty, 1);
    // the links no longer pair with their EBRs: the writer computes them afresh
    for (const c of chain) delete c.linkSectors;
  }
  return { chain, ebrLbas };
}

/** Reads sector 0 and the EBR chain. Problems here are the structural ones. */
function analyze(read: SectorReader, sectorSize: number, diskSectors: number): MbrAnalysis {
  const problems: TableProblem[] = [];
  const s0 = readSector(read, 0, sectorSize);
  if (!hasMbrSignature(s0)) {
    const found = s0.subarray(MBR.bootSignature, MBR.bootSignature + 2).toString('hex');
    problems.push(problem('error', 'bad-signature', `MBR at byte 510 (LBA 0): expected signature 55aa, found ${found}`, 0));
    return { table: null, problems, ebrLbas: [] };
  }
  const id = s0.readUInt32LE(MBR.diskSignature);
  const partitions: Partition[] = [];
  // libfdisk follows an extended entry whatever its size (a 0-sector one too: its logical
  // partitions are then outside it, which check() reports).
  let ext: { start: number; number: number } | undefined;
  parseMbrEntries(s0).forEach((e, i) => {
    if (isCleared(s0, i)) return;
    const p: Partition = { number: i + 1, start: e.lbaStart, size: e.sectors, type: e.type.toString(16) };
    if (e.bootIndicator === ACTIVE_FLAG) p.bootable = true;
    partitions.push(p);
    if (e.bootIndicator !== 0 && e.bootIndicator !== ACTIVE_FLAG) {
      problems.push(problem('warning', 'bad-boot-flag', `partition ${i + 1}: boot indicator 0x${e.bootIndicator.toString(16)}, expected 0x00 or 0x80`, 0, [i + 1]));
    }
    if (!isExtendedType(p.type)) return;
    if (ext) {
      problems.push(problem('warning', 'multiple-extended', `partition ${i + 1}: a second extended partition (ignored; partition ${ext.number} is the extended one)`, e.lbaStart, [i + 1]));
    } else if (e.lbaStart === 0) {
      problems.push(problem('error', 'bad-extended', `partition ${i + 1}: extended partition starts at LBA 0`, 0, [i + 1]));
    } else {
      ext = { start: e.lbaStart, number: i + 1 };
    }
  });

  let ebrLbas: number[] = [];
  if (ext) {
    const read_ = readEbrChain(read, sectorSize, diskSectors, ext, problems);
    ebrLbas = read_.ebrLbas;
    let number = 5;
    for (const c of read_.chain) {
      const n = number++;
      if (c.dataCleared) continue; // a lone all-zero entry: counted by libfdisk, listed by nobody
      const p: Partition = { number: n, start: c.ebr + c.data.lbaStart, size: c.data.sectors, type: c.data.type.toString(16), ebrLba: c.ebr };
      // only a link the writer would not compute itself (a partition resized since) is kept
      if (c.linkSectors !== undefined && n > 5 && c.linkSectors !== p.start + p.size - c.ebr) p.linkSectors = c.linkSectors;
      if (c.data.bootIndicator === ACTIVE_FLAG) p.bootable = true;
      partitions.push(p);
    }
  }
  partitions.sort((a, b) => a.number - b.number);
  const analysis: MbrAnalysis = { table: { label: 'dos', id: formatDiskId(id), sectorSize, diskSectors, partitions }, problems, ebrLbas };
  if (ext) analysis.extendedNumber = ext.number;
  return analysis;
}

/**
 * Problems of the partitions themselves, as sfdisk -V finds them and more: a start over the MBR,
 * past the end, a logical partition outside the extended one or of type 0 ("empty"), overlaps
 * between any two partitions (but a logical partition and its extended one), and a partition
 * covering an EBR or an EBR outside the extended partition.
 */
function checkPartitions(table: PartitionTable, ebrLbas: number[], extendedNumber: number | undefined): TableProblem[] {
  const problems: TableProblem[] = [];
  const ext = table.partitions.find((p) => p.number === extendedNumber);
  const isLogical = (p: Partition): boolean => p.number >= 5;
  const logicals = table.partitions.filter(isLogical);
  const used = table.partitions.filter((p) => p.size > 0);
  for (const p of used) {
    const end = partitionEnd(p);
    if (p.start === 0) {
      problems.push(problem('error', 'bad-start', `partition ${p.number} starts at LBA 0, over the MBR`, 0, [p.number]));
    }
    if (end >= table.diskSectors) {
      problems.push(problem('error', 'past-end', `partition ${p.number} (LBA ${p.start}-${end}) ends past the end of the disk (last LBA ${table.diskSectors - 1})`, p.start, [p.number]));
    }
    if (isLogical(p) && ext && (p.start < ext.start || end > partitionEnd(ext))) {
      problems.push(problem('error', 'logical-outside-extended', `logical partition ${p.number} (LBA ${p.start}-${end}) is not inside extended partition ${ext.number} (LBA ${ext.start}-${partitionEnd(ext)})`, p.start, [p.number]));
    }
  }
  for (const p of logicals) {
    // sfdisk -V: "Partition N: empty." (a lone logical partition 5 is left alone).
    if (Number.parseInt(p.type, 16) === 0 && !(p.number === 5 && logicals.length === 1)) {
      problems.push(problem('error', 'empty-partition', `logical partition ${p.number} (LBA ${p.start}-${partitionEnd(p)}) has type 0 (empty) but ${p.size} sectors`, p.start, [p.number]));
    }
  }
  for (let i = 0; i < used.length; i++) {
    for (let j = i + 1; j < used.length; j++) {
      const a = used[i]!;
      const b = used[j]!;
      if ((a === ext && isLogical(b)) || (b === ext && isLogical(a))) continue;
      const from = Math.max(a.start, b.start);
      const to = Math.min(partitionEnd(a), partitionEnd(b));
      if (from <= to) problems.push(problem('error', 'overlap', `partitions ${a.number} and ${b.number} overlap (LBA ${from}-${to})`, from, [a.number, b.number]));
    }
  }
  for (const ebr of ebrLbas) {
    if (ext && (ebr < ext.start || ebr > partitionEnd(ext))) {
      problems.push(problem('error', 'bad-ebr-link', `the EBR at LBA ${ebr} is outside extended partition ${ext.number} (LBA ${ext.start}-${partitionEnd(ext)})`, ebr));
    }
    for (const p of used) {
      if (p === ext || ebr < p.start || ebr > partitionEnd(p)) continue;
      problems.push(problem('error', 'overlap', `partition ${p.number} (LBA ${p.start}-${partitionEnd(p)}) covers the EBR at LBA ${ebr}`, ebr, [p.number]));
    }
  }
  return problems;
}

export function probeMbr(read: SectorReader, sectorSize: number): boolean {
  return hasMbrSignature(readSector(read, 0, sectorSize));
}

export function readMbr(read: SectorReader, sectorSize: number, diskSectors: number): { table: PartitionTable | null; problems: TableProblem[] } {
  const { table, problems } = analyze(read, sectorSize, diskSectors);
  return { table, problems: table ? problems.map((p) => ({ ...p, severity: 'warning' as const })) : problems };
}

export function checkMbr(read: SectorReader, sectorSize: number, diskSectors: number): TableProblem[] {
  const { table, problems, ebrLbas, extendedNumber } = analyze(read, sectorSize, diskSectors);
  return table ? [...problems, ...checkPartitions(table, ebrLbas, extendedNumber)] : problems;
}

const bad = (message: string): ToolError => new ToolError('USAGE', `dos partition table: ${message}`);

function checkU32(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > MBR_MAX_SECTORS) {
    throw bad(`${what} ${value} does not fit in a 32-bit MBR field (0..${MBR_MAX_SECTORS})`);
  }
}

/**
 * The sectors sfdisk writes for `table`: sector 0 (boot code zero: see mergeMbrSector) and, when
 * there is an extended partition, one EBR per logical partition (or one empty EBR when it has
 * none). Every sector is `sectorSize` bytes, zero beyond the fields above.
 */
export function serializeMbr(table: PartitionTable): SectorWrite[] {
  if (table.label !== 'dos') throw bad(`label is "${table.label}", expected "dos"`);
  const { sectorSize } = table;
  if (sectorSize < MBR_BYTES || sectorSize % MBR_BYTES !== 0) throw bad(`sector size ${sectorSize} is not a multiple of 512`);
  const numbers = new Set<number>();
  for (const p of table.partitions) {
    if (!Number.isInteger(p.number) || p.number < 1) throw bad(`partition number ${p.number} is not a positive integer`);
    if (numbers.has(p.number)) throw bad(`partition number ${p.number} appears twice`);
    numbers.add(p.number);
    checkU32(`partition ${p.number}: start`, p.start);
    checkU32(`partition ${p.number}: size`, p.size);
    if (p.size === 0) throw bad(`partition ${p.number}: size 0`);
    if (p.start === 0) throw bad(`partition ${p.number}: starts at LBA 0, over the MBR`);
    parseMbrType(p.type);
  }
  const primaries = table.partitions.filter((p) => p.number <= 4);
  const logicals = table.partitions.filter((p) => p.number >= 5).sort((a, b) => a.number - b.number);
  const extendeds = primaries.filter((p) => isExtendedType(p.type));
  if (extendeds.length > 1) throw bad(`more than one extended partition (${extendeds.map((p) => p.number).join(', ')})`);
  const ext = extendeds[0];
  if (logicals.length > 0 && !ext) throw bad(`logical partitions (${logicals.map((p) => p.number).join(', ')}) without an extended partition`);
  logicals.forEach((p, i) => {
    if (p.number !== 5 + i) throw bad(`logical partitions must be numbered from 5 without gaps; found ${p.number} at position ${i + 1}`);
  });

  const s0 = Buffer.alloc(sectorSize);
  s0.writeUInt32LE(parseDiskId(table.id), MBR.diskSignature);
  for (const p of primaries) {
    writeEntry(s0, p.number - 1, {
      boot: p.bootable === true,
      type: parseMbrType(p.type),
      relativeStart: p.start,
      sectors: p.size,
      absoluteStart: p.start,
      absoluteEnd: partitionEnd(p),
    });
  }
  s0[MBR.bootSignature] = MBR_SIGNATURE[0];
  s0[MBR.bootSignature + 1] = MBR_SIGNATURE[1];
  const writes: SectorWrite[] = [{ lba: 0, data: s0 }];
  if (!ext) return writes;

  const extEnd = partitionEnd(ext);
  const newEbr = (): Buffer => {
    const b = Buffer.alloc(sectorSize);
    b[MBR.bootSignature] = MBR_SIGNATURE[0];
    b[MBR.bootSignature + 1] = MBR_SIGNATURE[1];
    return b;
  };
  if (logicals.length === 0) {
    // libfdisk clears the first EBR of an empty extended partition: a zero sector with 0x55AA.
    writes.push({ lba: ext.start, data: newEbr() });
    return writes;
  }
  const ebrs = logicalEbrLbas(table);
  const ebrOf = (p: Partition): number => ebrs.get(p.number)!;
  let prevEnd = ext.start - 1;
  logicals.forEach((p, i) => {
    const ebr = ebrOf(p);
    const end = partitionEnd(p);
    if (ebr < ext.start || ebr <= prevEnd || ebr >= p.start) {
      throw bad(`logical partition ${p.number} (LBA ${p.start}-${end}): its EBR at LBA ${ebr} must lie inside the extended partition, after the previous logical partition and before this one`);
    }
    if (end > extEnd) throw bad(`logical partition ${p.number} (LBA ${p.start}-${end}) ends past its extended partition (LBA ${ext.start}-${extEnd})`);
    prevEnd = end;
    const sector = newEbr();
    writeEntry(sector, 0, {
      boot: p.bootable === true,
      type: parseMbrType(p.type),
      relativeStart: p.start - ebr,
      sectors: p.size,
      absoluteStart: p.start,
      absoluteEnd: end,
    });
    const q = logicals[i + 1];
    if (q) {
      const qEbr = ebrOf(q);
      const qEnd = partitionEnd(q);
      // The link's fields are relative to the extended partition and span EBR and partition.
      checkU32(`logical partition ${q.number}: its EBR's offset in the extended partition`, qEbr - ext.start);
      // A link read from the disk stays as it was (libfdisk keeps it when a partition is resized).
      const linkSectors = q.linkSectors ?? qEnd - qEbr + 1;
      checkU32(`logical partition ${q.number}: the link's size (EBR at LBA ${qEbr}, ${linkSectors} sectors)`, linkSectors);
      writeEntry(sector, 1, {
        boot: false,
        type: EBR_LINK_TYPE,
        relativeStart: qEbr - ext.start,
        sectors: linkSectors,
        absoluteStart: qEbr,
        absoluteEnd: qEbr + Math.max(linkSectors, 1) - 1,
      });
    }
    writes.push({ lba: ebr, data: sector });
  });
  return writes.sort((a, b) => a.lba - b.lba);
}

export const mbrDriver: LabelDriver = {
  label: 'dos',
  probe: (read, sectorSize) => probeMbr(read, sectorSize),
  read: readMbr,
  check: checkMbr,
  serialize: serializeMbr,
};
