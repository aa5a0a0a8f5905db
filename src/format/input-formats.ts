/**
 * Input format drivers, one per format the identification table knows, each with what it reads
 * the layer below through and how it opens it: the decompressors (gzip, zstd in the decoder
 * thread; xz and bzip2 by the Debian tools), the Android sparse and qcow2 containers, ISO 9660
 * (whose bytes are the disk), and the formats not read yet, which refuse by name.
 */
import fs from 'node:fs';
import { childDecoder, findOnPath } from '../codec/child-decoder.js';
import { DecodeError, type DecodeFailure, decodeThread } from '../codec/decoder-thread.js';
import { ToolError } from '../errors.js';
import type { Extent } from '../extent/extent.js';
import type { OpenedInput } from '../io/target.js';
import { SparseImageError, parseSparseHeader, sparseImageExtents } from './android-sparse.js';
import { type KnownLength, type SourceLayer, exactLength } from './chain.js';
import { FORMAT_DESCRIPTIONS, type ImageFormat, identifyImage } from './identify.js';
import { openOva } from './ova-layer.js';
import { type ChainFile, type OpenChainFile, qcow2Layer } from './qcow2-layer.js';
import { sparseStreamRefusal, vmdkDiskLayer, vmdkStreamLayer } from './vmdk-layer.js';

export type DriverKind = 'decompressor' | 'container' | 'raw' | 'refused';

/** A decompressor reads the transport's descriptor itself (a thread, a child process). */
export interface DecompressorDriver {
  kind: 'decompressor';
  format: ImageFormat;
  /** The program it runs, checked before anything is written. */
  tool?: { command: string; args: string[]; debianPackage: string };
  open(transport: OpenedInput, context: LayerContext): SourceLayer;
}

/** A container reads the extents of the layer below, in order, or (needsRandomAccess) at any offset through its readAt. */
export interface ContainerDriver {
  kind: 'container';
  format: ImageFormat;
  /**
   * Whether it must read at any offset; decided per input when a function of the head: null when
   * this input can be streamed, else what needs random access, for the refusal.
   */
  needsRandomAccess: boolean | ((head: Buffer) => string | null);
  open(below: SourceLayer, head: Buffer, context: LayerContext): SourceLayer;
}

/** Its bytes are the disk: nothing to open. */
export interface RawDriver {
  kind: 'raw';
  format: ImageFormat;
}

/** Known, and not read (yet): refused by name. */
export interface RefusedDriver {
  kind: 'refused';
  format: ImageFormat;
  /** "qcow2", for "cannot read qcow2 yet". */
  label: string;
}

export type InputFormatDriver = DecompressorDriver | ContainerDriver | RawDriver | RefusedDriver;

export interface LayerContext {
  /** The source's name for messages. */
  name: string;
  /** Output chunk size: a multiple of the zero-detection block. */
  chunkBytes: number;
  /** Learns how to wait until a decoder that reads the transport's descriptor is done with it. */
  onStarted: (settled: () => Promise<unknown>) => void;
  /** What identifies the source's file (device and inode), when it is one: loops of backing files are found by it. */
  identity?: string;
  /** Opens a file the source names (a qcow2 backing file); absent when the source has no path. */
  openFile?: OpenChainFile;
}

/** What zlib's messages mean in a gzip file. */
function gzipProblem(message: string): string {
  if (/incorrect data check/.test(message)) return 'bad CRC-32 in a gzip member trailer';
  if (/incorrect length check/.test(message)) return 'bad length in a gzip member trailer';
  // The first member's magic was checked before: a later one's is wrong.
  if (/incorrect header check/.test(message)) return `trailing garbage or a corrupt gzip member (${message})`;
  return `corrupt gzip data (${message})`;
}

