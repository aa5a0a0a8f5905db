/**
 * A copy is a plan built once: the source chain opened down to its virtual disk, the window of it
 * that is copied (a partition, cut at --max), the output format, the destination opened, and every
 * refusal checked on the way, before the first byte is written. The loop that runs it
 * (copy.ts) only moves extents.
 */
import fs from 'node:fs';
import tty from 'node:tty';
import { ToolError, describeSystemError } from '../errors.js';
import type { DigestAlgorithm } from '../codec/digest.js';
import type { Extent } from '../extent/extent.js';
import { type ByteRange, type SourceLayer, exactLength, minimumLength } from '../format/chain.js';
import {
  type OutputFormat,
  OutputFormatRefusal,
  type OvaOutputOptions,
  type Qcow2OutputOptions,
  type VmdkOutputOptions,
  chooseOutputFormat,
  levelFor,
  ovaOptionsFor,
  qcow2OptionsFor,
  vmdkNeeds,
  vmdkOptionsFor,
} from '../format/output-formats.js';
import { capacitySectorsFor, sparseFits } from '../format/vmdk-writer.js';
import { backingSizeMismatch, qcow2TooLarge } from '../codec/qcow2-sink.js';
import { unknownLengthToStream } from '../codec/vmdk-stream-sink.js';
import { type OpenedBacking, openBacking } from './backing.js';
import { findOnPath } from '../codec/child-decoder.js';
import { INPUT_FORMATS } from '../format/input-formats.js';
import { sameTargetOrOverlap } from '../io/same-target.js';
import { chunkSizeFor } from '../io/sources.js';
import { type OpenedDestination, destinationStat, openDestination } from './destination.js';
import type { SparseCopyOptions } from './options.js';
import { locateDestinationPartition, locateSourcePartition } from './partitions.js';
import type { OpenedSource } from './source.js';
import type { OpenedInput } from '../io/target.js';

export interface CopyPlan {
  readonly source: OpenedSource;
  /** What the layer is asked for: the window, and with -e on a stream one byte more. */
  readonly read: ByteRange;
  /** The bytes of the disk that are copied, [start, end); end null: to the source's end. */
  readonly window: ByteRange;
  /** A stream's extents, already positioned by the search for its partition; null: read the layer. */
  readonly positioned: AsyncGenerator<Extent> | null;
  /** Bytes the window must hold (a partition of a stream, checked as it ends); null: whatever comes. */
  readonly mustHold: number | null;
  /** -e and the source's length unknown: the copy learns of more data by seeing it. */
  readonly watchRemainder: boolean;
  /** Bytes the copy delivers, when known before reading (padding not included). */
  readonly length: number | null;
  readonly output: Output;
  readonly dest: OpenedDestination;
  /** --backing: the qcow2 output's backing file, open; closed with the source. */
  readonly backing: OpenedBacking | null;
  /** Where the window's byte 0 lands in the destination (--seek, or --to-partition's start). */
  readonly seekBytes: number;
  readonly blockSize: number;
  readonly chunkBytes: number;
  readonly digests: readonly DigestAlgorithm[];
  readonly writerThread: boolean;
  /** qcow2 to a stream: a first pass over the same extents maps the clusters before the second writes. */
  readonly twoPasses: boolean;
  readonly options: Readonly<SparseCopyOptions>;
}

/** The zero-detection block, validated. */
export function blockSizeOf(options: SparseCopyOptions): number {
  const blockSize = options.blockSize ?? 512;
  if (!(blockSize > 0) || !Number.isSafeInteger(blockSize)) throw new ToolError('USAGE', `bad block size ${blockSize}`);
  return blockSize;
}

export const chunkBytesOf = (options: SparseCopyOptions, blockSize: number): number => chunkSizeFor(blockSize, options.chunkBytes);

export interface Output {
  /** A VMDK's needs are its subformat's. */
  readonly format: OutputFormat;
  readonly level: number | null;
  readonly qcow2: Qcow2OutputOptions | null;
  readonly vmdk: VmdkOutputOptions | null;
  readonly ova: OvaOutputOptions | null;
}

