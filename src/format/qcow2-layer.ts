/**
 * A qcow2 image as a layer of a source chain: its backing chain opened (names relative to the
 * image's directory, as qemu resolves them; raw or qcow2, probed or as the backing format
 * extension says; loops refused), and its virtual disk read as extents in order. Zeros and
 * unallocated clusters become holes without a read; stored clusters are read in runs as long as
 * their host bytes follow on (up to a chunk); compressed clusters are inflated a chunk's worth at a
 * time, in parallel on the thread pool.
 */
import path from 'node:path';
import { ToolError } from '../errors.js';
import type { Extent } from '../extent/extent.js';
import { BufferPool } from '../io/buffer-pool.js';
import type { ByteRange, SourceLayer } from './chain.js';
import { FORMAT_DESCRIPTIONS, identifyImage } from './identify.js';
import { Qcow2Error } from './qcow2-header.js';
import { type DiskImage, type HostFile, Qcow2Image, type ResolvedRun, rawImage, readVirtual } from './qcow2-image.js';

/** A file of the chain as opened for it: `identity` tells two names of one file apart from two files. */
export interface ChainFile extends HostFile {
  identity: string;
  /** Where the file may hold data (its SEEK_DATA/SEEK_HOLE map), when known: the rest reads as zeros (a VMDK's flat extents). */
  dataSegments?: (start: number) => Generator<{ offset: number; length: number }>;
}

/** Opens the backing files a chain names (throws a ToolError when one cannot be opened). */
export type OpenChainFile = (path: string) => ChainFile;

/** A Qcow2Error of file `name` as the one-line error the user sees. */
export function qcow2ToolError(name: string, err: unknown): unknown {
  if (!(err instanceof Qcow2Error)) return err;
  if (err.kind === 'unsupported') return new ToolError('UNSUPPORTED_FORMAT', `${name}: qcow2 image: ${err.message}; nothing written`);
  return new ToolError('CORRUPT_INPUT', `${name}: corrupt qcow2 image: ${err.message} (at byte ${err.fileOffset})`);
}

/** Errors of the image's runs named after its file (each file of a chain names its own). */
class NamedQcow2Image extends Qcow2Image {
  override *runs(start: number, end: number): Generator<ResolvedRun> {
    try {
      yield* super.runs(start, end);
    } catch (err) {
      throw qcow2ToolError(this.file.name, err);
    }
  }
}

/** Where a backing file name points: absolute as it is, else relative to the image's directory. */
export const backingPath = (imagePath: string, backing: string): string => (path.isAbsolute(backing) ? backing : path.join(path.dirname(imagePath), backing));

/**
 * The image in `top` and every image below it. `openFile` opens backing files (null: the source
 * cannot have any, e.g. it is not a named file).
 */
export function openQcow2Chain(top: ChainFile, openFile: OpenChainFile | null): Qcow2Image {
  const seen = new Map<string, string>([[top.identity, top.name]]);
  const image = openQcow2File(top);
  let current: Qcow2Image = image;
  while (current.header.backingFile !== null) {
    const { backingFile, backingFormat } = current.header;
    const child = current.file.name;
    if (!openFile) throw new ToolError('SOURCE_OPEN', `${child}: qcow2 image with backing file ${backingFile}, which cannot be found from a source without a path; nothing written`);
    const where = backingPath(child, backingFile);
    const file = openFile(where);
    const earlier = seen.get(file.identity);
    if (earlier !== undefined) throw new ToolError('CORRUPT_INPUT', `${child}: backing file ${where} is ${earlier}, already in the chain: the backing chain loops; nothing written`);
    seen.set(file.identity, where);
    const format = backingFormat ?? probeFormat(file);
    if (format === 'raw') {
      current.backing = rawImage(file);
      break;
    }
    if (format !== 'qcow2') throw new ToolError('UNSUPPORTED_FORMAT', `${child}: backing file ${where} is ${format}, which sparsecopy cannot read as a backing file; nothing written`);
    const next = openQcow2File(file);
    current.backing = next;
    current = next;
  }
  return image;
}

function openQcow2File(file: ChainFile): Qcow2Image {
  try {
    return new NamedQcow2Image(file, Qcow2Image.readHeader(file));
  } catch (err) {
    throw qcow2ToolError(file.name, err);
  }
}

/** A backing file without a format extension: qcow2 or raw by its first bytes, anything else by name. */
function probeFormat(file: HostFile): string {
  const format = identifyImage(file.readAt(0, Math.min(file.size, 64 << 10)));
  if (format === null) return 'raw';
  return format === 'qcow2' ? 'qcow2' : FORMAT_DESCRIPTIONS[format];
}

/** Counts the bytes read from the chain's files, for progress in input bytes. */
export function countingFile<T extends HostFile>(file: T, counter: { bytes: number }): T {
  return {
    ...file,
    readAt: (offset: number, length: number, into?: Buffer) => {
      counter.bytes += length;
      return file.readAt(offset, length, into);
    },
  };
}

type CompressedRun = Extract<ResolvedRun, { kind: 'compressed' }>;

/**
 * The virtual disk's extents over `range`, in order: holes for zeros, stored runs in reads of up
 * to `chunkBytes`, compressed clusters inflated a chunk at a time (each batch read in one piece
 * when its clusters lie close together in the file, as qemu-img writes them).
 */
