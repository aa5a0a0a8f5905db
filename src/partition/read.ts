/**
 * Label-independent entry points: probe the drivers in order (gpt first, because a GPT disk also
 * carries a valid MBR, the protective one), read, check, serialize.
 */
import { gptDriver } from './gpt.js';
import { leftoverGptHeaders, strayGptSignatures } from './gpt-leftovers.js';
import { mbrDriver } from './mbr.js';
import type { LabelDriver, LabelType, PartitionTable, SectorReader, SectorWrite, TableProblem } from './model.js';

/** Probe order: GPT before dos. */
export const LABEL_DRIVERS: readonly LabelDriver[] = [gptDriver, mbrDriver];

export const SUPPORTED_SECTOR_SIZES: readonly number[] = [512, 4096];

/**
 * Stable problem codes, for callers that branch on them. Severity is given for check(); read()
 * reports the problems of a table it could still read as warnings.
 */
export const PROBLEM_CODES = {
  'no-table': 'no partition table recognised (error)',
  'bad-sector-size': 'sector size other than 512 or 4096 (error)',
  // both labels
  'bad-signature': 'MBR without 0x55AA at LBA 0, or primary GPT header without "EFI PART" (error)',
  overlap: 'two partitions overlap, or a partition covers a table sector (an EBR, a GPT header or entry array); lba = first shared sector (error)',
  'past-end': 'a partition ends past the end of the disk; lba = its start (error)',
  // dos
  'bad-start': 'a partition starts at LBA 0 (error)',
  'bad-boot-flag': 'boot indicator neither 0x00 nor 0x80 (warning)',
  'multiple-extended': 'more than one extended partition; only the first is followed (warning)',
  'bad-extended': 'extended partition at LBA 0 (error)',
  'bad-ebr-signature': 'an EBR without 0x55AA (warning, as libfdisk)',
  'bad-ebr-link': 'an EBR outside the extended partition or past the end of the disk (error)',
  'ebr-loop': 'the EBR chain loops (error)',
  'extra-ebr-entries': 'an EBR with more than one partition or link entry (warning)',
  'logical-outside-extended': 'a logical partition not inside the extended partition (error)',
  'leftover-gpt': 'a dos disk that still carries a valid GPT header at LBA 1 or the last LBA, from a former label (sgdisk -p refuses the disk, wipefs lists it); lba = the header (error; a bare "EFI PART" signature there: warning)',
  'empty-partition': 'a logical partition of type 0 with a size: sfdisk -V "Partition N: empty." (error)',
  'too-many-logicals': 'more than 56 EBRs: sfdisk omits the partitions after 60 (error)',
  // gpt
  'no-protective-mbr': 'no MBR signature or no 0xEE entry at LBA 0 (warning)',
  'hybrid-mbr': 'the protective MBR also holds other partitions (warning)',
  'pmbr-bad-start': 'the 0xEE entry does not start at LBA 1 (warning)',
  'pmbr-size-mismatch': 'the 0xEE entry does not cover the disk, e.g. the image grew (warning)',
  'bad-header-size': 'GPT header size outside 92..sector size (error)',
  'bad-header-crc': 'GPT header CRC-32 mismatch; lba = the header (error)',
  'value-too-large': 'a 64-bit field above 2^53-1 (error)',
  'unknown-revision': 'GPT revision other than 1.0 (warning)',
  'bad-entry-size': 'GPT entry size not 128 x 2^n (error)',
  'bad-entry-count': 'GPT entry count 0 or absurd (error)',
  'bad-entries-crc': 'GPT entry array CRC-32 mismatch; lba = the array (error)',
  'bad-lba': 'GPT LBA sanity: usable range reversed or past the end, header or entries inside it (error)',
  'wrong-my-lba': 'GPT header "my LBA" is not where it was read (error)',
  'missing-backup': 'no backup GPT header where expected; lba = that place (error)',
  'backup-not-at-end': 'backup GPT header before the last LBA: the disk grew (an error for check, as for sfdisk -V; read still returns the table)',
  'backup-past-end': 'backup GPT header LBA past the end: the disk shrank (error)',
  'headers-differ': 'primary and backup GPT disagree (error)',
  'read-from-backup': 'primary GPT damaged, table read from the backup (warning)',
  'start-after-end': 'a GPT partition ends before it starts (error)',
  'outside-usable': 'a GPT partition outside the first..last usable LBAs; lba = its start (error)',
} as const;

export type ProblemCode = keyof typeof PROBLEM_CODES;

export function driverFor(label: LabelType): LabelDriver {
  const d = LABEL_DRIVERS.find((x) => x.label === label);
  if (!d) throw new Error(`no driver for label "${label}"`);
  return d;
}

function sectorSizeProblem(sectorSize: number): TableProblem | null {
  if (SUPPORTED_SECTOR_SIZES.includes(sectorSize)) return null;
  return { severity: 'error', code: 'bad-sector-size', message: `sector size ${sectorSize}: expected 512 or 4096` };
}

export interface ReadResult {
  /** The label found, or null when no driver recognised the disk. */
  label: LabelType | null;
  table: PartitionTable | null;
  problems: TableProblem[];
  /**
   * A label the disk carries but that could not be read (a GPT with both headers damaged, whose
   * protective MBR is then read as a dos table): showing that table is sfdisk's way, rewriting it
   * would destroy what is left of the real one.
   */
  unreadableLabel?: LabelType;
}

