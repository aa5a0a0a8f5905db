/**
 * What every ptable command shares: opening a disk, reading its table with the problems shown,
 * and committing a changed table through the one writer (src/io/table-writer.ts).
 */
import type { Command } from 'commander';
import { defaultBackupPrefix, writeSfdiskBackup } from '../io/table-backup.js';
import { ToolError } from '../errors.js';
import { type Disk, openDisk } from '../io/disk.js';
import { writeRawTableSectors, writeTable } from '../io/table-writer.js';
import type { PartitionTable, SectorWrite, TableProblem } from '../partition/model.js';
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

/** The pure edits' refusals name the partition, not the disk: the disk's path goes in front. */
export function onDisk<T>(path: string, body: () => T): T {
  try {
    return body();
  } catch (err) {
    if (err instanceof ToolError) throw new ToolError(err.code, `${path}: ${err.message}`, { cause: err });
    throw err;
  }
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
 * sfdisk's options of every command that changes a table (--delete, --part-type, ... as much as
 * a script): no re-read, quiet, force, and the -b/-O backup of the table's sectors before the change.
 */
export interface ChangeOptions {
  reread?: boolean;
  tellKernel?: boolean;
  quiet?: boolean;
  force?: boolean;
  backup?: boolean;
  backupFile?: string;
}

/** Adds the change options a command does not define itself (zap and restore have their own -f). */
export function addChangeOptions(command: Command): void {
  const has = (flag: string): boolean => command.options.some((o) => o.short === flag || o.long === flag);
  if (!has('--no-reread')) command.option('--no-reread', 'do not ask the kernel to re-read the table (block devices)');
  if (!has('--no-tell-kernel')) command.option('--no-tell-kernel', 'as --no-reread');
  if (!has('-q')) command.option('-q, --quiet', 'no informational messages');
  if (!has('-f')) command.option('-f, --force', 'accepted for sfdisk');
  if (!has('-b')) command.option('-b, --backup', 'back up the table sectors first (~/sfdisk-DEVICE-OFFSET.bak, as sfdisk -b)');
  if (!has('-O')) command.option('-O, --backup-file <PATH>', 'with -b: the backup files\' prefix instead of ~/sfdisk');
}

/**
 * The change options of the command being run: set by ptable.ts's preAction hook, so that every
 * commit (commitTable, commitSectors) follows them without each action passing them down.
 */
let running: ChangeOptions = {};

export function setRunningChangeOptions(options: ChangeOptions): void {
  running = options;
}

/** sfdisk -b/-O: the sectors of the table on the disk, saved before they change. */
function backupBeforeChange(disk: Disk): void {
  if (!running.backup && running.backupFile === undefined) return;
  const lines = writeSfdiskBackup(disk, disk.path, running.backupFile ?? defaultBackupPrefix());
  if (!running.quiet) process.stdout.write(lines.map((l) => `${l}\n`).join(''));
}

const noReread = (): boolean => running.reread === false || running.tellKernel === false;

/** Raw table sectors (sgdisk's bytes) through the one writer, with the change options. */
export function commitSectors(disk: Disk, writes: SectorWrite[], keepBootCode: boolean): void {
  backupBeforeChange(disk);
  const warning = writeRawTableSectors(disk, writes, { keepBootCode, noReread: noReread() });
  if (warning) warn(warning);
}

/**
 * Changes the table on the disk (relocate, grow, the in-place edits). A change the model refuses
 * (a partition that no longer fits) or a table the drivers refuse to serialize (overlapping
 * partitions read from the disk, say) is a refusal: the disk is left as it was.
 */
export function commitTable(disk: Disk, change: () => PartitionTable): void {
  let warning: string | null;
  try {
    const table = change();
    backupBeforeChange(disk);
    warning = writeTable(disk, table, { noReread: noReread() }).warning;
  } catch (err) {
    if (err instanceof ToolError && err.code === 'USAGE') throw new ToolError('REFUSED', `${disk.path}: ${err.message}; nothing written`, { cause: err });
    throw err;
  }
  if (warning) warn(warning);
}
