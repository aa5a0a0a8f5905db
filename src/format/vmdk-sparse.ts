/**
 * A hosted sparse VMDK extent ("KDMV": monolithicSparse, each -s00N.vmdk of twoGbMaxExtentSparse,
 * streamOptimized read at any offset) mapped through its grain directory and grain tables, read on
 * demand (one block of the GD and one GT kept, so memory stays bounded whatever the capacity). The
 * redundant GD is ignored, as qemu does. A header whose gdOffset is GD_AT_END has its real one in
 * the footer, 1024 bytes before the end. Pure apart from the file's positional reads.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { ClusterInflater, HostFile, ResolvedRun } from './qcow2-image.js';
import {
  FLAG_COMPRESSED,
  FLAG_MARKERS,
  FLAG_ZEROED_GRAIN_GTE,
  GRAIN_MARKER_HEADER_BYTES,
  GTE_ZEROED,
  HEADER_BYTES,
  MARKER_FOOTER,
  SECTOR,
  type SparseExtentHeader,
  VmdkError,
  decodeMarker,
  decodeSparseHeader,
} from './vmdk-header.js';

type CompressedRun = Extract<ResolvedRun, { kind: 'compressed' }>;

/** zlib's compressBound: the most a grain's deflate stream can take, with its marker. */
export const compressedGrainBound = (grainBytes: number): number =>
  GRAIN_MARKER_HEADER_BYTES + grainBytes + (grainBytes >>> 12) + (grainBytes >>> 14) + (grainBytes >>> 25) + 13;

/** GD entries are read in blocks of this many bytes, one block kept. */
const GD_BLOCK_BYTES = 64 << 10;

const inflateAsync = promisify(zlib.inflate) as (buffer: Buffer, options: zlib.ZlibOptions) => Promise<Buffer>;

/** Where a run of the extent comes from; offsets are bytes of the extent (its first sector at 0). */
export class SparseExtent implements ClusterInflater {
  /** The header as used: the footer's when the header's GD is at the end. */
  readonly header: SparseExtentHeader;
  readonly capacityBytes: number;
  readonly grainBytes: number;
  private readonly gtCoverageBytes: number;
  private readonly gdEntries: number;
  private readonly gdByteOffset: number;
  private readonly compressed: boolean;
  private readonly markers: boolean;
  private readonly zeroedGrains: boolean;
  private gdBlock: { index: number; bytes: Buffer } | null = null;
  private gt: { offset: number; table: Buffer; empty: boolean } | null = null;
  private emptyTable: Buffer | null = null;

  constructor(readonly file: HostFile) {
    const header = decodeSparseHeader(file.readAt(0, HEADER_BYTES), 0);
    this.header = header.gdOffset === null ? footerOf(file, header) : header;
    const h = this.header;
    this.grainBytes = h.grainSize * SECTOR;
    this.capacityBytes = h.capacity * SECTOR;
    this.gtCoverageBytes = this.grainBytes * h.numGTEsPerGT;
    this.gdEntries = Math.ceil(this.capacityBytes / this.gtCoverageBytes);
    this.gdByteOffset = h.gdOffset! * SECTOR;
    this.compressed = (h.flags & FLAG_COMPRESSED) !== 0;
    this.markers = (h.flags & FLAG_MARKERS) !== 0;
    // The technote ties the flag to version 2; qemu honours the flag alone, and so does this reader.
    this.zeroedGrains = (h.flags & FLAG_ZEROED_GRAIN_GTE) !== 0;
    if (h.overHead * SECTOR > file.size) throw new VmdkError(`overhead of ${h.overHead} sectors runs past the end of the file (${file.size} bytes)`, 64);
    if (this.gdByteOffset < HEADER_BYTES || this.gdByteOffset + this.gdEntries * 4 > file.size) {
      throw new VmdkError(`grain directory of ${this.gdEntries} entries at sector ${h.gdOffset} does not lie within the file (${file.size} bytes)`, 56);
    }
  }

  private gdEntry(index: number): number {
    const block = Math.floor((index * 4) / GD_BLOCK_BYTES);
    if (this.gdBlock?.index !== block) {
      const start = block * GD_BLOCK_BYTES;
      this.gdBlock = { index: block, bytes: this.file.readAt(this.gdByteOffset + start, Math.min(GD_BLOCK_BYTES, this.gdEntries * 4 - start)) };
    }
    return this.gdBlock.bytes.readUInt32LE(index * 4 - block * GD_BLOCK_BYTES);
  }

