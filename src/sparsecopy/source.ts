/**
 * The source side of a copy: the transport opened (a file, a device, a pipe or stdin), then its
 * chain of formats probed from the first bytes (format/identify.ts) and opened by their drivers
 * (format/input-formats.ts), down to the virtual disk. A format that is recognised and not read
 * is refused by name here, before anything is written; --raw skips the probing.
 */
import fs from 'node:fs';
import { ToolError, describeSystemError } from '../errors.js';
import { decodeThread } from '../codec/decoder-thread.js';
import type { ExtentSource } from '../extent/extent.js';
import { type ByteRange, type SourceLayer, peekHead } from '../format/chain.js';
import { FORMAT_DESCRIPTIONS, IDENTIFY_HEAD_BYTES, IDENTIFY_TAIL_BYTES, type ImageFormat, identifyImage } from '../format/identify.js';
import { type ContainerDriver, INPUT_FORMATS, type LayerContext, requireTool, unsupportedInput } from '../format/input-formats.js';
import { readAt } from '../io/fd-io.js';
import { dataSegments, seekableSource } from '../io/sources.js';
import type { ChainFile } from '../format/qcow2-layer.js';
import { type OpenedInput, openInput, openInputWaiting } from '../io/target.js';

export interface OpenedSource {
  /** The virtual disk: the chain's last layer. */
  layer: SourceLayer;
  /** The file, device or pipe it is read from; null for a source built in memory (fsmaker's disk). */
  transport: OpenedInput | null;
  /** Other files it reads (a qcow2 image's backing files): no destination may be one of them. */
  alsoReads: OpenedInput[];
  /** The extents cover the disk once, but not in offset order (see ExtentInput). */
  anyOrder: boolean;
  /** Stops whatever reads ahead (a decoder thread, a child process) and closes the transport. */
  close(): Promise<void>;
}

export interface SourceOptions {
  /** Copy the bytes as they are: no format is probed (--raw). */
  raw?: boolean;
  /** Read and decode in chunks of this size (a multiple of the zero-detection block). */
  chunkBytes: number;
  /** Walk holes with SEEK_DATA/SEEK_HOLE (default); false reads and scans everything. */
  useHoleMap?: boolean;
  signal?: AbortSignal;
}

async function openTransport(path: string, signal?: AbortSignal): Promise<OpenedInput> {
  try {
    return await openInputWaiting(path, signal);
  } catch (err) {
    if (signal?.aborted && err === signal.reason) throw err;
    throw new ToolError('SOURCE_OPEN', `${path === '-' ? 'stdin' : path}: cannot open source: ${describeSystemError(err)}`, { cause: err });
  }
}

/** A file's or device's bytes at `offset`, read fully (zeros past its end), into `into` when given. */
function preadFully(t: OpenedInput, offset: number, length: number, into?: Buffer): Buffer {
  const buffer = into ? into.subarray(0, length) : Buffer.alloc(length);
  let done = 0;
  try {
    while (done < length) {
      const n = fs.readSync(t.fd, buffer, done, length - done, t.startOffset + offset + done);
      if (n === 0) break;
      done += n;
    }
  } catch (err) {
    throw new ToolError('SOURCE_READ', `${t.name}: read failed at byte ${offset + done}: ${describeSystemError(err)}`, { cause: err });
  }
  if (into && done < length) buffer.fill(0, done);
  return buffer;
}

/** The first bytes (and for a file the last 512) the formats are recognised by. A stream's head is kept in `pending`. */
async function sniff(t: OpenedInput): Promise<{ head: Buffer; tail: Buffer | null }> {
  if (t.seekable) {
    const size = t.size ?? 0;
    const head = preadFully(t, 0, Math.min(size, IDENTIFY_HEAD_BYTES));
    const tail = size > 0 ? preadFully(t, size - Math.min(size, IDENTIFY_TAIL_BYTES), Math.min(size, IDENTIFY_TAIL_BYTES)) : null;
    return { head, tail };
  }
  if (!t.pending) {
    const first = Buffer.alloc(IDENTIFY_HEAD_BYTES);
    let n: number;
    try {
      n = await readAt(t.fd, first, first.length, null, t.signal);
    } catch (err) {
      if (t.signal?.aborted && err === t.signal.reason) throw err;
      throw new ToolError('SOURCE_READ', `${t.name}: read failed at byte 0: ${describeSystemError(err)}`, { cause: err });
    }
    t.pending = first.subarray(0, n);
  }
  return { head: t.pending, tail: null };
}

