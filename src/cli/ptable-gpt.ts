/**
 * ptable's whole-table operations in the manner of sgdisk and sfdisk: relocate (sfdisk --relocate,
 * sgdisk -e), zap (sgdisk -z/-Z), randomize-guids (sgdisk -G), the binary backups of the table
 * sectors (sfdisk --backup-pt-sectors, sgdisk -b) and their restores.
 */
import { ToolError } from '../errors.js';
import type { Disk } from '../io/disk.js';
import { readSgdiskBackup, restoreSfdiskBackup, writeSfdiskBackup, writeSgdiskBackup } from '../io/table-backup.js';
import { isExtendedType, partitionEnd } from '../partition/align.js';
import { validGptHeader } from '../partition/backup-file.js';
import { parseGptEntries, parseGptHeader } from '../partition/gpt.js';
import {
  RELOCATE_MODES,
  type RelocateMode,
  convertedToGpt,
  freshGuids,
  relocatedWrites,
  sgdiskRestoreWrites,
  withNewGuids,
  zapRuns,
} from '../partition/gpt-ops.js';
import type { PartitionTable, SectorWrite } from '../partition/model.js';
import { type RegisterCommands, type Globals, commitSectors, loadTable, warn, withDisk } from './ptable-common.js';

/** A model refusal (a partition that no longer fits) is REFUSED: the disk is left as it was. */
function refusing<T>(disk: Disk, body: () => T): T {
  try {
    return body();
  } catch (err) {
    if (err instanceof ToolError && err.code === 'USAGE') throw new ToolError('REFUSED', `${disk.path}: ${err.message}; nothing written`, { cause: err });
    if (err instanceof ToolError && err.code === 'REFUSED' && !err.message.startsWith(disk.path)) throw new ToolError('REFUSED', `${disk.path}: ${err.message}`, { cause: err });
    throw err;
  }
}

function gptTable(disk: Disk, what: string): PartitionTable {
  const table = loadTable(disk, true);
  if (table.label !== 'gpt') throw new ToolError('USAGE', `${disk.path}: ${what} applies to GPT disks; this one is ${table.label}`);
  return table;
}

function relocate(disk: Disk, mode: RelocateMode): void {
  const table = gptTable(disk, 'relocate');
  // A damaged primary (the table was read from the backup) names no backup place: -1.
  const primaryAlternateLba = validGptHeader(disk.read(1, 1))?.alternateLba ?? -1;
  const writes = refusing(disk, () => relocatedWrites({ table, diskSectors: disk.sectors, primaryAlternateLba, sector0: disk.read(0, 1) }, mode));
  commitSectors(disk, writes, mode !== 'sgdisk-e');
}

/** The sectors a partition of a dos table covers among `runs` (what zap would destroy). */
function dosPartitionsHit(table: PartitionTable, runs: { lba: number; count: number }[]): string[] {
  return table.partitions
    .filter((p) => p.size > 0 && !isExtendedType(p.type))
    .filter((p) => runs.some((r) => p.start <= r.lba + r.count - 1 && partitionEnd(p) >= r.lba))
    .map((p) => `partition ${p.number} (LBA ${p.start}-${partitionEnd(p)})`);
}

function zap(disk: Disk, all: boolean, force: boolean): void {
  const runs = refusing(disk, () => zapRuns(disk.sectors, disk.sectorSize, all));
  const table = tryTable(disk);
  if (table?.label === 'dos' && !force) {
    const hit = dosPartitionsHit(table, runs.map((r) => (r.lba === 0 ? { lba: 1, count: r.count - 1 } : r)));
    if (hit.length > 0) {
      throw new ToolError('REFUSED', `${disk.path}: a dos disk: zap zeroes LBA ${runs[0]!.lba}-${runs[0]!.lba + runs[0]!.count - 1} and ${runs[1]!.lba}-${runs[1]!.lba + runs[1]!.count - 1} as sgdisk does, which lie inside ${hit.join(', ')}; nothing written (--force to zero them anyway)`);
    }
  }
  commitSectors(disk, runs.map((r) => ({ lba: r.lba, data: Buffer.alloc(r.count * disk.sectorSize) })), false);
}

function tryTable(disk: Disk): PartitionTable | null {
  try {
    return loadTable(disk);
  } catch (err) {
    if (err instanceof ToolError && err.code === 'NO_TABLE') return null;
    throw err;
  }
}

/** New disk and partition GUIDs in both copies of the table, in place; nothing else changes. */
function randomizeGuids(disk: Disk): void {
  gptTable(disk, 'randomize-guids');
  const ss = disk.sectorSize;
  const primary = disk.read(1, 1);
  const ph = validGptHeader(primary);
  const backup = ph && ph.alternateLba < disk.sectors ? disk.read(ph.alternateLba, 1) : null;
  if (!ph || !backup || !validGptHeader(backup)) {
    throw new ToolError('REFUSED', `${disk.path}: ${ph ? `the backup GPT header (LBA ${ph.alternateLba})` : 'the primary GPT header (LBA 1)'} is damaged: repair the table first (ptable relocate rewrites both); nothing written`);
  }
  const copies = [
    { lba: 1, header: primary },
    { lba: ph.alternateLba, header: backup },
  ];
  const guids = freshGuids(ph.entryCount);
  const writes: SectorWrite[] = [];
  for (const c of copies) {
    const h = parseGptHeader(c.header);
    const sectors = Math.ceil((h.entryCount * h.entrySize) / ss);
    const entries = disk.read(h.entriesLba, sectors);
    const { header, entries: newEntries } = withNewGuids(c.header, entries, guids.diskGuid, guids.uniques);
    writes.push({ lba: h.entriesLba, data: newEntries }, { lba: c.lba, data: header });
  }
  commitSectors(disk, writes, false);
}

