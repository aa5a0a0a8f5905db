import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32AppendZeros, crc32Combine } from '../src/codec/crc32.js';
import { patternBytes } from './helpers.js';

/** The reference: node's zlib over materialised bytes. */
const ref = (data: Uint8Array, crc = 0): number => zlib.crc32(data, crc) >>> 0;

const LENGTHS = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 31, 32, 63, 64, 255, 256, 257, 4095, 4096, 65_536, 65_537, 1_000_003, 1 << 20, (1 << 20) + 1];

describe('crc32', () => {
  it('matches zlib.crc32, whole and continued', () => {
    for (const n of LENGTHS) {
      const data = patternBytes(n, n + 1);
      expect(crc32(data)).toBe(ref(data));
      const cut = Math.floor(n / 3);
      expect(crc32(data.subarray(cut), crc32(data.subarray(0, cut)))).toBe(ref(data));
    }
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926); // the standard check value
  });

  it('crc32AppendZeros equals hashing materialised zeros', () => {
    const prefixes = [Buffer.alloc(0), Buffer.from('a'), Buffer.from('hello, world'), patternBytes(1000, 7)];
    for (const prefix of prefixes) {
      for (const n of LENGTHS) {
        const expected = ref(Buffer.concat([prefix, Buffer.alloc(n)]));
        expect(crc32AppendZeros(ref(prefix), n), `prefix ${prefix.length}, zeros ${n}`).toBe(expected);
      }
    }
  });

  it('crc32AppendZeros then data continues correctly', () => {
    const a = patternBytes(333, 3);
    const b = patternBytes(777, 4);
    const expected = ref(Buffer.concat([a, Buffer.alloc(123_457), b]));
    expect(crc32(b, crc32AppendZeros(crc32(a), 123_457))).toBe(expected);
  });

  it('crc32Combine equals the CRC of the concatenation', () => {
    for (const la of [0, 1, 5, 1000]) {
      for (const lb of LENGTHS) {
        const a = patternBytes(la, 11);
        const b = patternBytes(lb, 13);
        expect(crc32Combine(ref(a), ref(b), lb), `${la}+${lb}`).toBe(ref(Buffer.concat([a, b])));
      }
    }
  });

  it('is consistent beyond 2^32 bytes (combine identities)', () => {
    const c = ref(Buffer.from('start'));
    const big = [2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 32 + 7, 6 * 2 ** 30 + 12_345, 2 ** 40 + 3, 2 ** 52 + 1];
    for (const n of big) {
      // Splitting a run of zeros anywhere gives the same CRC.
      for (const cut of [1, 5, 1_000_003, 2 ** 31, Math.floor(n / 2)]) {
        expect(crc32AppendZeros(crc32AppendZeros(c, cut), n - cut), `${n} split at ${cut}`).toBe(crc32AppendZeros(c, n));
      }
      // Zeros appended == combine with the CRC of n zeros from an empty start.
      expect(crc32Combine(c, crc32AppendZeros(0, n), n)).toBe(crc32AppendZeros(c, n));
      // Data after the run: combine(prefix+zeros, data) == data hashed on top.
      const tail = patternBytes(99, 5);
      expect(crc32Combine(crc32AppendZeros(c, n), ref(tail), tail.length)).toBe(ref(tail, crc32AppendZeros(c, n)));
    }
  });

  it('matches zlib over 2^32 + 5 materialised zero bytes (streamed)', () => {
    const n = 2 ** 32 + 5;
    const chunk = Buffer.alloc(64 << 20);
    let crc = ref(Buffer.from('x'));
    const start = crc;
    let left = n;
    while (left > 0) {
      const k = Math.min(left, chunk.length);
      crc = ref(chunk.subarray(0, k), crc);
      left -= k;
    }
    expect(crc32AppendZeros(start, n)).toBe(crc);
  });
});