/**
 * The transport as a layer: a file or device read where asked (holes unread), or a stream read
 * once. `onStarted` learns how to wait for a stream's reading thread to let go of the descriptor.
 */
function transportLayer(t: OpenedInput, options: SourceOptions, onStarted: (stop: () => Promise<unknown>) => void): SourceLayer {
  if (t.seekable) {
    const size = t.size ?? 0;
    return {
      name: t.name,
      formats: [],
      length: { exact: size },
      readAt: (offset, length, into) => preadFully(t, offset, length, into),
      mayHoldData: (start) => dataSegments(t, start),
      extents: (range: ByteRange) =>
        seekableSource(t, {
          chunkBytes: options.chunkBytes,
          fromBytes: range.start,
          limitBytes: range.end ?? undefined,
          useHoleMap: options.useHoleMap ?? true,
        }),
      progressDone: null,
      progressTotal: size,
    };
  }
  let reader: ReturnType<typeof decodeThread> | null = null;
  return {
    name: t.name,
    formats: [],
    length: null,
    readAt: null,
    extents: () => {
      if (reader) throw new Error(`${t.name}: a stream is read once`);
      // Read on a thread of its own into full chunks: a read blocked on an idle pipe never holds
      // the main thread, and the sniffed head is completed to a whole chunk.
      const started = decodeThread('copy', { fd: t.fd, start: null, end: null, pending: t.pending }, { slotBytes: options.chunkBytes, signal: options.signal });
      reader = started;
      t.pending = null;
      // Before the descriptor is closed its reads must be over, lest its number be reused under
      // one; a pipe may keep a read waiting for ever (the process ends without it).
      if (!t.stat.isFIFO() && !t.stat.isSocket()) onStarted(() => started.jobEnded());
      return started.extents;
    },
    progressDone: null,
    progressTotal: null,
  };
}

/**
 * What a container needs to open the files its image names (qcow2 backing files): the source's
 * identity, to find loops, and an opener that closes what it opened with the source.
 */
function filesBeside(t: OpenedInput, onStarted: (stop: () => Promise<unknown>) => void, opened: OpenedInput[]): Pick<LayerContext, 'identity' | 'openFile'> {
  const openFile = (where: string): ChainFile => {
    let file: OpenedInput;
    try {
      // A FIFO's open would wait for a writer: only what can be read at any offset is opened.
      const stat = fs.statSync(where);
      if (!stat.isFile() && !stat.isBlockDevice()) throw new Error('not a regular file or a block device');
      file = openInput(where);
    } catch (err) {
      throw new ToolError('SOURCE_OPEN', `${t.name}: cannot open its backing file ${where}: ${describeSystemError(err)}; nothing written`, { cause: err });
    }
    onStarted(async () => file.close());
    opened.push(file);
    const size = file.size ?? 0;
    return {
      name: where,
      size,
      identity: `${file.stat.dev}:${file.stat.ino}`,
      readAt: (offset, length, into) => preadFully(file, offset, length, into),
      dataSegments: (start) => dataSegments(file, start),
    };
  };
  return { identity: `${t.stat.dev}:${t.stat.ino}`, openFile };
}

/** A layer whose extents were started to look inside them: read once, from the replay. */
function replaying(layer: SourceLayer, replay: AsyncGenerator<import('../extent/extent.js').Extent>, formats: ImageFormat[]): SourceLayer {
  let used = false;
  return {
    ...layer,
    formats,
    extents: () => {
      if (used) throw new Error(`${layer.name}: read once`);
      used = true;
      return replay;
    },
  };
}

function openContainer(driver: ContainerDriver, below: SourceLayer, head: Buffer, context: LayerContext): SourceLayer {
  const needs = typeof driver.needsRandomAccess === 'function' ? driver.needsRandomAccess(head) : driver.needsRandomAccess ? driver.format : null;
  if (needs !== null && !below.readAt) {
    const what = FORMAT_DESCRIPTIONS[driver.format];
    const where = below.formats.length > 0 ? `${what} inside ${below.formats.map((f) => FORMAT_DESCRIPTIONS[f]).join(' inside ')}` : what;
    const instead = below.formats.length > 0 ? 'decompress it to a file first' : 'copy it to a file first';
    throw new ToolError('UNSUPPORTED_FORMAT', `${context.name}: ${where}; ${needs} needs random access, it cannot be read from a stream (${instead}); nothing written`);
  }
  return driver.open(below, head, context);
}

