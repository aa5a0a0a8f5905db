/**
 * ptable's in-place edits of one table on the disk, as sfdisk's: grow, delete, part-type,
 * part-label, part-uuid, part-attrs, disk-id, activate, reorder. The changes themselves are pure
 * (src/partition/edit.ts, edit-script.ts); this reads the table, prints what sfdisk prints, and
 * commits the new table through the one writer.
 */
import type { Command } from 'commander';
import { ToolError } from '../errors.js';
import type { Disk } from '../io/disk.js';
import {
  type EditResult,
  activatePartitions,
  activateProtectiveMbr,
  deletePartitions,
  partitionValue,
  protectiveMbrBootable,
  reorderPartitions,
  setDiskId,
  setPartitionAttributes,
  setPartitionName,
  setPartitionType,
  setPartitionUuid,
  usedPartition,
} from '../partition/edit.js';
import { growPartition } from '../partition/align.js';
import { relocateBackup } from '../partition/gpt.js';
import type { PartitionTable } from '../partition/model.js';
import { writeHazards } from '../partition/read.js';
import { type Globals, type RegisterCommands, commitSectors, commitTable, loadTable, onDisk, warn, withDisk } from './ptable-common.js';

/** A partition number argument as sfdisk reads it (strtou32_or_err). */
export function partitionNumber(path: string, text: string): number {
  if (!/^\s*[0-9]+$/.test(text) || Number(text) > 0xffffffff) throw new ToolError('USAGE', `${path}: failed to parse partition number '${text}'`);
  return Number(text);
}

const say = (lines: readonly string[]): void => {
  for (const l of lines) process.stdout.write(`${l}\n`);
};

/** Refuses to change a table whose partitions overlap or lie outside the disk (the hazards the reader found). */
function refuseHazards(disk: Disk, what: string, number: number): void {
  const hazard = writeHazards(disk.read, disk.sectorSize, disk.sectors, number)[0];
  if (hazard) throw new ToolError('REFUSED', `${disk.path}: refusing to ${what}: ${hazard.message}; nothing written`);
}

/** Loads, changes (pure, before anything is written: a refusal leaves the disk as it was) and commits. */
function edit(disk: Disk, change: (table: PartitionTable) => EditResult | PartitionTable | null): void {
  const table = loadTable(disk, true);
  const result = onDisk(disk.path, () => change(table));
  if (result === null) return;
  const next = 'notes' in result ? result.table : result;
  // what sfdisk says about the change goes to stderr: stdout carries only the values asked for
  if ('notes' in result) for (const note of result.notes) warn(`${disk.path}: ${note}`);
  commitTable(disk, () => next);
}

/** `part-X DISK N [VALUE]`: prints the value without one, sets it with one. */
function attributeCommand(
  program: Command,
  globals: Globals,
  name: string,
  description: string,
  what: 'type' | 'name' | 'uuid' | 'attrs',
  set: (table: PartitionTable, n: number, value: string) => EditResult,
): void {
  program
    .command(name)
    .description(description)
    .argument('<DISK>')
    .argument('<N>')
    .argument('[VALUE]')
    .action((path: string, n: string, value: string | undefined) => {
      const number = partitionNumber(path, n);
      if (value === undefined) {
        withDisk(path, globals(), (disk) => {
          const shown = onDisk(path, () => partitionValue(loadTable(disk), number, what));
          if (shown !== null) say([shown]);
        });
        return;
      }
      withDisk(path, globals(), (disk) => edit(disk, (t) => set(t, number, value)), true);
    });
}

function activate(disk: Disk, numbers: number[] | null): void {
  const table = loadTable(disk, numbers !== null);
  if (table.label === 'gpt') {
    // libfdisk: "Activation is unsupported for GPT -- entering nested PMBR."
    const sector0 = disk.read(0, 1);
    if (numbers === null) {
      say(protectiveMbrBootable(sector0).map((n) => `${disk.path}${n}`));
      return;
    }
    const changed = onDisk(disk.path, () => activateProtectiveMbr(sector0, numbers));
    commitSectors(disk, [{ lba: 0, data: changed }], false);
    return;
  }
  if (numbers === null) {
    say(table.partitions.filter((p) => p.bootable).map((p) => `${disk.path}${p.number}`));
    return;
  }
  edit(disk, (t) => activatePartitions(t, numbers));
}

export const registerEditCommands: RegisterCommands = (program, globals) => {
  program
    .command('grow')
    .description("extend partition N to the end of the free space after it (sfdisk -N N with ',+'; a logical partition stops before the next EBR)")
    .argument('<DISK>')
    .argument('<N>')
    .action((path: string, n: string) =>
      withDisk(
        path,
        globals(),
        (disk) => {
          const number = partitionNumber(path, n);
          const table = loadTable(disk, true);
          onDisk(path, () => usedPartition(table, number));
          refuseHazards(disk, `grow partition ${number}`, number);
          // A grown disk: the GPT's backup moves to its new end first.
          const current = table.label === 'gpt' ? relocateBackup(table, disk.sectors) : table;
          // sfdisk -N N ',+' (the same bytes), but stopping before the next EBR where libfdisk runs over it
          commitTable(disk, () => growPartition(current, number));
        },
        true,
      ),
    );

  program
    .command('delete')
    .description('delete partitions N... (all of them without N), as sfdisk --delete')
    .argument('<DISK>')
    .argument('[N...]')
    .action((path: string, ns: string[]) => {
      const numbers = ns.map((n) => partitionNumber(path, n));
      withDisk(path, globals(), (disk) => edit(disk, (t) => deletePartitions(t, numbers)), true);
    });

  attributeCommand(program, globals, 'part-type', "print or set partition N's type (sfdisk's names, shortcuts, hex or GUID)", 'type', setPartitionType);
  attributeCommand(program, globals, 'part-label', "print or set GPT partition N's name", 'name', setPartitionName);
  attributeCommand(program, globals, 'part-uuid', "print or set GPT partition N's unique GUID", 'uuid', setPartitionUuid);
  attributeCommand(program, globals, 'part-attrs', "print or set GPT partition N's attributes (RequiredPartition, NoBlockIOProtocol, LegacyBIOSBootable, GUID:48..63)", 'attrs', setPartitionAttributes);

  program
    .command('disk-id')
    .description("print or set the disk's id (dos: a 32-bit number; gpt: the disk GUID)")
    .argument('<DISK>')
    .argument('[ID]')
    .action((path: string, id: string | undefined) => {
      if (id === undefined) {
        withDisk(path, globals(), (disk) => say([loadTable(disk).id]));
        return;
      }
      withDisk(path, globals(), (disk) => edit(disk, (t) => setDiskId(t, id)), true);
    });

  program
    .command('activate')
    .description('list the bootable partitions, or make N... the bootable ones (dos; on GPT, the protective MBR)')
    .argument('<DISK>')
    .argument('[N...]')
    .action((path: string, ns: string[]) => {
      // sfdisk: `--activate DISK -` clears every flag.
      const numbers = ns.length === 0 ? null : ns[0] === '-' ? [] : ns.map((n) => partitionNumber(path, n));
      withDisk(path, globals(), (disk) => activate(disk, numbers), numbers !== null);
    });

  program
    .command('reorder')
    .description('number the partitions in disk order (sfdisk --reorder)')
    .argument('<DISK>')
    .action((path: string) =>
      withDisk(
        path,
        globals(),
        (disk) =>
          edit(disk, (t) => {
            const next = reorderPartitions(t);
            if (next === null) warn(`${path}: nothing to do, the ordering is correct already (nothing written)`);
            return next;
          }),
        true,
      ),
    );
};
