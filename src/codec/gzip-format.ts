/**
 * gzip member framing (RFC 1952), pure: the header and trailer around a raw deflate stream, and a
 * header parser for sniffing inputs.
 */
import { crc32 } from './crc32.js';

export const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
export const GZIP_METHOD_DEFLATE = 8;
const OS_UNIX = 3;

/** FLG bits (RFC 1952 2.3.1). */
export const GZIP_FLAGS = { FTEXT: 0x01, FHCRC: 0x02, FEXTRA: 0x04, FNAME: 0x08, FCOMMENT: 0x10 } as const;
const RESERVED_FLAGS = 0xe0;

/** A final fixed-Huffman block holding only end-of-block: closes a stream left open by flushes. */
export const FINAL_EMPTY_BLOCK = Buffer.from([0x03, 0x00]);

export const GZIP_HEADER_BYTES = 10;
export const GZIP_TRAILER_BYTES = 8;

export interface GzipHeaderOptions {
  /** The compression level, recorded in XFL: 9 -> 2 (maximum), 1 -> 4 (fastest), else 0. */
  level: number;
  /** Seconds since the epoch; 0 (the default) means "none" and keeps the output reproducible. */
  mtime?: number;
}

/** The 10-byte header: no name, no extra fields, OS Unix. */
export function gzipHeader({ level, mtime = 0 }: GzipHeaderOptions): Buffer {
  const h = Buffer.alloc(GZIP_HEADER_BYTES);
  h[0] = 0x1f;
  h[1] = 0x8b;
  h[2] = GZIP_METHOD_DEFLATE;
  h[3] = 0; // FLG: no FTEXT, FHCRC, FEXTRA, FNAME, FCOMMENT
  h.writeUInt32LE(mod32(Math.floor(mtime)), 4);
  h[8] = level === 9 ? 2 : level === 1 ? 4 : 0; // XFL
  h[9] = OS_UNIX;
  return h;
}

/**
 * The 8-byte trailer: CRC-32, then the uncompressed length modulo 2^32 (ISIZE). Lengths above
 * 4 GiB wrap, as gzip's do; `totalBytes` is a double, so the modulo is arithmetic, not bitwise.
 */
export function gzipTrailer(crc: number, totalBytes: number): Buffer {
  const t = Buffer.alloc(GZIP_TRAILER_BYTES);
  t.writeUInt32LE(crc >>> 0, 0);
  t.writeUInt32LE(mod32(totalBytes), 4);
  return t;
}

function mod32(n: number): number {
  if (!Number.isFinite(n) || n < 0 || !Number.isInteger(n)) throw new RangeError(`not a byte count / timestamp: ${n}`);
  return n % 2 ** 32;
}

export interface GzipHeaderInfo {
  ok: true;
  /** Bytes of header: the raw deflate stream starts here. */
  headerLength: number;
  /** FLG byte as read (reserved bits are refused, so only FTEXT..FCOMMENT can be set). */
  flags: number;
  mtime: number;
  xfl: number;
  os: number;
  /** FNAME and FCOMMENT as Latin-1 strings (RFC 1952), when present. */
  name?: string;
  comment?: string;
  /** The FEXTRA field's bytes, when present. */
  extra?: Buffer;
}

export type GzipHeaderFailureReason =
  /** Does not start with 1f 8b. */
  | 'not-gzip'
  /** CM is not 8 (deflate). */
  | 'unsupported-method'
  /** Reserved FLG bits are set: a newer format this reader cannot skip safely. */
  | 'reserved-flags'
  /** FHCRC is set and the header's CRC-16 does not match. */
  | 'header-crc-mismatch'
  /** The buffer ends inside the header: read more and parse again. */
  | 'truncated';

export interface GzipHeaderFailure {
  ok: false;
  reason: GzipHeaderFailureReason;
  message: string;
}

export type GzipHeaderParse = GzipHeaderInfo | GzipHeaderFailure;

const fail = (reason: GzipHeaderFailureReason, message: string): GzipHeaderFailure => ({ ok: false, reason, message });

/**
 * Parses the gzip member header at the start of `buf`. A 'truncated' answer means the bytes so
 * far are a plausible header start (a 1-byte buffer holding 1f also says truncated).
 */
export function parseGzipHeader(buf: Uint8Array): GzipHeaderParse {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const truncated = (): GzipHeaderFailure => fail('truncated', 'gzip header truncated');
  if (b.length >= 1 && b[0] !== 0x1f) return fail('not-gzip', 'not in gzip format');
  if (b.length >= 2 && b[1] !== 0x8b) return fail('not-gzip', 'not in gzip format');
  if (b.length < 3) return truncated();
  if (b[2] !== GZIP_METHOD_DEFLATE) return fail('unsupported-method', `unknown compression method ${b[2]}`);
  if (b.length < GZIP_HEADER_BYTES) return truncated();
  const flags = b[3]!;
  if (flags & RESERVED_FLAGS) return fail('reserved-flags', `unsupported gzip flags 0x${flags.toString(16).padStart(2, '0')}`);
  const info: GzipHeaderInfo = { ok: true, headerLength: 0, flags, mtime: b.readUInt32LE(4), xfl: b[8]!, os: b[9]! };
  let pos = GZIP_HEADER_BYTES;
  if (flags & GZIP_FLAGS.FEXTRA) {
    if (b.length < pos + 2) return truncated();
    const xlen = b.readUInt16LE(pos);
    pos += 2;
    if (b.length < pos + xlen) return truncated();
    info.extra = Buffer.from(b.subarray(pos, pos + xlen));
    pos += xlen;
  }
  for (const flag of [GZIP_FLAGS.FNAME, GZIP_FLAGS.FCOMMENT] as const) {
    if (!(flags & flag)) continue;
    const end = b.indexOf(0, pos);
    if (end < 0) return truncated();
    const text = b.toString('latin1', pos, end);
    if (flag === GZIP_FLAGS.FNAME) info.name = text;
    else info.comment = text;
    pos = end + 1;
  }
  if (flags & GZIP_FLAGS.FHCRC) {
    if (b.length < pos + 2) return truncated();
    const expected = b.readUInt16LE(pos);
    const actual = crc32(b.subarray(0, pos)) & 0xffff;
    if (expected !== actual) return fail('header-crc-mismatch', 'gzip header CRC mismatch');
    pos += 2;
  }
  info.headerLength = pos;
  return info;
}
