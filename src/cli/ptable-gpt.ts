/**
 * ptable's whole-table operations in the manner of sgdisk and sfdisk --relocate: relocate.
 */
import { ToolError } from '../errors.js';
import { relocateBackup } from '../partition/gpt.js';
import { type RegisterCommands, commitTable, loadTable, withDisk } from './ptable-common.js';

export const registerGptCommands: RegisterCommands = (program, globals) => {
  program
    .command('relocate')
    .description('move the backup GPT to the end of a larger disk and fix the headers (sgdisk -e)')
    .argument('<DISK>')
    .action((path: string) =>
      withDisk(
        path,
        globals(),
        (disk) => {
          const table = loadTable(disk, true);
          if (table.label !== 'gpt') throw new ToolError('USAGE', `${path}: relocate applies to GPT disks; this one is ${table.label}`);
          commitTable(disk, () => relocateBackup(table, disk.sectors));
        },
        true,
      ),
    );
};
