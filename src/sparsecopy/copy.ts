/**
 * The copy: a plan (plan.ts) built once, then a loop that only moves extents, from the source's
 * virtual disk through the window (a partition, --max) and the padding, past the digests and zero
 * detection, into the output format's sink; and the commit. A destination file appears under its
 * final name only when everything, digests included, succeeded.
 */
import fs from 'node:fs';
import { ToolError } from '../errors.js';
import { DigestSet } from '../codec/digest.js';
import { WholeBlocks } from '../extent/whole-blocks.js';
import { padExtents, windowExtents } from '../extent/window.js';
import { splitExtentZeroRuns } from '../extent/zero-runs.js';
import type { Extent } from '../extent/extent.js';
import { mapClusters } from '../codec/qcow2-stream-sink.js';
import { deviceSize } from '../io/target.js';
import type { OpenedDestination } from './destination.js';
import type { CopySummary, SparseCopyOptions } from './options.js';
import { type CopyPlan, buildCopyPlan, paddingFor } from './plan.js';
import { relocateGptAfterCopy } from './partitions.js';
import { checkFirstBlock, makeSink } from './sinks.js';
import { type ExtentInput, extentInputSource, openSource } from './source.js';

export type { CopyProgress, CopySummary, SparseCopyOptions } from './options.js';
export { needsExtentsInOrder, refuseOutputUpFront } from './plan.js';
export type { ExtentInput } from './source.js';

/** Copies `options.source` (any format sparsecopy reads) into `options.destination`. */
export async function sparseCopy(options: SparseCopyOptions): Promise<CopySummary> {
  const started = performance.now();
  const plan = await interruptible(options, 'left as it was', () =>
    buildCopyPlan(options, (chunkBytes) => openSource(options.source, { raw: options.raw, chunkBytes, useHoleMap: options.useHoleMap, signal: options.signal })),
  );
  return commitPlan(plan, started);
}

/**
 * Copies a source built in memory (fsmaker's composite disk) into any destination sparsecopy
 * writes: a sparse file, a compressed stream with digests, stdout, or a block device.
 */
