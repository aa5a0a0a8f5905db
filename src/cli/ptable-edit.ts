/**
 * ptable's in-place edits of one table on the disk, as sfdisk's: grow.
 */
import { ToolError } from '../errors.js';
import { growPartition } from '../partition/align.js';
import { relocateBackup } from '../partition/gpt.js';
import { writeHazards } from '../partition/read.js';
import { type RegisterCommands, commitTable, loadTable, withDisk } from './ptable-common.js';

export const registerEditCommands: RegisterCommands = (program, globals) => {
  program
    .command('grow')
    .description('extend partition N to the end of the free space after it')
    .argument('<DISK>')
    .argument('<N>')
    .action((path: string, n: string) =>
      withDisk(
        path,
        globals(),
        (disk) => {
          const number = Number(n);
          const table = loadTable(disk, true);
          if (!table.partitions.some((p) => p.number === number)) throw new ToolError('PARTITION_MISSING', `${path}: no partition ${n}`);
          const hazard = writeHazards(disk.read, disk.sectorSize, disk.sectors, number)[0];
          if (hazard) throw new ToolError('REFUSED', `${path}: refusing to grow partition ${number}: ${hazard.message}; nothing written`);
          // A grown disk: the GPT's backup moves to its new end first.
          commitTable(disk, () => growPartition(table.label === 'gpt' ? relocateBackup(table, disk.sectors) : table, number));
        },
        true,
      ),
    );
};