/** A decode failure as exit 18, naming the format, the source and the compressed offsets. */
function corruptInput(format: string, name: string, f: DecodeFailure): ToolError {
  if (!f.decoding && f.code) return new ToolError('SOURCE_READ', `${name}: read failed at compressed byte ${f.readBytes}: ${f.message}`);
  if (f.withinFed) {
    const what = f.truncated ? `truncated ${format} data` : `corrupt ${format} data`;
    return new ToolError('CORRUPT_INPUT', `${name}: ${what} (${f.message}) within its first ${f.fedBytes} compressed bytes`);
  }
  if (f.truncated) return new ToolError('CORRUPT_INPUT', `${name}: truncated ${format} data (unexpected end of input) at compressed byte ${f.readBytes}`);
  if (f.at !== undefined) return new ToolError('CORRUPT_INPUT', `${name}: ${f.message} at compressed byte ${f.at}`);
  const what = format === 'gzip' ? gzipProblem(f.message) : `corrupt ${format} data (${f.message})`;
  const where = f.fedBytes > f.consumedBytes ? `compressed bytes ${f.consumedBytes}..${f.fedBytes}` : `compressed byte ${f.consumedBytes}`;
  return new ToolError('CORRUPT_INPUT', `${name}: ${what} within ${where}`);
}

/** Extents of a decoder, its failures turned into ToolErrors. */
async function* decoded(format: string, name: string, extents: AsyncGenerator<Extent>): AsyncGenerator<Extent> {
  try {
    yield* extents;
  } catch (err) {
    if (err instanceof DecodeError) throw corruptInput(format, name, err.failure);
    throw err;
  }
}

/** What a decompressor layer over `transport` knows up front: little, but where its input is. */
function decompressorLayer(
  format: ImageFormat,
  transport: OpenedInput,
  context: LayerContext,
  open: () => { extents: AsyncGenerator<Extent>; compressedBytesRead: () => number; jobEnded: () => Promise<void> },
  length: KnownLength = null,
): SourceLayer {
  let reader: ReturnType<typeof open> | null = null;
  return {
    name: context.name,
    formats: [format],
    length,
    readAt: null,
    extents: () => {
      if (reader) throw new Error(`${context.name}: a ${format} stream is read once`);
      const started = open();
      reader = started;
      // A pipe's read may wait for ever: only a file's is waited for before its descriptor closes.
      if (!transport.stat.isFIFO() && !transport.stat.isSocket()) context.onStarted(() => started.jobEnded());
      return decoded(format, context.name, started.extents);
    },
    progressDone: () => reader?.compressedBytesRead() ?? 0,
    progressTotal: transport.size,
  };
}

/** Where the transport's compressed bytes lie, for the decoder. */
const decoderInput = (t: OpenedInput) => ({
  fd: t.fd,
  start: t.seekable ? t.startOffset : null,
  end: t.seekable ? t.startOffset + (t.size ?? 0) : null,
  pending: t.pending,
});

/**
 * A gzip file's ISIZE (its last 4 bytes) is a lower bound of the decompressed size: the last
 * member's length modulo 2^32, which is no more than the whole (0 when the file ends in padding).
 */
function gzipMinimumLength(t: OpenedInput): KnownLength {
  if (!t.seekable || t.size === null || t.size < 18) return null;
  const tail = Buffer.alloc(4);
  fs.readSync(t.fd, tail, 0, 4, t.startOffset + t.size - 4);
  return { atLeast: tail.readUInt32LE(0) };
}

export const XZ_TOOL = { command: 'xz', args: ['-dc', '-T0', '-q'], debianPackage: 'xz-utils' };
export const BZIP2_TOOL = { command: 'lbzip2', args: ['-dc'], debianPackage: 'lbzip2' };

