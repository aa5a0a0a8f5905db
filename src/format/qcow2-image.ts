/**
 * One qcow2 file opened for reading, and the images below it: the header parsed, the L1 and L2
 * tables read on demand through the file's positional reads (one L1 block and one L2 table kept,
 * so memory stays bounded whatever the virtual size), and the map resolved down the backing chain
 * into runs that say where each byte of the virtual disk comes from: zeros, or bytes (stored or
 * compressed) at an offset of one of the chain's files. Compressed clusters are inflated here.
 */
import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { MAX_CLUSTER_BITS, MIN_CLUSTER_BITS, type Qcow2Compression, type Qcow2Header, Qcow2Error, parseQcow2Header } from './qcow2-header.js';
import { type MapRun, type Qcow2Geometry, mapRuns, qcow2Geometry } from './qcow2-map.js';

/** A file of the chain, read at any offset (zeros past its end). */
export interface HostFile {
  name: string;
  size: number;
  /** Into `into` (its first `length` bytes) when given: a buffer the copy reuses. */
  readAt(offset: number, length: number, into?: Buffer): Buffer;
}

/** Where a run of the virtual disk comes from, once the backing chain is resolved. */
export type ResolvedRun =
  | { kind: 'zero'; offset: number; length: number }
  | { kind: 'data'; offset: number; length: number; file: HostFile; host: number }
  | { kind: 'compressed'; offset: number; length: number; file: HostFile; image: ClusterInflater; host: number; bytes: number; clusterOffset: number };

/** What inflates a compressed run's whole cluster (a qcow2 image's, a VMDK extent's grains): `bytes` at `host` of `file` hold it. */
export interface ClusterInflater {
  /** Synchronously, reading the bytes itself (small reads: partition tables). */
  inflateSync(run: Extract<ResolvedRun, { kind: 'compressed' }>): Buffer;
  /** On the thread pool, from the bytes already read. */
  inflate(run: Extract<ResolvedRun, { kind: 'compressed' }>, compressed: Buffer): Promise<Buffer>;
}

/** An image of the chain: a qcow2 file or a raw one. */
export interface DiskImage {
  virtualSize: number;
  runs(start: number, end: number): Generator<ResolvedRun>;
}

/** A raw backing file: its bytes are the disk (the zero detection downstream finds its zeros). */
export function rawImage(file: HostFile): DiskImage {
  return {
    virtualSize: file.size,
    *runs(start, end) {
      const stop = Math.min(end, file.size);
      if (stop > start) yield { kind: 'data', offset: start, length: stop - start, file, host: start };
    },
  };
}

/** L1 entries are read in blocks of this many bytes, one block kept. */
const L1_BLOCK_BYTES = 64 << 10;

export class Qcow2Image implements DiskImage, ClusterInflater {
  readonly header: Qcow2Header;
  readonly geometry: Qcow2Geometry;
  readonly virtualSize: number;
  private l1Block: { index: number; bytes: Buffer } | null = null;
  private l2: { offset: number; table: Buffer } | null = null;

  /** `backing` is resolved by the caller from header.backingFile (null: no backing file). */
  constructor(
    readonly file: HostFile,
    header: Qcow2Header,
    public backing: DiskImage | null = null,
  ) {
    this.header = header;
    this.geometry = qcow2Geometry(header, file.size);
    this.virtualSize = header.virtualSize;
  }

  /** Parses the header from the file's first cluster (or all of it, when shorter). */
  static readHeader(file: HostFile): Qcow2Header {
    // The header names its cluster size; extensions and the backing name lie within that cluster.
    const first = file.readAt(0, Math.min(file.size, 4096));
    const clusterBits = first.length >= 24 ? first.readUInt32BE(20) : 0;
    const clusterBytes = clusterBits >= MIN_CLUSTER_BITS && clusterBits <= MAX_CLUSTER_BITS ? 2 ** clusterBits : 0;
    const head = clusterBytes > first.length && file.size > first.length ? file.readAt(0, Math.min(file.size, clusterBytes)) : first;
    return parseQcow2Header(head, file.size);
  }

  private readonly tables = {
    l1Entry: (index: number): Buffer => {
      const blockIndex = Math.floor((index * 8) / L1_BLOCK_BYTES);
      if (this.l1Block?.index !== blockIndex) {
        const start = blockIndex * L1_BLOCK_BYTES;
        const length = Math.min(L1_BLOCK_BYTES, this.header.l1Size * 8 - start);
        this.l1Block = { index: blockIndex, bytes: this.file.readAt(this.header.l1TableOffset + start, length) };
      }
      const at = index * 8 - blockIndex * L1_BLOCK_BYTES;
      return this.l1Block.bytes.subarray(at, at + 8);
    },
    l2Table: (offset: number): Buffer => {
      if (this.l2?.offset !== offset) this.l2 = { offset, table: this.file.readAt(offset, this.geometry.clusterSize) };
      return this.l2.table;
    },
  };

