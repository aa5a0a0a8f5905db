/**
 * `ptable write`: the table an sfdisk script on stdin describes, as `sfdisk DISK < SCRIPT` writes it,
 * with sfdisk's wipe rules (src/partition/wipe-plan.ts) and its write options.
 */
import fs from 'node:fs';
import { Option } from 'commander';
import { ToolError } from '../errors.js';
import { type Disk, closeDisk, ensureDiskSectors, openDisk } from '../io/disk.js';
import { type MoveRequest, movePartitionData, planMoveData } from '../io/move-data.js';
import { defaultBackupPrefix, writeSfdiskBackup } from '../io/table-backup.js';
import { writeTable } from '../io/table-writer.js';
import { appendFromScript, editPartitionFromScript } from '../partition/edit-script.js';
import type { LabelType, PartitionTable } from '../partition/model.js';
import { readTable } from '../partition/read.js';
import { type ScriptPlan, prepareScriptTable } from '../partition/script-table.js';
import { type ByteWipe, WIPE_MODES, type WipeMode } from '../partition/wipe-plan.js';
import { parseSize } from '../size.js';
import { type GlobalOptions, type RegisterCommands, loadTable, onDisk, sectorSizeOption, warn } from './ptable-common.js';

interface WriteOptions {
  size?: string;
  label?: LabelType;
  wipe?: WipeMode;
  wipePartitions?: WipeMode;
  /** false with -n/--no-act (commander's negated option). */
  act?: boolean;
  reread?: boolean;
  tellKernel?: boolean;
  force?: boolean;
  quiet?: boolean;
  partno?: string;
  append?: boolean;
  moveData?: boolean;
  /** --move-data=LOGFILE's file (see sfdisk-argv.ts). */
  moveDataLog?: string;
  backup?: boolean;
  backupFile?: string;
}

/** The combinations sfdisk refuses, refused before anything is read or written. */
function checkOptions(opts: WriteOptions): void {
  if (opts.partno !== undefined && !/^[1-9]\d*$/.test(opts.partno)) throw new ToolError('USAGE', `bad -N '${opts.partno}': expected a partition number`);
  if (opts.partno !== undefined && opts.append) throw new ToolError('USAGE', '-N and --append cannot be used together');
  if (opts.moveData !== undefined && opts.partno === undefined) throw new ToolError('USAGE', '--move-data needs -N');
}

/**
 * The script's table: a whole new one, or (-N, --append) the table on the disk (`edited`, read
 * once) changed by it.
 */
function scriptPlan(disk: Disk, script: string, opts: WriteOptions, sizeSectors: number): { plan: ScriptPlan | null; edited?: PartitionTable } {
  if (opts.partno === undefined && !opts.append) {
    const current = disk.sectors > 0 ? readTable(disk.read, disk.sectorSize, disk.sectors).table : null;
    // -X names the label of a script without "label:", even over the disk's own (as sfdisk 2.38.1).
    const defaultLabel = opts.label ?? current?.label;
    const plan = prepareScriptTable(script, {
      path: disk.path,
      sectorSize: disk.sectorSize,
      diskSectors: Math.max(disk.sectors, sizeSectors),
      ...(defaultLabel ? { currentLabel: defaultLabel } : {}),
    });
    return { plan };
  }
  // sfdisk: "cannot modify partition N: no partition table was found"; ptable's exit 3.
  const edited = loadTable(disk, true);
  const plan = onDisk(disk.path, () => (opts.partno !== undefined ? editPartitionFromScript(edited, Number(opts.partno), script) : appendFromScript(edited, script)));
  return { plan, edited };
}

/** -N N --move-data: what moves once the table is written (sfdisk moves the data after the write). */
function plannedMove(disk: Disk, opts: WriteOptions, before: PartitionTable | undefined, table: PartitionTable): MoveRequest | null {
  if (!opts.moveData || opts.partno === undefined || !before) return null;
  const number = Number(opts.partno);
  const moved = table.partitions.find((p) => p.number === number);
  if (!moved) return null;
  const original = before.partitions.find((p) => p.number === number);
  const move = onDisk(disk.path, () => planMoveData(original, moved));
  if (!move) {
    if (original) warn(`${disk.path}: partition ${number}: start of the partition has not been moved; ignoring --move-data`);
    return null;
  }
  return { number, ...move, ...(opts.moveDataLog !== undefined ? { log: opts.moveDataLog } : {}) };
}

function describeWipe(w: ByteWipe): string {
  const where = w.partition === undefined ? '' : ` in partition ${w.partition}`;
  return `wipe ${w.length} byte(s) of the ${w.type} signature at byte ${w.offset}${where}`;
}