/**
 * Reads the partition table. GPT is probed first; when its probe succeeds but neither header can
 * be read, the protective MBR is read as a dos table (as sfdisk then shows it) and the GPT errors
 * are kept in `problems`.
 */
export function readTable(read: SectorReader, sectorSize: number, diskSectors: number): ReadResult {
  const bad = sectorSizeProblem(sectorSize);
  if (bad) return { label: null, table: null, problems: [bad] };
  const carried: TableProblem[] = [];
  let unreadableLabel: LabelType | undefined;
  for (const driver of LABEL_DRIVERS) {
    if (!driver.probe(read, sectorSize, diskSectors)) continue;
    const { table, problems } = driver.read(read, sectorSize, diskSectors);
    if (table) {
      const result: ReadResult = { label: driver.label, table, problems: [...carried, ...problems] };
      if (unreadableLabel) result.unreadableLabel = unreadableLabel;
      return result;
    }
    carried.push(...problems);
    unreadableLabel ??= driver.label;
  }
  if (carried.length > 0) return { label: null, table: null, problems: carried };
  return { label: null, table: null, problems: [{ severity: 'error', code: 'no-table', message: 'no partition table (neither GPT nor MBR signature)', lba: 0 }] };
}

/** A former GPT's headers on a dos disk (what sfdisk wipes when it writes dos over GPT). */
function otherLabelLeftovers(read: SectorReader, sectorSize: number, diskSectors: number): TableProblem[] {
  const where = (lba: number): string => (lba === 1 ? 'LBA 1' : 'the last LBA');
  return [
    ...leftoverGptHeaders(read, sectorSize, diskSectors).map(
      (lba): TableProblem => ({ severity: 'error', code: 'leftover-gpt', message: `a valid GPT header at ${where(lba)} of this dos disk: a former table that sgdisk and wipefs still see (wipefs -a -t gpt removes it)`, lba }),
    ),
    ...strayGptSignatures(read, sectorSize, diskSectors).map(
      (lba): TableProblem => ({ severity: 'warning', code: 'leftover-gpt', message: `a GPT signature ("EFI PART") at ${where(lba)} of this dos disk`, lba }),
    ),
  ];
}

/** Every problem of the table on disk, from the first driver whose probe recognises it. */
export function checkTable(read: SectorReader, sectorSize: number, diskSectors: number): { label: LabelType | null; problems: TableProblem[] } {
  const bad = sectorSizeProblem(sectorSize);
  if (bad) return { label: null, problems: [bad] };
  for (const driver of LABEL_DRIVERS) {
    if (!driver.probe(read, sectorSize, diskSectors)) continue;
    const problems = driver.check(read, sectorSize, diskSectors);
    if (driver.label === 'dos') problems.push(...otherLabelLeftovers(read, sectorSize, diskSectors));
    return { label: driver.label, problems };
  }
  return { label: null, problems: [{ severity: 'error', code: 'no-table', message: 'no partition table (neither GPT nor MBR signature)', lba: 0 }] };
}

/**
 * The check problems that make writing into partition `number` unsafe: it overlaps another
 * partition or a table sector, starts over the MBR, or runs past the disk or the usable LBAs.
 * (Reading such a partition is harmless; writing it destroys the table or another partition.)
 */
export const WRITE_HAZARD_CODES: ReadonlySet<string> = new Set(['overlap', 'bad-start', 'past-end', 'outside-usable', 'start-after-end']);

export function writeHazards(read: SectorReader, sectorSize: number, diskSectors: number, number: number): TableProblem[] {
  return checkTable(read, sectorSize, diskSectors).problems.filter(
    (p) => p.severity === 'error' && WRITE_HAZARD_CODES.has(p.code) && p.partitions?.includes(number) === true,
  );
}

/** The sectors that hold `table`, from its label's driver. */
export function serializeTable(table: PartitionTable): SectorWrite[] {
  return driverFor(table.label).serialize(table);
}

/**
 * The sector size of a GPT image from its first 8 KiB: 512 when "EFI PART" is at byte 512, 4096
 * when it is at byte 4096, null otherwise (no GPT, or a damaged primary header).
 */
export function detectGptSectorSize(head: Uint8Array): 512 | 4096 | null {
  const sig = Buffer.from('EFI PART', 'latin1');
  const at = (o: number): boolean => head.length >= o + 8 && Buffer.from(head.subarray(o, o + 8)).equals(sig);
  if (at(512)) return 512;
  if (at(4096)) return 4096;
  return null;
}

/** A SectorReader over an in-memory image (reads past the end return the bytes that exist). */
export function bufferReader(image: Buffer, sectorSize: number): SectorReader {
  return (lba, count) => image.subarray(Math.min(lba * sectorSize, image.length), Math.min((lba + count) * sectorSize, image.length));
}

/** Applies sector writes to an in-memory image (for tests and for building images in memory). */
export function applyWrites(image: Buffer, sectorSize: number, writes: SectorWrite[]): void {
  for (const w of writes) w.data.copy(image, w.lba * sectorSize);
}