  /** This image's own map of [start, end): what it holds and what it leaves to the one below. */
  ownRuns(start: number, end: number): Generator<MapRun> {
    return mapRuns(this.geometry, this.tables, this.header.l1TableOffset, start, end);
  }

  *runs(start: number, end: number): Generator<ResolvedRun> {
    for (const run of this.ownRuns(start, end)) {
      if (run.kind === 'zero') yield run;
      else if (run.kind === 'data') yield { ...run, file: this.file };
      else if (run.kind === 'compressed') yield { ...run, file: this.file, image: this };
      else yield* below(this.backing, run.offset, run.offset + run.length);
    }
  }

  /** The whole cluster a compressed run belongs to, inflated (synchronously, for small reads). */
  inflateSync(run: Extract<ResolvedRun, { kind: 'compressed' }>): Buffer {
    return checkedCluster(this, run, () => inflateWith(this.header.compression, this.file.readAt(run.host, run.bytes), this.geometry.clusterSize));
  }

  /** The same on the thread pool (deflate) so that clusters inflate in parallel. */
  async inflate(run: Extract<ResolvedRun, { kind: 'compressed' }>, compressed: Buffer): Promise<Buffer> {
    if (this.header.compression === 'zstd') return checkedCluster(this, run, () => inflateWith('zstd', compressed, this.geometry.clusterSize));
    let cluster: Buffer;
    try {
      cluster = await inflateRawAsync(compressed, { maxOutputLength: this.geometry.clusterSize });
    } catch (err) {
      throw compressedError(run, err);
    }
    return checkedCluster(this, run, () => cluster);
  }
}

/** What lies below an image over [start, end): its backing image's runs, zeros past its end or without one. */
function* below(backing: DiskImage | null, start: number, end: number): Generator<ResolvedRun> {
  const covered = backing ? Math.max(start, Math.min(end, backing.virtualSize)) : start;
  if (backing && covered > start) yield* backing.runs(start, covered);
  if (end > covered) yield { kind: 'zero', offset: covered, length: end - covered };
}

const inflateRawAsync = promisify(zlib.inflateRaw) as (buffer: Buffer, options: zlib.ZlibOptions) => Promise<Buffer>;

type ZstdBinding = typeof import('zstd-napi/binding.js');
/** One decompression context for every zstd cluster, reset before each (creating one per cluster costs more than the cluster). */
let zstdContext: { binding: ZstdBinding; dctx: InstanceType<ZstdBinding['DCtx']> } | null = null;
function zstdDctx(): InstanceType<ZstdBinding['DCtx']> {
  if (!zstdContext) {
    const binding = createRequire(import.meta.url)('zstd-napi/binding') as ZstdBinding;
    zstdContext = { binding, dctx: new binding.DCtx() };
  }
  zstdContext.dctx.reset(zstdContext.binding.ResetDirective.sessionOnly);
  return zstdContext.dctx;
}

/**
 * A cluster from its compressed bytes. The stored bytes run to a sector's end, so they may hold
 * the start of the next compressed cluster after this one's stream: inflation stops once the
 * cluster is full, as qemu's does.
 */
function inflateWith(compression: Qcow2Compression, compressed: Buffer, clusterSize: number): Buffer {
  if (compression === 'deflate') return zlib.inflateRawSync(compressed, { maxOutputLength: clusterSize });
  const dctx = zstdDctx();
  const out = Buffer.alloc(clusterSize);
  let produced = 0;
  let consumed = 0;
  while (produced < clusterSize && consumed < compressed.length) {
    const [, wrote, read] = dctx.decompressStream(out.subarray(produced), compressed.subarray(consumed));
    if (wrote === 0 && read === 0) break;
    produced += wrote;
    consumed += read;
  }
  return out.subarray(0, produced);
}

function compressedError(run: { host: number; bytes: number }, err: unknown): Qcow2Error {
  const reason = err instanceof Error ? err.message : String(err);
  return new Qcow2Error(`compressed cluster (${run.bytes} bytes at byte ${run.host}) does not inflate: ${reason}`, run.host);
}

/** A compressed cluster must inflate to exactly one cluster. */
function checkedCluster(image: Qcow2Image, run: { host: number; bytes: number }, inflate: () => Buffer): Buffer {
  let cluster: Buffer;
  try {
    cluster = inflate();
  } catch (err) {
    throw compressedError(run, err);
  }
  if (cluster.length !== image.geometry.clusterSize) {
    throw new Qcow2Error(`compressed cluster (${run.bytes} bytes at byte ${run.host}) inflates to ${cluster.length} bytes, expected ${image.geometry.clusterSize}`, run.host);
  }
  return cluster;
}

/** The bytes of the virtual disk at [offset, offset + length), zeros past its end: for partition tables. */
export function readVirtual(image: DiskImage, offset: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (const run of image.runs(offset, offset + length)) {
    const at = run.offset - offset;
    if (run.kind === 'data') run.file.readAt(run.host, run.length).copy(out, at);
    else if (run.kind === 'compressed') {
      const from = run.offset - run.clusterOffset;
      run.image.inflateSync(run).copy(out, at, from, from + run.length);
    }
  }
  return out;
}
