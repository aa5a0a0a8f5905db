/**
 * A VMDK as a layer of a source chain. Three ways in:
 * - a descriptor file (text): its extent lines opened relative to its directory (FLAT and VMFS
 *   regions of files, SPARSE extents with a KDMV header, ZERO extents), RDONLY read as RW;
 * - a hosted sparse file (monolithicSparse, streamOptimized) read at any offset through its grain
 *   directory;
 * - a streamOptimized file from a stream (a pipe, stdin, a decompressor), read forward by markers.
 * What no reader here can honour (a parent disk, NOACCESS, ESX's own sparse and raw-device extents)
 * is refused by name, exit 28, before anything is written.
 */
import { ToolError, describeSystemError } from '../errors.js';
import type { Extent } from '../extent/extent.js';
import type { SourceLayer } from './chain.js';
import { type ResolvedRun, readVirtual } from './qcow2-image.js';
import { type ChainFile, type OpenChainFile, backingPath, countingFile, qcow2Extents } from './qcow2-layer.js';
import { DescriptorError, type VmdkDescriptor, embeddedDescriptorText, hasParent, MAX_DESCRIPTOR_BYTES, parseDescriptor } from './vmdk-descriptor.js';
import { type DiskExtent, VmdkDisk } from './vmdk-disk.js';
import { FLAG_COMPRESSED, FLAG_MARKERS, FIELD, SECTOR, VmdkError, decodeSparseHeader } from './vmdk-header.js';
import { SparseExtent } from './vmdk-sparse.js';
import { vmdkStreamExtents } from './vmdk-stream.js';

/** A VmdkError or DescriptorError of file `name` as the one-line error the user sees. */
export function vmdkToolError(name: string, err: unknown, inside = ''): unknown {
  if (err instanceof VmdkError) return new ToolError('CORRUPT_INPUT', `${name}: corrupt VMDK sparse extent: ${err.message} (at byte ${err.at}${inside})`);
  if (err instanceof DescriptorError) {
    const where = err.line > 0 ? `line ${err.line}` : 'descriptor';
    return new ToolError('CORRUPT_INPUT', `${name}: VMDK descriptor ${where}: ${err.message}`);
  }
  return err;
}

const refusal = (name: string, what: string): ToolError => new ToolError('UNSUPPORTED_FORMAT', `${name}: ${what}; sparsecopy cannot read it; nothing written`);

/** A sparse extent whose errors name its file. */
class NamedSparseExtent extends SparseExtent {
  override *runs(start: number, end: number): Generator<ResolvedRun> {
    try {
      yield* super.runs(start, end);
    } catch (err) {
      throw vmdkToolError(this.file.name, err);
    }
  }

  override inflateSync(run: Extract<ResolvedRun, { kind: 'compressed' }>): Buffer {
    try {
      return super.inflateSync(run);
    } catch (err) {
      throw vmdkToolError(this.file.name, err);
    }
  }

  override async inflate(run: Extract<ResolvedRun, { kind: 'compressed' }>, compressed: Buffer): Promise<Buffer> {
    try {
      return await super.inflate(run, compressed);
    } catch (err) {
      throw vmdkToolError(this.file.name, err);
    }
  }
}

function openSparse(file: ChainFile): NamedSparseExtent {
  try {
    return new NamedSparseExtent(file);
  } catch (err) {
    throw vmdkToolError(file.name, err);
  }
}

/** A parent disk (a snapshot's delta) would need its parent read below it: refused. */
function refuseParent(name: string, d: VmdkDescriptor): void {
  if (!hasParent(d)) return;
  const parent = d.parentFileNameHint ? ` ${d.parentFileNameHint}` : '';
  throw refusal(name, `VMDK delta disk (parentCID ${d.parentCid ?? 'unset'}, parent${parent}): a snapshot link of a chain, not a whole disk (convert the chain with its parent first)`);
}

function parsed(name: string, text: string): VmdkDescriptor {
  try {
    return parseDescriptor(text);
  } catch (err) {
    throw vmdkToolError(name, err);
  }
}

/** The disk of a monolithic sparse file: its one extent (the embedded descriptor checked for a parent). */
export function sparseFileDisk(top: ChainFile): VmdkDisk {
  const extent = openSparse(top);
  const h = extent.header;
  if (h.descriptorOffset > 0 && h.descriptorSize > 0) {
    const area = top.readAt(h.descriptorOffset * SECTOR, Math.min(h.descriptorSize * SECTOR, MAX_DESCRIPTOR_BYTES));
    refuseParent(top.name, parsed(top.name, embeddedDescriptorText(area)));
  }
  return new VmdkDisk([{ kind: 'sparse', bytes: extent.capacityBytes, extent }]);
}

/** Opens an extent's file; a missing one is named with its line. */
function openExtentFile(descriptor: ChainFile, openFile: OpenChainFile, file: string, line: number): ChainFile {
  const where = backingPath(descriptor.name, file);
  try {
    return openFile(where);
  } catch (err) {
    const reason = err instanceof ToolError && err.cause !== undefined ? describeSystemError(err.cause) : describeSystemError(err);
    throw new ToolError('SOURCE_OPEN', `${descriptor.name}: line ${line}: cannot open extent file ${where}: ${reason}; nothing written`, { cause: err });
  }
}

