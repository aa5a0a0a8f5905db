/**
 * The copy pipeline: source extents (a file's data and holes, a stream, or a gzip stream being
 * inflated) -> digests -> zero detection -> a sink (sparse file, block device, byte stream, or a
 * gzip stream), with v0.10's option semantics. Everything that can refuse the copy is checked
 * before the first byte is written, and a destination file appears under its final name only when
 * everything, digests included, succeeded.
 */
import { ToolError } from '../errors.js';
import { type DigestAlgorithm, DigestSet } from '../codec/digest.js';
import { splitExtentZeroRuns } from '../extent/zero-runs.js';
import { WholeBlocks } from '../extent/whole-blocks.js';
import type { Extent } from '../extent/extent.js';
import type { OpenedInput } from '../io/target.js';
import { sameTargetOrOverlap } from '../io/same-target.js';
import { type OpenedDestination, destinationStat, openDestination } from './destination.js';
import { type CopyInput, type ExtentInput, describeExtentInput, describeInput, inputExtents, minimumLength, openSource } from './input.js';
import type { CopySummary, SparseCopyOptions } from './options.js';
import { checkFirstBlock, makeSink } from './sinks.js';
import { locateDestinationPartition, narrowSeekableInput, partitionOfStream, relocateGptAfterCopy } from './partitions.js';
import { deviceSize } from '../io/target.js';
import fs from 'node:fs';

export type { CopyProgress, CopySummary, SparseCopyOptions } from './options.js';

export async function sparseCopy(options: SparseCopyOptions): Promise<CopySummary> {
  const started = performance.now();
  const blockSize = options.blockSize ?? 512;
  if (!(blockSize > 0)) throw new ToolError('USAGE', `bad block size ${blockSize}`);
  refuseIncompatibleOptions(options);

  const input = await interruptible(options, 'left as it was', () => openSource(options.source, options.signal));
  try {
    let source = await interruptible(options, 'left as it was', () => describeInput(input, options));
    if (options.fromPartition !== undefined && !source.compressed && input.seekable) {
      narrowSeekableInput(input, options.fromPartition);
      source = await describeInput(input, { ...options, raw: true });
    }
    return await copyInto(source, options, blockSize, started);
  } finally {
    input.close();
  }
}

/**
 * Runs a step of the copy; once `options.signal` has aborted, whatever it throws (the abort's own
 * reason from a wait that gave up, or anything else) becomes one INTERRUPTED error naming the
 * destination and what became of it.
 */
async function interruptible<T>(options: SparseCopyOptions, outcome: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (options.signal?.aborted) throw interruptedError(options.signal, options.destination, outcome);
    throw err;
  }
}

/**
 * Copies a source built in memory (fsmaker's composite disk) into any destination sparsecopy
 * writes: a sparse file, a .gz with digests, stdout, or a block device. `options.source` is ignored.
 */
export async function copyExtents(source: ExtentInput, options: Omit<SparseCopyOptions, 'source'>): Promise<CopySummary> {
  const started = performance.now();
  const full = { ...options, source: source.name };
  refuseIncompatibleOptions(full);
  return copyInto(describeExtentInput(source), full, full.blockSize ?? 512, started);
}

async function copyInto(source: CopyInput, options: SparseCopyOptions, blockSize: number, started: number): Promise<CopySummary> {
  const { dest, effective } = await interruptible(options, 'left as it was', () => prepareDestination(source, options));
  if (source.anyOrder) refuseUnorderedInto(dest, effective);
  let committed = false;
  try {
    const summary = await interruptible(options, dest.abandoned, async () => {
      const result = await runCopy(source, dest, effective, blockSize).catch((err: unknown) => {
        throw dest.replacing ? explainNoRoomBeside(err, source, effective, dest.stat?.size ?? 0) : err;
      });
      // The point of no return: let a signal that has arrived be handled before deciding.
      await signalsDelivered();
      if (options.signal?.aborted) throw options.signal.reason;
      return result;
    });
    dest.commit(); // synchronous: no signal handler runs between the check and the commit
    committed = true;
    options.onCommit?.();
    return { ...summary, seconds: (performance.now() - started) / 1000 };
  } finally {
    if (!committed) dest.discard();
  }
}

