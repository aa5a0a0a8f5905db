/**
 * The copy pipeline: source extents -> zero detection -> sink, with v0.10's option semantics.
 * Everything that can refuse the copy is checked before the first byte is written.
 */
import { ToolError, describeSystemError } from '../errors.js';
import { splitExtentZeroRuns } from '../extent/zero-runs.js';
import { readAt, ftruncate, fdatasync } from '../io/fd-io.js';
import { rereadPartitionTable, ERRNO } from '../io/ffi.js';
import { type OpenedInput, openInput, sameTarget } from '../io/target.js';
import { chunkSizeFor, sourceExtents } from '../io/sources.js';
import { isZeroRange } from '../extent/zero-runs.js';
import { type OpenedDestination, openDestination } from './destination.js';
import { PositionalSink } from './positional-sink.js';
import { StreamSink } from './stream-sink.js';
import type { Sink } from './sink.js';

export interface SparseCopyOptions {
  source: string;
  destination: string;
  /** Overlay an existing destination file instead of replacing it (-o). */
  overlay?: boolean;
  /** Trust the destination to be zero where zeros are skipped (-n). */
  noCheck?: boolean;
  /** Copy at most this many bytes of the source (-m). */
  maxBytes?: number;
  /** Fail with MORE_THAN_MAX when the source holds more than maxBytes (-e). */
  errorRemainder?: boolean;
  /** Zero-detection block size in bytes (-b). */
  blockSize?: number;
  /** Destination byte offset where the source lands (-s). */
  seekBytes?: number;
  /** Final length of a regular-file destination (-f). */
  finalSize?: number;
  /** Refuse unless the destination's first block (at the seek position) is zero (-c). */
  checkFirstBlock?: boolean;
  /** fdatasync every this many bytes written (-y). */
  syncEveryBytes?: number;
  /** Write to a block device even when it is mounted or in use. */
  force?: boolean;
  /** Read chunk size (tuning and tests). */
  chunkBytes?: number;
  /** Walk holes with SEEK_DATA (default); false reads and scans everything. */
  useHoleMap?: boolean;
  onProgress?: (progress: CopyProgress) => void;
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

export interface CopyProgress {
  /** Source bytes done (data and holes). */
  doneBytes: number;
  /** Source bytes to copy, when known. */
  totalBytes: number | null;
}

export interface CopySummary {
  /** Source bytes copied: real + sparse (v0.10's "total bytes"). */
  total: number;
  real: number;
  sparse: number;
  nonzerodest: number;
  /** Bytes actually read from the source (holes are never read). */
  bytesRead: number;
  /** Bytes written to the destination. */
  bytesWritten: number;
  /** Source bytes skipped as holes or zero blocks. */
  bytesSkipped: number;
  /** Destination bytes read back to check for zeros. */
  bytesChecked: number;
  seconds: number;
}

const BLKRRPART_RETRIES = 40;
const BLKRRPART_RETRY_MS = 250;

export async function sparseCopy(options: SparseCopyOptions): Promise<CopySummary> {
  const started = performance.now();
  const blockSize = options.blockSize ?? 512;
  const seekBytes = options.seekBytes ?? 0;
  if (!(blockSize > 0)) throw new ToolError('USAGE', `sparsecopy: bad block size ${blockSize}`);

  const input = openSource(options.source);
  try {
    const dest = prepareDestination(input, options);
    let committed = false;
    try {
      const summary = await runCopy(input, dest, options, blockSize, seekBytes);
      dest.commit();
      committed = true;
      return { ...summary, seconds: (performance.now() - started) / 1000 };
    } finally {
      if (!committed) dest.discard();
    }
  } finally {
    input.close();
  }
}

function openSource(path: string): OpenedInput {
  try {
    return openInput(path);
  } catch (err) {
    throw new ToolError('SOURCE_OPEN', `sparsecopy: ${path === '-' ? 'stdin' : path}: cannot open source: ${describeSystemError(err)}`, {
      cause: err,
    });
  }
}

/** Opens the destination after the checks that need nothing open, and runs the ones that do. */
function prepareDestination(input: OpenedInput, options: SparseCopyOptions): OpenedDestination {
  const seekBytes = options.seekBytes ?? 0;
  const copyBytes = input.size === null ? null : Math.min(input.size, options.maxBytes ?? Infinity);
  if (options.errorRemainder && options.maxBytes !== undefined && input.size !== null && input.size > options.maxBytes) {
    throw new ToolError(
      'MORE_THAN_MAX',
      `sparsecopy: ${input.name}: holds ${input.size} bytes, more than --max ${options.maxBytes}; nothing written`,
    );
  }
  const dest = openDestination({ path: options.destination, overlay: options.overlay ?? false, force: options.force ?? false });
  try {
    if (dest.stat && sameTarget(input.stat, dest.stat)) {
      throw new ToolError('SAME_FILE', `sparsecopy: ${dest.name}: source and destination are the same ${dest.kind === 'block' ? 'device' : 'file'}`);
    }
    if (dest.kind === 'stream' && seekBytes > 0) {
      throw new ToolError('SEEK', `sparsecopy: ${dest.name}: cannot seek to byte ${seekBytes}: destination is not seekable`);
    }
    if (dest.capacity !== null) {
      if (seekBytes > dest.capacity) {
        throw new ToolError('SEEK', `sparsecopy: ${dest.name}: --seek ${seekBytes} is past the end of the device (${dest.capacity} bytes)`);
      }
      if (copyBytes !== null && seekBytes + copyBytes > dest.capacity) {
        throw new ToolError(
          'DOES_NOT_FIT',
          `sparsecopy: ${dest.name}: source ${input.name} (${copyBytes} bytes at offset ${seekBytes}) does not fit in the device (${dest.capacity} bytes); nothing written`,
        );
      }
    }
    return dest;
  } catch (err) {
    dest.discard();
    throw err;
  }
}

async function checkFirstBlock(dest: OpenedDestination, seekBytes: number, blockSize: number): Promise<void> {
  if (dest.kind === 'stream' || seekBytes >= dest.oldLength) return;
  const buffer = Buffer.alloc(Math.min(blockSize, dest.oldLength - seekBytes));
  let got: number;
  try {
    got = await readAt(dest.fd, buffer, buffer.length, seekBytes);
  } catch (err) {
    throw new ToolError('DEST_CHECK_READ', `sparsecopy: ${dest.name}: check read failed at byte ${seekBytes}: ${describeSystemError(err)}`, { cause: err });
  }
  if (!isZeroRange(buffer, 0, got)) {
    throw new ToolError('FIRST_BLOCK_NOT_ZERO', `sparsecopy: ${dest.name}: first block at byte ${seekBytes} is not zero; nothing written`);
  }
}

async function runCopy(
  input: OpenedInput,
  dest: OpenedDestination,
  options: SparseCopyOptions,
  blockSize: number,
  seekBytes: number,
): Promise<Omit<CopySummary, 'seconds'>> {
  if (options.checkFirstBlock) await checkFirstBlock(dest, seekBytes, blockSize);

  let sourceBytes = 0;
  let bytesRead = 0;
  const sink = makeSink(dest, options, blockSize, seekBytes, () => seekBytes + sourceBytes);
  const totalBytes = input.size !== null ? Math.min(input.size, options.maxBytes ?? Infinity) : (options.maxBytes ?? null);
  const extents = sourceExtents(input, {
    chunkBytes: chunkSizeFor(blockSize, options.chunkBytes),
    limitBytes: options.maxBytes,
    useHoleMap: options.useHoleMap ?? true,
    onRead: (n) => (bytesRead += n),
  });

  try {
    for await (const extent of extents) {
      if (options.signal?.aborted) throw abortError(options.signal);
      if (extent.data && dest.kind === 'stream') {
        await sink.write(extent); // zeros are written to a stream anyway: no point scanning
      } else if (extent.data) {
        const known = destinationKnownZero(dest, options, seekBytes + extent.offset);
        const split = { holeUnit: known ? dest.holeUnit : 0, destinationShift: seekBytes };
        for (const run of splitExtentZeroRuns(extent, blockSize, split)) await sink.write(run);
      } else {
        await sink.write(extent);
      }
      sourceBytes = extent.offset + extent.length;
      options.onProgress?.({ doneBytes: sourceBytes, totalBytes });
    }
    if (options.signal?.aborted) throw abortError(options.signal);
    if (options.errorRemainder && options.maxBytes !== undefined && !input.seekable && sourceBytes >= options.maxBytes) {
      await refuseRemainder(input, options.maxBytes);
    }
    const counters = await sink.close();
    if (options.signal?.aborted) throw abortError(options.signal);
    return {
      total: counters.real + counters.sparse,
      real: counters.real,
      sparse: counters.sparse,
      nonzerodest: counters.nonzerodest,
      bytesRead,
      bytesWritten: counters.real,
      bytesSkipped: counters.sparse,
      bytesChecked: counters.checkedBytes,
    };
  } catch (err) {
    await sink.abort();
    throw err;
  }
}

/**
 * Whether the destination reads as zero from `destOffset` on: past the old end of a file, or on a
 * device the user declared blank (-n). Only there may short zero runs be written instead of
 * skipped, because doing so cannot change the bytes.
 */
function destinationKnownZero(dest: OpenedDestination, options: SparseCopyOptions, destOffset: number): boolean {
  return destOffset >= dest.oldLength || (dest.kind === 'block' && (options.noCheck ?? false));
}

/** -e on a stream: anything left after --max is an error (v0.10's exit 12). */
async function refuseRemainder(input: OpenedInput, maxBytes: number): Promise<void> {
  const probe = Buffer.alloc(1);
  const got = await readAt(input.fd, probe, 1, null).catch(() => 0);
  if (got > 0) {
    throw new ToolError('MORE_THAN_MAX', `sparsecopy: ${input.name}: more data after --max ${maxBytes} bytes`);
  }
}

function abortError(signal: AbortSignal): ToolError {
  const reason = signal.reason instanceof ToolError ? signal.reason : null;
  return reason ?? new ToolError('INTERRUPTED', 'sparsecopy: interrupted; destination left as it was');
}

function makeSink(
  dest: OpenedDestination,
  options: SparseCopyOptions,
  blockSize: number,
  seekBytes: number,
  endOffset: () => number,
): Sink {
  if (dest.kind === 'stream') return new StreamSink(dest.fd, dest.name);
  const finish =
    dest.kind === 'file'
      ? async () => {
          // lseek past the end does not extend a file: set the length explicitly, as v0.10 did.
          const length = options.finalSize ?? Math.max(endOffset(), dest.oldLength);
          try {
            await ftruncate(dest.fd, length);
          } catch (err) {
            throw new ToolError('TRUNCATE', `sparsecopy: ${dest.name}: cannot set length to ${length}: ${describeSystemError(err)}`, { cause: err });
          }
        }
      : async () => {
          try {
            await fdatasync(dest.fd);
          } catch (err) {
            throw new ToolError('WRITE', `sparsecopy: ${dest.name}: flush failed: ${describeSystemError(err)}`, { cause: err });
          }
          await rereadPartitions(dest, options.onWarning);
        };
  return new PositionalSink({
    fd: dest.fd,
    name: dest.name,
    baseOffset: seekBytes,
    checkLimit: dest.oldLength,
    capacity: dest.capacity,
    directFd: dest.directFd,
    directAlignment: Math.max(512, dest.sectorSize),
    noCheck: options.noCheck ?? false,
    blockSize,
    syncEveryBytes: options.syncEveryBytes ?? 0,
    finish,
  });
}

/**
 * BLKRRPART on the descriptor we still hold (v0.10 closed it first, so its re-read never
 * happened), retried while the kernel says EBUSY. A device that cannot re-read (a loop device
 * without partition scanning answers EINVAL, a partition answers EINVAL too) is reported only.
 */
async function rereadPartitions(dest: OpenedDestination, warn?: (message: string) => void): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const result = rereadPartitionTable(dest.fd);
    if (result.ok) return;
    if (result.errno === ERRNO.EBUSY && attempt < BLKRRPART_RETRIES) {
      await new Promise((r) => setTimeout(r, BLKRRPART_RETRY_MS));
      continue;
    }
    const why = result.errno === ERRNO.EBUSY ? 'device busy' : result.errno === ERRNO.EINVAL ? 'not supported by this device (EINVAL)' : `errno ${result.errno}`;
    warn?.(`sparsecopy: ${dest.name}: partition table not re-read: ${why}`);
    return;
  }
}