/** The disk a descriptor file describes, its extents opened beside it. */
export function descriptorDisk(descriptor: ChainFile, openFile: OpenChainFile): VmdkDisk {
  const name = descriptor.name;
  if (descriptor.size > MAX_DESCRIPTOR_BYTES) throw new ToolError('CORRUPT_INPUT', `${name}: a VMDK descriptor of ${descriptor.size} bytes (at most ${MAX_DESCRIPTOR_BYTES}, as VirtualBox allows)`);
  // qemu pads its descriptor files with NULs to a sector: the text ends at the first.
  const d = parsed(name, embeddedDescriptorText(descriptor.readAt(0, descriptor.size)));
  refuseParent(name, d);
  if (d.extents.length === 0) throw new ToolError('CORRUPT_INPUT', `${name}: VMDK descriptor without extent lines`);
  const extents: DiskExtent[] = d.extents.map((e): DiskExtent => {
    const bytes = e.sectors * SECTOR;
    if (e.access === 'NOACCESS') throw refusal(name, `line ${e.line}: a NOACCESS extent (its ${e.sectors} sectors are not to be read)`);
    if (e.type === 'VMFSSPARSE' || e.type === 'SESPARSE' || e.type === 'VMFSRDM' || e.type === 'VMFSRAW') {
      throw refusal(name, `line ${e.line}: an ESX ${e.type} extent (${e.type.endsWith('SPARSE') ? 'an ESX sparse format' : 'a raw device mapping'})`);
    }
    if (e.type === 'ZERO') return { kind: 'zero', bytes };
    const file = openExtentFile(descriptor, openFile, e.file!, e.line);
    if (e.type === 'SPARSE') {
      const extent = openSparse(file);
      if (extent.capacityBytes < bytes) {
        throw new ToolError('CORRUPT_INPUT', `${name}: line ${e.line}: sparse extent ${file.name} holds ${extent.header.capacity} sectors, the descriptor says ${e.sectors}`);
      }
      return { kind: 'sparse', bytes, extent };
    }
    const fileOffset = e.offsetSectors * SECTOR;
    if (file.size < fileOffset + bytes) {
      throw new ToolError(
        'CORRUPT_INPUT',
        `${name}: line ${e.line}: extent file ${file.name} ends at sector ${Math.floor(file.size / SECTOR)} (${file.size} bytes); the extent needs sectors ${e.offsetSectors} to ${e.offsetSectors + e.sectors}`,
      );
    }
    return { kind: 'flat', bytes, file, fileOffset };
  });
  return new VmdkDisk(extents);
}

/**
 * Whether a KDMV file can be read from a stream: only with grain markers (streamOptimized).
 * Null when it can; else what needs random access, for the refusal.
 */
export function sparseStreamRefusal(head: Buffer): string | null {
  if (head.length < FIELD.flags + 4) return 'a VMDK sparse extent';
  const flags = head.readUInt32LE(FIELD.flags);
  return flags & FLAG_MARKERS && flags & FLAG_COMPRESSED ? null : 'a VMDK monolithicSparse extent (no stream markers)';
}

/** The layer of a VMDK disk read at any offset (a descriptor's or a sparse file's). */
export function vmdkDiskLayer(below: SourceLayer, top: ChainFile, openFile: OpenChainFile | null, isDescriptor: boolean, chunkBytes: number): SourceLayer {
  const counter = { bytes: 0 };
  const counted: OpenChainFile | null = openFile && ((p) => countingFile(openFile(p), counter));
  let disk: VmdkDisk;
  if (isDescriptor) {
    if (!counted) throw new ToolError('UNSUPPORTED_FORMAT', `${top.name}: a VMDK descriptor names its extent files relative to its own directory: read it from a file, not a stream; nothing written`);
    disk = descriptorDisk(top, counted);
  } else disk = sparseFileDisk(countingFile(top, counter));
  const totalBytes = disk.extents.reduce((n, e) => n + (e.kind === 'sparse' ? e.extent.file.size : e.kind === 'flat' ? e.bytes : 0), 0);
  return {
    name: below.name,
    formats: [...below.formats, isDescriptor ? 'vmdk-descriptor' : 'vmdk-sparse'],
    length: { exact: disk.virtualSize },
    readAt: (offset, length) => readVirtual(disk, offset, length),
    mayHoldData: function* (start) {
      for (const run of disk.runs(start, disk.virtualSize)) if (run.kind !== 'zero') yield { offset: run.offset, length: run.length };
    },
    extents: (range) => qcow2Extents(disk, range, chunkBytes),
    progressDone: () => Math.min(counter.bytes, totalBytes),
    progressTotal: totalBytes,
  };
}

/** The layer of a streamOptimized extent read forward from a stream. */
export function vmdkStreamLayer(below: SourceLayer, head: Buffer, chunkBytes: number): SourceLayer {
  const inside = below.formats.length > 0 ? ` of the ${below.formats.join(' + ')}-decompressed data` : '';
  let capacity: number;
  try {
    capacity = decodeSparseHeader(head.subarray(0, 512), 0).capacity;
  } catch (err) {
    throw vmdkToolError(below.name, err, inside);
  }
  let used = false;
  let position = 0;
  async function* named(extents: AsyncGenerator<Extent>): AsyncGenerator<Extent> {
    try {
      yield* extents;
    } catch (err) {
      throw vmdkToolError(below.name, err, inside);
    }
  }
  return {
    name: below.name,
    formats: [...below.formats, 'vmdk-sparse'],
    length: { exact: capacity * SECTOR },
    readAt: null,
    extents: () => {
      if (used) throw new Error(`${below.name}: a VMDK stream is read once`);
      used = true;
      return named(vmdkStreamExtents(below.extents({ start: 0, end: null }), chunkBytes, (p) => (position = p)));
    },
    progressDone: below.progressDone ?? (() => position),
    progressTotal: below.progressTotal,
  };
}