const gzip: DecompressorDriver = {
  kind: 'decompressor',
  format: 'gzip',
  open: (t, c) => decompressorLayer('gzip', t, c, () => decodeThread('gzip', decoderInput(t), { slotBytes: c.chunkBytes }), gzipMinimumLength(t)),
};
const zstd: DecompressorDriver = {
  kind: 'decompressor',
  format: 'zstd',
  open: (t, c) => decompressorLayer('zstd', t, c, () => decodeThread('zstd', decoderInput(t), { slotBytes: c.chunkBytes })),
};
const xz: DecompressorDriver = {
  kind: 'decompressor',
  format: 'xz',
  tool: XZ_TOOL,
  open: (t, c) => decompressorLayer('xz', t, c, () => childDecoder(XZ_TOOL, decoderInput(t), { slotBytes: c.chunkBytes })),
};
const bzip2: DecompressorDriver = {
  kind: 'decompressor',
  format: 'bzip2',
  tool: BZIP2_TOOL,
  open: (t, c) => decompressorLayer('bzip2', t, c, () => childDecoder(BZIP2_TOOL, decoderInput(t), { slotBytes: c.chunkBytes })),
};

const androidSparse: ContainerDriver = {
  kind: 'container',
  format: 'android-sparse',
  needsRandomAccess: false,
  open(below, head, context) {
    let length: number;
    try {
      length = parseSparseHeader(head).length;
    } catch (err) {
      throw sparseError(context.name, below, err);
    }
    let used = false;
    let position = 0;
    return {
      name: context.name,
      formats: [...below.formats, 'android-sparse'],
      length: { exact: length },
      readAt: null,
      extents: () => {
        if (used) throw new Error(`${context.name}: an Android sparse image is read once`);
        used = true;
        return sparseErrorsNamed(context.name, below, sparseImageExtents(counted(below.extents({ start: 0, end: null }), (end) => (position = end))));
      },
      // Progress is the sparse image's bytes read (or the compressed ones below it).
      progressDone: below.progressDone ?? (() => position),
      progressTotal: below.progressTotal,
    };
  },
};

/** The extents as they are, telling how far they have come. */
async function* counted(extents: AsyncGenerator<Extent>, onEnd: (end: number) => void): AsyncGenerator<Extent> {
  for await (const e of extents) {
    onEnd(e.offset + e.length);
    yield e;
  }
}

function sparseError(name: string, below: SourceLayer, err: unknown): unknown {
  if (!(err instanceof SparseImageError)) return err;
  const inside = below.formats.length > 0 ? ` (of the ${below.formats.join(' + ')}-decompressed data)` : '';
  return new ToolError('CORRUPT_INPUT', `${name}: corrupt Android sparse image: ${err.message} at byte ${err.inputOffset}${inside}`);
}

async function* sparseErrorsNamed(name: string, below: SourceLayer, extents: AsyncGenerator<Extent>): AsyncGenerator<Extent> {
  try {
    yield* extents;
  } catch (err) {
    throw sparseError(name, below, err);
  }
}

/** qcow2: the layer below is read at any offset (openContainer refuses a stream before this). */
const qcow2: ContainerDriver = {
  kind: 'container',
  format: 'qcow2',
  needsRandomAccess: true,
  open(below, _head, context) {
    return qcow2Layer(below, topFile(below, context), context.openFile ?? null, context.chunkBytes);
  },
};

/**
 * VMDK: a descriptor and a sparse file without markers are read at any offset; a streamOptimized
 * extent from a file too (its grain directory), and forward by its markers from a stream.
 */
const vmdkSparse: ContainerDriver = {
  kind: 'container',
  format: 'vmdk-sparse',
  needsRandomAccess: sparseStreamRefusal,
  open(below, head, context) {
    if (!below.readAt) return vmdkStreamLayer(below, head, context.chunkBytes);
    return vmdkDiskLayer(below, topFile(below, context), null, false, context.chunkBytes);
  },
};
const vmdkDescriptor: ContainerDriver = {
  kind: 'container',
  format: 'vmdk-descriptor',
  needsRandomAccess: () => 'a VMDK descriptor (its extents are files beside it)',
  open: (below, _head, context) => vmdkDiskLayer(below, topFile(below, context), context.openFile ?? null, true, context.chunkBytes),
};