/** The output format and level the options and the destination's name ask for (refusals are USAGE or UNSUPPORTED_FORMAT). */
export function outputOf(options: SparseCopyOptions): Output {
  try {
    const chosen = chooseOutputFormat(options.destination, { format: options.outputFormat, raw: options.raw });
    const level = levelFor(chosen, options.level === undefined ? undefined : String(options.level));
    const vmdk = vmdkOptionsFor(chosen, options);
    const format = vmdk ? { ...chosen, needs: vmdkNeeds(vmdk) } : chosen;
    return { format, level, qcow2: qcow2OptionsFor(chosen, options), vmdk, ova: ovaOptionsFor(chosen, options) };
  } catch (err) {
    if (!(err instanceof OutputFormatRefusal)) throw err;
    const code = /cannot write/.test(err.message) ? 'UNSUPPORTED_FORMAT' : 'USAGE';
    throw new ToolError(code, err.message);
  }
}

export function digestsToCompute(options: Pick<SparseCopyOptions, 'digests' | 'verify'>): DigestAlgorithm[] {
  const wanted = new Set<DigestAlgorithm>(options.digests ?? []);
  for (const algorithm of Object.keys(options.verify ?? {})) wanted.add(algorithm as DigestAlgorithm);
  return [...wanted];
}

/** Whether these options read the bytes in order, whatever the destination: compressed output, digests, --max, --pad. */
export function needsExtentsInOrder(options: SparseCopyOptions): boolean {
  return outputOf(options).format.needs.ordered || digestsToCompute(options).length > 0 || options.maxBytes !== undefined || !!options.padBytes;
}

/**
 * The output's refusals that need nothing opened, for a caller with work to do before the copy
 * (fsmaker builds GRUB first) and that knows how many bytes it will copy: the same checks, and
 * messages, as the plan's.
 */
export function refuseOutputUpFront(options: SparseCopyOptions, lengthBytes: number): void {
  const output = outputOf(options);
  refuseIncompatibleOptions(options, output);
  refuseQcow2TooLarge(options, output.qcow2, lengthBytes);
  refuseVmdkSize(options, output, lengthBytes);
  // What is checked up front is a disk built as it is written: it cannot be read twice.
  if (output.format.name === 'qcow2' && destinationIsStream(options.destination)) throw notTwice(options.destination, 'a disk built as it is written');
}

/**
 * Refusals that need nothing opened: what an output format cannot do with the options asked for,
 * named by format and option.
 */
function refuseIncompatibleOptions(options: SparseCopyOptions, output: Output): void {
  const { format } = output;
  if (options.toPartition !== undefined && options.seekBytes) throw new ToolError('USAGE', '--to-partition cannot be combined with --seek');
  if (!format.needs.ordered) return;
  const clash = options.toPartition !== undefined ? '--to-partition' : options.overlay ? '--overlay' : options.seekBytes ? '--seek' : options.finalSize !== undefined ? '--finalsize' : null;
  if (clash) throw new ToolError('USAGE', `${options.destination}: ${clash} cannot be used with ${format.label} output (a new ${format.label} ${format.needs.seekable ? 'image' : 'stream'} is written)`);
  if (output.vmdk && format.needs.seekable) refuseVmdkUnseekable(options.destination, output.vmdk);
  if (format.needs.seekable) refuseUnseekable(options.destination, format, options);
  if (format.tool && !findOnPath(format.tool.command)) {
    throw new ToolError('MISSING_TOOL', `${options.destination}: ${format.label} output needs the program ${format.tool.command}, which is not installed (Debian package ${format.tool.debianPackage}); nothing written`);
  }
}

/**
 * A format that seeks in its output (qcow2 writes its metadata last) needs a new or replaced
 * regular file, or, for qcow2, a stream written in two passes over the source (checked once it is
 * open: twoPassesOrRefused). Refused before anything is opened (a FIFO's open would wait for a
 * reader): a block device; a stream with --compress (the metadata goes first, and the compressed
 * sizes it holds are unknown before compressing); a terminal.
 */
