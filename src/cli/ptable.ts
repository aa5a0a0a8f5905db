/**
 * ptable: read, check, dump and write MBR and GPT partition tables, compatible with sfdisk.
 * Parses options and prints; the formats live in src/partition, the sector I/O in src/io/disk.ts.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { ToolError } from '../errors.js';
import { type Disk, closeDisk, ensureDiskSectors, openDisk } from '../io/disk.js';
import { writeTable } from '../io/table-writer.js';
import type { PartitionTable, TableProblem } from '../partition/model.js';
import { checkTable, readTable, writeHazards } from '../partition/read.js';
import { formatSfdiskDump } from '../partition/sfdisk-dump.js';
import { formatSfdiskJson } from '../partition/sfdisk-json.js';
import { formatShow } from '../partition/show.js';
import { growPartition } from '../partition/align.js';
import { relocateBackup } from '../partition/gpt.js';
import { prepareScriptTable } from '../partition/script-table.js';
import { parseSize } from '../size.js';
import { programLine, runMain } from './run.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

interface GlobalOptions {
  sectorSize?: string;
}

function sectorSizeOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (n !== 512 && n !== 4096) throw new ToolError('USAGE', `bad --sector-size '${text}': expected 512 or 4096`);
  return n;
}

/** Opens a disk; an image's sector size is taken from its GPT header's position when not given. */
function open(path: string, options: GlobalOptions, writable = false): Disk {
  const sectorSize = sectorSizeOption(options.sectorSize);
  return openDisk(path, sectorSize === undefined ? { writable } : { writable, sectorSize });
}

function formatProblem(path: string, p: TableProblem): string {
  return `${path}: ${p.severity}: ${p.message}${p.lba !== undefined ? ` (LBA ${p.lba})` : ''} [${p.code}]`;
}

const warn = (message: string): void => {
  process.stderr.write(programLine('ptable', message));
};

/**
 * Reads the table or fails with NO_TABLE; warnings (a GPT read from its backup) go to stderr.
 * `forChange`: the table is about to be rewritten, which is refused when what was read is the
 * protective MBR of a GPT that could not be read.
 */