/**
 * A replacement is written beside the old file and renamed over it, so the filesystem needs room
 * for both. When that is what failed, say so, and offer -o where it gives the same bytes: it
 * writes over the old file in place (no room needed but for growth), and its result equals a
 * replacement's when nothing of the old file is kept: no --seek (a replacement has zeros before
 * it, -o the old bytes), and a copy at least as long as the old file (or -f to its length); not
 * with --verify-* (a mismatch would then have changed the file). It is not atomic: a failed -o
 * leaves the file half written, which is why it is not the default.
 */
function explainNoRoomBeside(err: unknown, source: CopyInput, options: SparseCopyOptions, oldLength: number): unknown {
  const code = (err instanceof ToolError && err.code === 'WRITE' && (err.cause as { code?: string } | undefined)?.code) || '';
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return err;
  let advice = '';
  const length = source.compressed || source.knownLength === null ? null : source.knownLength + paddingFor(source.knownLength, options.padBytes);
  if (!options.seekBytes && Object.keys(options.verify ?? {}).length === 0 && options.gzipLevel === undefined) {
    const cut = options.finalSize === undefined && length !== null && length < oldLength ? ` -f ${length}B` : '';
    const caveat = length === null && options.finalSize === undefined ? ' (the same bytes if the new image is at least as long as the old one)' : ' with the same result';
    advice = `; -o${cut} writes over the old file in place${caveat}, but not atomically: a failure then leaves it half written`;
  }
  return new ToolError('WRITE', `${(err as ToolError).message}; the old file is kept: a replacement is written beside it and needs room for both${advice}`, { cause: err });
}

/**
 * Resolves after the event loop has polled for signals once more. libuv handles signals at the end
 * of a poll phase, after the callbacks of that poll (the last write's or truncate's, whose
 * continuation is running now), and a signal that came during those callbacks only at the next
 * poll. An immediate scheduled from the check phase runs after that next poll.
 */
const signalsDelivered = async (): Promise<void> => {
  await new Promise(setImmediate);
  await new Promise(setImmediate);
};

type OrderOptions = Pick<SparseCopyOptions, 'gzipLevel' | 'digests' | 'verify' | 'maxBytes' | 'padBytes'>;

/** Whether these options read the bytes in order, whatever the destination: gzip output, digests, --max, --pad. */
export function needsExtentsInOrder(options: OrderOptions): boolean {
  return options.gzipLevel !== undefined || digestsToCompute(options).length > 0 || options.maxBytes !== undefined || !!options.padBytes;
}

/** Extents in any order need a positional destination and nothing that reads them in order. */
function refuseUnorderedInto(dest: OpenedDestination, options: SparseCopyOptions): void {
  if (dest.kind === 'stream' || needsExtentsInOrder(options)) {
    dest.discard();
    throw new Error(`copyExtents: ${dest.name}: extents out of order need a file or a device, without digests, --max or --pad`);
  }
}

function refuseIncompatibleOptions(options: SparseCopyOptions): void {
  if (options.toPartition !== undefined && (options.seekBytes || options.gzipLevel !== undefined)) {
    throw new ToolError('USAGE', `--to-partition cannot be combined with ${options.seekBytes ? '--seek' : 'gzip output'}`);
  }
  if (options.gzipLevel === undefined) return;
  const clash = options.overlay ? '--overlay' : options.seekBytes ? '--seek' : options.finalSize !== undefined ? '--finalsize' : null;
  if (clash) throw new ToolError('USAGE', `${clash} cannot be used with gzip output (${options.destination})`);
  if (!(options.gzipLevel >= 1 && options.gzipLevel <= 9)) throw new ToolError('USAGE', `bad gzip level ${options.gzipLevel}: expected 1 to 9`);
}

/**
 * Opens the destination after the checks that need nothing open, and runs the ones that do. With
 * --to-partition the destination's own table decides where the copy lands and how much fits.
 */