export async function copyExtents(source: ExtentInput, options: Omit<SparseCopyOptions, 'source'>): Promise<CopySummary> {
  const started = performance.now();
  const full = { ...options, source: source.name };
  const plan = await interruptible(full, 'left as it was', () => buildCopyPlan(full, async () => extentInputSource(source)));
  return commitPlan(plan, started);
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

/** Runs the plan and commits its destination, or discards it. */
async function commitPlan(plan: CopyPlan, started: number): Promise<CopySummary> {
  const { dest, options } = plan;
  let committed = false;
  try {
    const summary = await interruptible(options, dest.abandoned, async () => {
      const result = await runCopyPlan(plan).catch((err: unknown) => {
        throw dest.replacing ? explainNoRoomBeside(err, plan, dest.stat?.size ?? 0) : err;
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
    await plan.backing?.close();
    await plan.source.close();
  }
}

/**
 * A replacement is written beside the old file and renamed over it, so the filesystem needs room
 * for both. When that is what failed, say so, and offer -o where it gives the same bytes: it
 * writes over the old file in place (no room needed but for growth), and its result equals a
 * replacement's when nothing of the old file is kept: no --seek (a replacement has zeros before
 * it, -o the old bytes), and a copy at least as long as the old file (or -f to its length); not
 * with --verify-* (a mismatch would then have changed the file) nor compressed output. It is not
 * atomic: a failed -o leaves the file half written, which is why it is not the default.
 */
function explainNoRoomBeside(err: unknown, plan: CopyPlan, oldLength: number): unknown {
  const code = (err instanceof ToolError && err.code === 'WRITE' && (err.cause as { code?: string } | undefined)?.code) || '';
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return err;
  const { options } = plan;
  let advice = '';
  const length = plan.length === null ? null : plan.length + paddingFor(plan.length, options.padBytes);
  if (!options.seekBytes && Object.keys(options.verify ?? {}).length === 0 && !plan.output.format.needs.ordered) {
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

/**
 * The extents a copy delivers: the source's window (a partition, --max) and the padding. One
 * function for both passes of a qcow2 written to a stream, so both see the same disk.
 */
function copiedExtents(plan: CopyPlan, on: { onBeyondEnd?: () => void; onPadded?: (bytes: number) => void }): AsyncGenerator<Extent> {
  const windowed = windowExtents(plan.positioned ?? plan.source.layer.extents(plan.read), { start: plan.window.start, end: plan.window.end, onBeyondEnd: on.onBeyondEnd ?? (() => undefined) });
  return padExtents(windowed, plan.options.padBytes ?? 0, on.onPadded ?? (() => undefined));
}

/** The loop: extents from the source's window, through digests and zero detection, into the sink. */
async function runCopyPlan(plan: CopyPlan): Promise<Omit<CopySummary, 'seconds'>> {
  const { source, dest, options, blockSize, seekBytes } = plan;
  const { layer } = source;
  if (options.checkFirstBlock) await checkFirstBlock(dest, seekBytes, blockSize);

  let sourceBytes = 0; // the furthest byte delivered: the end of the copy
  let dataBytes = 0;
  let beyondEnd = false;
  let padded = 0;
  // qcow2 to a stream: the first pass maps the clusters the second writes (plan.twoPasses).
  const clusterMap = plan.twoPasses ? await mapClusters(copiedExtents(plan, {}), plan.output.qcow2!.clusterBits, plan.backing?.disk ?? null, options.signal) : null;
  const digests = new DigestSet([...plan.digests]);
  const chosen = makeSink(plan, () => seekBytes + sourceBytes, clusterMap);
  const { sink } = chosen;

  const extents = copiedExtents(plan, { onBeyondEnd: () => (beyondEnd = true), onPadded: (n) => (padded = n) });
  const report = (): void =>
    options.onProgress?.({ doneBytes: layer.progressDone ? layer.progressDone() : sourceBytes, totalBytes: layer.progressDone ? layer.progressTotal : plan.length, outputBytes: sourceBytes });

  // A plain stream writes zeros as zeros: no point finding them. A qcow2 judges whole clusters
  // itself, and is faster given them whole (views of the source's buffers, not copies of pieces);
  // so does a VMDK, grain by grain (a flat one finds its holes in its own blocks), also in an OVA.
  // Every other sink wants the runs.
  const { needs } = plan.output.format;
  const splitForSink = needs.ordered ? !needs.seekable && !plan.output.vmdk && !plan.output.ova : dest.kind !== 'stream';
  // Blocks cut by the pieces they arrive in (decoded slots, -b above the read chunk, holes) are
  // joined and judged whole for v0.10's counters. Not for compressed output: it keeps no holes, and
  // counts its own.
  const wholeBlocks = splitForSink && !plan.output.format.needs.ordered ? new WholeBlocks(blockSize) : null;

  try {
    for await (const extent of extents) {
      if (options.signal?.aborted) throw options.signal.reason;
      await digests.update(extent); // copies the bytes before the sink may recycle the buffer
      if (extent.data) dataBytes += extent.length;
      if (extent.data && splitForSink) {
        const known = destinationKnownZero(dest, options, seekBytes + extent.offset);
        const split = { holeUnit: known ? dest.holeUnit : 0, destinationShift: seekBytes };
        for (const run of wholeBlocks ? wholeBlocks.data(extent, split) : splitExtentZeroRuns(extent, blockSize, split)) await sink.write(run);
      } else if (!extent.data && wholeBlocks) {
        for (const piece of wholeBlocks.sourceHole(extent)) await sink.write(piece);
      } else {
        await sink.write(extent);
      }
      // The furthest byte delivered: the end of the copy, whatever order the extents came in.
      sourceBytes = Math.max(sourceBytes, extent.offset + extent.length);
      report();
    }
    if (options.signal?.aborted) throw options.signal.reason;
    if (plan.watchRemainder && beyondEnd) throw new ToolError('MORE_THAN_MAX', `${layer.name}: more data after --max ${options.maxBytes} bytes`);
    if (plan.mustHold !== null && sourceBytes - padded < plan.mustHold) {
      const end = plan.window.start + plan.mustHold;
      throw new ToolError('SOURCE_READ', `${layer.name}: ended at byte ${plan.window.start + sourceBytes - padded}, inside partition ${options.fromPartition} (which ends at byte ${end})`);
    }
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
    const decompressed = layer.progressDone !== null;
    return {
      total: counters.real + counters.sparse,
      real: counters.real,
      sparse: counters.sparse,
      nonzerodest: counters.nonzerodest,
      bytesRead: decompressed ? layer.progressDone!() : dataBytes,
      bytesWritten: chosen.bytesWritten() ?? counters.written,
      zeroBlocksWritten: counters.zeroBlocksWritten,
      bytesSkipped: counters.sparse,
      bytesChecked: counters.checkedBytes,
      zerosWritten: counters.zerosWritten,
      zeroedOut: counters.zeroedOut,
      padded,
      decompressed,
      compressed: plan.output.format.levels !== null || plan.output.qcow2?.compress === true || plan.output.vmdk?.subformat === 'streamOptimized' || plan.output.ova !== null,
      inputFormats: [...layer.formats],
      outputFormat: plan.output.format.name,
      digests: digest,
    };
  } catch (err) {
    digests.dispose();
    await sink.abort();
    throw err;
  }
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

