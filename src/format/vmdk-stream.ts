/**
 * A streamOptimized VMDK read in one forward pass (from a pipe, stdin, or a decompressor): the
 * header, the metadata up to its overhead skipped (qemu puts its GTs and GD there), then the
 * markers in file order: grain markers (LBA, compressed size, zlib data, padding to a sector)
 * inflated on the thread pool a chunk's worth at a time; GT, GD and footer markers skipped by their
 * sector count, progress markers as one sector; the end-of-stream marker (or the end of the input:
 * qemu writes none) ends it. Grains must come in ascending LBA order without overlapping, as
 * VirtualBox's sequential reader requires: anything else is an error at its byte offset, never a
 * wait for data that cannot come.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Extent } from '../extent/extent.js';
import { ExtentByteReader } from '../extent/byte-reader.js';
import {
  GRAIN_MARKER_HEADER_BYTES,
  HEADER_BYTES,
  MARKER_EOS,
  MARKER_FOOTER,
  MARKER_GD,
  MARKER_GT,
  MARKER_PROGRESS,
  SECTOR,
  type SparseExtentHeader,
  VmdkError,
  decodeMarker,
  decodeSparseHeader,
} from './vmdk-header.js';
import { checkedGrainLength, compressedGrainBound, inflateError } from './vmdk-sparse.js';

const inflateAsync = promisify(zlib.inflate) as (buffer: Buffer, options: zlib.ZlibOptions) => Promise<Buffer>;

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/** Where the markers begin: past the header, the embedded descriptor and the overhead. */
export function firstMarkerOffset(h: SparseExtentHeader): number {
  return Math.max(HEADER_BYTES, (h.descriptorOffset + h.descriptorSize) * SECTOR, h.overHead * SECTOR);
}

/** The most sectors a metadata marker can announce: every GT of the disk and its GD (a writer may put them in one block). */
function metadataSectorLimit(h: SparseExtentHeader): number {
  const gdEntries = Math.ceil(h.capacity / (h.grainSize * h.numGTEsPerGT));
  return Math.ceil((gdEntries * h.numGTEsPerGT * 4 + gdEntries * 4) / SECTOR) + 1;
}

/** The most GD bytes read from a stream's head to count its grains: 128 TiB of 64 KiB grains. */
const MAX_COUNTED_GD_BYTES = 16 << 20;

/**
 * How many grains the tables in the head of the stream list (qemu and VMware's converter write the
 * GD and every GT before the grains, final), read while passing them; null when the tables are not
 * all there (GD_AT_END, a GT elsewhere): the end-of-stream marker is then what says it is whole.
 */
async function grainsListedBefore(reader: ExtentByteReader, h: SparseExtentHeader, skipTo: number): Promise<number | null> {
  if (h.gdOffset === null) return null;
  const gdAt = h.gdOffset * SECTOR;
  const gdEntries = Math.ceil(h.capacity / (h.grainSize * h.numGTEsPerGT));
  const gtBytes = h.numGTEsPerGT * 4;
  if (gdAt < reader.position || gdEntries * 4 > MAX_COUNTED_GD_BYTES || gdAt + gdEntries * 4 > skipTo) return null;
  await reader.skip(gdAt - reader.position);
  const gd = await reader.read(gdEntries * 4);
  if (gd.length < gdEntries * 4) throw new VmdkError('grain directory cut short by the end of the input', gdAt);
  const tables: number[] = [];
  for (let i = 0; i < gdEntries; i++) {
    const sector = gd.readUInt32LE(i * 4);
    if (sector === 0) continue;
    // Only tables that come after the GD and before the grains can be counted on the way.
    if (sector * SECTOR < reader.position || sector * SECTOR + gtBytes > skipTo) return null;
    tables.push(sector * SECTOR);
  }
  tables.sort((a, b) => a - b);
  let grains = 0;
  for (const [i, tableAt] of tables.entries()) {
    if (i > 0 && tableAt < tables[i - 1]! + gtBytes) return null; // tables that overlap are not a layout a writer makes
    await reader.skip(tableAt - reader.position);
    const gt = await reader.read(gtBytes);
    if (gt.length < gtBytes) throw new VmdkError('grain table cut short by the end of the input', tableAt);
    for (let e = 0; e < h.numGTEsPerGT; e++) if (gt.readUInt32LE(e * 4) > 1) grains++;
  }
  return grains;
}

interface QueuedGrain {
  offset: number;
  length: number;
  grain: Promise<Buffer>;
}

/**
 * The disk's extents from the bytes of a streamOptimized extent (`source`, read in order): holes
 * where no grain is, data where grains are. `position` tells how far into the input it has read.
 */
