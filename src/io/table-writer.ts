/**
 * The one way a partition table is put on a disk, for every command (ptable write, relocate and
 * the edits; sparsecopy --relocate-gpt): the rules that hold whenever a table is rewritten live
 * in src/partition/wipe-plan.ts and nowhere else, and this writes what that plan says.
 *
 * - The boot code (bytes 0..439 of sector 0) of the disk stays: a protective MBR or a new dos MBR
 *   carries zeros there, and writing them over a BIOS boot loader (GRUB's boot.img) would leave a
 *   disk that no longer boots. libfdisk and sgdisk keep it the same way (--wipe always zeroes it).
 * - The old label's signatures go (a GPT under a new dos table), as sfdisk's --wipe auto.
 */
import { mergeMbrSector } from '../partition/mbr.js';
import type { PartitionTable, SectorWrite } from '../partition/model.js';
import { type TableWritePlan, type WipeOptions, planTableWrite } from '../partition/wipe-plan.js';
import { type Disk, rereadIfDevice, writeSectors } from './disk.js';

export interface WriteTableOptions extends WipeOptions {
  /** Plan only (ptable write -n): nothing is written. */
  noAct?: boolean;
  /** No BLKRRPART after the write (sfdisk --no-reread / --no-tell-kernel). */
  noReread?: boolean;
}

export interface WriteTableResult {
  plan: TableWritePlan;
  /** The kernel could not re-read the table of a block device. */
  warning: string | null;
}

/**
 * Writes `table` to `disk` (which must be at least `table.diskSectors` long) with the wipes the
 * plan adds and, on a block device, asks the kernel to re-read it.
 */
export function writeTable(disk: Disk, table: PartitionTable, options: WriteTableOptions = {}): WriteTableResult {
  const plan = planTableWrite(disk.read, table, options);
  if (options.noAct) return { plan, warning: null };
  writeSectors(disk, plan.writes);
  return { plan, warning: options.noReread ? null : rereadIfDevice(disk) };
}

export interface RawTableWriteOptions {
  /** Keep the disk's boot code (bytes 0..439 of sector 0) under a new sector 0 (default true). */
  keepBootCode?: boolean;
  noReread?: boolean;
}

/**
 * Writes table sectors that are not a table model's (sgdisk's bytes: zap, a restored backup, new
 * GUIDs in place, sgdisk -e's headers), by the same rule for sector 0's boot code, then re-reads.
 * Returns the kernel's warning, if any.
 */
export function writeRawTableSectors(disk: Disk, writes: SectorWrite[], options: RawTableWriteOptions = {}): string | null {
  const keep = options.keepBootCode ?? true;
  const merged = writes.map((w) =>
    w.lba === 0 && keep ? { lba: 0, data: Buffer.concat([mergeMbrSector(disk.read(0, 1), w.data.subarray(0, 512)), w.data.subarray(512)]) } : w,
  );
  writeSectors(disk, merged);
  return options.noReread ? null : rereadIfDevice(disk);
}