function refuseUnseekable(destination: string, format: OutputFormat, options: SparseCopyOptions): void {
  const stat = destinationStat(destination);
  // A directory is left to openDestination's own error (exit 3).
  if (destination !== '-' && (stat === null || stat.isFile() || stat.isDirectory())) return;
  const name = destination === '-' ? 'stdout' : destination;
  if (stat?.isBlockDevice()) throw new ToolError('UNSUPPORTED_FORMAT', `${name} (a block device): ${format.label} output needs a regular file or a stream; nothing written`);
  if (destination === '-' ? tty.isatty(1) : stat?.isCharacterDevice() && isTerminal(destination)) {
    throw new ToolError('UNSUPPORTED_FORMAT', `${name}: is a terminal; a ${format.label} image is binary: redirect it to a file or a pipe; nothing written`);
  }
  if (options.compress) {
    throw new ToolError(
      'UNSUPPORTED_FORMAT',
      `${name}: --compress cannot write a ${format.label} to a stream: its metadata goes first, and the compressed clusters' sizes and offsets it holds are unknown before compressing; write to a file; nothing written`,
    );
  }
}

/**
 * monolithicSparse and the flat subformats are files the sink seeks in (sparse: its tables; flat:
 * its extent files beside the descriptor): a new regular file, never a stream or a device.
 */
function refuseVmdkUnseekable(destination: string, vmdk: VmdkOutputOptions): void {
  const stat = destinationStat(destination);
  if (destination !== '-' && (stat === null || stat.isFile() || stat.isDirectory())) return;
  const name = destination === '-' ? 'stdout' : destination;
  const what = stat?.isBlockDevice() ? ' (a block device)' : destination === '-' ? '' : ' (not a regular file)';
  throw new ToolError('UNSUPPORTED_FORMAT', `${name}${what}: a ${vmdk.subformat} VMDK needs a new regular file; only streamOptimized (the default) is written to a stream; nothing written`);
}

/**
 * A monolithicSparse states its capacity and preallocates its grain tables in its first sectors,
 * before any grain: the source's length must be known, and every offset must fit its 32-bit
 * sectors (2 TiB). The others take any length (streamOptimized in a file, the flat ones: their
 * header or descriptor is written at the end; streamOptimized to a stream is refused by its sink).
 */
function refuseVmdkSize(options: SparseCopyOptions, output: Output, length: number | null): void {
  if (output.vmdk?.subformat !== 'monolithicSparse') return;
  if (length === null) {
    throw new ToolError(
      'UNSUPPORTED_FORMAT',
      `${options.destination}: a monolithicSparse VMDK preallocates its grain tables for the disk's size, and the source's length is unknown before it ends (a stream); use streamOptimized, or decompress to a file first; nothing written`,
    );
  }
  const size = length + paddingFor(length, options.padBytes);
  if (!sparseFits(capacitySectorsFor(size))) {
    throw new ToolError('DOES_NOT_FIT', `${options.destination}: a virtual disk of ${size} bytes is larger than a monolithicSparse VMDK's 32-bit sector offsets address (2 TiB of file); use streamOptimized or monolithicFlat; nothing written`);
  }
}

/** streamOptimized from a source of unknown length onto a stream: refused before the destination is opened (the sink would refuse it too). */
function refuseVmdkStreamOfUnknownLength(options: SparseCopyOptions, output: Output, length: number | null): void {
  if (output.vmdk?.subformat !== 'streamOptimized' || length !== null) return;
  if (options.destination !== '-' && !destinationIsStream(options.destination)) return;
  throw unknownLengthToStream(options.destination === '-' ? 'stdout' : options.destination);
}

