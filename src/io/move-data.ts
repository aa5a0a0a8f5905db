/**
 * sfdisk --move-data: after -N N moved a partition's start, its data is copied from the old start
 * to the new one, in 1 MiB steps through one buffer (memory bounded whatever the partition's
 * size), backwards when the new place overlaps the old one further up so that no step reads what
 * an earlier one wrote; with a log file, the steps are written to it as sfdisk writes its
 * typescript ("<LOGFILE>-<partition device name>.move", the same header and step lines).
 *
 * The checks sfdisk makes before it moves anything are `moveDataRefusal`'s (pure).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ToolError } from '../errors.js';
import type { Partition } from '../partition/model.js';
import { sfdiskPartitionName } from '../partition/sfdisk-dump.js';
import { type Disk } from './disk.js';

/** sfdisk's step: 1 MiB (a device without an optimal I/O size). */
export const MOVE_STEP_BYTES = 1024 * 1024;

/** Why sfdisk would not move the data ("...; ignoring --move-data"), or null when it would. */
export function moveDataRefusal(original: Partition, moved: Partition): string | null {
  if (moved.start === original.start) return 'start of the partition has not been moved; ignoring --move-data';
  if (original.size > moved.size) return 'new partition is smaller than original; ignoring --move-data';
  return null;
}

/**
 * What `write -N N --move-data` does, decided before the table is written: the move, or null when
 * the start did not change (nothing to move: sfdisk warns, writes the table and exits 1; ptable
 * warns and exits 0). A partition made smaller is refused (sfdisk writes the moved table and
 * leaves the data behind; ptable writes nothing).
 */
export function planMoveData(original: Partition | undefined, moved: Partition): { from: number; to: number; sectors: number } | null {
  if (!original) return null; // -N N added partition N: there is no data to move
  const refusal = moveDataRefusal(original, moved);
  if (refusal && moved.start !== original.start) throw new ToolError('REFUSED', `partition ${moved.number}: ${refusal}: the data would not fit; nothing written`);
  if (refusal) return null;
  return { from: original.start, to: moved.start, sectors: original.size };
}

/** The typescript file sfdisk writes for --move-data=LOGFILE (mk_backup_filename_tpl). */
export function moveLogPath(logTemplate: string, diskPath: string, number: number): string {
  return `${logTemplate}-${path.basename(sfdiskPartitionName(diskPath, number))}.move`;
}

export interface MoveRequest {
  /** Partition number (for the log). */
  number: number;
  /** Old and new first sector, and the sectors to move (the original size). */
  from: number;
  to: number;
  sectors: number;
  /** sfdisk's LOGFILE template: the steps go to moveLogPath(log, disk, number). */
  log?: string;
  /** The version line of the log (sfdisk writes its own). */
  program?: string;
}

/**
 * Copies `sectors` sectors at `from` to `to` on the disk, as sfdisk's move_partition_data does
 * (the same steps, in the same order). A read or write error stops the move at once (sfdisk goes
 * on past a failed step and reports the count at the end; a partition half moved by skipped
 * steps is worse than one stopped where the log says).
 */
export function movePartitionData(disk: Disk, m: MoveRequest): void {
  const ss = disk.sectorSize;
  const overlap = (m.to >= m.from && m.from + m.sectors >= m.to) || (m.from >= m.to && m.to + m.sectors >= m.from);
  const backward = overlap && m.from < m.to;
  const stepSectors = MOVE_STEP_BYTES / ss;
  let log: number | null = null;
  const logFile = m.log === undefined ? null : moveLogPath(m.log, disk.path, m.number);
  const name = path.basename(sfdiskPartitionName(disk.path, m.number));
  try {
    if (logFile) {
      log = openLog(logFile);
      fs.writeSync(
        log,
        [
          `# sfdisk: ${m.program ?? 'ptable'}`,
          `# Disk: ${name}`,
          `# Partition: ${m.number}`,
          '# Operation: move data',
          `# Sector size: ${ss}`,
          `# Original start offset (sectors/bytes): ${m.from}/${m.from * ss}`,
          `# New start offset (sectors/bytes): ${m.to}/${m.to * ss}`,
          `# Area size (sectors/bytes): ${m.sectors}/${m.sectors * ss}`,
          `# Step size (sectors/bytes): ${stepSectors}/${MOVE_STEP_BYTES}`,
          `# Steps: ${Math.floor(m.sectors / stepSectors) + 1}`,
          '#',
          '# <step>: <from> <to> (step offsets in bytes)',
          '',
        ].join('\n'),
      );
    }
    const buffer = Buffer.alloc(MOVE_STEP_BYTES);
    let src = (backward ? m.from + m.sectors : m.from) * ss;
    let dst = (backward ? m.to + m.sectors : m.to) * ss;
    let left = m.sectors * ss;
    for (let step = 1; left > 0; step++) {
      const bytes = Math.min(MOVE_STEP_BYTES, left);
      left -= bytes;
      if (backward) {
        src -= bytes;
        dst -= bytes;
      }
      copyStep(disk, buffer.subarray(0, bytes), src, dst);
      if (log !== null) fs.writeSync(log, `${String(step).padStart(5, '0')}: ${String(src).padStart(12)} ${String(dst).padStart(12)}\n`);
      if (!backward) {
        src += bytes;
        dst += bytes;
      }
    }
    fs.fsyncSync(disk.fd);
  } finally {
    if (log !== null) fs.closeSync(log);
  }
}

function openLog(file: string): number {
  try {
    return fs.openSync(file, 'w');
  } catch (err) {
    throw new ToolError('DISK_IO', `${file}: cannot open the --move-data log: ${(err as Error).message}`, { cause: err });
  }
}

function copyStep(disk: Disk, buffer: Buffer, src: number, dst: number): void {
  let done = 0;
  try {
    while (done < buffer.length) {
      const n = fs.readSync(disk.fd, buffer, done, buffer.length - done, src + done);
      if (n === 0) throw new Error('unexpected end of the disk');
      done += n;
    }
  } catch (err) {
    throw new ToolError('DISK_IO', `${disk.path}: moving the data: read failed at byte ${src + done}: ${(err as Error).message}`, { cause: err });
  }
  done = 0;
  try {
    while (done < buffer.length) done += fs.writeSync(disk.fd, buffer, done, buffer.length - done, dst + done);
  } catch (err) {
    throw new ToolError('DISK_IO', `${disk.path}: moving the data: write failed at byte ${dst + done}: ${(err as Error).message}`, { cause: err });
  }
}
