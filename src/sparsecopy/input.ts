/**
 * The source side of a copy: open, sniff gzip, and choose the extent source.
 */
import { ToolError, describeSystemError } from '../errors.js';
import type { ExtentSource } from '../extent/extent.js';
import { chunkSizeFor, sourceExtents } from '../io/sources.js';
import { type OpenedInput, openInputWaiting } from '../io/target.js';
import { declaredUncompressedSize, gunzipSource, looksGzipped } from '../codec/gunzip-source.js';

export interface CopyInput {
  /** What messages call the source. */
  name: string;
  /** The opened file or device; null for a source built in memory (fsmaker's composite disk). */
  input: OpenedInput | null;
  compressed: boolean;
  /** Uncompressed bytes to copy when known before reading (after --max). */
  knownLength: number | null;
  /** Progress denominator: compressed size for gzip, else knownLength. */
  progressTotal: number | null;
  /** For a source built in memory: its extents. */
  extents?: ExtentSource;
  /** Its extents come in any order (ExtentInput.anyOrder). */
  anyOrder?: boolean;
}

export async function openSource(path: string, signal?: AbortSignal): Promise<OpenedInput> {
  try {
    return await openInputWaiting(path, signal);
  } catch (err) {
    if (signal?.aborted && err === signal.reason) throw err;
    throw new ToolError('SOURCE_OPEN', `${path === '-' ? 'stdin' : path}: cannot open source: ${describeSystemError(err)}`, {
      cause: err,
    });
  }
}

export async function describeInput(input: OpenedInput, options: { raw?: boolean; maxBytes?: number }): Promise<CopyInput> {
  const compressed = !options.raw && (await looksGzipped(input));
  const max = options.maxBytes ?? Infinity;
  if (!compressed) {
    const knownLength = input.size === null ? (options.maxBytes ?? null) : Math.min(input.size, max);
    return { name: input.name, input, compressed, knownLength: input.size === null ? null : knownLength, progressTotal: knownLength };
  }
  return { name: input.name, input, compressed, knownLength: null, progressTotal: input.size };
}

/** A source built in memory: its extents and its exact length. */
export interface ExtentInput {
  name: string;
  length: number;
  extents: ExtentSource;
  /**
   * The extents cover [0, length) exactly once but not in offset order (fsmaker writes the rootfs
   * while GRUB is still being built). Only a file or a device can take them so, and nothing that
   * needs the bytes in order may be asked for (digests, --max, padding).
   */
  anyOrder?: boolean;
}

export function describeExtentInput(source: ExtentInput): CopyInput {
  return {
    name: source.name,
    input: null,
    compressed: false,
    knownLength: source.length,
    progressTotal: source.length,
    extents: source.extents,
    anyOrder: source.anyOrder ?? false,
  };
}

/**
 * A lower bound of the uncompressed size for checks made before writing: exact for a plain file or
 * device; for a gzip file, its declared size (ISIZE) when it alone exceeds the bound in question
 * (the true size is then at least as large).
 */
export function minimumLength(source: CopyInput): number | null {
  if (!source.compressed || !source.input) return source.knownLength;
  return declaredUncompressedSize(source.input);
}

export function inputExtents(
  source: CopyInput,
  options: { blockSize: number; chunkBytes?: number; maxBytes?: number; useHoleMap?: boolean; onRead: (n: number) => void },
): ExtentSource {
  if (source.extents) return source.extents;
  if (!source.input) throw new Error('a copy input needs a file or extents');
  if (source.compressed) return gunzipSource(source.input, { limitBytes: options.maxBytes, onCompressedRead: options.onRead });
  return sourceExtents(source.input, {
    chunkBytes: chunkSizeFor(options.blockSize, options.chunkBytes),
    limitBytes: options.maxBytes,
    useHoleMap: options.useHoleMap ?? true,
    onRead: options.onRead,
  });
}
