/**
 * Deflate blocks that expand to runs of zero bytes, built by hand (pure), so that a gzip writer
 * can emit a sparse image's holes without handing gigabytes of zeros to the compressor.
 *
 * Each emitted unit is self-contained and byte-aligned: it starts with a literal 0 and then copies
 * the previous byte (distance 1), so it refers to nothing written before it; it ends with an empty
 * stored block (as a sync flush does), so the next unit or compressor output starts on a byte.
 * It may therefore be inserted after any flush point of a raw deflate stream (a full flush of the
 * compressor) and repeated any number of times.
 *
 * Two encodings:
 *  - the big unit, ZERO_UNIT_BYTES zeros, a dynamic-Huffman block whose literal/length code holds
 *    only 0 (2 bits), end-of-block (2 bits) and length 258 (1 bit), and whose distance code holds
 *    only distance 1 (1 bit): 2 bits per 258 zeros, about 1000:1, deflate's own limit. Computed once.
 *  - a remainder of any length below it, in a fixed-Huffman block, computed per run.
 */

/** Deflate bit writer: fields least-significant bit first, Huffman codes most-significant first. */
class BitWriter {
  private readonly bytes: number[] = [];
  private bitBuffer = 0;
  private bitCount = 0;

  /** Writes `count` bits of `value`, least significant first (header fields, extra bits). */
  bits(value: number, count: number): void {
    for (let i = 0; i < count; i++) {
      this.bitBuffer |= ((value >>> i) & 1) << this.bitCount;
      if (++this.bitCount === 8) this.flushByte();
    }
  }

  /** Writes a Huffman code of `length` bits, its most significant bit first. */
  code(code: number, length: number): void {
    for (let i = length - 1; i >= 0; i--) this.bits((code >>> i) & 1, 1);
  }

  private flushByte(): void {
    this.bytes.push(this.bitBuffer);
    this.bitBuffer = 0;
    this.bitCount = 0;
  }

  /** An empty, non-final stored block: 3 header bits, padding to the byte, LEN 0, NLEN 0xFFFF. */
  emptyStoredBlock(): void {
    this.bits(0, 1); // BFINAL = 0
    this.bits(0, 2); // BTYPE = 00, stored
    if (this.bitCount > 0) this.flushByte();
    this.bytes.push(0x00, 0x00, 0xff, 0xff);
  }

  toBuffer(): Buffer {
    if (this.bitCount > 0) this.flushByte();
    return Buffer.from(this.bytes);
  }
}

/** Canonical Huffman codes (RFC 1951 3.2.2) for the given code lengths (0: unused symbol). */
function canonicalCodes(lengths: number[]): number[] {
  const maxLength = Math.max(...lengths);
  const countPerLength = new Array<number>(maxLength + 1).fill(0);
  for (const l of lengths) if (l > 0) countPerLength[l]!++;
  const nextCode = new Array<number>(maxLength + 2).fill(0);
  let code = 0;
  for (let bits = 1; bits <= maxLength; bits++) {
    code = (code + countPerLength[bits - 1]!) << 1;
    nextCode[bits] = code;
  }
  return lengths.map((l) => (l > 0 ? nextCode[l]!++ : 0));
}

// Length symbols 257..285: base length and extra bits (RFC 1951 3.2.5).
const LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];

function lengthSymbol(length: number): { symbol: number; extra: number; extraBits: number } {
  let i = LENGTH_BASE.length - 1;
  while (LENGTH_BASE[i]! > length) i--;
  return { symbol: 257 + i, extra: length - LENGTH_BASE[i]!, extraBits: LENGTH_EXTRA[i]! };
}

/** Fixed-Huffman literal/length code of a symbol (RFC 1951 3.2.6). */
function fixedCode(symbol: number): { code: number; length: number } {
  if (symbol < 144) return { code: 0x30 + symbol, length: 8 };
  if (symbol < 256) return { code: 0x190 + symbol - 144, length: 9 };
  if (symbol < 280) return { code: symbol - 256, length: 7 };
  return { code: 0xc0 + symbol - 280, length: 8 };
}

/** Match lengths (3..258) that add up to `total`, longest first. */
function matchLengths(total: number): number[] {
  const lengths: number[] = [];
  let left = total;
  while (left > 0) {
    // Never leave 1 or 2 bytes behind: the shortest match is 3.
    const take = left > 258 && left - 258 < 3 ? left - 3 : Math.min(258, left);
    lengths.push(take);
    left -= take;
  }
  return lengths;
}