/** Opens `path` and the chain of formats in it, down to the virtual disk. */
export async function openSource(path: string, options: SourceOptions): Promise<OpenedSource> {
  return openSourceOn(await openTransport(path, options.signal), options);
}

/** The chain of formats on a transport already open; closing the source closes it. */
export async function openSourceOn(transport: OpenedInput, options: SourceOptions): Promise<OpenedSource> {
  // Undone last first: readers are stopped before what waits for their threads to let go.
  const started: (() => Promise<unknown>)[] = [];
  const close = async (): Promise<void> => {
    for (const stop of started.reverse()) await stop().catch(() => undefined);
    started.length = 0;
    transport.close();
  };
  try {
    const alsoReads: OpenedInput[] = [];
    const layer = await openChain(transport, options, (stop) => started.push(stop), alsoReads);
    return { layer, transport, alsoReads, anyOrder: false, close };
  } catch (err) {
    await close();
    throw err;
  }
}

async function openChain(t: OpenedInput, options: SourceOptions, onStarted: (stop: () => Promise<unknown>) => void, alsoReads: OpenedInput[]): Promise<SourceLayer> {
  const base = transportLayer(t, options, onStarted);
  if (options.raw) return base;
  const context: LayerContext = { name: t.name, chunkBytes: options.chunkBytes, onStarted, ...(t.seekable ? filesBeside(t, onStarted, alsoReads) : {}) };
  const { head, tail } = await sniff(t);
  const format = identifyImage(head, tail);
  if (format === null) return base;
  const driver = INPUT_FORMATS[format];
  switch (driver.kind) {
    case 'raw':
      return { ...base, formats: [format] };
    case 'refused':
      throw unsupportedInput(t.name, driver, []);
    case 'container':
      return openContainer(driver, base, head, context);
    case 'decompressor': {
      requireTool(t.name, driver);
      const outer = driver.open(t, context);
      // Look inside: an Android sparse image in xz is read as a disk; a qcow2 in gzip is refused by name.
      const decoded = outer.extents({ start: 0, end: null });
      onStarted(() => decoded.return(undefined));
      const { head: innerHead, replay, close } = await peekHead(decoded, IDENTIFY_HEAD_BYTES);
      onStarted(close);
      const inner = identifyImage(innerHead, null);
      const layer = replaying(outer, replay, outer.formats);
      if (inner === null) return layer;
      const innerDriver = INPUT_FORMATS[inner];
      if (innerDriver.kind === 'raw') return { ...layer, formats: [...outer.formats, inner] };
      if (innerDriver.kind === 'refused') throw unsupportedInput(t.name, innerDriver, outer.formats);
      if (innerDriver.kind === 'decompressor') {
        throw new ToolError('UNSUPPORTED_FORMAT', `${t.name}: ${inner} data inside ${format} data; sparsecopy decompresses one layer: decompress the outer one first; nothing written`);
      }
      return openContainer(innerDriver, layer, innerHead, context);
    }
  }
}

/** A source built in memory: its extents and its exact length. */
export interface ExtentInput {
  name: string;
  length: number;
  extents: ExtentSource;
  /**
   * The extents cover [0, length) exactly once but not in offset order (fsmaker writes the rootfs
   * while GRUB is still being built). Only a file or a device can take them so, and nothing that
   * needs the bytes in order may be asked for (digests, --max, padding, compressed output).
   */
  anyOrder?: boolean;
}

export function extentInputSource(input: ExtentInput): OpenedSource {
  let used = false;
  const layer: SourceLayer = {
    name: input.name,
    formats: [],
    length: { exact: input.length },
    readAt: null,
    extents: () => {
      if (used) throw new Error(`${input.name}: read once`);
      used = true;
      return (async function* () {
        yield* input.extents;
      })();
    },
    progressDone: null,
    progressTotal: input.length,
  };
  return { layer, transport: null, alsoReads: [], anyOrder: input.anyOrder ?? false, close: async () => undefined };
}
