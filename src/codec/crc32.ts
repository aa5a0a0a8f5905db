/**
 * CRC-32 (gzip's, reflected polynomial 0xEDB88320), with the one operation zlib's streaming API
 * lacks: extending a CRC over N zero bytes without touching them.
 *
 * Appending a zero byte to a message multiplies the (unconditioned) CRC register by x^8 modulo the
 * polynomial; N zero bytes multiply it by x^(8N). That power is built by square-and-multiply over
 * GF(2) in O(log N) steps (the technique behind zlib's crc32_combine), so 16 GiB of zeros cost
 * microseconds instead of 7 s of hashing.
 */
import { zlib } from '../builtins.js';

const POLY = 0xedb88320;

/** CRC-32 of `data`, continuing from `crc` (0 for a new message). Native (zlib) speed. */
export function crc32(data: Uint8Array, crc = 0): number {
  return zlib().crc32(data, crc) >>> 0;
}

/**
 * a * b modulo the CRC polynomial, both in the reflected representation where bit 31 is x^0.
 */
function multiplyModP(a: number, b: number): number {
  let product = 0;
  let m = 0x80000000;
  let bb = b >>> 0;
  while (m !== 0) {
    if (a & m) product ^= bb;
    m >>>= 1;
    bb = bb & 1 ? (bb >>> 1) ^ POLY : bb >>> 1;
  }
  return product >>> 0;
}

/** x^(2^k) mod P for k = 0..63, reflected: the squares used by square-and-multiply. */
const X_POW_2K: number[] = (() => {
  const table: number[] = [];
  let p = 0x40000000; // x^1
  for (let k = 0; k < 64; k++) {
    table.push(p);
    p = multiplyModP(p, p);
  }
  return table;
})();

/** x^(8 * byteCount) mod P. byteCount may exceed 2^32 (exact up to 2^53). */
function xPowBytes(byteCount: number): number {
  let result = 0x80000000; // x^0
  let n = byteCount;
  let k = 3; // 8 * byteCount = byteCount << 3: start at x^(2^3)
  while (n > 0) {
    if (n % 2 === 1) result = multiplyModP(X_POW_2K[k]!, result);
    n = Math.floor(n / 2);
    k++;
  }
  return result;
}

/** CRC-32 of (message || `byteCount` zero bytes), given the CRC of the message. */
export function crc32AppendZeros(crc: number, byteCount: number): number {
  if (byteCount <= 0) return crc >>> 0;
  // gzip's CRC is the register pre- and post-inverted; zeros act on the register itself.
  return ~multiplyModP(xPowBytes(byteCount), ~crc >>> 0) >>> 0;
}

/** CRC-32 of (A || B) from crc(A), crc(B) and B's length: zlib's crc32_combine. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (multiplyModP(xPowBytes(lengthB), crcA >>> 0) ^ crcB) >>> 0;
}
