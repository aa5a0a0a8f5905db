/**
 * A disk for partition-table work: an image file or a block device, read and written by sector.
 * Tables are a few sectors, so the I/O is synchronous. Every failure is a ToolError naming the path
 * and the LBA, with the code of the command that owns the disk (ptable's DISK_IO, sparsecopy's
 * SOURCE_READ or WRITE...), so that no system error reaches a command's user as a stack trace.
 */
import fs from 'node:fs';
import { type ErrorCode, ToolError, describeSystemError, systemErrorCode } from '../errors.js';
import type { SectorReader, SectorWrite } from '../partition/model.js';
import { detectGptSectorSize } from '../partition/read.js';
import { rereadPartitionTable } from './ffi.js';
import { deviceSectorSize, deviceSize } from './target.js';

/** The error codes a disk's failures carry: each command has its own table. */
export interface DiskErrorCodes {
  read: ErrorCode;
  write: ErrorCode;
}

const PTABLE_ERRORS: DiskErrorCodes = { read: 'DISK_IO', write: 'DISK_IO' };

export interface Disk {
  path: string;
  fd: number;
  isBlockDevice: boolean;
  sectorSize: number;
  /** Size in sectors (an image's size rounded down to whole sectors). */
  sectors: number;
  read: SectorReader;
  errors: DiskErrorCodes;
  /** This open created the image file (a failed command removes it again). */
  created: boolean;
  close(): void;
}

export interface OpenDiskOptions {
  writable?: boolean;
  /** Create the image when missing (write). */
  create?: boolean;
  /** Sector size of an image file (devices report their own); default: found from a GPT header, else 512. */
  sectorSize?: number;
}

/** `pread` as fs.readSync has it; tests inject failures through it. */
export type PositionalRead = (fd: number, buffer: Buffer, offset: number, length: number, position: number) => number;

export interface SectorReaderOptions {
  /** Byte offset of LBA 0 within the file (a source read from a position). */
  baseOffset?: number;
  errorCode: ErrorCode;
  pread?: PositionalRead;
}

/**
 * A SectorReader over a file descriptor. Reads past the end return zeros, as an unwritten sector
 * reads; a failed read is a ToolError naming the path, the LBA and the byte offset.
 */
export function fdSectorReader(path: string, fd: number, sectorSize: number, options: SectorReaderOptions): SectorReader {
  const base = options.baseOffset ?? 0;
  const pread = options.pread ?? fs.readSync;
  return (lba, count) => {
    const buffer = Buffer.alloc(count * sectorSize);
    let got = 0;
    try {
      while (got < buffer.length) {
        const n = pread(fd, buffer, got, buffer.length - got, base + lba * sectorSize + got);
        if (n === 0) break;
        got += n;
      }
    } catch (err) {
      const at = lba + Math.floor(got / sectorSize);
      throw new ToolError(options.errorCode, `${path}: reading the partition table failed at LBA ${at} (byte ${base + at * sectorSize}): ${describeSystemError(err)}`, { cause: err });
    }
    return buffer;
  };
}

/**
 * Opens (and with `create`, creates) an image file or a block device. Opened with O_NONBLOCK so
 * that a FIFO or a terminal is refused at once instead of blocking the open; for files and block
 * devices the flag changes nothing.
 */
