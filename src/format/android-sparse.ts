/**
 * Android sparse images ("simg", what img2simg and fastboot use), read as the disk they describe,
 * from the bytes of the layer below in one forward pass: so they work from a pipe and inside xz
 * or gzip. Layout (libsparse's sparse_format.h; ../shared/notes/image-formats.md section 3), all
 * little-endian:
 *
 *   file header (file_hdr_sz bytes, 28 in version 1.0)
 *     0  magic u32 0xED26FF3A      8  file_hdr_sz u16        16 total_blks u32 (output blocks)
 *     4  major u16 (1)             10 chunk_hdr_sz u16 (12)  20 total_chunks u32
 *     6  minor u16 (any)           12 blk_sz u32             24 image_checksum u32 (0: none)
 *   chunks, each: chunk_hdr_sz bytes of header, then its data
 *     0  chunk_type u16: 0xCAC1 RAW (chunk_sz*blk_sz bytes of data), 0xCAC2 FILL (a 4-byte
 *        pattern), 0xCAC3 DONT_CARE (no data: a hole), 0xCAC4 CRC32 (4 bytes: CRC of the output so far)
 *     2  reserved u16   4  chunk_sz u32 (output blocks)   8  total_sz u32 (input bytes, header included)
 *
 * Checked as libsparse checks (a longer header is skipped, RAW/FILL/DONT_CARE/CRC sizes must match
 * their type, the chunks must add up to total_blks), and every CRC32 chunk and a non-zero
 * image_checksum are verified (DONT_CARE counts as zeros). Failures are SparseImageErrors with the
 * input offset.
 */
import { crc32, crc32AppendZeros } from '../codec/crc32.js';
import { ExtentByteReader } from '../extent/byte-reader.js';
import type { Extent } from '../extent/extent.js';

export const SIMG_MAGIC = 0xed26ff3a;
const FILE_HEADER = { magic: 0, major: 4, minor: 6, fileHeaderBytes: 8, chunkHeaderBytes: 10, blockBytes: 12, totalBlocks: 16, totalChunks: 20, imageChecksum: 24 } as const;
const FILE_HEADER_BYTES = 28;
const CHUNK_HEADER = { type: 0, reserved: 2, blocks: 4, totalBytes: 8 } as const;
const CHUNK_HEADER_BYTES = 12;
export const CHUNK_RAW = 0xcac1;
export const CHUNK_FILL = 0xcac2;
export const CHUNK_DONT_CARE = 0xcac3;
export const CHUNK_CRC32 = 0xcac4;
/** A FILL chunk of a non-zero pattern is expanded in pieces of this size. */
const FILL_PIECE_BYTES = 1 << 20;

export class SparseImageError extends Error {
  constructor(
    message: string,
    /** Offset in the sparse image (the input) where the problem is. */
    readonly inputOffset: number,
  ) {
    super(message);
    this.name = 'SparseImageError';
  }
}

export interface SparseImageHeader {
  blockBytes: number;
  totalBlocks: number;
  totalChunks: number;
  imageChecksum: number;
  /** The disk's size: totalBlocks * blockBytes. */
  length: number;
}

/** Parses and checks the file header (the first 28 bytes). */
export function parseSparseHeader(head: Buffer): SparseImageHeader & { fileHeaderBytes: number; chunkHeaderBytes: number } {
  if (head.length < FILE_HEADER_BYTES) throw new SparseImageError(`file header: expected ${FILE_HEADER_BYTES} bytes, found ${head.length}`, 0);
  const magic = head.readUInt32LE(FILE_HEADER.magic);
  if (magic !== SIMG_MAGIC) throw new SparseImageError(`magic: expected 0xed26ff3a, found 0x${magic.toString(16)}`, FILE_HEADER.magic);
  const major = head.readUInt16LE(FILE_HEADER.major);
  if (major !== 1) throw new SparseImageError(`major version: expected 1, found ${major}`, FILE_HEADER.major);
  const fileHeaderBytes = head.readUInt16LE(FILE_HEADER.fileHeaderBytes);
  if (fileHeaderBytes < FILE_HEADER_BYTES) throw new SparseImageError(`file header size: expected at least ${FILE_HEADER_BYTES}, found ${fileHeaderBytes}`, FILE_HEADER.fileHeaderBytes);
  const chunkHeaderBytes = head.readUInt16LE(FILE_HEADER.chunkHeaderBytes);
  if (chunkHeaderBytes < CHUNK_HEADER_BYTES) throw new SparseImageError(`chunk header size: expected at least ${CHUNK_HEADER_BYTES}, found ${chunkHeaderBytes}`, FILE_HEADER.chunkHeaderBytes);
  const blockBytes = head.readUInt32LE(FILE_HEADER.blockBytes);
  if (blockBytes === 0 || blockBytes % 4 !== 0) throw new SparseImageError(`block size: expected a non-zero multiple of 4, found ${blockBytes}`, FILE_HEADER.blockBytes);
  const totalBlocks = head.readUInt32LE(FILE_HEADER.totalBlocks);
  const length = totalBlocks * blockBytes;
  if (!Number.isSafeInteger(length)) throw new SparseImageError(`${totalBlocks} blocks of ${blockBytes} bytes: too large`, FILE_HEADER.totalBlocks);
  return {
    blockBytes,
    totalBlocks,
    totalChunks: head.readUInt32LE(FILE_HEADER.totalChunks),
    imageChecksum: head.readUInt32LE(FILE_HEADER.imageChecksum),
    length,
    fileHeaderBytes,
    chunkHeaderBytes,
  };
}

