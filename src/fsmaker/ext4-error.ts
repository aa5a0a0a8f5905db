/** The one error type of the ext2/3/4 reader (ext4*.ts). */

export type ExtErrorCode = 'NOT_EXT' | 'CORRUPT' | 'UNSUPPORTED' | 'NOT_A_DIRECTORY' | 'NOT_FOUND' | 'SYMLINK_LOOP' | 'BAD_ARGUMENT';

/**
 * Every failure of the reader: `code` is stable, the message says what is wrong and, when one
 * byte of the image is to blame, ends with "at byte N" (also kept in `byteOffset`).
 */
export class ExtError extends Error {
  readonly code: ExtErrorCode;
  readonly byteOffset?: number;
  constructor(code: ExtErrorCode, message: string, byteOffset?: number) {
    super(byteOffset === undefined ? message : `${message} at byte ${byteOffset}`);
    this.name = 'ExtError';
    this.code = code;
    if (byteOffset !== undefined) this.byteOffset = byteOffset;
  }
}

export const corrupt = (message: string, byteOffset?: number): ExtError => new ExtError('CORRUPT', message, byteOffset);

export type ByteReader = (offset: number, length: number) => Buffer;

/** `length` bytes at `offset`, or CORRUPT when the image ends first or the read fails. */
export function readExactly(read: ByteReader, offset: number, length: number, what: string): Buffer {
  let b: Buffer;
  try {
    b = read(offset, length);
  } catch (err) {
    throw corrupt(`cannot read ${what}: ${err instanceof Error ? err.message : String(err)}`, offset);
  }
  if (!Buffer.isBuffer(b) || b.length < length) throw corrupt(`${what} is past the end of the image`, offset);
  return b.length === length ? b : b.subarray(0, length);
}

export const hex = (n: number, digits = 4): string => `0x${n.toString(16).padStart(digits, '0')}`;
