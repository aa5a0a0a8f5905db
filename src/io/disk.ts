/**
 * A disk for partition-table work: an image file or a block device, read and written by sector.
 * Tables are a few sectors, so the I/O is synchronous.
 */
import fs from 'node:fs';
import { ToolError, describeSystemError, systemErrorCode } from '../errors.js';
import type { SectorReader, SectorWrite } from '../partition/model.js';
import { rereadPartitionTable } from './ffi.js';
import { deviceSectorSize, deviceSize } from './target.js';

export interface Disk {
  path: string;
  fd: number;
  isBlockDevice: boolean;
  sectorSize: number;
  /** Size in sectors (an image's size rounded down to whole sectors). */
  sectors: number;
  read: SectorReader;
  close(): void;
}

export interface OpenDiskOptions {
  writable?: boolean;
  /** Create the image when missing (write). */
  create?: boolean;
  /** Sector size of an image file (devices report their own). */
  sectorSize?: number;
}

export function openDisk(path: string, options: OpenDiskOptions = {}): Disk {
  let fd: number;
  try {
    const flags = options.writable ? fs.constants.O_RDWR | (options.create ? fs.constants.O_CREAT : 0) : fs.constants.O_RDONLY;
    fd = fs.openSync(path, flags, 0o666);
  } catch (err) {
    throw new ToolError('DISK_OPEN', `${path}: cannot open: ${describeSystemError(err)}`, { cause: err });
  }
  const stat = fs.fstatSync(fd);
  if (!stat.isFile() && !stat.isBlockDevice()) {
    fs.closeSync(fd);
    throw new ToolError('DISK_OPEN', `${path}: not a disk image or block device`);
  }
  const isBlockDevice = stat.isBlockDevice();
  const sectorSize = isBlockDevice ? deviceSectorSize(fd) : (options.sectorSize ?? 512);
  const bytes = isBlockDevice ? deviceSize(fd) : stat.size;
  return {
    path,
    fd,
    isBlockDevice,
    sectorSize,
    sectors: Math.floor(bytes / sectorSize),
    read: (lba, count) => {
      const buffer = Buffer.alloc(count * sectorSize);
      let got = 0;
      try {
        while (got < buffer.length) {
          const n = fs.readSync(fd, buffer, got, buffer.length - got, lba * sectorSize + got);
          if (n === 0) break; // past the end: zeros, as an unwritten sector reads
          got += n;
        }
      } catch (err) {
        throw new ToolError('DISK_IO', `${path}: read failed at LBA ${lba}: ${describeSystemError(err)}`, { cause: err });
      }
      return buffer;
    },
    close: () => fs.closeSync(fd),
  };
}

/** Grows an image file (sparsely) to at least `sectors`; devices cannot grow. */
export function ensureDiskSectors(disk: Disk, sectors: number): void {
  if (disk.sectors >= sectors) return;
  if (disk.isBlockDevice) {
    throw new ToolError('DISK_IO', `${disk.path}: the table needs ${sectors} sectors, the device has ${disk.sectors}`);
  }
  fs.ftruncateSync(disk.fd, sectors * disk.sectorSize);
  disk.sectors = sectors;
}

export function writeSectors(disk: Disk, writes: SectorWrite[]): void {
  for (const w of writes) {
    try {
      let done = 0;
      while (done < w.data.length) done += fs.writeSync(disk.fd, w.data, done, w.data.length - done, w.lba * disk.sectorSize + done);
    } catch (err) {
      throw new ToolError('DISK_IO', `${disk.path}: write failed at LBA ${w.lba}: ${describeSystemError(err)}`, { cause: err });
    }
  }
  fs.fsyncSync(disk.fd);
}

/** After writing a table to a device: ask the kernel to re-read it; a warning when it cannot. */
export function rereadIfDevice(disk: Disk): string | null {
  if (!disk.isBlockDevice) return null;
  const r = rereadPartitionTable(disk.fd);
  if (r.ok) return null;
  return `${disk.path}: partition table written, but the kernel did not re-read it (errno ${r.errno}${r.errno === 22 ? ', EINVAL: no partition scanning on this device' : ''})`;
}

export const isMissing = (err: unknown): boolean => systemErrorCode(err) === 'ENOENT';
