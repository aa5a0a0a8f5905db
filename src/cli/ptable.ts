/**
 * ptable: read, check, dump and write MBR and GPT partition tables, compatible with sfdisk.
 * Parses options and prints; the formats live in src/partition, the sector I/O in src/io/disk.ts.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { ToolError } from '../errors.js';
import { type Disk, ensureDiskSectors, openDisk, rereadIfDevice, writeSectors } from '../io/disk.js';
import type { PartitionTable, TableProblem } from '../partition/model.js';
import { checkTable, detectGptSectorSize, readTable, serializeTable } from '../partition/read.js';
import { formatSfdiskDump } from '../partition/sfdisk-dump.js';
import { formatSfdiskJson } from '../partition/sfdisk-json.js';
import { formatShow } from '../partition/show.js';
import { growPartition } from '../partition/align.js';
import { relocateBackup } from '../partition/gpt.js';
import { mergeMbrSector } from '../partition/mbr.js';
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
function open(path: string, options: GlobalOptions, writable = false, create = false): Disk {
  let sectorSize = sectorSizeOption(options.sectorSize);
  if (sectorSize === undefined && fs.existsSync(path) && fs.statSync(path).isFile()) {
    const probe = openDisk(path, { sectorSize: 512 });
    try {
      sectorSize = detectGptSectorSize(probe.read(0, 16)) ?? 512;
    } finally {
      probe.close();
    }
  }
  return openDisk(path, { writable, create, sectorSize });
}

function formatProblem(path: string, p: TableProblem): string {
  return `${path}: ${p.severity}: ${p.message}${p.lba !== undefined ? ` (LBA ${p.lba})` : ''} [${p.code}]`;
}

/** Reads the table or fails with NO_TABLE; warnings (a GPT read from its backup) go to stderr. */
function loadTable(disk: Disk): PartitionTable {
  const { table, problems } = readTable(disk.read, disk.sectorSize, disk.sectors);
  for (const p of problems) if (p.severity === 'warning' || table) process.stderr.write(`${formatProblem(disk.path, p)}\n`);
  if (!table) {
    const why = problems.find((p) => p.severity === 'error');
    throw new ToolError('NO_TABLE', `${disk.path}: ${why ? why.message : 'no partition table'}${why?.lba !== undefined ? ` (LBA ${why.lba})` : ''}`);
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

/** Writes `table` to `disk`, keeping the boot code of an existing sector 0. */
function commitTable(disk: Disk, table: PartitionTable): void {
  const writes = serializeTable(table);
  for (const w of writes) if (w.lba === 0) w.data = Buffer.concat([mergeMbrSector(disk.read(0, 1), w.data.subarray(0, 512)), w.data.subarray(512)]);
  writeSectors(disk, writes);
  const warning = rereadIfDevice(disk);
  if (warning) process.stderr.write(programLine('ptable', warning));
}

function buildCommand(): Command {
  const program = new Command('ptable')
    .description('Read, check, dump and write MBR and GPT partition tables (sfdisk-compatible).')
    .option('--sector-size <BYTES>', 'sector size of an image file: 512 or 4096 (default: detected, else 512)')
    .option('--debug', 'show stack traces of errors')
    .version(version, '-V, --version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
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
    .action((path: string, opts: { size?: string }) => {
      const sectorSize = sectorSizeOption(globals().sectorSize) ?? 512;
      const script = fs.readFileSync(0, 'utf8');
      const disk = openDisk(path, { writable: true, create: true, sectorSize });
      try {
        if (opts.size !== undefined) ensureDiskSectors(disk, Math.ceil(parseSize(opts.size, sectorSize, 'size') / sectorSize));
        const table = prepareScriptTable(script, { path, sectorSize: disk.sectorSize, diskSectors: disk.sectors });
        ensureDiskSectors(disk, table.diskSectors);
        commitTable(disk, table);
      } finally {
        disk.close();
      }
    });

  program
    .command('relocate')
    .description('move the backup GPT to the end of a larger disk and fix the headers (sgdisk -e)')
    .argument('<DISK>')
    .action((path: string) =>
      withDisk(
        path,
        globals(),
        (disk) => {
          const table = loadTable(disk);
          if (table.label !== 'gpt') throw new ToolError('USAGE', `${path}: relocate applies to GPT disks; this one is ${table.label}`);
          commitTable(disk, relocateBackup(table, disk.sectors));
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
          let table = loadTable(disk);
          if (!table.partitions.some((p) => p.number === number)) throw new ToolError('PARTITION_MISSING', `${path}: no partition ${n}`);
          if (table.label === "gpt") table = relocateBackup(table, disk.sectors); // a grown disk: use its new end
          commitTable(disk, growPartition(table, number));
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