function isTerminal(device: string): boolean {
  let fd: number | null = null;
  try {
    fd = fs.openSync(device, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
    return tty.isatty(fd);
  } catch {
    return false;
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/**
 * qcow2 to a stream: two passes, the first finding the clusters to write, so the source must give
 * the same extents twice: a file, a device, a qcow2 chain of files (with a window of it); not a
 * pipe, stdin, a decompressed stream or an Android sparse image (read once).
 */
function twoPassesOrRefused(options: SparseCopyOptions, output: CopyPlan['output'], source: OpenedSource): boolean {
  if (output.format.name !== 'qcow2' || !destinationIsStream(options.destination)) return false;
  const { layer } = source;
  const decompressed = layer.formats.find((f) => INPUT_FORMATS[f].kind === 'decompressor');
  const readOnce = decompressed ? `${decompressed} data, decompressed as it is read` : !source.transport ? 'built as it is read' : !source.transport.seekable ? 'a stream' : !layer.readAt ? `${layer.formats.join(' inside ')}, read once` : null;
  if (readOnce === null && !source.anyOrder) return true;
  throw notTwice(options.destination, `${layer.name} (${readOnce ?? 'out of order'})`);
}

function notTwice(destination: string, source: string): ToolError {
  const name = destination === '-' ? 'stdout' : destination;
  return new ToolError(
    'UNSUPPORTED_FORMAT',
    `${name}: a qcow2 is written to a stream in two passes over the source, and ${source} cannot be read twice; write to a file, or copy the source to a file first; nothing written`,
  );
}

function destinationIsStream(destination: string): boolean {
  if (destination === '-') return true;
  const stat = destinationStat(destination);
  return stat !== null && !stat.isFile() && !stat.isDirectory() && !stat.isBlockDevice();
}

/** A qcow2 of a known virtual size that its cluster size cannot map, refused before writing (the sink checks a stream's as it grows). */
function refuseQcow2TooLarge(options: SparseCopyOptions, qcow2: Qcow2OutputOptions | null, length: number | null): void {
  if (!qcow2 || length === null) return;
  const refusal = qcow2TooLarge(options.destination, length + paddingFor(length, options.padBytes), qcow2.clusterBits);
  if (refusal) throw refusal;
}

/**
 * Builds the plan: opens the source chain with `openSource` (after the checks that need nothing
 * open), finds the window, opens the destination and checks what needs it open. On any refusal
 * whatever was opened is closed again and nothing was written.
 */
export async function buildCopyPlan(options: SparseCopyOptions, openSource: (chunkBytes: number) => Promise<OpenedSource>): Promise<CopyPlan> {
  const blockSize = blockSizeOf(options);
  const chunkBytes = chunkBytesOf(options, blockSize);
  const output = outputOf(options);
  refuseIncompatibleOptions(options, output);
  const source = await openSource(chunkBytes);
  let backing: OpenedBacking | null = null;
  try {
    if (source.anyOrder && (output.format.needs.ordered || needsExtentsInOrder(options))) {
      throw new Error(`copyExtents: ${options.destination}: extents out of order need a file or a device, without digests, --max, --pad or compressed output`);
    }
    const twoPasses = twoPassesOrRefused(options, output, source);
    const { layer } = source;
    const located = options.fromPartition === undefined ? null : await locateSourcePartition(layer, options.fromPartition, source.transport?.kind === 'block' ? source.transport : null);
    const start = located?.range.offset ?? 0;
    const partitionEnd = located ? located.range.offset + located.range.length : null;
    const maxEnd = options.maxBytes === undefined ? null : start + options.maxBytes;
    const end = partitionEnd === null ? maxEnd : maxEnd === null ? partitionEnd : Math.min(partitionEnd, maxEnd);
    const disk = exactLength(layer.length);
    const available = disk === null ? null : Math.max(0, (partitionEnd ?? disk) - start);
    if (options.errorRemainder && options.maxBytes !== undefined && available !== null && available > options.maxBytes) {
      throw new ToolError('MORE_THAN_MAX', `${layer.name}: holds ${available} bytes, more than --max ${options.maxBytes}; nothing written`);
    }
    const watchRemainder = options.errorRemainder === true && options.maxBytes !== undefined && available === null;
    const length = available === null ? null : Math.min(available, options.maxBytes ?? Infinity);
    refuseQcow2TooLarge(options, output.qcow2, length);
    refuseVmdkSize(options, output, length);
    refuseVmdkStreamOfUnknownLength(options, output, length);
    if (options.backing !== undefined) backing = await openCheckedBacking(options, options.backing, length, chunkBytes);
    const plan = {
      source,
      read: { start, end: end === null ? null : end + (watchRemainder ? 1 : 0) },
      window: { start, end },
      positioned: located?.extents ?? null,
      mustHold: located && !layer.readAt ? Math.min(located.range.length, options.maxBytes ?? Infinity) : null,
      watchRemainder,
      length,
      output,
      blockSize,
      chunkBytes,
      digests: digestsToCompute(options),
      twoPasses,
      options,
    };
    const { dest, seekBytes } = await prepareDestination(plan, options, output.format);
    return Object.freeze({ ...plan, dest, seekBytes, backing, writerThread: options.writerThread ?? worthAWriterThread(length, dest, output.format, readElsewhere(source.layer)) });
  } catch (err) {
    await backing?.close();
    await source.close();
    throw err;
  }
}

/**
 * --backing BASE, open, of the size of the disk copied (a stream's is checked by the sink as it
 * ends), and not the destination: a layer replacing its own backing file would read through to
 * itself.
 */
async function openCheckedBacking(options: SparseCopyOptions, base: string, length: number | null, chunkBytes: number): Promise<OpenedBacking> {
  const backing = await openBacking(base, options.destination, chunkBytes);
  try {
    const size = length === null ? null : length + paddingFor(length, options.padBytes);
    if (size !== null && roundToSector(size) !== roundToSector(backing.virtualSize)) throw backingSizeMismatch(options.destination, backing, size);
    const destStat = options.destination === '-' ? null : destinationStat(options.destination);
    const clash = destStat && backing.files.find((file) => sameTargetOrOverlap(file.stat, destStat));
    if (clash) {
      const via = clash === backing.files[0] ? '' : ` (${clash.name} is its backing file)`;
      throw new ToolError('SAME_FILE', `${options.destination}: --backing ${base} reads it${via}: a qcow2 cannot replace its own backing file; nothing written`);
    }
    return backing;
  } catch (err) {
    await backing.close();
    throw err;
  }
}

/** qemu counts disks in 512-byte sectors (a qcow2's size is rounded up to one, as the sink writes it). */
const roundToSector = (bytes: number): number => Math.ceil(bytes / 512) * 512;

type PartialPlan = Pick<CopyPlan, 'source' | 'window' | 'length' | 'options'>;

/**
 * Opens the destination after the checks that need nothing open, and runs the ones that do. With
 * --to-partition the destination's own table decides where the copy lands and how much fits.
 */
async function prepareDestination(plan: PartialPlan, requested: SparseCopyOptions, format: OutputFormat): Promise<{ dest: OpenedDestination; seekBytes: number }> {
  const options = requested.toPartition !== undefined ? { ...requested, overlay: true } : requested;
  const destStat = destinationStat(options.destination);
  // --to-partition learns where it writes from the destination's table: checked once that is read.
  if (options.toPartition === undefined) refuseSameTarget(plan, destStat, options, options.seekBytes ?? 0, format);
  const dest = await openDestination({
    path: options.destination,
    overlay: options.overlay ?? false,
    force: options.force ?? false,
    compressed: format.needs.ordered ? format.label : undefined,
    signal: options.signal,
  });
  try {
    let seekBytes = options.seekBytes ?? 0;
    if (options.toPartition !== undefined) {
      seekBytes = intoPartition(dest, options.toPartition);
      refuseSameTarget(plan, dest.stat, options, seekBytes, format);
    }
    if (dest.kind === 'stream' && seekBytes > 0) throw new ToolError('SEEK', `${dest.name}: cannot seek to byte ${seekBytes}: destination is not seekable`);
    if (dest.capacity !== null) refuseIfTooLarge(plan, dest, seekBytes, dest.capacity);
    if (dest.kind === 'file' && !format.needs.ordered) refuseIfFileTooLarge(plan, dest, seekBytes);
    return { dest, seekBytes };
  } catch (err) {
    dest.discard();
    throw err;
  }
}

/** Padding that --pad adds to `length` bytes. */
export function paddingFor(length: number, pad: number | undefined): number {
  if (!pad || pad <= 1) return 0;
  return (pad - (length % pad)) % pad;
}

/**
 * Refuses a copy that would write bytes it reads, whatever names the two go by (symlinks, hard
 * links, stdin or stdout redirected from or to the file, loop devices on one file, a loop device
 * and its backing file). Copies within one file or device whose ranges do not overlap proceed:
 * only a destination written in place (a device, or a file with --overlay) can have such ranges;
 * a replaced file or a stream is all of the file.
 */
function refuseSameTarget(plan: PartialPlan, destStat: fs.Stats | null, options: SparseCopyOptions, seekBytes: number, format: OutputFormat): void {
  const input = plan.source.transport;
  if (!input || !destStat) return;
  refuseBackingFileTarget(plan.source.alsoReads, destStat, options.destination);
  const inPlace = options.destination !== '-' && (destStat.isBlockDevice() || (destStat.isFile() && !!options.overlay && !format.needs.ordered));
  const raw = plan.source.layer.formats.length === 0;
  let clash;
  if (inPlace) {
    // What is read of the transport: the window of a raw image; all of a compressed one.
    const readStart = input.startOffset + (raw ? plan.window.start : 0);
    const readEnd = raw && plan.window.end !== null ? input.startOffset + plan.window.end : input.size === null ? Infinity : input.startOffset + input.size;
    const length = plan.length === null ? Infinity : plan.length + paddingFor(plan.length, options.padBytes);
    clash = sameTargetOrOverlap({ stat: input.stat, start: readStart, end: readEnd }, { stat: destStat, start: seekBytes, end: seekBytes + length });
  } else {
    clash = sameTargetOrOverlap(input.stat, destStat); // all of it is replaced (or streamed over)
  }
  if (!clash) return;
  const what = destStat.isBlockDevice() && clash.name === null ? 'device' : 'file';
  const destName = options.destination === '-' ? 'stdout' : options.destination;
  const named = clash.aVia.length > 0 || clash.bVia.length > 0 ? ` (${clash.name ?? destName})` : '';
  const end = clash.end === Infinity ? 'its end' : `byte ${clash.end}`;
  const where = inPlace ? `: bytes ${clash.start} to ${end} of it would be written while read` : '';
  throw new ToolError('SAME_FILE', `${destName}: source and destination are the same ${what}${named}${where}; nothing written`);
}

/** A destination that is one of the files a source reads besides its own (a qcow2 backing file) would be read while written. */
function refuseBackingFileTarget(alsoReads: OpenedInput[], destStat: fs.Stats, destination: string): void {
  for (const file of alsoReads) {
    if (!sameTargetOrOverlap(file.stat, destStat)) continue;
    throw new ToolError('SAME_FILE', `${destination === '-' ? 'stdout' : destination}: the source reads it (${file.name} is its backing file); nothing written`);
  }
}

/** --to-partition: the copy starts at the partition and may not pass its end (the destination's capacity is narrowed to it). */
function intoPartition(dest: OpenedDestination, number: number): number {
  if (dest.kind === 'stream') throw new ToolError('USAGE', `${dest.name}: --to-partition needs a disk image or a block device`);
  if (dest.oldLength === 0) throw new ToolError('NO_PARTITION', `${dest.name}: empty or new destination: it has no partition ${number}`);
  const range = locateDestinationPartition(dest.name, dest.fd, dest.kind === 'block', dest.capacity ?? dest.oldLength, number);
  dest.capacity = range.offset + range.length;
  return range.offset;
}

function refuseIfTooLarge(plan: PartialPlan, dest: OpenedDestination, seekBytes: number, capacity: number): void {
  if (seekBytes > capacity) throw new ToolError('SEEK', `${dest.name}: --seek ${seekBytes} is past the end of the device (${capacity} bytes)`);
  const { layer } = plan.source;
  const declared = plan.length ?? minimumLength(layer.length);
  if (declared === null) return;
  let length = Math.min(declared, plan.options.maxBytes ?? Infinity);
  length += paddingFor(length, plan.options.padBytes);
  if (seekBytes + length > capacity) {
    const what = plan.length === null ? `declares at least ${declared} bytes` : `(${length} bytes at offset ${seekBytes})`;
    throw new ToolError('DOES_NOT_FIT', `${dest.name}: source ${layer.name} ${what} and does not fit in the device (${capacity} bytes); nothing written`);
  }
}

/**
 * A file longer than its filesystem allows (ext4: 16 TiB) fails with EFBIG after the data before
 * it is written; extending the file to its final length first (sparse, free) finds out at once.
 * A temporary file stays at that length (the copy ends by setting it anyway): truncating a file
 * to 0 makes ext4 write its dirty pages out when it is closed (auto_da_alloc), 0.2 s of a 0.4 s
 * copy of 700 MB.
 */
function refuseIfFileTooLarge(plan: PartialPlan, dest: OpenedDestination, seekBytes: number): void {
  const final = plan.options.finalSize ?? (plan.length === null ? null : seekBytes + plan.length + paddingFor(plan.length, plan.options.padBytes));
  if (final === null || final <= dest.oldLength) return;
  try {
    fs.ftruncateSync(dest.fd, final);
    if (!dest.temporary) fs.ftruncateSync(dest.fd, dest.oldLength);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EFBIG' && code !== 'EINVAL') return; // anything else shows up when writing
    throw new ToolError('DOES_NOT_FIT', `${dest.name}: a file of ${final} bytes is larger than its filesystem allows: ${describeSystemError(err)}; nothing written`);
  }
}

/**
 * A writer thread costs about 25 ms to start (on the other core) and saves the writes' share of
 * the main thread's time: worth it from tens of megabytes, and for streams of unknown length. With
 * --zero=compare it also reads the destination back under the zeros (positional-sink.ts), which
 * is then most of the work. Compressed output and streams have sinks of their own.
 */
const WRITER_THREAD_MIN_BYTES = 64 << 20;

function worthAWriterThread(length: number | null, dest: OpenedDestination, format: OutputFormat, sourceReadElsewhere: boolean): boolean {
  // Compressed streams write their own output; a qcow2 into a file (ordered, but seekable) hands its batches to the thread.
  if ((format.needs.ordered && !format.needs.seekable) || dest.kind === 'stream') return false;
  // Bytes that a decoder thread or a child process produces leave the main thread only scanning
  // them: it writes them as fast itself, while they are still in its cache, and without the
  // hand-offs (2 GiB image to a file: .gz 2.00-2.07 s against 2.03-2.25 s, 10 MB less memory; .zst
  // 0.99-1.00 s against 1.02-1.08 s; .xz 7.16-7.29 s against 7.26-7.33 s). A device's compares
  // still go to the thread, overlapped with the decoding.
  if (sourceReadElsewhere && dest.kind === 'file') return false;
  return length === null || length >= WRITER_THREAD_MIN_BYTES;
}

/**
 * The layer's bytes are read by another thread or process: the outermost format is a decompressor
 * (a decoder thread or a child), or a raw stream read by a thread of its own. A container read
 * from a file (qcow2, Android sparse) is read by the main thread.
 */
function readElsewhere(layer: SourceLayer): boolean {
  const outermost = layer.formats[0];
  if (outermost !== undefined) return INPUT_FORMATS[outermost].kind === 'decompressor';
  return layer.readAt === null;
}