  /** The GT at `sector` (kept until another is asked for), and whether all its entries are 0. */
  private grainTable(gdIndex: number, sector: number): { table: Buffer; empty: boolean } {
    const offset = sector * SECTOR;
    if (this.gt?.offset !== offset) {
      const bytes = this.header.numGTEsPerGT * 4;
      if (offset + bytes > this.file.size) {
        throw new VmdkError(`grain directory entry ${gdIndex} points at sector ${sector}, past the end of the file (${this.file.size} bytes)`, this.gdByteOffset + gdIndex * 4);
      }
      const table = this.file.readAt(offset, bytes);
      this.emptyTable ??= Buffer.alloc(bytes);
      this.gt = { offset, table, empty: table.equals(this.emptyTable) };
    }
    return this.gt;
  }

  /**
   * The extent's map of [start, end) (bytes, clipped to its capacity): zeros, stored grains (runs
   * of grains that follow on in the file joined), compressed grains one by one.
   */
  *runs(start: number, end: number): Generator<ResolvedRun> {
    const stop = Math.min(end, this.capacityBytes);
    let pending: ResolvedRun | null = null;
    const join = (run: ResolvedRun): ResolvedRun | null => {
      if (pending && pending.kind === run.kind && pending.offset + pending.length === run.offset) {
        if (run.kind === 'zero') return ((pending.length += run.length), null);
        if (run.kind === 'data' && pending.kind === 'data' && pending.host + pending.length === run.host) return ((pending.length += run.length), null);
      }
      const done = pending;
      pending = run;
      return done;
    };
    for (let at = start; at < stop; ) {
      const gdIndex = Math.floor(at / this.gtCoverageBytes);
      const gde = this.gdEntry(gdIndex);
      if (gde === 0) {
        const next = Math.min(stop, (gdIndex + 1) * this.gtCoverageBytes);
        const done = join({ kind: 'zero', offset: at, length: next - at });
        if (done) yield done;
        at = next;
        continue;
      }
      const { table, empty } = this.grainTable(gdIndex, gde);
      const gtEnd = Math.min(stop, (gdIndex + 1) * this.gtCoverageBytes);
      // qemu preallocates every GT: an empty one is skipped whole (a 1 TiB disk has 32768 of them).
      if (empty) {
        const done = join({ kind: 'zero', offset: at, length: gtEnd - at });
        if (done) yield done;
        at = gtEnd;
        continue;
      }
      while (at < gtEnd) {
        const grainStart = Math.floor(at / this.grainBytes) * this.grainBytes;
        const next = Math.min(gtEnd, grainStart + this.grainBytes);
        const gte = table.readUInt32LE(((grainStart - gdIndex * this.gtCoverageBytes) / this.grainBytes) * 4);
        const done = join(this.grainRun(gte, grainStart, at, next - at, gde, gdIndex));
        if (done) yield done;
        at = next;
      }
    }
    if (pending) yield pending;
  }

  /** One grain's run: [at, at + length) of the grain at `grainStart`, whose GTE is `gte`. */
  private grainRun(gte: number, grainStart: number, at: number, length: number, gtSector: number, gdIndex: number): ResolvedRun {
    if (gte === 0 || (gte === GTE_ZEROED && this.zeroedGrains)) return { kind: 'zero', offset: at, length };
    const host = gte * SECTOR;
    const gteAt = gtSector * SECTOR + ((grainStart - gdIndex * this.gtCoverageBytes) / this.grainBytes) * 4;
    if (this.compressed) {
      if (host + (this.markers ? GRAIN_MARKER_HEADER_BYTES : 1) > this.file.size) throw pastEnd(gte, this.file.size, gteAt);
      return { kind: 'compressed', offset: at, length, file: this.file, image: this, host, bytes: compressedGrainBound(this.grainBytes), clusterOffset: grainStart };
    }
    const needed = Math.min(this.grainBytes, this.capacityBytes - grainStart);
    if (host + needed > this.file.size) throw pastEnd(gte, this.file.size, gteAt);
    return { kind: 'data', offset: at, length, file: this.file, host: host + (at - grainStart) };
  }

  inflateSync(run: CompressedRun): Buffer {
    const { data, at } = this.deflated(run, this.file.readAt(run.host, run.bytes));
    return this.checkedGrain(run, () => zlib.inflateSync(data, { maxOutputLength: this.grainBytes }), at);
  }

