/**
 * gzip member framing (RFC 1952), pure: the header and trailer around a raw deflate stream.
 */

export const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const METHOD_DEFLATE = 8;
const OS_UNIX = 3;

/** A final fixed-Huffman block holding only end-of-block: closes a stream left open by flushes. */
export const FINAL_EMPTY_BLOCK = Buffer.from([0x03, 0x00]);

/** The 10-byte header: no name, no extra fields; mtime 0 keeps the output reproducible. */
export function gzipHeader(level: number, mtime = 0): Buffer {
  const h = Buffer.alloc(10);
  h[0] = 0x1f;
  h[1] = 0x8b;
  h[2] = METHOD_DEFLATE;
  h[3] = 0; // FLG: no FTEXT, FHCRC, FEXTRA, FNAME, FCOMMENT
  h.writeUInt32LE(mtime >>> 0, 4);
  h[8] = level >= 9 ? 2 : level <= 1 ? 4 : 0; // XFL: maximum compression / fastest
  h[9] = OS_UNIX;
  return h;
}

/** The 8-byte trailer: CRC-32 and the length modulo 2^32 (lengths above 4 GiB wrap, as gzip's do). */
export function gzipTrailer(crc: number, totalBytes: number): Buffer {
  const t = Buffer.alloc(8);
  t.writeUInt32LE(crc >>> 0, 0);
  t.writeUInt32LE(totalBytes % 2 ** 32, 4);
  return t;
}
