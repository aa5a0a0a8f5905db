/**
 * Binary backups of a disk's table sectors, and putting them back: sfdisk's per-area files
 * (--backup-pt-sectors, and -b before a write) and sgdisk's one-file backup (-b/-l). The formats
 * live in src/partition/backup-file.ts; this is the file and disk I/O.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ToolError, describeSystemError } from '../errors.js';
import {
  BackupFileError,
  type SgdiskBackup,
  backupLine,
  offsetFromBackupName,
  parseSgdiskBackup,
  serializeSgdiskBackup,
  sfdiskBackupName,
  tableAreas,
  validGptHeader,
} from '../partition/backup-file.js';
import { readTable } from '../partition/read.js';
import { type Disk, rereadIfDevice } from './disk.js';

/** Bytes at a byte offset of the disk (areas need not be whole sectors). */
export function readDiskBytes(disk: Disk, offset: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let done = 0;
  try {
    while (done < size) {
      const n = fs.readSync(disk.fd, b, done, size - done, offset + done);
      if (n === 0) break;
      done += n;
    }
  } catch (err) {
    throw new ToolError(disk.errors.read, `${disk.path}: read failed at byte ${offset + done}: ${describeSystemError(err)}`, { cause: err });
  }
  if (done < size) throw new ToolError(disk.errors.read, `${disk.path}: the disk ends at byte ${offset + done}, inside the table area at bytes ${offset}-${offset + size - 1}`);
  return b;
}

function writeDiskBytes(disk: Disk, offset: number, data: Buffer): void {
  try {
    let done = 0;
    while (done < data.length) done += fs.writeSync(disk.fd, data, done, data.length - done, offset + done);
  } catch (err) {
    throw new ToolError(disk.errors.write, `${disk.path}: write failed at byte ${offset}: ${describeSystemError(err)}`, { cause: err });
  }
}

/** sfdisk's default prefix: $HOME/sfdisk. */
export const defaultBackupPrefix = (): string => path.join(process.env.HOME || os.homedir(), 'sfdisk');

/**
 * Saves every area of the table on `disk` as sfdisk does (one file per area, mode 0600, an
 * existing file overwritten in place as sfdisk's O_CREAT|O_WRONLY does) and returns the lines
 * sfdisk prints ("Backup files:" first). A disk without a readable table saves nothing.
 * `prefix`: sfdisk's -O; default $HOME/sfdisk. This is also what sfdisk's -b does before a write.
 */
export function writeSfdiskBackup(disk: Disk, devicePath: string, prefix: string = defaultBackupPrefix()): string[] {
  const { table } = readTable(disk.read, disk.sectorSize, disk.sectors);
  if (!table) return [];
  const lines = ['Backup files:'];
  for (const area of tableAreas(table, disk.read)) {
    const data = readDiskBytes(disk, area.offset, area.size);
    const file = sfdiskBackupName(prefix, devicePath, area.offset);
    try {
      const fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_WRONLY, 0o600);
      try {
        let done = 0;
        while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, done);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      throw new ToolError('BACKUP_FILE', `${file}: cannot write the backup of ${devicePath}'s ${area.name} (byte ${area.offset}): ${describeSystemError(err)}`, { cause: err });
    }
    lines.push(backupLine(area, file));
  }
  return lines;
}

/**
 * Puts sfdisk backup files back where their names say (…-0xOFFSET.bak). Every file is checked
 * first (a name with an offset, readable, inside the disk), so a bad one writes nothing.
 * Returns the kernel's re-read warning, if any.
 */
export function restoreSfdiskBackup(disk: Disk, files: string[]): string | null {
  const diskBytes = disk.sectors * disk.sectorSize;
  const plan = files.map((file) => {
    const offset = offsetFromBackupName(file);
    if (offset === null) throw new ToolError('BACKUP_FILE', `${file}: the name gives no offset (sfdisk names its backups NAME-0xOFFSET.bak); nothing written`);
    let data: Buffer;
    try {
      const stat = fs.statSync(file);
      if (!stat.isFile()) throw new ToolError('BACKUP_FILE', `${file}: not a regular file; nothing written`);
      if (offset + stat.size > diskBytes) {
        throw new ToolError('BACKUP_FILE', `${file}: ${stat.size} bytes at byte ${offset} end past the end of ${disk.path} (${diskBytes} bytes); nothing written`);
      }
      data = fs.readFileSync(file);
    } catch (err) {
      if (err instanceof ToolError) throw err;
      throw new ToolError('BACKUP_FILE', `${file}: cannot read: ${describeSystemError(err)}; nothing written`, { cause: err });
    }
    if (offset + data.length > diskBytes) throw new ToolError('BACKUP_FILE', `${file}: ${data.length} bytes at byte ${offset} end past the end of ${disk.path}; nothing written`);
    return { offset, data };
  });
  for (const p of plan) writeDiskBytes(disk, p.offset, p.data);
  try {
    fs.fsyncSync(disk.fd);
  } catch (err) {
    throw new ToolError(disk.errors.write, `${disk.path}: flushing the restored sectors failed: ${describeSystemError(err)}`, { cause: err });
  }
  return rereadIfDevice(disk);
}

/**
 * sgdisk -b: the MBR, both headers and the primary entry array of a GPT disk whose table reads
 * cleanly, in one file (see backup-file.ts), written as a new file or over an existing one.
 */
export function writeSgdiskBackup(disk: Disk, file: string): void {
  const ss = disk.sectorSize;
  const primary = disk.read(1, 1).subarray(0, 512);
  const h = validGptHeader(primary);
  const backup = h && h.alternateLba < disk.sectors ? disk.read(h.alternateLba, 1).subarray(0, 512) : null;
  if (!h || !backup || !validGptHeader(backup)) {
    throw new ToolError('REFUSED', `${disk.path}: ${h ? `the backup GPT header (LBA ${h.alternateLba})` : 'the primary GPT header (LBA 1)'} is damaged: repair the table before saving it (ptable relocate rewrites both); nothing written`);
  }
  const entries = readDiskBytes(disk, h.entriesLba * ss, h.entryCount * h.entrySize);
  const bytes = serializeSgdiskBackup(readDiskBytes(disk, 0, 512), primary, backup, entries);
  try {
    fs.writeFileSync(file, bytes, { mode: 0o644 });
  } catch (err) {
    throw new ToolError('BACKUP_FILE', `${file}: cannot write the GPT backup of ${disk.path}: ${describeSystemError(err)}`, { cause: err });
  }
}

/** Reads and checks an sgdisk backup file (BACKUP_FILE names the file and the byte at fault). */
export function readSgdiskBackup(file: string): SgdiskBackup {
  let bytes: Buffer;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new ToolError('BACKUP_FILE', `${file}: not a regular file`);
    if (stat.size > 64 * 1024 * 1024) throw new ToolError('BACKUP_FILE', `${file}: ${stat.size} bytes is no sgdisk backup (at most 16 MiB of entries)`);
    bytes = fs.readFileSync(file);
  } catch (err) {
    if (err instanceof ToolError) throw err;
    throw new ToolError('BACKUP_FILE', `${file}: cannot read: ${describeSystemError(err)}`, { cause: err });
  }
  try {
    return parseSgdiskBackup(bytes);
  } catch (err) {
    if (err instanceof BackupFileError) throw new ToolError('BACKUP_FILE', `${file}: byte ${err.offset}: ${err.message}; not an sgdisk backup, nothing written`);
    throw err;
  }
}
