/**
 * An archive's bytes, decompressed, read forward once per pass: plain, gzip (node:zlib), zstd
 * (the decoder thread sparsecopy reads zstd with) and xz/bzip2 (the child decoders sparsecopy
 * uses: xz -T0, lbzip2). Whatever the decoder, the consumer gets Buffers it owns: node:zlib and
 * plain reads give a fresh one per piece and those are passed through as they are; the decoder
 * thread and the child decoder lend slots of a ring, which are copied out once (the ring would be
 * overwritten under a consumer that keeps a chunk, such as a filesystem writer that queues it).
 */
import { once } from 'node:events';
import fs from 'node:fs';
import zlib from 'node:zlib';
import { childDecoder, findOnPath } from '../codec/child-decoder.js';
import { DecodeError, decodeThread } from '../codec/decoder-thread.js';
import { ToolError } from '../errors.js';
import type { Extent } from '../extent/extent.js';
import { BZIP2_TOOL, XZ_TOOL } from '../format/input-formats.js';

export type ArchiveCompression = 'none' | 'gzip' | 'xz' | 'zstd' | 'bzip2';

/** Bytes per read of a plain archive and per piece of zlib's output. */
const PIECE_BYTES = 1 << 20;
const ZEROS = Buffer.alloc(PIECE_BYTES);

const TOOLS = { xz: XZ_TOOL, bzip2: BZIP2_TOOL } as const;

/** Refuses, before anything is read, a compression whose decoder is not installed. */
export function checkDecoderInstalled(name: string, compression: ArchiveCompression): void {
  if (compression !== 'xz' && compression !== 'bzip2') return;
  const tool = TOOLS[compression];
  if (!findOnPath(tool.command)) throw new ToolError('ROOTFS_OPEN', `${name}: ${compression} archive needs '${tool.command}' (Debian package ${tool.debianPackage})`);
}

/** Passes started over any archive (the tests count them: readFiles must cost one). */
export const passesStarted = { count: 0 };

/**
 * The decompressed bytes of the file `fd` (of `size` bytes), from its start. A corrupt or
 * truncated compressed stream ends in a ToolError (ROOTFS_UNKNOWN) naming `name`.
 */
export async function* decodedPieces(name: string, fd: number, size: number, compression: ArchiveCompression): AsyncGenerator<Buffer> {
  passesStarted.count++;
  try {
    if (compression === 'none') yield* plainPieces(fd, size);
    else if (compression === 'gzip') yield* gzipPieces(fd, size);
    else yield* ownedPieces(lentExtents(fd, size, compression));
  } catch (err) {
    if (err instanceof ToolError) throw err;
    const why = err instanceof DecodeError ? err.failure.message : err instanceof Error ? err.message : String(err);
    throw new ToolError('ROOTFS_UNKNOWN', `${name}: corrupt ${compression} data: ${why}`, { cause: err });
  }
}

async function* plainPieces(fd: number, size: number): AsyncGenerator<Buffer> {
  let position = 0;
  while (position < size) {
    const buffer = Buffer.allocUnsafe(Math.min(PIECE_BYTES, size - position));
    const n = await new Promise<number>((resolve, reject) => fs.read(fd, buffer, 0, buffer.length, position, (err, got) => (err ? reject(err) : resolve(got))));
    if (n === 0) return; // the file shrank: the tar reader reports it cut short
    position += n;
    yield n === buffer.length ? buffer : buffer.subarray(0, n);
  }
}

async function* gzipPieces(fd: number, size: number): AsyncGenerator<Buffer> {
  const gunzip = zlib.createGunzip({ chunkSize: PIECE_BYTES });
  const stop = new AbortController();
  const feeding = (async () => {
    for await (const piece of plainPieces(fd, size)) {
      if (stop.signal.aborted) return;
      if (!gunzip.write(piece)) await once(gunzip, 'drain', { signal: stop.signal });
    }
    gunzip.end();
  })().catch((err: unknown) => {
    if (!stop.signal.aborted) gunzip.destroy(err as Error);
  });
  try {
    for await (const piece of gunzip) yield piece as Buffer;
  } finally {
    stop.abort();
    gunzip.destroy();
    await feeding; // no read of the descriptor outlives the pass
  }
}

function lentExtents(fd: number, size: number, compression: 'xz' | 'zstd' | 'bzip2'): AsyncGenerator<Extent> {
  const input = { fd, start: 0, end: size, pending: null };
  if (compression === 'zstd') return decodeThread('zstd', input).extents;
  return childDecoder(TOOLS[compression], input).extents;
}

async function* ownedPieces(extents: AsyncGenerator<Extent>): AsyncGenerator<Buffer> {
  for await (const e of extents) {
    try {
      if (e.data) yield Buffer.from(e.data);
      else for (let done = 0; done < e.length; done += PIECE_BYTES) yield ZEROS.subarray(0, Math.min(PIECE_BYTES, e.length - done));
    } finally {
      e.release?.();
    }
  }
}

/**
 * Forward reads over pieces: exact-length reads for headers (copied only when they straddle two
 * pieces) and views of the pieces themselves for file data.
 */
export class ForwardReader {
  /** Bytes consumed from the start of the stream. */
  position = 0;
  private piece: Buffer = Buffer.alloc(0);
  private at = 0;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  private async fill(): Promise<boolean> {
    while (this.at >= this.piece.length) {
      const next = await this.source.next();
      if (next.done) return false;
      this.piece = next.value;
      this.at = 0;
    }
    return true;
  }

  /** `n` bytes, or fewer where the stream ends. */
  async read(n: number): Promise<Buffer> {
    if (!(await this.fill())) return Buffer.alloc(0);
    if (this.piece.length - this.at >= n) {
      const out = this.piece.subarray(this.at, this.at + n);
      this.at += n;
      this.position += n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n && (await this.fill())) {
      const take = Math.min(n - got, this.piece.length - this.at);
      this.piece.copy(out, got, this.at, this.at + take);
      this.at += take;
      got += take;
      this.position += take;
    }
    return out.subarray(0, got);
  }

  /** Views of the next `n` bytes, in order (fewer in total where the stream ends). */
  async *views(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0 && (await this.fill())) {
      const take = Math.min(left, this.piece.length - this.at);
      const view = this.piece.subarray(this.at, this.at + take);
      this.at += take;
      this.position += take;
      left -= take;
      yield view;
    }
  }

  /** Skips `n` bytes; how many there were. */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0 && (await this.fill())) {
      const take = Math.min(left, this.piece.length - this.at);
      this.at += take;
      this.position += take;
      left -= take;
    }
    return n - left;
  }

  async close(): Promise<void> {
    await this.source.return?.();
  }
}
