/**
 * What every ptable command shares: opening a disk, reading its table with the problems shown,
 * and committing a changed table through the one writer (src/io/table-writer.ts).
 */
import type { Command } from 'commander';
import { ToolError } from '../errors.js';
import { type Disk, openDisk } from '../io/disk.js';
import { writeTable } from '../io/table-writer.js';
import type { PartitionTable, TableProblem } from '../partition/model.js';
import { readTable } from '../partition/read.js';
import { programLine } from './run.js';

export interface GlobalOptions {
  sectorSize?: string;
}

/** The global options, read when a subcommand runs (commander parses them first). */
export type Globals = () => GlobalOptions;

/** Registers a group of subcommands on the ptable program. */
export type RegisterCommands = (program: Command, globals: Globals) => void;

export function sectorSizeOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (n !== 512 && n !== 4096) throw new ToolError('USAGE', `bad --sector-size '${text}': expected 512 or 4096`);
  return n;
}

/** Opens a disk; an image's sector size is taken from its GPT header's position when not given. */
export function openForCommand(path: string, options: GlobalOptions, writable = false): Disk {
  const sectorSize = sectorSizeOption(options.sectorSize);
  return openDisk(path, sectorSize === undefined ? { writable } : { writable, sectorSize });
}

export function formatProblem(path: string, p: TableProblem): string {
  return `${path}: ${p.severity}: ${p.message}${p.lba !== undefined ? ` (LBA ${p.lba})` : ''} [${p.code}]`;
}

export const warn = (message: string): void => {
  process.stderr.write(programLine('ptable', message));
};

/**
 * Reads the table or fails with NO_TABLE; warnings (a GPT read from its backup) go to stderr.
 * `forChange`: the table is about to be rewritten, which is refused when what was read is the
 * protective MBR of a GPT that could not be read.
 */
export function loadTable(disk: Disk, forChange = false): PartitionTable {
  const { table, problems, unreadableLabel } = readTable(disk.read, disk.sectorSize, disk.sectors);
  for (const p of problems) if (p.severity === 'warning' || table) process.stderr.write(`${formatProblem(disk.path, p)}\n`);
  if (!table) {
    const why = problems.find((p) => p.severity === 'error');
    throw new ToolError('NO_TABLE', `${disk.path}: ${why ? why.message : 'no partition table'}${why?.lba !== undefined ? ` (LBA ${why.lba})` : ''}`);
  }
  if (forChange && unreadableLabel) {
    throw new ToolError('REFUSED', `${disk.path}: its ${unreadableLabel} table cannot be read (see the errors above), and its protective MBR is no ${table.label} table to change; nothing written`);
  }
  return table;
}

export function withDisk<T>(path: string, options: GlobalOptions, body: (disk: Disk) => T, writable = false): T {
  const disk = openForCommand(path, options, writable);
  try {
    return body(disk);
  } finally {
    disk.close();
  }
}

/**
 * Changes the table on the disk (relocate, grow, the in-place edits). A change the model refuses
 * (a partition that no longer fits) or a table the drivers refuse to serialize (overlapping
 * partitions read from the disk, say) is a refusal: the disk is left as it was.
 */
export function commitTable(disk: Disk, change: () => PartitionTable): void {
  let warning: string | null;
  try {
    warning = writeTable(disk, change()).warning;
  } catch (err) {
    if (err instanceof ToolError && err.code === 'USAGE') throw new ToolError('REFUSED', `${disk.path}: ${err.message}; nothing written`, { cause: err });
    throw err;
  }
  if (warning) warn(warning);
}