/** The file a container was found in, as the chain's first file. */
const topFile = (below: SourceLayer, context: LayerContext): ChainFile => ({
  name: context.name,
  size: exactLength(below.length) ?? 0,
  identity: context.identity ?? context.name,
  readAt: below.readAt!,
  ...(below.mayHoldData ? { dataSegments: below.mayHoldData } : {}),
});

const refused = (format: ImageFormat, label: string): RefusedDriver => ({ kind: 'refused', format, label });

/** Every format identify.ts knows, with its driver. */
export const INPUT_FORMATS: Record<ImageFormat, InputFormatDriver> = {
  gzip,
  xz,
  zstd,
  bzip2,
  'android-sparse': androidSparse,
  iso9660: { kind: 'raw', format: 'iso9660' },
  lz4: refused('lz4', 'lz4 data'),
  zip: refused('zip', 'zip archives'),
  qcow2,
  qcow: refused('qcow', 'qcow (version 1)'),
  'vmdk-sparse': vmdkSparse,
  'vmdk-cowd': refused('vmdk-cowd', 'ESX VMDK'),
  'vmdk-descriptor': vmdkDescriptor,
  vhd: refused('vhd', 'VHD'),
  vhdx: refused('vhdx', 'VHDX'),
  vdi: refused('vdi', 'VDI'),
  dmg: refused('dmg', 'DMG'),
  ova: {
    kind: 'container',
    format: 'ova',
    needsRandomAccess: false,
    // The disk member is probed as a source is: a format inside it opened by its driver, a raw member as it is.
    open: (below, head, context) =>
      openOva(below, head, context.name, (member, memberHead) => {
        const inner = identifyImage(memberHead, null);
        if (inner === null) return member;
        const driver = INPUT_FORMATS[inner];
        if (driver.kind === 'raw') return { ...member, formats: [...member.formats, inner] };
        if (driver.kind === 'refused') throw unsupportedInput(context.name, driver, member.formats);
        if (driver.kind === 'decompressor' || driver.format === 'ova') {
          throw new ToolError('UNSUPPORTED_FORMAT', `${context.name}: ${FORMAT_DESCRIPTIONS[inner]} as the disk of an OVA appliance; sparsecopy reads VMDK and raw disks there; nothing written`);
        }
        const needs = typeof driver.needsRandomAccess === 'function' ? driver.needsRandomAccess(memberHead) : driver.needsRandomAccess ? driver.format : null;
        if (needs !== null && !member.readAt) throw new ToolError('UNSUPPORTED_FORMAT', `${context.name}: ${FORMAT_DESCRIPTIONS[inner]} inside an OVA appliance; ${needs} needs random access, it cannot be read from a stream (copy the OVA to a file first); nothing written`);
        return driver.open(member, memberHead, context);
      }),
  },
};

/** The refusal of an input format sparsecopy does not read: exit 28, before anything is written. */
export function unsupportedInput(name: string, driver: RefusedDriver, outer: ImageFormat[]): ToolError {
  const inside = outer.length > 0 ? ` inside ${outer.map((f) => FORMAT_DESCRIPTIONS[f]).join(' inside ')}` : '';
  return new ToolError(
    'UNSUPPORTED_FORMAT',
    `${name}: ${FORMAT_DESCRIPTIONS[driver.format]}${inside}; sparsecopy cannot read ${driver.label} yet; nothing written (--raw copies its bytes as they are)`,
  );
}

/** The program a driver runs is there, or the refusal naming its Debian package (exit 29). */
export function requireTool(name: string, driver: DecompressorDriver): void {
  if (!driver.tool || findOnPath(driver.tool.command)) return;
  throw new ToolError('MISSING_TOOL', `${name}: ${FORMAT_DESCRIPTIONS[driver.format]} needs the program ${driver.tool.command}, which is not installed (Debian package ${driver.tool.debianPackage}); nothing written`);
}
