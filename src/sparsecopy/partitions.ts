/**
 * sparsecopy on partitions: --from-partition N (copy one partition of SOURCE, also from a pipe or
 * a gzip stream: the table is read from the first sectors, the rest streamed), --to-partition N
 * (write SOURCE into partition N of DEST), --relocate-gpt (move a GPT's backup to the end of a
 * larger destination after the copy).
 */
import { ToolError } from '../errors.js';
import type { Extent, ExtentSource } from '../extent/extent.js';
import { type DiskErrorCodes, diskOnFd, fdSectorReader } from '../io/disk.js';
import { writeTable } from '../io/table-writer.js';
import { deviceSectorSize } from '../io/target.js';
import type { OpenedInput } from '../io/target.js';
import { relocateBackup } from '../partition/gpt.js';
import type { Partition, SectorReader } from '../partition/model.js';
import { bufferReader, detectGptSectorSize, readTable, writeHazards } from '../partition/read.js';

/** Bytes of a stream's start buffered to read its table: MBR, GPT header and 128 entries fit. */
const STREAM_HEAD_BYTES = 1 << 20;

export interface ByteRange {
  offset: number;
  length: number;
}

/** Failures reading the source's table are source reads; the destination's, destination reads. */
const SOURCE_ERRORS = 'SOURCE_READ';
const DESTINATION_ERRORS: DiskErrorCodes = { read: 'DEST_CHECK_READ', write: 'WRITE' };

function sectorSizeOf(fd: number, isBlockDevice: boolean, head: () => Buffer): number {
  if (isBlockDevice) return deviceSectorSize(fd);
  return detectGptSectorSize(head()) ?? 512;
}

/**
 * Partition `number` of the table `read` sees, as a byte range; NO_PARTITION when absent, and
 * `forWriting` when the table is the protective MBR of a GPT that cannot be read (its "partition
 * 1" covers what is left of the GPT).
 */
export function locatePartition(name: string, read: SectorReader, sectorSize: number, diskSectors: number, number: number, forWriting = false): ByteRange {
  const { table, problems, unreadableLabel } = readTable(read, sectorSize, diskSectors);
  if (!table) {
    const why = problems.find((p) => p.severity === 'error')?.message ?? 'no partition table';
    throw new ToolError('NO_PARTITION', `${name}: cannot read its partition table: ${why}`);
  }
  if (forWriting && unreadableLabel) {
    const why = problems.find((p) => p.severity === 'error')?.message ?? 'damaged';
    throw new ToolError('NO_PARTITION', `${name}: its ${unreadableLabel} table cannot be read (${why}): refusing to write into what its protective MBR describes; nothing written`);
  }
  const p: Partition | undefined = table.partitions.find((x) => x.number === number);
  if (!p) throw new ToolError('NO_PARTITION', `${name}: no partition ${number} in its ${table.label} table`);
  return { offset: p.start * sectorSize, length: p.size * sectorSize };
}

/** --from-partition on a file or device: narrow the input to the partition (holes still skipped). */
export function narrowSeekableInput(input: OpenedInput, number: number): void {
  const size = input.size ?? 0;
  const reader = (sectorSize: number): SectorReader => fdSectorReader(input.name, input.fd, sectorSize, { baseOffset: input.startOffset, errorCode: SOURCE_ERRORS });
  const sectorSize = sectorSizeOf(input.fd, input.kind === 'block', () => reader(512)(0, 16));
  const range = locatePartition(input.name, reader(sectorSize), sectorSize, Math.floor(size / sectorSize), number);
  if (range.offset + range.length > size) {
    throw new ToolError('NO_PARTITION', `${input.name}: partition ${number} ends at byte ${range.offset + range.length}, past the end (${size})`);
  }
  input.startOffset += range.offset;
  input.size = range.length;
}

/**
 * --from-partition on a stream (pipe, gzip): buffer the head, read the table from it, then pass on
 * only the partition's bytes, renumbered from 0. Logical partitions whose EBR lies past the head
 * cannot be found this way and are reported as missing.
 */