/**
 * The disk's extents (offsets from 0, in order, covering [0, length) exactly) from the sparse
 * image's bytes. RAW data comes out as views of the input buffers.
 */
export async function* sparseImageExtents(input: AsyncIterable<Extent>, onHeader?: (h: SparseImageHeader) => void): AsyncGenerator<Extent> {
  const reader = new ExtentByteReader(input);
  try {
    const head = await reader.read(FILE_HEADER_BYTES);
    const header = parseSparseHeader(head);
    onHeader?.(header);
    if ((await reader.skip(header.fileHeaderBytes - FILE_HEADER_BYTES)) !== header.fileHeaderBytes - FILE_HEADER_BYTES) {
      throw new SparseImageError('truncated file header', reader.position);
    }
    const { blockBytes } = header;
    let block = 0;
    let crc = 0;
    for (let chunk = 0; chunk < header.totalChunks; chunk++) {
      const at = reader.position;
      const h = await reader.read(CHUNK_HEADER_BYTES);
      if (h.length < CHUNK_HEADER_BYTES) throw new SparseImageError(`chunk ${chunk}: truncated header (the image ends after ${chunk} of ${header.totalChunks} chunks)`, at);
      await reader.skip(header.chunkHeaderBytes - CHUNK_HEADER_BYTES);
      const type = h.readUInt16LE(CHUNK_HEADER.type);
      const blocks = h.readUInt32LE(CHUNK_HEADER.blocks);
      const totalBytes = h.readUInt32LE(CHUNK_HEADER.totalBytes);
      const dataBytes = totalBytes - header.chunkHeaderBytes;
      const outBytes = blocks * blockBytes;
      const expect = (want: number, what: string): void => {
        if (dataBytes !== want) throw new SparseImageError(`chunk ${chunk} (${what}): total_sz ${totalBytes}: expected ${want + header.chunkHeaderBytes}`, at + CHUNK_HEADER.totalBytes);
      };
      if (type !== CHUNK_CRC32 && block + blocks > header.totalBlocks) {
        throw new SparseImageError(`chunk ${chunk}: ${blocks} blocks at block ${block} go past total_blks ${header.totalBlocks}`, at + CHUNK_HEADER.blocks);
      }
      const offset = block * blockBytes;
      if (type === CHUNK_RAW) {
        expect(outBytes, 'RAW');
        let got = 0;
        for await (const piece of reader.take(outBytes)) {
          if (piece.data) crc = crc32(piece.data, crc);
          else crc = crc32AppendZeros(crc, piece.length);
          const e: Extent = { offset: offset + got, length: piece.length, release: piece.release };
          if (piece.data) e.data = piece.data;
          got += piece.length;
          yield e;
        }
        if (got !== outBytes) throw new SparseImageError(`chunk ${chunk} (RAW): the image ends ${outBytes - got} bytes into its data`, reader.position);
      } else if (type === CHUNK_FILL) {
        expect(4, 'FILL');
        const pattern = await reader.read(4);
        if (pattern.length < 4) throw new SparseImageError(`chunk ${chunk} (FILL): truncated pattern`, reader.position);
        if (pattern.readUInt32LE(0) === 0) {
          crc = crc32AppendZeros(crc, outBytes);
          if (outBytes > 0) yield { offset, length: outBytes };
        } else {
          for (let done = 0; done < outBytes; done += FILL_PIECE_BYTES) {
            const n = Math.min(FILL_PIECE_BYTES, outBytes - done);
            const data = Buffer.alloc(n);
            for (let i = 0; i < n; i += 4) pattern.copy(data, i);
            crc = crc32(data, crc);
            yield { offset: offset + done, length: n, data };
          }
        }
      } else if (type === CHUNK_DONT_CARE) {
        expect(0, 'DONT_CARE');
        crc = crc32AppendZeros(crc, outBytes);
        if (outBytes > 0) yield { offset, length: outBytes };
      } else if (type === CHUNK_CRC32) {
        expect(4, 'CRC32');
        const stored = await reader.read(4);
        if (stored.length < 4) throw new SparseImageError(`chunk ${chunk} (CRC32): truncated`, reader.position);
        if (stored.readUInt32LE(0) !== crc >>> 0) {
          throw new SparseImageError(`chunk ${chunk} (CRC32): expected 0x${stored.readUInt32LE(0).toString(16)}, the data before it gives 0x${(crc >>> 0).toString(16)}`, at);
        }
        continue;
      } else {
        throw new SparseImageError(`chunk ${chunk}: unknown chunk type 0x${type.toString(16)}`, at + CHUNK_HEADER.type);
      }
      block += blocks;
    }
    if (block !== header.totalBlocks) throw new SparseImageError(`the chunks cover ${block} blocks, the header says total_blks ${header.totalBlocks}`, reader.position);
    if (header.imageChecksum !== 0 && header.imageChecksum !== crc >>> 0) {
      throw new SparseImageError(`image checksum: expected 0x${header.imageChecksum.toString(16)}, the data gives 0x${(crc >>> 0).toString(16)}`, FILE_HEADER.imageChecksum);
    }
    // Zero bytes after the last chunk are padding (as after a gzip member); anything else is not
    // part of any image libsparse would write.
    for (;;) {
      const at = reader.position;
      const rest = await reader.read(64 << 10);
      if (rest.length === 0) break;
      const nonZero = rest.findIndex((x) => x !== 0);
      if (nonZero >= 0) throw new SparseImageError(`trailing data after the last of ${header.totalChunks} chunks`, at + nonZero);
    }
  } finally {
    await reader.close();
  }
}
