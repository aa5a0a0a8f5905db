/**
 * `ptable write`: the table an sfdisk script on stdin describes, as `sfdisk DISK < SCRIPT` writes it.
 */
import fs from 'node:fs';
import { ToolError } from '../errors.js';
import { closeDisk, ensureDiskSectors, openDisk } from '../io/disk.js';
import { writeTable } from '../io/table-writer.js';
import { readTable } from '../partition/read.js';
import { prepareScriptTable } from '../partition/script-table.js';
import { parseSize } from '../size.js';
import { type GlobalOptions, type RegisterCommands, sectorSizeOption, warn } from './ptable-common.js';

interface WriteOptions {
  size?: string;
}

/** `ptable write`: the script's table on the disk; an image is created or extended as needed. */
function writeScript(path: string, options: GlobalOptions, opts: WriteOptions): void {
  // stdin first: a command waiting for its script holds nothing open and is ended by a signal.
  const script = fs.readFileSync(0, 'utf8');
  const sectorSize = sectorSizeOption(options.sectorSize) ?? 512;
  const sizeSectors = opts.size === undefined ? 0 : Math.ceil(parseSize(opts.size, sectorSize, 'size') / sectorSize);
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

export const registerWriteCommand: RegisterCommands = (program, globals) => {
  program
    .command('write')
    .description('write the table an sfdisk script on stdin describes (image files are created or extended, sparse)')
    .argument('<DISK>')
    .option('--size <SIZE>', 'size of a new or extended image (e.g. 2G; suffixes K M G T, a bare number is sectors)')
    .action((path: string, opts: WriteOptions) => writeScript(path, globals(), opts));
};