  async inflate(run: CompressedRun, compressed: Buffer): Promise<Buffer> {
    const { data, at } = this.deflated(run, compressed);
    let grain: Buffer;
    try {
      grain = await inflateAsync(data, { maxOutputLength: this.grainBytes });
    } catch (err) {
      throw inflateError(err, at, data.length);
    }
    return this.checkedGrain(run, () => grain, at);
  }

  /** The deflate stream of a compressed grain: after its marker, whose LBA must be the grain's. */
  private deflated(run: CompressedRun, bytes: Buffer): { data: Buffer; at: number } {
    if (!this.markers) return { data: bytes, at: run.host };
    const marker = decodeMarker(bytes.subarray(0, 16), run.host);
    const lba = run.clusterOffset / SECTOR;
    if (marker.kind !== 'grain' || marker.lba !== lba) {
      const found = marker.kind === 'grain' ? `a grain marker for sector ${marker.lba}` : `a metadata marker of type ${marker.type}`;
      throw new VmdkError(`grain table entry for sector ${lba} points at ${found}`, run.host);
    }
    if (GRAIN_MARKER_HEADER_BYTES + marker.size > bytes.length || run.host + GRAIN_MARKER_HEADER_BYTES + marker.size > this.file.size) {
      throw new VmdkError(`grain marker of ${marker.size} compressed bytes (a ${this.grainBytes}-byte grain takes at most ${bytes.length - GRAIN_MARKER_HEADER_BYTES}, or it runs past the end of the file)`, run.host);
    }
    return { data: bytes.subarray(GRAIN_MARKER_HEADER_BYTES, GRAIN_MARKER_HEADER_BYTES + marker.size), at: run.host };
  }

  private checkedGrain(run: CompressedRun, inflate: () => Buffer, at: number): Buffer {
    let grain: Buffer;
    try {
      grain = inflate();
    } catch (err) {
      throw err instanceof VmdkError ? err : inflateError(err, at, run.bytes);
    }
    return checkedGrainLength(grain, this.grainBytes, this.capacityBytes - run.clusterOffset, at);
  }
}

/**
 * A grain as inflated: a whole grain, or (the last one of a disk whose size is not a multiple of
 * the grain) at least what lies within the capacity; the rest of the grain reads as zeros.
 */
export function checkedGrainLength(grain: Buffer, grainBytes: number, bytesLeft: number, at: number): Buffer {
  const needed = Math.min(grainBytes, bytesLeft);
  if (grain.length < needed) throw new VmdkError(`compressed grain inflates to ${grain.length} bytes, expected ${needed}`, at);
  if (grain.length === grainBytes) return grain;
  const whole = Buffer.alloc(grainBytes);
  grain.copy(whole);
  return whole;
}

export function inflateError(err: unknown, at: number, bytes: number): VmdkError {
  const code = (err as { code?: string }).code;
  if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) return new VmdkError(`compressed grain (${bytes} bytes) inflates to more than a grain`, at);
  return new VmdkError(`compressed grain (${bytes} bytes) does not inflate: ${err instanceof Error ? err.message : String(err)}`, at);
}

const pastEnd = (gte: number, size: number, at: number): VmdkError => new VmdkError(`grain table entry points at sector ${gte}, past the end of the file (${size} bytes)`, at);

/** The footer of a header whose GD is at the end: the header again, 1024 bytes before the end, with the real gdOffset. */
function footerOf(file: HostFile, header: SparseExtentHeader): SparseExtentHeader {
  const footerAt = file.size - 2 * SECTOR;
  if (footerAt < HEADER_BYTES) throw new VmdkError(`grain directory at the end (GD_AT_END), and the file (${file.size} bytes) has no room for a footer`, 56);
  if (header.flags & FLAG_MARKERS) {
    const marker = decodeMarker(file.readAt(footerAt - SECTOR, 16), footerAt - SECTOR);
    if (marker.kind !== 'metadata' || marker.type !== MARKER_FOOTER) throw new VmdkError('grain directory at the end (GD_AT_END) and no footer marker 1536 bytes before the end of the file', footerAt - SECTOR);
  }
  const footer = decodeSparseHeader(file.readAt(footerAt, HEADER_BYTES), footerAt);
  if (footer.gdOffset === null) throw new VmdkError('the footer too says the grain directory is at the end', footerAt + 56);
  if (footer.capacity !== header.capacity || footer.grainSize !== header.grainSize || footer.numGTEsPerGT !== header.numGTEsPerGT) {
    throw new VmdkError(`the footer's capacity, grain size or grain table size differs from the header's`, footerAt + 12);
  }
  return footer;
}
