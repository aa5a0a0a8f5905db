/**
 * Placement rules, as libfdisk applies them to a disk that reports no I/O topology (an image file,
 * a loop device, most disks): partitions are aligned to a 1 MiB "grain" (2048 sectors of 512 bytes,
 * 256 of 4096), except on tiny disks (4 grains or less) where the grain is one sector. The same
 * value is libfdisk's default first LBA, and GPT's default first usable LBA when it lies above
 * the entry array.
 *
 * Also the pure operations on a table that depend on placement: the next free aligned start and
 * growing a partition into the free space after it.
 */
import type { Partition, PartitionTable } from './model.js';

export const DEFAULT_ALIGNMENT_BYTES = 1024 * 1024;
/** Size of one GPT partition entry as sfdisk and sgdisk write it. */
export const GPT_ENTRY_BYTES = 128;
/** Default number of GPT entries (sfdisk's table-length). */
export const GPT_DEFAULT_TABLE_LENGTH = 128;
/** Largest LBA and size an MBR entry can hold (32-bit fields). */
export const MBR_MAX_SECTORS = 0xffffffff;

export const isExtendedType = (type: string): boolean => {
  const t = type.toLowerCase().replace(/^0x/, '');
  return t === '5' || t === '05' || t === 'f' || t === '0f' || t === '85';
};

/** The grain in sectors: 1 MiB, or 1 sector on disks of at most 4 MiB (libfdisk's rule). */
export function defaultAlignmentSectors(sectorSize: number, diskSectors: number): number {
  const grain = Math.max(1, Math.floor(DEFAULT_ALIGNMENT_BYTES / sectorSize));
  return diskSectors <= grain * 4 ? 1 : grain;
}

/** libfdisk's first LBA for partitions (2048 with 512-byte sectors, 256 with 4096; 1 on tiny disks). */
export function defaultFirstLba(sectorSize: number, diskSectors: number): number {
  return defaultAlignmentSectors(sectorSize, diskSectors);
}

/** Sectors taken by a GPT entry array of `tableLength` 128-byte entries. */
export function gptEntriesSectors(tableLength: number, sectorSize: number): number {
  return Math.ceil((tableLength * GPT_ENTRY_BYTES) / sectorSize);
}

/**
 * First and last usable LBA as sfdisk computes them for a new GPT: the last usable LBA leaves room
 * for the backup entries and header; the first is right after the primary entries, moved up to the
 * 1 MiB grain when that still leaves room.
 */
export function gptDefaultUsableLbas(
  diskSectors: number,
  sectorSize: number,
  tableLength: number = GPT_DEFAULT_TABLE_LENGTH,
): { firstLba: number; lastLba: number } {
  const entriesSectors = gptEntriesSectors(tableLength, sectorSize);
  const lastLba = diskSectors - 2 - entriesSectors;
  let firstLba = entriesSectors + 2;
  const aligned = defaultFirstLba(sectorSize, diskSectors);
  if (firstLba < aligned && aligned < lastLba) firstLba = aligned;
  return { firstLba, lastLba };
}

export const alignUp = (lba: number, alignmentSectors: number): number =>
  alignmentSectors <= 1 ? lba : Math.ceil(lba / alignmentSectors) * alignmentSectors;

export const alignDown = (lba: number, alignmentSectors: number): number =>
  alignmentSectors <= 1 ? lba : Math.floor(lba / alignmentSectors) * alignmentSectors;

/** Last sector of a partition. */
export const partitionEnd = (p: Partition): number => p.start + p.size - 1;

/** Lowest LBA a (primary) partition may start at. */
export function firstUsableLba(table: PartitionTable): number {
  if (table.label === 'gpt') {
    return table.firstLba ?? gptDefaultUsableLbas(table.diskSectors, table.sectorSize, table.tableLength).firstLba;
  }
  // libfdisk lowers its first LBA to 1 only when asked to; 1 is the lowest an MBR partition can use.
  return 1;
}

/** Highest LBA a (primary) partition may end at. */
export function lastUsableLba(table: PartitionTable): number {
  if (table.label === 'gpt') {
    return table.lastLba ?? gptDefaultUsableLbas(table.diskSectors, table.sectorSize, table.tableLength).lastLba;
  }
  return Math.min(table.diskSectors - 1, MBR_MAX_SECTORS);
}

/** The extended partition of a dos table, if any. */
export function extendedPartition(table: PartitionTable): Partition | undefined {
  if (table.label !== 'dos') return undefined;
  return table.partitions.find((p) => p.number <= 4 && isExtendedType(p.type));
}

/**
 * Where each logical partition's EBR lives: `ebrLba` when the table says (a table read from disk),
 * otherwise where sfdisk puts it. sfdisk puts the first EBR at the start of the extended partition
 * and each further one `first LBA` sectors (the 1 MiB grain) before its logical partition; when a
 * logical partition starts closer than that to the previous one, libfdisk drops its first LBA to 1
 * for the rest of the session, so that EBR and all later ones sit just before their partition.
 */
export function logicalEbrLbas(table: PartitionTable): Map<number, number> {
  const result = new Map<number, number>();
  const ext = extendedPartition(table);
  if (!ext) return result;
  const logicals = table.partitions.filter((p) => p.number >= 5).sort((a, b) => a.number - b.number);
  let gap = defaultFirstLba(table.sectorSize, table.diskSectors);
  let prevEnd = -1;
  logicals.forEach((p, i) => {
    let ebr: number;
    if (i === 0) {
      if (p.start - ext.start < gap) gap = 1;
      ebr = p.ebrLba ?? ext.start;
    } else if (p.ebrLba !== undefined) {
      ebr = p.ebrLba;
    } else {
      if (p.start - gap <= prevEnd || p.start - gap < ext.start) gap = 1;
      ebr = p.start - gap;
      if (ebr === ext.start) ebr++;
    }
    result.set(p.number, ebr);
    prevEnd = partitionEnd(p);
  });
  return result;
}

