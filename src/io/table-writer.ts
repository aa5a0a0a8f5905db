/**
 * The one way a partition table is put on a disk, for every command (ptable write, relocate and
 * grow; sparsecopy --relocate-gpt): the rules that hold whenever a table is rewritten live here
 * and nowhere else.
 *
 * - The boot code (bytes 0..439 of sector 0) of the disk stays: a protective MBR or a new dos MBR
 *   carries zeros there, and writing them over a BIOS boot loader (GRUB's boot.img) would leave a
 *   disk that no longer boots. libfdisk and sgdisk keep it the same way.
 */
import type { PartitionTable } from '../partition/model.js';
import { mergeMbrSector } from '../partition/mbr.js';
import { serializeTable } from '../partition/read.js';
import { type Disk, rereadIfDevice, writeSectors } from './disk.js';

/**
 * Writes `table` to `disk` (which must be at least `table.diskSectors` long) and, on a block
 * device, asks the kernel to re-read it. Returns a warning when the kernel could not.
 */
export function writeTable(disk: Disk, table: PartitionTable): string | null {
  const writes = serializeTable(table);
  for (const w of writes) {
    if (w.lba !== 0) continue;
    const existing = disk.read(0, 1);
    w.data = Buffer.concat([mergeMbrSector(existing, w.data.subarray(0, 512)), w.data.subarray(512)]);
  }
  writeSectors(disk, writes);
  return rereadIfDevice(disk);
}