async function prepareDestination(source: CopyInput, requested: SparseCopyOptions): Promise<{ dest: OpenedDestination; effective: SparseCopyOptions }> {
  const { input } = source;
  const options = requested.toPartition !== undefined ? { ...requested, overlay: true } : requested;
  if (options.errorRemainder && options.maxBytes !== undefined && !source.compressed && source.knownLength !== null && (input?.size ?? source.knownLength) > options.maxBytes) {
    throw new ToolError('MORE_THAN_MAX', `${source.name}: holds ${input?.size ?? source.knownLength} bytes, more than --max ${options.maxBytes}; nothing written`);
  }
  const destStat = destinationStat(options.destination);
  // --to-partition learns where it writes from the destination's table: checked once that is read.
  if (options.toPartition === undefined) refuseSameTarget(source, destStat, options, options.seekBytes ?? 0);
  const dest = await openDestination({
    path: options.destination,
    overlay: options.overlay ?? false,
    force: options.force ?? false,
    compressed: options.gzipLevel !== undefined,
    signal: options.signal,
  });
  try {
    const effective = options.toPartition !== undefined ? intoPartition(dest, options, options.toPartition) : options;
    if (options.toPartition !== undefined) refuseSameTarget(source, dest.stat, effective, effective.seekBytes ?? 0);
    const seekBytes = effective.seekBytes ?? 0;
    if (dest.kind === 'stream' && seekBytes > 0) {
      throw new ToolError('SEEK', `${dest.name}: cannot seek to byte ${seekBytes}: destination is not seekable`);
    }
    if (dest.capacity !== null) refuseIfTooLarge(source, dest, effective, seekBytes, dest.capacity);
    return { dest, effective };
  } catch (err) {
    dest.discard();
    throw err;
  }
}

/**
 * Refuses a copy that would write bytes it reads, whatever names the two go by (symlinks, hard
 * links, stdin or stdout redirected from or to the file, loop devices on one file, a loop device
 * and its backing file). Copies within one file or device whose ranges do not overlap proceed:
 * only a destination written in place (a device, or a file with --overlay) can have such ranges;
 * a replaced file or a stream is all of the file.
 */