/**
 * A copy of logical partition `p` with its EBR's place and the link that points to that EBR
 * pinned as they are now: libfdisk's set_part moves or resizes a logical partition inside its
 * EBR and leaves the previous EBR's link alone, so an edit must not let the writer recompute
 * either from the new start and size. Other partitions come back as copies.
 */
export function pinLogicalEbr(table: PartitionTable, p: Partition): Partition {
  if (table.label !== 'dos' || p.number < 5) return { ...p };
  const ebr = logicalEbrLbas(table).get(p.number);
  if (ebr === undefined) return { ...p };
  const pinned: Partition = { ...p, ebrLba: ebr };
  if (p.number > 5 && pinned.linkSectors === undefined) pinned.linkSectors = partitionEnd(p) - ebr + 1;
  return pinned;
}

/** Sector ranges taken in the primary space (GPT partitions; dos primaries including the extended one). */
function primaryRanges(table: PartitionTable): Array<{ start: number; end: number; number: number }> {
  return table.partitions
    .filter((p) => table.label === 'gpt' || p.number <= 4)
    .filter((p) => p.size > 0)
    .map((p) => ({ start: p.start, end: partitionEnd(p), number: p.number }));
}

export interface NextFreeOptions {
  /**
   * gpt only: the first free gap instead of sfdisk's choice (after the partition that ends last).
   * dos always uses the first free gap, as sfdisk does.
   */
  firstGap?: boolean;
}

/**
 * The start, aligned to `alignmentSectors` (default: the 1 MiB grain), that sfdisk gives a new
 * partition whose script line has no start=, or null when there is no room:
 *  - gpt: right after the partition that ends last (sfdisk 2.38 does not look into earlier gaps),
 *    aligned up, or the first usable LBA aligned up on an empty table;
 *  - dos (a new primary or extended partition): the first free sector from libfdisk's first LBA
 *    (2048), skipping past every partition it falls in (the extended one included), aligned up.
 */
export function nextFreeStart(table: PartitionTable, alignmentSectors?: number, options: NextFreeOptions = {}): number | null {
  const align = alignmentSectors ?? defaultAlignmentSectors(table.sectorSize, table.diskSectors);
  const first = table.label === 'gpt' ? firstUsableLba(table) : defaultFirstLba(table.sectorSize, table.diskSectors);
  const last = lastUsableLba(table);
  const ranges = primaryRanges(table);
  let candidate: number;
  if (table.label === 'gpt' && !options.firstGap) {
    const lastEnd = ranges.reduce((m, r) => Math.max(m, r.end), first - 1);
    candidate = alignUp(Math.max(first, lastEnd + 1), align);
  } else {
    candidate = alignUp(first, align);
    for (;;) {
      const hit = ranges.find((r) => candidate >= r.start && candidate <= r.end);
      if (!hit) break;
      candidate = alignUp(hit.end + 1, align);
    }
  }
  return candidate <= last ? candidate : null;
}

export interface GrowOptions {
  /**
   * Align the new end so that the next sector is a multiple of this many sectors (never shrinking
   * the partition). Default 1: no alignment, the end of the free space, as `sfdisk -N n` with
   * size "+" and growpart both do. (growpart also keeps the last 33 sectors of a dos disk free,
   * for a later conversion to GPT; this does not.)
   */
  alignmentSectors?: number;
}

/**
 * Extends partition `number` to the end of the free space after it: up to the sector before the
 * next partition (for a logical partition: before the next EBR; for dos primaries the extended
 * partition counts as a partition), and never past the last usable LBA (gpt), the end of the disk
 * or the 32-bit limit (dos), or the end of the extended partition (logical partitions). Returns a
 * new table; the partition keeps its size when it cannot grow.
 */
export function growPartition(table: PartitionTable, number: number, options: GrowOptions = {}): PartitionTable {
  const p = table.partitions.find((q) => q.number === number);
  if (!p) throw new Error(`no partition ${number} in the table`);
  const isLogical = table.label === 'dos' && p.number >= 5;
  let limit: number;
  const obstacles: number[] = [];
  if (isLogical) {
    const ext = extendedPartition(table);
    if (!ext) throw new Error(`logical partition ${number} has no extended partition`);
    limit = partitionEnd(ext);
    const ebrs = logicalEbrLbas(table);
    for (const q of table.partitions) {
      if (q.number < 5 || q === p) continue;
      obstacles.push(q.start);
      const ebr = ebrs.get(q.number);
      if (ebr !== undefined) obstacles.push(ebr);
    }
  } else {
    limit = lastUsableLba(table);
    if (table.label === 'dos') limit = Math.min(limit, p.start + MBR_MAX_SECTORS - 1);
    for (const r of primaryRanges(table)) if (r.number !== p.number) obstacles.push(r.start);
  }
  let end = limit;
  for (const s of obstacles) if (s > p.start && s - 1 < end) end = s - 1;
  const align = options.alignmentSectors ?? 1;
  if (align > 1) {
    const aligned = alignDown(end + 1, align) - 1;
    if (aligned >= partitionEnd(p)) end = aligned;
  }
  if (end <= partitionEnd(p)) return { ...table, partitions: table.partitions.map((q) => ({ ...q })) };
  return {
    ...table,
    partitions: table.partitions.map((q) => (q === p ? { ...pinLogicalEbr(table, q), size: end - q.start + 1 } : { ...q })),
  };
}