function restoreSgdisk(disk: Disk, file: string, force: boolean): void {
  const backup = readSgdiskBackup(file);
  if (!force && tryTable(disk)?.label === 'dos') {
    throw new ToolError('REFUSED', `${disk.path}: holds a dos table, which the restore would replace; nothing written (--force to restore anyway, as sgdisk -g -l)`);
  }
  const h = backup.primaryHeader;
  const ends = parseGptEntries(backup.entries, h.entryCount, h.entrySize).map(partitionEnd);
  const writes = refusing(disk, () => sgdiskRestoreWrites(backup, disk.sectors, disk.sectorSize, disk.read(0, 1), ends));
  commitSectors(disk, writes, false);
}

/** sgdisk -g: a dos table becomes a GPT (a GPT disk is left as it is, as sgdisk leaves it). */
function convertToGpt(disk: Disk): void {
  const table = loadTable(disk, true);
  if (table.label === 'gpt') {
    warn(`${disk.path}: already a GPT disk; nothing written`);
    return;
  }
  commitSectors(disk, refusing(disk, () => convertedToGpt(table, disk.read(0, 1))), false);
}

export const registerGptCommands: RegisterCommands = (program, globals: Globals) => {
  const onDisk = (path: string, body: (disk: Disk) => void, writable = true): void => withDisk(path, globals(), body, writable);

  program
    .command('relocate')
    .description('move the backup GPT to the end of a larger disk: gpt-bak-std (default) and gpt-bak-mini as sfdisk --relocate, sgdisk-e as sgdisk -e')
    .option('--mode <MODE>', `${RELOCATE_MODES.join(', ')}`, 'gpt-bak-std')
    .argument('<DISK>')
    .action((path: string, opts: { mode: string }) => {
      if (!(RELOCATE_MODES as readonly string[]).includes(opts.mode)) throw new ToolError('USAGE', `bad --mode '${opts.mode}': expected ${RELOCATE_MODES.join(', ')}`);
      onDisk(path, (disk) => relocate(disk, opts.mode as RelocateMode));
    });

  program
    .command('zap')
    .description('zero the GPT headers and entry arrays where sgdisk -z does; --all also sector 0 (sgdisk -Z)')
    .option('--all', 'also zero sector 0 (the MBR), as sgdisk -Z')
    .option('-f, --force', 'on a dos disk, zero the sectors even where a partition lies')
    .argument('<DISK>')
    .action((path: string, opts: { all?: boolean; force?: boolean }) => onDisk(path, (disk) => zap(disk, opts.all ?? false, opts.force ?? false)));

  program
    .command('randomize-guids')
    .description('new disk and partition GUIDs in both copies of the GPT, nothing else changed (sgdisk -G)')
    .argument('<DISK>')
    .action((path: string) => onDisk(path, randomizeGuids));

  program
    .command('convert')
    .description('convert a dos (MBR) table to GPT as sgdisk -g does: primaries and logical partitions keep their numbers')
    .requiredOption('--to <LABEL>', 'the label to convert to: gpt')
    .argument('<DISK>')
    .action((path: string, opts: { to: string }) => {
      if (opts.to !== 'gpt') throw new ToolError('USAGE', `bad --to '${opts.to}': ptable converts to gpt only (sgdisk -g)`);
      onDisk(path, convertToGpt);
    });

  program
    .command('backup-pt-sectors')
    .description('save the table sectors to PREFIX-DEVNAME-0xOFFSET.bak files as sfdisk --backup-pt-sectors (PREFIX: -O, default $HOME/sfdisk)')
    .option('-O, --backup-file <PATH>', 'file name prefix')
    .argument('<DISK>')
    .action((path: string, opts: { backupFile?: string }) =>
      onDisk(
        path,
        (disk) => {
          loadTable(disk);
          const lines = writeSfdiskBackup(disk, path, opts.backupFile);
          process.stdout.write(`${lines.join('\n')}\n\n`);
        },
        false,
      ),
    );

  program
    .command('restore-pt-sectors')
    .description('write sfdisk backup files back at the offsets their names give')
    .argument('<DISK>')
    .argument('<FILE...>')
    .action((path: string, files: string[]) =>
      onDisk(path, (disk) => {
        const warning = restoreSfdiskBackup(disk, files);
        if (warning) warn(warning);
      }),
    );

  program
    .command('backup')
    .description("save the GPT (MBR, both headers, entries) to FILE in sgdisk -b's format")
    .argument('<DISK>')
    .argument('<FILE>')
    .action((path: string, file: string) =>
      onDisk(
        path,
        (disk) => {
          gptTable(disk, 'backup');
          writeSgdiskBackup(disk, file);
        },
        false,
      ),
    );

  program
    .command('restore')
    .description('write an sgdisk -b backup FILE to the disk as sgdisk -l does')
    .option('-f, --force', 'restore over a dos table too (sgdisk -g -l)')
    .argument('<DISK>')
    .argument('<FILE>')
    .action((path: string, file: string, opts: { force?: boolean }) => onDisk(path, (disk) => restoreSgdisk(disk, file, opts.force ?? false)));
};