/** A fixed-Huffman unit expanding to `count` zeros (1 <= count), any length. */
export function fixedZeroRunBlock(count: number): Buffer {
  const w = new BitWriter();
  w.bits(0, 1); // BFINAL = 0
  w.bits(1, 2); // BTYPE = 01, fixed Huffman
  const literalZero = fixedCode(0);
  if (count < 4) {
    for (let i = 0; i < count; i++) w.code(literalZero.code, literalZero.length);
  } else {
    w.code(literalZero.code, literalZero.length);
    for (const length of matchLengths(count - 1)) {
      const { symbol, extra, extraBits } = lengthSymbol(length);
      const c = fixedCode(symbol);
      w.code(c.code, c.length);
      w.bits(extra, extraBits);
      w.code(0, 5); // distance code 0 = distance 1, no extra bits
    }
  }
  const eob = fixedCode(256);
  w.code(eob.code, eob.length);
  w.emptyStoredBlock();
  return w.toBuffer();
}

/** Matches of 258 in the big unit: about 1 MiB of zeros per unit. */
const UNIT_MATCHES = 4064;
export const ZERO_UNIT_BYTES = 1 + 258 * UNIT_MATCHES;

// The order in which code-length code lengths are sent (RFC 1951 3.2.7).
const CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

function buildZeroUnitBlock(): Buffer {
  const w = new BitWriter();
  w.bits(0, 1); // BFINAL = 0
  w.bits(2, 2); // BTYPE = 10, dynamic Huffman

  // Literal/length code: 0 -> 2 bits, 256 (end of block) -> 2 bits, 285 (length 258) -> 1 bit.
  const litLengths = new Array<number>(286).fill(0);
  litLengths[0] = 2;
  litLengths[256] = 2;
  litLengths[285] = 1;
  const distLengths = [1]; // only distance code 0 (distance 1), sent with one bit
  // Code-length alphabet: 18 (run of zeros) -> 1 bit, 1 -> 2 bits, 2 -> 2 bits.
  const clLengths = new Array<number>(19).fill(0);
  clLengths[18] = 1;
  clLengths[1] = 2;
  clLengths[2] = 2;

  w.bits(286 - 257, 5); // HLIT
  w.bits(distLengths.length - 1, 5); // HDIST
  w.bits(19 - 4, 4); // HCLEN: all 19 code-length code lengths
  for (const symbol of CODE_LENGTH_ORDER) w.bits(clLengths[symbol]!, 3);

  const clCodes = canonicalCodes(clLengths);
  const sendLength = (l: number): void => w.code(clCodes[l]!, clLengths[l]!);
  const sendZeros = (n: number): void => {
    for (let left = n; left > 0; ) {
      const run = Math.min(138, left);
      if (run < 11) throw new Error('zero run too short for symbol 18');
      w.code(clCodes[18]!, clLengths[18]!);
      w.bits(run - 11, 7);
      left -= run;
    }
  };
  // Lengths of symbols 0..285 then the distance code, run-length coded.
  const all = [...litLengths, ...distLengths];
  for (let i = 0; i < all.length; ) {
    if (all[i] !== 0) {
      sendLength(all[i]!);
      i++;
      continue;
    }
    let j = i;
    while (j < all.length && all[j] === 0) j++;
    // Split a zero run so that no piece is shorter than 11 (symbol 18's minimum).
    let run = j - i;
    while (run > 138 && run - 138 < 11) {
      sendZeros(run - 11);
      run = 11;
    }
    sendZeros(run);
    i = j;
  }

  const litCodes = canonicalCodes(litLengths);
  const distCodes = canonicalCodes(distLengths);
  w.code(litCodes[0]!, 2); // the literal 0
  for (let i = 0; i < UNIT_MATCHES; i++) {
    w.code(litCodes[285]!, 1); // length 258
    w.code(distCodes[0]!, 1); // distance 1
  }
  w.code(litCodes[256]!, 2); // end of block
  w.emptyStoredBlock();
  return w.toBuffer();
}

let zeroUnit: Buffer | null = null;

/** The precomputed unit expanding to ZERO_UNIT_BYTES zeros (about 2 KiB). */
export function zeroUnitBlock(): Buffer {
  zeroUnit ??= buildZeroUnitBlock();
  return zeroUnit;
}

/**
 * Byte strings that together expand to `count` zeros: the precomputed unit repeated (the same
 * Buffer object, not copies) and a fixed-Huffman remainder.
 */
export function zeroRunPieces(count: number): { unit: Buffer; unitRepeats: number; remainder: Buffer | null } {
  const unitRepeats = Math.floor(count / ZERO_UNIT_BYTES);
  const rest = count - unitRepeats * ZERO_UNIT_BYTES;
  return { unit: zeroUnitBlock(), unitRepeats, remainder: rest > 0 ? fixedZeroRunBlock(rest) : null };
}