function refuseSameTarget(source: CopyInput, destStat: fs.Stats | null, options: SparseCopyOptions, seekBytes: number): void {
  const input = source.input;
  if (!input || !destStat) return;
  const inPlace = options.destination !== '-' && (destStat.isBlockDevice() || (destStat.isFile() && !!options.overlay && options.gzipLevel === undefined));
  let clash;
  if (inPlace) {
    const readBytes = source.compressed || input.size === null ? input.size : Math.min(input.size, options.maxBytes ?? Infinity);
    const length = source.compressed || source.knownLength === null ? Infinity : source.knownLength + paddingFor(source.knownLength, options.padBytes);
    const read = { stat: input.stat, start: input.startOffset, end: readBytes === null ? Infinity : input.startOffset + readBytes };
    clash = sameTargetOrOverlap(read, { stat: destStat, start: seekBytes, end: seekBytes + length });
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

/** --to-partition: the copy starts at the partition and may not pass its end. */
function intoPartition(dest: OpenedDestination, options: SparseCopyOptions, number: number): SparseCopyOptions {
  if (dest.kind === 'stream') throw new ToolError('USAGE', `${dest.name}: --to-partition needs a disk image or a block device`);
  if (dest.oldLength === 0) throw new ToolError('NO_PARTITION', `${dest.name}: empty or new destination: it has no partition ${number}`);
  const range = locateDestinationPartition(dest.name, dest.fd, dest.kind === 'block', dest.capacity ?? dest.oldLength, number);
  dest.capacity = range.offset + range.length;
  return { ...options, seekBytes: range.offset };
}

function refuseIfTooLarge(source: CopyInput, dest: OpenedDestination, options: SparseCopyOptions, seekBytes: number, capacity: number): void {
  if (seekBytes > capacity) {
    throw new ToolError('SEEK', `${dest.name}: --seek ${seekBytes} is past the end of the device (${capacity} bytes)`);
  }
  const declared = minimumLength(source);
  if (declared === null) return;
  let length = Math.min(declared, options.maxBytes ?? Infinity);
  if (options.padBytes) length = Math.ceil(length / options.padBytes) * options.padBytes;
  if (seekBytes + length > capacity) {
    const what = source.compressed ? `declares ${declared} uncompressed bytes` : `(${length} bytes at offset ${seekBytes})`;
    throw new ToolError('DOES_NOT_FIT', `${dest.name}: source ${source.name} ${what} and does not fit in the device (${capacity} bytes); nothing written`);
  }
}

async function runCopy(source: CopyInput, dest: OpenedDestination, options: SparseCopyOptions, blockSize: number): Promise<Omit<CopySummary, 'seconds'>> {
  const seekBytes = options.seekBytes ?? 0;
  if (options.checkFirstBlock) await checkFirstBlock(dest, seekBytes, blockSize);

  let sourceBytes = 0;
  let bytesRead = 0;
  const digests = new DigestSet(digestsToCompute(options));
  const writerThread = options.writerThread ?? worthAWriterThread(source);
  const { sink, bytesWritten: compressedBytesWritten } = makeSink(dest, { ...options, writerThread }, blockSize, () => seekBytes + sourceBytes);
  // With -e, a source whose length is not known up front is asked for one byte more than --max:
  // seeing it is how the copy learns that more follows (v0.10's exit 12).
  const probeRemainder = options.errorRemainder === true && options.maxBytes !== undefined && source.knownLength === null;
  const rawExtents = inputExtents(source, {
    blockSize,
    chunkBytes: options.chunkBytes,
    maxBytes: probeRemainder ? options.maxBytes! + 1 : options.maxBytes,
    useHoleMap: options.useHoleMap,
    onRead: (n) => (bytesRead += n),
  });
  // A partition of a stream or a gzip image: found in the head, then windowed as it streams past.
  const extents =
    options.fromPartition !== undefined && (source.compressed || !source.input?.seekable)
      ? partitionOfStream(source.name, rawExtents, options.fromPartition)
      : rawExtents;
  const report = (): void =>
    options.onProgress?.({ doneBytes: source.compressed ? bytesRead : sourceBytes, totalBytes: source.progressTotal, outputBytes: sourceBytes });
  // A plain stream writes zeros as zeros: no point finding them. Every other sink wants the runs.
  const splitForSink = dest.kind !== 'stream' || options.gzipLevel !== undefined;

  // Blocks cut by the pieces they arrive in (gzip pieces, -b above the read chunk) are joined, and
  // judged whole for v0.10's counters. Not for gzip output: it keeps no holes, and counts its own.
  const wholeBlocks = splitForSink && options.gzipLevel === undefined ? new WholeBlocks(blockSize) : null;
  const put = async (run: Extent, sourceHole = false): Promise<void> => {
    if (!wholeBlocks) return sink.write(run);
    for (const piece of sourceHole ? wholeBlocks.sourceHole(run) : wholeBlocks.push(run)) await sink.write(piece);
  };
  const deliver = async (extent: Extent): Promise<void> => {
    await digests.update(extent); // copies the bytes before the sink may recycle the buffer
    if (extent.data && splitForSink) {
      const known = destinationKnownZero(dest, options, seekBytes + extent.offset);
      const split = { holeUnit: known ? dest.holeUnit : 0, destinationShift: seekBytes };
      for (const run of wholeBlocks ? wholeBlocks.data(extent, split) : splitExtentZeroRuns(extent, blockSize, split)) await sink.write(run);
    } else {
      await put(extent, !extent.data);
    }
    // The furthest byte delivered: the end of the copy, whatever order the extents came in.
    sourceBytes = Math.max(sourceBytes, extent.offset + extent.length);
  };

  let remainderSeen = false;
  try {
    for await (let extent of extents) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (options.maxBytes !== undefined && extent.offset + extent.length > options.maxBytes) {
        remainderSeen = true;
        if (extent.offset >= options.maxBytes) break;
        extent = clip(extent, options.maxBytes - extent.offset);
      }
      await deliver(extent);
      report();
    }
    if (options.signal?.aborted) throw options.signal.reason;
    if (probeRemainder && remainderSeen) {
      throw new ToolError('MORE_THAN_MAX', `${source.name}: more data after --max ${options.maxBytes} bytes`);
    }
    const padded = paddingFor(sourceBytes, options.padBytes);
    if (padded > 0) await deliver({ offset: sourceBytes, length: padded });
    for (const piece of wholeBlocks?.flush() ?? []) await sink.write(piece);
    const counters = await sink.close();
    if (options.signal?.aborted) throw options.signal.reason;
    if (options.relocateGpt && (dest.kind === 'block' || dest.kind === 'file')) {
      // The whole disk's size: dest.capacity may have been narrowed to a partition.
      const sizeBytes = dest.kind === 'block' ? deviceSize(dest.fd) : fs.fstatSync(dest.fd).size;
      const message = relocateGptAfterCopy(dest.name, dest.fd, dest.kind === 'block', sizeBytes);
      if (message) options.onWarning?.(message);
    }
    const digest = await digests.digest();
    verifyDigests(digest, options.verify ?? {}, dest);
    return {
      total: counters.real + counters.sparse,
      real: counters.real,
      sparse: counters.sparse,
      nonzerodest: counters.nonzerodest,
      bytesRead,
      bytesWritten: compressedBytesWritten() ?? counters.written,
      zeroBlocksWritten: counters.zeroBlocksWritten,
      bytesSkipped: counters.sparse,
      bytesChecked: counters.checkedBytes,
      zerosWritten: counters.zerosWritten,
      zeroedOut: counters.zeroedOut,
      padded,
      decompressed: source.compressed,
      compressed: options.gzipLevel !== undefined,
      digests: digest,
    };
  } catch (err) {
    digests.dispose();
    await sink.abort();
    throw err;
  }
}

/**
 * A writer thread costs about 25 ms to start (on the other core) and saves the writes' share of
 * the main thread's time: worth it from tens of megabytes, and for streams of unknown length. With
 * --zero=compare it also reads the destination back under the zeros (positional-sink.ts), which
 * is then most of the work.
 */
const WRITER_THREAD_MIN_BYTES = 64 << 20;

function worthAWriterThread(source: CopyInput): boolean {
  return source.knownLength === null || source.knownLength >= WRITER_THREAD_MIN_BYTES;
}

function digestsToCompute(options: Pick<SparseCopyOptions, 'digests' | 'verify'>): DigestAlgorithm[] {
  const wanted = new Set<DigestAlgorithm>(options.digests ?? []);
  for (const algorithm of Object.keys(options.verify ?? {})) wanted.add(algorithm as DigestAlgorithm);
  return [...wanted];
}

function clip(extent: Extent, length: number): Extent {
  return extent.data ? { ...extent, length, data: extent.data.subarray(0, length) } : { ...extent, length };
}

function paddingFor(length: number, pad: number | undefined): number {
  if (!pad || pad <= 1) return 0;
  return (pad - (length % pad)) % pad;
}

function verifyDigests(actual: Partial<Record<string, string>>, expected: Partial<Record<string, string>>, dest: OpenedDestination): void {
  for (const [algorithm, want] of Object.entries(expected)) {
    const got = actual[algorithm];
    if (want === undefined || got === want.toLowerCase()) continue;
    const outcome =
      dest.kind === 'block' ? 'the data was written to the device and does not match' : dest.kind === 'stream' ? 'the output was already sent' : 'nothing written';
    throw new ToolError('DIGEST_MISMATCH', `${dest.name}: ${algorithm} mismatch: expected ${want.toLowerCase()}, computed ${got}; ${outcome}`);
  }
}

/**
 * Whether the destination reads as zero from `destOffset` on: past the old end of a file, or on a
 * device whose zeros are skipped or written anyway. Only there may short zero runs be written
 * with their data instead of skipped, because doing so cannot change the bytes.
 */
function destinationKnownZero(dest: OpenedDestination, options: SparseCopyOptions, destOffset: number): boolean {
  const policy = options.zeroPolicy ?? 'compare';
  return destOffset >= dest.oldLength || (dest.kind === 'block' && (policy === 'skip' || policy === 'write'));
}

/** "DEST: interrupted by SIGTERM; left as it was": the abort's reason, with the destination's fate. */
function interruptedError(signal: AbortSignal, destination: string, outcome: string): ToolError {
  const reason = signal.reason instanceof ToolError ? signal.reason : null;
  const name = destination === '-' ? 'stdout' : destination;
  return new ToolError('INTERRUPTED', `${name}: ${reason?.message ?? 'interrupted'}; ${outcome}`, { exitCode: reason?.exitCode });
}

export type { OpenedInput };