/** `ptable write`: the script's table on the disk; an image is created or extended as needed. */
function writeScript(path: string, options: GlobalOptions, opts: WriteOptions): void {
  // stdin first: a command waiting for its script holds nothing open and is ended by a signal.
  const script = fs.readFileSync(0, 'utf8');
  checkOptions(opts);
  const sectorSize = sectorSizeOption(options.sectorSize) ?? 512;
  const sizeSectors = opts.size === undefined ? 0 : Math.ceil(parseSize(opts.size, sectorSize, 'size') / sectorSize);
  const say = (message: string): void => {
    if (!opts.quiet) warn(message);
  };
  // -n touches nothing: no image is created for it.
  const disk = openDisk(path, { writable: opts.act !== false, create: opts.act !== false, sectorSize });
  let written = false;
  try {
    const { plan, edited } = scriptPlan(disk, script, opts, sizeSectors);
    if (!plan) {
      say(`${path}: the script holds no label and no partition: nothing written (as sfdisk)`);
      return;
    }
    for (const w of plan.warnings) warn(`${path}: ${w}`);
    const sectors = Math.max(sizeSectors, plan.table.diskSectors);
    if (opts.act !== false) ensureDiskSectors(disk, sectors);
    else if (sectors > disk.sectors && disk.isBlockDevice) throw new ToolError('DISK_IO', `${path}: the table needs ${sectors} sectors, the device has ${disk.sectors}`);
    const move = plannedMove(disk, opts, edited, plan.table);
    if (opts.backup && opts.act !== false) {
      const lines = writeSfdiskBackup(disk, path, opts.backupFile ?? defaultBackupPrefix());
      if (!opts.quiet) process.stdout.write(lines.map((l) => `${l}\n`).join(''));
    }
    let result;
    try {
      result = writeTable(disk, plan.table, {
        ...(opts.wipe ? { wipe: opts.wipe } : {}),
        ...(opts.wipePartitions ? { wipePartitions: opts.wipePartitions } : {}),
        noAct: opts.act === false,
        noReread: opts.reread === false || opts.tellKernel === false,
      });
    } catch (err) {
      // The script parser lays out only tables the drivers can write; anything else is the script's.
      if (err instanceof ToolError && err.code === 'USAGE') throw new ToolError('SCRIPT', `${path}: the script's table cannot be written: ${err.message}`, { cause: err });
      throw err;
    }
    for (const note of result.plan.notes) warn(`${path}: ${note}`);
    for (const collision of result.plan.collisions) say(`${path}: ${collision}`);
    if (opts.act === false) {
      const lines = [
        ...result.plan.wipes.map(describeWipe),
        ...result.plan.writes.map((w) => `write ${w.data.length / disk.sectorSize} sector(s) at LBA ${w.lba}`),
        ...(move ? [`move ${move.sectors} sector(s) of partition ${move.number} from LBA ${move.from} to LBA ${move.to}`] : []),
        'nothing written (--no-act)',
      ];
      if (!opts.quiet) process.stdout.write(lines.map((l) => `${path}: ${l}\n`).join(''));
      return;
    }
    written = true;
    if (move) movePartitionData(disk, move);
    if (result.warning) warn(result.warning);
  } finally {
    closeDisk(disk, written || !disk.created);
  }
}

const wipeOption = (flags: string, what: string): Option => new Option(flags, what).choices(WIPE_MODES as string[]);

export const registerWriteCommand: RegisterCommands = (program, globals) => {
  program
    .command('write')
    .description('write the table an sfdisk script on stdin describes (image files are created or extended, sparse)')
    .argument('<DISK>')
    .option('--size <SIZE>', 'size of a new or extended image (e.g. 2G; suffixes K M G T, a bare number is sectors)')
    .addOption(new Option('-X, --label <LABEL>', 'label of a script without "label:" (default: the disk\'s, else dos)').choices(['dos', 'gpt']))
    .addOption(wipeOption('-w, --wipe <WHEN>', 'wipe old signatures: auto (the old label\'s), always (also the boot code and filesystems), never'))
    .addOption(wipeOption('-W, --wipe-partitions <WHEN>', 'signatures where a new partition starts: always wipes them, auto only says so, never'))
    .option('-n, --no-act', 'everything but the write: print what would be written and wiped')
    .option('--no-reread', 'do not ask the kernel to re-read the table (block devices)')
    .option('--no-tell-kernel', 'as --no-reread')
    .option('-f, --force', 'accepted for sfdisk (ptable write has no check it would relax)')
    .option('-q, --quiet', 'no informational messages')
    .option('-N, --partno <N>', 'change only partition N, from a one-line script (sfdisk -N)')
    .option('-a, --append', 'add the script\'s partitions to the table on the disk')
    // sfdisk takes the log file only as --move-data=LOGFILE, which sfdisk-argv.ts turns into
    // --move-data --move-data-log LOGFILE: a bare --move-data never takes DISK for its log.
    .option('--move-data', 'with -N: move the partition\'s data to its new start (--move-data=LOGFILE logs each step to LOGFILE-PARTITION.move)')
    .addOption(new Option('--move-data-log <LOGFILE>').hideHelp())
    .option('-b, --backup', 'back up the table sectors first (~/sfdisk-DEVICE-OFFSET.bak)')
    .option('-O, --backup-file <PATH>', 'with -b: the backup files\' prefix instead of ~/sfdisk')
    .action((path: string, opts: WriteOptions) => writeScript(path, globals(), opts));
};
