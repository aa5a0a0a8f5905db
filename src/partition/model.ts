/**
 * One partition-table model for both labels (MBR "dos" and GPT), as sfdisk presents them: this is
 * what the binary drivers (mbr.ts, gpt.ts) read and write, and what the sfdisk text formats
 * (dump, JSON, script) print and parse. Pure data; no I/O.
 *
 * Units are sectors of `sectorSize` bytes (512 or 4096), as sfdisk's `unit: sectors`.
 */

export type LabelType = 'dos' | 'gpt';

export interface Partition {
  /** 1-based number as the kernel and sfdisk count: dos primaries 1-4, logical partitions from 5. */
  number: number;
  /** First sector (LBA). */
  start: number;
  /** Length in sectors. */
  size: number;
  /**
   * dos: the type byte in lower-case hex without 0x, as sfdisk prints it ("83", "c", "ee", "5").
   * gpt: the type GUID in upper case ("0FC63DAF-8483-4772-8E79-3D69D8477DE4").
   */
  type: string;
  /** gpt: the unique partition GUID, upper case. */
  uuid?: string;
  /** gpt: the partition name (UTF-16LE on disk, up to 36 code units). */
  name?: string;
  /** gpt: the 64-bit attribute field. */
  attributes?: bigint;
  /** dos: the boot indicator (0x80). */
  bootable?: boolean;
  /**
   * dos logical partitions: LBA of the EBR that describes this partition. Set by the reader, so
   * that a table read and written again keeps its EBRs in place; when absent, the writer puts the
   * EBRs where sfdisk would (see align.ts logicalEbrLbas).
   */
  ebrLba?: number;
  /**
   * dos logical partitions from 6 on: the size field of the link entry (in the previous EBR) that
   * points to this partition's EBR, as read. libfdisk rewrites a link only when it adds or deletes
   * a logical partition, so a resized one keeps the link it had. Set by the reader only when it is
   * not what the writer computes when it is absent (the EBR to the end of this partition).
   */
  linkSectors?: number;
}

export interface PartitionTable {
  label: LabelType;
  /** dos: the disk signature as "0x%08x" (lower case); gpt: the disk GUID, upper case. */
  id: string;
  sectorSize: number;
  /** Size of the disk or image in sectors. */
  diskSectors: number;
  /** gpt: first and last usable LBA. */
  firstLba?: number;
  lastLba?: number;
  /** gpt: number of entries in the partition entry array (sfdisk's table-length; 128 usually). */
  tableLength?: number;
  /** gpt: LBA of the primary entry array (2 usually). */
  entriesLba?: number;
  /**
   * Partitions in number order. For dos, an extended partition (type 5, f or 85) is listed like a
   * primary, and its logical partitions follow with numbers from 5.
   */
  partitions: Partition[];
}

/** A problem found while reading or checking a table; `lba` says where, when it is one place. */
export interface TableProblem {
  severity: 'error' | 'warning';
  /** Stable code, for callers and tests: 'bad-signature', 'bad-header-crc', 'bad-entries-crc', ... */
  code: string;
  message: string;
  lba?: number;
  /** The partitions the problem is about (an overlap names both), so callers can tell which are unsafe. */
  partitions?: number[];
}

/** Raw sectors to write: `data.length` is a multiple of the sector size. */
export interface SectorWrite {
  lba: number;
  data: Buffer;
}

/** Reads `count` sectors at `lba` (synchronously: tables are a few sectors). */
export type SectorReader = (lba: number, count: number) => Buffer;

/** One driver per label, as libfdisk has one per label: callers never branch on the label. */
export interface LabelDriver {
  readonly label: LabelType;
  /** Whether the disk carries this label (cheap: signatures only). */
  probe(read: SectorReader, sectorSize: number, diskSectors: number): boolean;
  /** Parses the table; problems that still allow a result (a GPT read from its backup) are warnings. */
  read(read: SectorReader, sectorSize: number, diskSectors: number): { table: PartitionTable | null; problems: TableProblem[] };
  /** Every problem with the table on disk: the validation ladder. */
  check(read: SectorReader, sectorSize: number, diskSectors: number): TableProblem[];
  /** The sectors that hold the table (for gpt: protective MBR, primary and backup header+entries). */
  serialize(table: PartitionTable): SectorWrite[];
}