export function openDisk(path: string, options: OpenDiskOptions = {}): Disk {
  const { O_RDWR, O_RDONLY, O_CREAT, O_EXCL, O_NONBLOCK } = fs.constants;
  let fd: number;
  let created = false;
  try {
    if (options.writable && options.create) {
      try {
        fd = fs.openSync(path, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0o666);
        created = true;
      } catch (err) {
        if (systemErrorCode(err) !== 'EEXIST') throw err;
        fd = fs.openSync(path, O_RDWR | O_NONBLOCK);
      }
    } else {
      fd = fs.openSync(path, (options.writable ? O_RDWR : O_RDONLY) | O_NONBLOCK);
    }
  } catch (err) {
    throw new ToolError('DISK_OPEN', `${path}: cannot open: ${describeSystemError(err)}`, { cause: err });
  }
  const stat = fs.fstatSync(fd);
  if (!stat.isFile() && !stat.isBlockDevice()) {
    fs.closeSync(fd);
    throw new ToolError('DISK_OPEN', `${path}: not a disk image or block device`);
  }
  const isBlockDevice = stat.isBlockDevice();
  let sectorSize = options.sectorSize ?? 512;
  if (isBlockDevice) sectorSize = deviceSectorSize(fd);
  else if (options.sectorSize === undefined) {
    sectorSize = detectGptSectorSize(fdSectorReader(path, fd, 512, { errorCode: PTABLE_ERRORS.read })(0, 16)) ?? 512;
  }
  return diskOnFd(path, fd, { isBlockDevice, sectorSize, sizeBytes: isBlockDevice ? deviceSize(fd) : stat.size, created });
}

/** A Disk over a descriptor someone else opened and closes (sparsecopy's destination). */
export function diskOnFd(
  path: string,
  fd: number,
  options: { isBlockDevice: boolean; sectorSize: number; sizeBytes: number; errors?: DiskErrorCodes; created?: boolean },
): Disk {
  const errors = options.errors ?? PTABLE_ERRORS;
  const { sectorSize } = options;
  return {
    path,
    fd,
    isBlockDevice: options.isBlockDevice,
    sectorSize,
    sectors: Math.floor(options.sizeBytes / sectorSize),
    read: fdSectorReader(path, fd, sectorSize, { errorCode: errors.read }),
    errors,
    created: options.created ?? false,
    close: () => fs.closeSync(fd),
  };
}

/** Grows an image file (sparsely) to at least `sectors`; devices cannot grow. */
export function ensureDiskSectors(disk: Disk, sectors: number): void {
  if (disk.sectors >= sectors) return;
  if (disk.isBlockDevice) {
    throw new ToolError(disk.errors.write, `${disk.path}: the table needs ${sectors} sectors, the device has ${disk.sectors}`);
  }
  const bytes = sectors * disk.sectorSize;
  try {
    fs.ftruncateSync(disk.fd, bytes);
  } catch (err) {
    throw new ToolError(disk.errors.write, `${disk.path}: cannot extend the image to ${bytes} bytes: ${describeSystemError(err)}`, { cause: err });
  }
  disk.sectors = sectors;
}

export function writeSectors(disk: Disk, writes: SectorWrite[]): void {
  for (const w of writes) {
    try {
      let done = 0;
      while (done < w.data.length) done += fs.writeSync(disk.fd, w.data, done, w.data.length - done, w.lba * disk.sectorSize + done);
    } catch (err) {
      throw new ToolError(disk.errors.write, `${disk.path}: write failed at LBA ${w.lba}: ${describeSystemError(err)}`, { cause: err });
    }
  }
  try {
    fs.fsyncSync(disk.fd);
  } catch (err) {
    throw new ToolError(disk.errors.write, `${disk.path}: flushing the table to the disk failed: ${describeSystemError(err)}`, { cause: err });
  }
}

/** After writing a table to a device: ask the kernel to re-read it; a warning when it cannot. */
export function rereadIfDevice(disk: Disk): string | null {
  if (!disk.isBlockDevice) return null;
  const r = rereadPartitionTable(disk.fd);
  if (r.ok) return null;
  return `${disk.path}: partition table written, but the kernel did not re-read it (errno ${r.errno}${r.errno === 22 ? ', EINVAL: no partition scanning on this device' : ''})`;
}

/** Closes the disk; an image this open created is removed again (a failed command leaves nothing). */
export function closeDisk(disk: Disk, keep: boolean): void {
  disk.close();
  if (disk.created && !keep) fs.rmSync(disk.path, { force: true });
}