function loadTable(disk: Disk, forChange = false): PartitionTable {
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

function withDisk<T>(path: string, options: GlobalOptions, body: (disk: Disk) => T, writable = false): T {
  const disk = open(path, options, writable);
  try {
    return body(disk);
  } finally {
    disk.close();
  }
}

/**
 * Changes the table on the disk (relocate, grow). A change the model refuses (a partition that no
 * longer fits) or a table the drivers refuse to serialize (overlapping partitions read from the
 * disk, say) is a refusal: the disk is left as it was.
 */
function commitTable(disk: Disk, change: () => PartitionTable): void {
  let warning: string | null;
  try {
    warning = writeTable(disk, change());
  } catch (err) {
    if (err instanceof ToolError && err.code === 'USAGE') throw new ToolError('REFUSED', `${disk.path}: ${err.message}; nothing written`, { cause: err });
    throw err;
  }
  if (warning) warn(warning);
}

/** `ptable write`: the script's table on the disk; an image is created or extended as needed. */
function writeScript(path: string, options: GlobalOptions, sizeText: string | undefined): void {
  // stdin first: a command waiting for its script holds nothing open and is ended by a signal.
  const script = fs.readFileSync(0, 'utf8');
  const sectorSize = sectorSizeOption(options.sectorSize) ?? 512;
  const sizeSectors = sizeText === undefined ? 0 : Math.ceil(parseSize(sizeText, sectorSize, 'size') / sectorSize);
  const disk = openDisk(path, { writable: true, create: true, sectorSize });
  let written = false;
  try {
    const current = disk.sectors > 0 ? readTable(disk.read, disk.sectorSize, disk.sectors).table : null;
    const plan = prepareScriptTable(script, {
      path,
      sectorSize: disk.sectorSize,
      diskSectors: Math.max(disk.sectors, sizeSectors),
      ...(current ? { currentLabel: current.label } : {}),
    });
    if (!plan) {
      warn(`${path}: the script holds no label and no partition: nothing written (as sfdisk)`);
      return;
    }
    for (const w of plan.warnings) warn(`${path}: ${w}`);
    ensureDiskSectors(disk, Math.max(sizeSectors, plan.table.diskSectors));
    try {
      const warning = writeTable(disk, plan.table);
      if (warning) warn(warning);
    } catch (err) {
      // The script parser lays out only tables the drivers can write; anything else is the script's.
      if (err instanceof ToolError && err.code === 'USAGE') throw new ToolError('SCRIPT', `${path}: the script's table cannot be written: ${err.message}`, { cause: err });
      throw err;
    }
    written = true;
  } finally {
    closeDisk(disk, written || !disk.created);
  }
}

const HELP_TAIL = `
DISK is an image file or a block device (a FIFO or terminal is refused). A script with no label
and no partition (empty, blank or comment lines) writes nothing, as sfdisk.

Exit codes: 0 ok, 1 usage, 2 cannot open the disk, 3 no partition table, 4 check found errors,
5 reading, writing or extending the disk failed (or it is too small), 6 invalid script (the
message names the line), 7 no such partition, 8 relocate/grow refused (the change would overlap,
or the table on the disk is damaged; nothing written), 130/143 interrupted.
`;

function buildCommand(): Command {
  const program = new Command('ptable')
    .description('Read, check, dump and write MBR and GPT partition tables (sfdisk-compatible).')
    .option('--sector-size <BYTES>', 'sector size of an image file: 512 or 4096 (default: detected, else 512)')
    .option('--debug', 'show stack traces of errors')
    .version(version, '-V, --version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .addHelpText('after', HELP_TAIL);
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();

  program
    .command('show')
    .description('a readable table: number, start, end, sectors, size, type, name, bootable, PARTUUID')
    .argument('<DISK>')
    .action((path: string) => {
      withDisk(path, globals(), (disk) => process.stdout.write(formatShow(loadTable(disk), path)));
    });

  program
    .command('dump')
    .description('the text `sfdisk -d DISK` prints, or with --json what `sfdisk -J DISK` prints')
    .argument('<DISK>')
    .option('--json', 'sfdisk -J format')
    .action((path: string, opts: { json?: boolean }) =>
      withDisk(path, globals(), (disk) => {
        const table = loadTable(disk);
        process.stdout.write(opts.json ? formatSfdiskJson(table, path) : formatSfdiskDump(table, path));
      }),
    );

  program
    .command('check')
    .description('list every problem of the table with its LBA; exit 4 when there are errors')
    .argument('<DISK>')
    .action((path: string) =>
      withDisk(path, globals(), (disk) => {
        const { label, problems } = checkTable(disk.read, disk.sectorSize, disk.sectors);
        for (const p of problems) process.stdout.write(`${formatProblem(path, p)}\n`);
        const errors = problems.filter((p) => p.severity === 'error').length;
        if (errors > 0) throw new ToolError('CHECK_FAILED', `${path}: ${errors} error(s) in the ${label ?? 'partition'} table`);
        process.stdout.write(`${path}: ${label} table OK${problems.length ? ` (${problems.length} warning(s))` : ''}\n`);
      }),
    );

  program
    .command('write')
    .description("write the table an sfdisk script on stdin describes (image files are created or extended, sparse)")
    .argument('<DISK>')
    .option('--size <SIZE>', 'size of a new or extended image (e.g. 2G; suffixes K M G T, a bare number is sectors)')
    .action((path: string, opts: { size?: string }) => writeScript(path, globals(), opts.size));

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
  return program;
}

async function main(argv: string[]): Promise<number> {
  const command = buildCommand();
  try {
    await command.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    throw err;
  }
  return 0;
}

await runMain('ptable', () => main(process.argv));
