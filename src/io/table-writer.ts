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
import type { PartitionTable } from '../partition/model.js';
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
