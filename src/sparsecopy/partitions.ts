/**
 * sparsecopy on partitions: --from-partition N (copy one partition of SOURCE's disk, also from a
 * pipe or inside a compressed image), --to-partition N
 * (write SOURCE into partition N of DEST), --relocate-gpt (move a GPT's backup to the end of a
 * larger destination after the copy).
 */
import { ToolError } from '../errors.js';
import type { Extent } from '../extent/extent.js';
import { type SourceLayer, exactLength } from '../format/chain.js';
import { isExtendedType } from '../partition/align.js';
import { readEbr } from '../partition/mbr.js';
import { type DiskErrorCodes, diskOnFd, fdSectorReader } from '../io/disk.js';
import { writeTable } from '../io/table-writer.js';
import { deviceSectorSize } from '../io/target.js';
import { relocateBackup } from '../partition/gpt.js';
import type { Partition, SectorReader } from '../partition/model.js';
import { bufferReader, detectGptSectorSize, readTable, writeHazards } from '../partition/read.js';

/** Bytes of a stream's start buffered to read its table: MBR, GPT header and 128 entries fit. */
const STREAM_HEAD_BYTES = 1 << 20;

export interface ByteRange {
  offset: number;
  length: number;
}

/** Failures reading the destination's table are destination reads (the source's are its own). */
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

/**
 * --from-partition: where partition `number` lies in the source's virtual disk. A disk that can
 * be read anywhere (a file, a device) is asked for its table directly. A stream (a pipe, a
 * decompressed image) has its first MiB held to read the table from (MBR, GPT header and entries),
 * and for a logical partition the EBR chain is then followed as the stream passes, each EBR read
 * as it comes by and nothing before it kept: the partition is found however far in its EBR lies,
 * in bounded memory. The returned extents (streams only) start at or before the partition.
 */
export async function locateSourcePartition(
  layer: SourceLayer,
  number: number,
  device: { fd: number } | null,
): Promise<{ range: ByteRange; extents: AsyncGenerator<Extent> | null }> {
  const { name } = layer;
  if (layer.readAt) {
    const readAt = layer.readAt;
    const size = exactLength(layer.length) ?? 0;
    const reader = (sectorSize: number): SectorReader => (lba, count) => readAt(lba * sectorSize, count * sectorSize);
    const sectorSize = device ? deviceSectorSize(device.fd) : (detectGptSectorSize(readAt(0, 8192)) ?? 512);
    const range = locatePartition(name, reader(sectorSize), sectorSize, Math.floor(size / sectorSize), number);
    if (range.offset + range.length > size) {
      throw new ToolError('NO_PARTITION', `${name}: partition ${number} ends at byte ${range.offset + range.length}, past the end (${size})`);
    }
    return { range, extents: null };
  }
  const cursor = new StreamCursor(layer.extents({ start: 0, end: null }));
  try {
    const head = await cursor.read(0, STREAM_HEAD_BYTES, 0);
    const sectorSize = detectGptSectorSize(head) ?? 512;
    // The stream's length is unknown: the table describes the disk (its sizes are checked against
    // the stream as it arrives).
    const diskSectors = Math.floor(Number.MAX_SAFE_INTEGER / sectorSize);
    const { table } = readTable(bufferReader(head, sectorSize), sectorSize, diskSectors);
    const extended = table?.label === 'dos' ? table.partitions.find((p) => p.number <= 4 && isExtendedType(p.type)) : undefined;
    const range = number >= 5 && extended ? await followEbrChain(name, cursor, extended.start, sectorSize, number) : locatePartition(name, bufferReader(head, sectorSize), sectorSize, diskSectors, number);
    return { range, extents: cursor.rest() };
  } catch (err) {
    await cursor.close();
    throw err;
  }
}

/**
 * Logical partition `number` from the EBR chain starting at LBA `first`, read as the stream passes.
 * Numbered as the table reader numbers them: partitions without sectors are skipped.
 */
async function followEbrChain(name: string, cursor: StreamCursor, first: number, sectorSize: number, number: number): Promise<ByteRange> {
  let found = 4;
  let previous = -1;
  for (let ebr: number | null = first, read = 0; ebr !== null; read++) {
    if (ebr <= previous) {
      throw new ToolError('NO_PARTITION', `${name}: its EBR chain goes back from LBA ${previous} to LBA ${ebr}, which a stream cannot follow; copy it from a file`);
    }
    if (read >= MAX_STREAM_EBRS) break;
    const sector = await cursor.read(ebr * sectorSize, sectorSize, ebr * sectorSize);
    if (sector.length < sectorSize) break; // the stream ended
    const { partition, next } = readEbr(sector, ebr, first);
    if (partition.sectors > 0 && ++found === number) return { offset: (ebr + partition.lbaStart) * sectorSize, length: partition.sectors * sectorSize };
    previous = ebr;
    ebr = next;
  }
  throw new ToolError('NO_PARTITION', `${name}: no partition ${number} in its dos table (its EBR chain holds ${found - 4} logical partitions)`);
}

/** libfdisk's limit: partitions 5 to 60. */
const MAX_STREAM_EBRS = 56;

/**
 * A forward-only view of a stream's extents: bytes are read out (copied) at offsets the stream has
 * not yet passed, what lies before a given offset is given back, and the rest is handed on.
 */
class StreamCursor {
  private readonly held: Extent[] = [];
  private done = false;

  constructor(private readonly source: AsyncGenerator<Extent>) {}

  /** `length` bytes at `offset` (fewer at the end); extents ending before `keepFrom` are released. */
  async read(offset: number, length: number, keepFrom: number): Promise<Buffer> {
    while (!this.done && this.heldEnd() < offset + length) {
      const next = await this.source.next();
      if (next.done) this.done = true;
      else this.held.push(next.value);
      this.dropBefore(keepFrom);
    }
    this.dropBefore(keepFrom);
    const end = Math.min(offset + length, this.heldEnd());
    const out = Buffer.alloc(Math.max(0, end - offset));
    for (const e of this.held) {
      const from = Math.max(offset, e.offset);
      const to = Math.min(end, e.offset + e.length);
      if (to > from && e.data) e.data.copy(out, from - offset, from - e.offset, to - e.offset);
    }
    return out;
  }

  private heldEnd(): number {
    const last = this.held[this.held.length - 1];
    return last ? last.offset + last.length : 0;
  }

  private dropBefore(offset: number): void {
    while (this.held.length > 0 && this.held[0]!.offset + this.held[0]!.length <= offset) this.held.shift()!.release?.();
  }

  /** What was held, then the rest of the stream. */
  async *rest(): AsyncGenerator<Extent> {
    try {
      while (this.held.length > 0) yield this.held.shift()!;
      if (!this.done) yield* this.source;
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    for (const e of this.held.splice(0)) e.release?.();
    await this.source.return(undefined);
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
 * entries to its true end and fix the headers (sfdisk --relocate gpt-bak-std). Nothing to do for an MBR or a GPT
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