export async function* qcow2Extents(image: DiskImage, range: ByteRange, chunkBytes: number): AsyncGenerator<Extent> {
  // Reused shared buffers, as the raw file source reads into: no allocation per chunk, and the
  // writer thread writes them as they are instead of a copy of them.
  const pool = new BufferPool(chunkBytes);
  const pooled = (fill: (buffer: Buffer) => Buffer): Extent => {
    const buffer = pool.acquire();
    const data = fill(buffer);
    return { offset: 0, length: data.length, data, release: () => pool.release(buffer) };
  };
  let hole: { offset: number; length: number } | null = null;
  let batch: CompressedRun[] = [];
  let batchBytes = 0;
  const takeHole = (): Extent[] => {
    const taken = hole ? [{ offset: hole.offset, length: hole.length }] : [];
    hole = null;
    return taken;
  };
  const takeBatch = async (): Promise<Extent[]> => {
    if (batch.length === 0) return [];
    const runs = batch;
    batch = [];
    batchBytes = 0;
    return [await inflatedBatch(runs, chunkBytes, pooled)];
  };
  for (const run of image.runs(range.start, range.end ?? image.virtualSize)) {
    if (run.kind === 'zero') {
      yield* await takeBatch();
      if (hole && hole.offset + hole.length === run.offset) hole.length += run.length;
      else {
        yield* takeHole();
        hole = { offset: run.offset, length: run.length };
      }
      continue;
    }
    yield* takeHole();
    if (run.kind === 'compressed') {
      batch.push(run);
      batchBytes += run.length;
      if (batchBytes >= chunkBytes) yield* await takeBatch();
      continue;
    }
    yield* await takeBatch();
    for (let done = 0; done < run.length; ) {
      const length = Math.min(chunkBytes, run.length - done);
      const at = run.host + done;
      yield { ...pooled((buffer) => run.file.readAt(at, length, buffer)), offset: run.offset + done };
      done += length;
    }
  }
  yield* await takeBatch();
  yield* takeHole();
}

/** Consecutive compressed runs as one extent of their inflated bytes (gathered into a pooled buffer when they fit one). */
async function inflatedBatch(runs: CompressedRun[], chunkBytes: number, pooled: (fill: (buffer: Buffer) => Buffer) => Extent): Promise<Extent> {
  const first = runs[0]!;
  const sameFile = runs.every((r) => r.file === first.file);
  const from = Math.min(...runs.map((r) => r.host));
  const to = Math.max(...runs.map((r) => r.host + r.bytes));
  const together = sameFile && to - from <= 2 * chunkBytes ? first.file.readAt(from, to - from) : null;
  let clusters: Buffer[];
  try {
    clusters = await Promise.all(runs.map((r) => r.image.inflate(r, together ? together.subarray(r.host - from, r.host - from + r.bytes) : r.file.readAt(r.host, r.bytes))));
  } catch (err) {
    const failed = runs.find((r) => err instanceof Qcow2Error && err.fileOffset === r.host) ?? first;
    throw qcow2ToolError(failed.file.name, err);
  }
  const pieces = runs.map((r, i) => clusters[i]!.subarray(r.offset - r.clusterOffset, r.offset - r.clusterOffset + r.length));
  const total = pieces.reduce((n, p) => n + p.length, 0);
  if (total > chunkBytes) {
    const data = Buffer.concat(pieces);
    return { offset: first.offset, length: data.length, data };
  }
  const gathered = pooled((buffer) => {
    let at = 0;
    for (const p of pieces) at += p.copy(buffer, at);
    return buffer.subarray(0, at);
  });
  return { ...gathered, offset: first.offset };
}

/** The layer of the qcow2 image in `top`, over the layer `below` it is read through. */
export function qcow2Layer(below: SourceLayer, top: ChainFile, openFile: OpenChainFile | null, chunkBytes: number): SourceLayer {
  const counter = { bytes: 0 };
  const counted: OpenChainFile | null = openFile && ((p) => countingFile(openFile(p), counter));
  const image = openQcow2Chain(countingFile(top, counter), counted);
  let totalBytes = 0;
  for (let i: DiskImage | null = image; i; i = i instanceof Qcow2Image ? i.backing : null) totalBytes += i instanceof Qcow2Image ? i.file.size : i.virtualSize;
  return {
    name: below.name,
    formats: [...below.formats, 'qcow2'],
    length: { exact: image.virtualSize },
    readAt: (offset, length) => {
      try {
        return readVirtual(image, offset, length);
      } catch (err) {
        throw qcow2ToolError(top.name, err);
      }
    },
    mayHoldData: function* (start) {
      try {
        for (const run of image.runs(start, image.virtualSize)) if (run.kind !== 'zero') yield { offset: run.offset, length: run.length };
      } catch (err) {
        throw qcow2ToolError(top.name, err);
      }
    },
    extents: (range) => qcow2Extents(image, range, chunkBytes),
    // Tables read twice (a partition table looked up first) and zeros past a short file's end count too: never past the total.
    progressDone: () => Math.min(counter.bytes, totalBytes),
    progressTotal: totalBytes,
  };
}
