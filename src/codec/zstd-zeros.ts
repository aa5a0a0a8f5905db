/**
 * Zstandard frames of zeros built by hand (RFC 8878), so that a sparse image's long zero runs cost
 * a few bytes of output and no compression: a frame made only of RLE blocks, each block one byte
 * (0x00) repeated up to 128 KiB. Concatenated frames are one valid zstd stream, so the sink ends
 * the compressor's frame before a long run, writes these, and starts a new frame after it.
 *
 * Frame layout (all little-endian):
 *   magic 0xFD2FB528 (4)
 *   Frame_Header_Descriptor (1): FCS_Flag=3 (8-byte content size), Single_Segment=0,
 *     Content_Checksum=0, Dictionary_ID_Flag=0
 *   Window_Descriptor (1): Exponent=7, Mantissa=0 -> a 128 KiB window. Single_Segment would make
 *     the window the whole content size, and decoders refuse windows over 128 MiB by default.
 *   Frame_Content_Size (8)
 *   blocks: Block_Header (3 bytes: Last_Block bit 0, Block_Type bits 1-2 = 1 (RLE), Block_Size
 *     bits 3-23 = repetitions, at most Block_Maximum_Size = min(window, 128 KiB)), then the byte.
 */

const ZSTD_MAGIC = 0xfd2fb528;
const DESCRIPTOR_FCS_8_BYTES = 0b1100_0000;
const WINDOW_128_KIB = 7 << 3; // Exponent 7: 2^(10+7)
export const RLE_BLOCK_BYTES = 128 << 10;
const BLOCK_TYPE_RLE = 1;
const FRAME_HEADER_BYTES = 4 + 1 + 1 + 8;
const BLOCK_BYTES = 4; // 3-byte header + the repeated byte

/** Full RLE blocks in the shared middle part: 1 GiB of zeros per 32 KiB of output. */
const MIDDLE_BLOCKS = 8192;
let middle: Buffer | null = null;

function rleBlock(target: Buffer, offset: number, size: number, last: boolean): void {
  const header = (last ? 1 : 0) | (BLOCK_TYPE_RLE << 1) | (size << 3);
  target.writeUIntLE(header, offset, 3);
  target[offset + 3] = 0;
}

/** MIDDLE_BLOCKS full, non-last RLE blocks of zeros (shared, never modified). */
function middleBlocks(): Buffer {
  if (!middle) {
    middle = Buffer.alloc(MIDDLE_BLOCKS * BLOCK_BYTES);
    for (let i = 0; i < MIDDLE_BLOCKS; i++) rleBlock(middle, i * BLOCK_BYTES, RLE_BLOCK_BYTES, false);
  }
  return middle;
}

/**
 * One zstd frame that decodes to `length` zeros (length >= 1), as buffers to write in order: a
 * small head, the shared middle buffer repeated, a small tail. About 4 bytes per 128 KiB.
 */
export function zstdZeroFrame(length: number): Buffer[] {
  if (!Number.isSafeInteger(length) || length < 1) throw new RangeError(`zstd zero frame of ${length} bytes`);
  const head = Buffer.alloc(FRAME_HEADER_BYTES);
  head.writeUInt32LE(ZSTD_MAGIC, 0);
  head[4] = DESCRIPTOR_FCS_8_BYTES;
  head[5] = WINDOW_128_KIB;
  head.writeBigUInt64LE(BigInt(length), 6);
  const out: Buffer[] = [head];
  const blocks = Math.ceil(length / RLE_BLOCK_BYTES);
  // Every block but the last is full; the last holds the remainder and carries Last_Block.
  let fullBefore = blocks - 1;
  const shared = middleBlocks();
  while (fullBefore >= MIDDLE_BLOCKS) {
    out.push(shared);
    fullBefore -= MIDDLE_BLOCKS;
  }
  const tail = Buffer.alloc((fullBefore + 1) * BLOCK_BYTES);
  for (let i = 0; i < fullBefore; i++) rleBlock(tail, i * BLOCK_BYTES, RLE_BLOCK_BYTES, false);
  rleBlock(tail, fullBefore * BLOCK_BYTES, length - (blocks - 1) * RLE_BLOCK_BYTES, true);
  out.push(tail);
  return out;
}