export async function* partitionOfStream(name: string, extents: ExtentSource, number: number, onRange?: (r: ByteRange) => void): AsyncGenerator<Extent> {
  const iterator = extents[Symbol.asyncIterator]();
  const head = Buffer.alloc(STREAM_HEAD_BYTES);
  let headEnd = 0;
  let pending: IteratorResult<Extent> | null = null;
  while (headEnd < STREAM_HEAD_BYTES) {
    const next = await iterator.next();
    if (next.done) break;
    const e = next.value;
    if (e.data) e.data.copy(head, e.offset, 0, Math.min(e.length, STREAM_HEAD_BYTES - e.offset));
    if (e.offset + e.length > STREAM_HEAD_BYTES) {
      pending = next; // straddles the end of the head: handed on below
      headEnd = STREAM_HEAD_BYTES;
      break;
    }
    e.release?.();
    headEnd = e.offset + e.length;
  }
  const sectorSize = detectGptSectorSize(head) ?? 512;
  // The stream's length is unknown: let the table describe the disk (its own sizes are checked
  // against the stream as it arrives).
  const range = locatePartition(name, bufferReader(head.subarray(0, headEnd), sectorSize), sectorSize, Number.MAX_SAFE_INTEGER / sectorSize, number);
  onRange?.(range);
  const end = range.offset + range.length;
  const clipped = (e: Extent): Extent | null => {
    const from = Math.max(e.offset, range.offset);
    const to = Math.min(e.offset + e.length, end);
    if (to <= from) return null;
    const piece: Extent = { offset: from - range.offset, length: to - from };
    if (e.data) piece.data = e.data.subarray(from - e.offset, to - e.offset);
    return piece;
  };
  let produced = 0;
  if (range.offset < headEnd) {
    const first = clipped({ offset: 0, length: headEnd, data: head.subarray(0, headEnd) });
    if (first) {
      yield first;
      produced = first.offset + first.length;
    }
  }
  for (let next = pending ?? (await iterator.next()); !next.done; next = await iterator.next()) {
    const e = next.value;
    if (e.offset >= end) {
      e.release?.();
      break;
    }
    // The head's part of a straddling extent was already handed on.
    const fresh = e.offset < headEnd ? { ...e, offset: headEnd, length: e.offset + e.length - headEnd, data: e.data?.subarray(headEnd - e.offset) } : e;
    const piece = clipped(fresh);
    if (piece) {
      yield { ...piece, release: e.release };
      produced = piece.offset + piece.length;
    } else e.release?.();
  }
  await iterator.return?.();
  if (produced < range.length) {
    throw new ToolError('SOURCE_READ', `${name}: ended at byte ${range.offset + produced}, inside partition ${number} (which ends at byte ${end})`);
  }
}

/**
 * --to-partition: where partition `number` of the destination lies. Refused (NO_PARTITION) when
 * `ptable check` finds the partition overlapping another one or a table sector, or running past
 * the disk: writing there would destroy the table or another partition.
 */
export function locateDestinationPartition(name: string, fd: number, isBlockDevice: boolean, sizeBytes: number, number: number): ByteRange {
  const reader = (sectorSize: number): SectorReader => fdSectorReader(name, fd, sectorSize, { errorCode: DESTINATION_ERRORS.read });
  const sectorSize = sectorSizeOf(fd, isBlockDevice, () => reader(512)(0, 16));
  const diskSectors = Math.floor(sizeBytes / sectorSize);
  const range = locatePartition(name, reader(sectorSize), sectorSize, diskSectors, number, true);
  const hazard = writeHazards(reader(sectorSize), sectorSize, diskSectors, number)[0];
  if (hazard) {
    throw new ToolError('NO_PARTITION', `${name}: refusing to write into partition ${number}: ${hazard.message}; nothing written`);
  }
  return range;
}

/**
 * --relocate-gpt: after writing a GPT image to a larger destination, move the backup header and
 * entries to its true end and fix the headers (sgdisk -e). Nothing to do for an MBR or a GPT
 * already at the end. Returns a message for the summary, or null.
 */
export function relocateGptAfterCopy(name: string, fd: number, isBlockDevice: boolean, sizeBytes: number): string | null {
  const sectorSize = sectorSizeOf(fd, isBlockDevice, () => fdSectorReader(name, fd, 512, { errorCode: DESTINATION_ERRORS.read })(0, 16));
  // The descriptor is the copy's: the destination's owner closes it.
  const disk = diskOnFd(name, fd, { isBlockDevice, sectorSize, sizeBytes, errors: DESTINATION_ERRORS });
  const { table } = readTable(disk.read, sectorSize, disk.sectors);
  if (!table || table.label !== 'gpt') return null;
  // The sink already asked a device to re-read its table and warned when it could not.
  writeTable(disk, relocateBackup(table, disk.sectors));
  return `${name}: backup GPT moved to the last LBA ${disk.sectors - 1}`;
}
