import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32 } from '../src/codec/crc32.js';
import { ZERO_UNIT_BYTES, fixedZeroRunBlock, zeroRunPieces, zeroUnitBlock } from '../src/codec/deflate-zeros.js';
import { FINAL_EMPTY_BLOCK, gzipHeader, gzipTrailer } from '../src/codec/gzip-format.js';
import { patternBytes } from './helpers.js';

/** Inflates a raw deflate stream left open by flushes, closed with the final empty block. */
const inflateOpen = (parts: Buffer[]): Buffer => zlib.inflateRawSync(Buffer.concat([...parts, FINAL_EMPTY_BLOCK]));

const isAllZero = (b: Buffer): boolean => b.every((x) => x === 0);

describe('deflate zero units', () => {
  it('the final empty block alone is a valid empty stream', () => {
    expect(zlib.inflateRawSync(FINAL_EMPTY_BLOCK).length).toBe(0);
  });

  it('the precomputed unit expands to ZERO_UNIT_BYTES zeros at about 1000:1', () => {
    const unit = zeroUnitBlock();
    expect(zeroUnitBlock()).toBe(unit); // computed once, the same Buffer
    expect(ZERO_UNIT_BYTES).toBeGreaterThan(1_000_000);
    expect(unit.length).toBeLessThan(ZERO_UNIT_BYTES / 900);
    const out = inflateOpen([unit]);
    expect(out.length).toBe(ZERO_UNIT_BYTES);
    expect(isAllZero(out)).toBe(true);
  });

  it('the unit can be repeated (the same Buffer object)', () => {
    const unit = zeroUnitBlock();
    const out = inflateOpen([unit, unit, unit, unit, unit]);
    expect(out.length).toBe(5 * ZERO_UNIT_BYTES);
    expect(isAllZero(out)).toBe(true);
  });

  it('fixed-Huffman remainders expand to exactly n zeros', () => {
    const ns = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100, 257, 258, 259, 260, 261, 262, 263, 515, 516, 517, 518, 519, 520, 4096, 65_535, 65_536, 1_000_003];
    ns.push(ZERO_UNIT_BYTES - 1, ZERO_UNIT_BYTES, ZERO_UNIT_BYTES + 2);
    for (let n = 1; n < 600; n += 37) ns.push(n);
    for (const n of ns) {
      const out = inflateOpen([fixedZeroRunBlock(n)]);
      expect(out.length, `n=${n}`).toBe(n);
      expect(isAllZero(out), `n=${n}`).toBe(true);
    }
  });

  it('zeroRunPieces covers units plus a remainder for any n', () => {
    const ns = [1, 7, 65_536, ZERO_UNIT_BYTES - 1, ZERO_UNIT_BYTES, ZERO_UNIT_BYTES + 1, ZERO_UNIT_BYTES + 2, 3 * ZERO_UNIT_BYTES + 1_000_003, 5 * ZERO_UNIT_BYTES];
    for (const n of ns) {
      const { unit, unitRepeats, remainder } = zeroRunPieces(n);
      expect(unitRepeats).toBe(Math.floor(n / ZERO_UNIT_BYTES));
      expect(remainder === null).toBe(n % ZERO_UNIT_BYTES === 0);
      const parts = new Array<Buffer>(unitRepeats).fill(unit);
      if (remainder) parts.push(remainder);
      const out = inflateOpen(parts);
      expect(out.length, `n=${n}`).toBe(n);
      expect(isAllZero(out), `n=${n}`).toBe(true);
    }
  });

  it('units inserted between Z_FULL_FLUSH points of one compressor decode correctly', async () => {
    // B and D repeat A: a compressor that could see back across the flush would refer to A.
    const a = Buffer.from('the quick brown fox jumps over the lazy dog; '.repeat(2000));
    const b = Buffer.concat([a.subarray(0, 5000), patternBytes(3000, 9)]);
    const d = Buffer.concat([a.subarray(100, 9000), b.subarray(4000)]);
    const deflater = zlib.createDeflateRaw({ level: 6 });
    const chunks: Buffer[] = [];
    deflater.on('data', (c: Buffer) => chunks.push(c));
    const flushedOutput = async (data: Buffer): Promise<Buffer> => {
      deflater.write(data);
      await new Promise<void>((resolve) => deflater.flush(zlib.constants.Z_FULL_FLUSH, () => resolve()));
      return Buffer.concat(chunks.splice(0));
    };
    const zerosRuns = [5, 7, 1_000_003, ZERO_UNIT_BYTES * 2 + 17];
    const pieces = (n: number): Buffer[] => {
      const { unit, unitRepeats, remainder } = zeroRunPieces(n);
      return [...new Array<Buffer>(unitRepeats).fill(unit), ...(remainder ? [remainder] : [])];
    };
    const stream: Buffer[] = [await flushedOutput(a), ...pieces(zerosRuns[0]!), ...pieces(zerosRuns[1]!)];
    stream.push(await flushedOutput(b), ...pieces(zerosRuns[2]!));
    stream.push(await flushedOutput(d), ...pieces(zerosRuns[3]!));
    const end = new Promise<void>((resolve) => deflater.on('end', () => resolve()));
    deflater.end();
    await end;
    stream.push(Buffer.concat(chunks)); // the compressor's final block
    const expected = Buffer.concat([a, Buffer.alloc(zerosRuns[0]! + zerosRuns[1]!), b, Buffer.alloc(zerosRuns[2]!), d, Buffer.alloc(zerosRuns[3]!)]);
    expect(zlib.inflateRawSync(Buffer.concat(stream)).equals(expected)).toBe(true);
    // Wrapped as gzip, zlib also checks the CRC-32 and the length.
    const gz = Buffer.concat([gzipHeader({ level: 6 }), ...stream, gzipTrailer(crc32(expected), expected.length)]);
    expect(zlib.gunzipSync(gz).equals(expected)).toBe(true);
  });
});