export async function* vmdkStreamExtents(source: AsyncIterable<Extent>, chunkBytes: number, onPosition: (bytes: number) => void = () => undefined): AsyncGenerator<Extent> {
  const reader = new ExtentByteReader(source);
  try {
    const header = decodeSparseHeader(await reader.read(HEADER_BYTES), 0);
    const grainBytes = header.grainSize * SECTOR;
    const capacityBytes = header.capacity * SECTOR;
    const maxCompressed = compressedGrainBound(grainBytes) - GRAIN_MARKER_HEADER_BYTES;
    const maxMetadataSectors = metadataSectorLimit(header);
    const batchGrains = Math.max(1, Math.floor(chunkBytes / grainBytes));
    const skipTo = firstMarkerOffset(header);
    const expectedGrains = await grainsListedBefore(reader, header, skipTo);
    if (reader.position < skipTo) await reader.skip(skipTo - reader.position);
    if (reader.position < skipTo) throw new VmdkError(`overhead of ${header.overHead} sectors runs past the end of the input (${reader.position} bytes)`, 64);
    let grainsSeen = 0;
    let ended = false;

    let emitted = 0; // the disk's bytes handed on so far
    let queue: QueuedGrain[] = [];
    let nextFree = 0; // the first disk byte a grain may start at

    const flush = async function* (): AsyncGenerator<Extent> {
      if (queue.length === 0) return;
      const taken = queue;
      queue = [];
      const grains = await Promise.all(taken.map((g) => g.grain));
      const first = taken[0]!;
      const last = taken[taken.length - 1]!;
      if (first.offset > emitted) yield { offset: emitted, length: first.offset - emitted };
      const length = last.offset + last.length - first.offset;
      const data = Buffer.allocUnsafe(length);
      for (let i = 0; i < taken.length; i++) grains[i]!.copy(data, taken[i]!.offset - first.offset, 0, taken[i]!.length);
      yield { offset: first.offset, length, data };
      emitted = first.offset + length;
    };

    for (;;) {
      onPosition(reader.position);
      const at = reader.position;
      const head = await reader.read(16);
      if (head.length === 0) break; // the end of the input: qemu writes no end-of-stream marker
      if (head.length < 16) {
        if (head.every((b) => b === 0)) {
          ended = true; // an end-of-stream marker cut short of its zero padding
          break;
        }
        throw new VmdkError(`marker cut short by the end of the input (${head.length} of 16 bytes)`, at);
      }
      const marker = decodeMarker(head, at);
      if (marker.kind === 'grain') {
        const offset = marker.lba * SECTOR;
        if (marker.lba % header.grainSize !== 0) throw new VmdkError(`grain marker for sector ${marker.lba}, which is not the start of a ${header.grainSize}-sector grain`, at);
        if (offset >= capacityBytes) throw new VmdkError(`grain marker for sector ${marker.lba}, past the disk's ${header.capacity} sectors`, at);
        if (offset < nextFree) {
          throw new VmdkError(`grain marker for sector ${marker.lba} after the grain ending at sector ${nextFree / SECTOR}: grains out of order or overlapping (a stream is read in ascending order)`, at);
        }
        if (marker.size > maxCompressed) throw new VmdkError(`grain marker of ${marker.size} compressed bytes (a ${grainBytes}-byte grain takes at most ${maxCompressed})`, at);
        const rest = marker.size > 4 ? await reader.read(marker.size - 4) : Buffer.alloc(0);
        if (rest.length < Math.max(0, marker.size - 4)) throw new VmdkError(`grain of ${marker.size} compressed bytes cut short by the end of the input`, at);
        const compressed = marker.size > 4 ? Buffer.concat([head.subarray(GRAIN_MARKER_HEADER_BYTES), rest]) : head.subarray(GRAIN_MARKER_HEADER_BYTES, GRAIN_MARKER_HEADER_BYTES + marker.size);
        await reader.skip(roundUp(GRAIN_MARKER_HEADER_BYTES + marker.size, SECTOR) - Math.max(16, GRAIN_MARKER_HEADER_BYTES + marker.size));
        const length = Math.min(grainBytes, capacityBytes - offset);
        if (queue.length > 0) {
          const last = queue[queue.length - 1]!;
          if (last.offset + last.length !== offset || queue.length >= batchGrains) yield* flush();
        }
        const grain = inflateAsync(compressed, { maxOutputLength: grainBytes }).then(
          (g) => checkedGrainLength(g, grainBytes, capacityBytes - offset, at),
          (err: unknown) => {
            throw err instanceof VmdkError ? err : inflateError(err, at, marker.size);
          },
        );
        grain.catch(() => undefined); // awaited at the flush; a failure meanwhile is not unhandled
        queue.push({ offset, length, grain });
        nextFree = offset + grainBytes;
        grainsSeen++;
        continue;
      }
      if (marker.type === MARKER_EOS) {
        ended = true;
        break;
      }
      if (marker.type === MARKER_PROGRESS) {
        await reader.skip(SECTOR - 16);
        continue;
      }
      if (marker.type !== MARKER_GT && marker.type !== MARKER_GD && marker.type !== MARKER_FOOTER) throw new VmdkError(`metadata marker of unknown type ${marker.type}`, at);
      if (marker.numSectors > maxMetadataSectors) throw new VmdkError(`metadata marker of ${marker.numSectors} sectors (this disk's tables take at most ${maxMetadataSectors})`, at);
      const skip = SECTOR - 16 + marker.numSectors * SECTOR;
      if ((await reader.skip(skip)) < skip) throw new VmdkError(`metadata of ${marker.numSectors} sectors cut short by the end of the input`, at);
    }
    // A stream cut short must not pass for a disk with zeros at its end.
    if (expectedGrains !== null && grainsSeen !== expectedGrains) {
      throw new VmdkError(`the stream ends after ${grainsSeen} grains, its grain tables list ${expectedGrains} (truncated?)`, reader.position);
    }
    if (expectedGrains === null && !ended) throw new VmdkError('the stream ends without an end-of-stream marker (truncated?)', reader.position);
    yield* flush();
    if (capacityBytes > emitted) yield { offset: emitted, length: capacityBytes - emitted };
    onPosition(reader.position);
  } finally {
    await reader.close();
  }
}
