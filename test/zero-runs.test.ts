import { describe, expect, it } from 'vitest';
import { isZeroRange, splitZeroRuns } from '../src/extent/zero-runs.js';

const kinds = (runs: { data?: Buffer; length: number }[]) => runs.map((r) => `${r.data ? 'D' : 'Z'}${r.length}`).join(' ');

describe('zero detection', () => {
  it('judges ranges', () => {
    const b = Buffer.alloc(4096);
    expect(isZeroRange(b)).toBe(true);
    b[2000] = 1;
    expect(isZeroRange(b)).toBe(false);
    expect(isZeroRange(b, 0, 2000)).toBe(true);
    expect(isZeroRange(b, 2001)).toBe(true);
  });

  it('splits at block boundaries aligned to the source offset and coalesces', () => {
    const b = Buffer.alloc(4096);
    b[0] = 1; // block 0 data
    b[1600] = 1; // block 3 data
    expect(kinds(splitZeroRuns(b, 0, 512))).toBe('D512 Z1024 D512 Z2048');
    // The same buffer at offset 256: its first block is source [256,512), i.e. bytes 0..255.
    expect(kinds(splitZeroRuns(b, 256, 512))).toBe('D256 Z1024 D512 Z2304');
  });

  it('returns data runs as views of the buffer, and exact offsets', () => {
    const b = Buffer.alloc(2048);
    b[1024] = 7;
    const runs = splitZeroRuns(b, 10_000 * 512, 512);
    expect(runs.map((r) => r.offset)).toEqual([10_000 * 512, 10_000 * 512 + 1024, 10_000 * 512 + 1536]);
    expect(runs[1]!.data!.buffer).toBe(b.buffer);
    expect(runs[1]!.data![0]).toBe(7);
  });

  it('absorbs zero runs that cannot become holes when the destination is known zero', () => {
    const b = Buffer.alloc(16384);
    b[0] = 1; // data in block 0 ...
    b[3000] = 1; // ... zeros 512..2560 are inside the first 4 KiB unit: absorbed
    b[12288] = 1; // zeros 3072..12288 cover units 4096..12288: kept as a hole; the tail shares a unit with data
    expect(kinds(splitZeroRuns(b, 0, 512))).toBe('D512 Z2048 D512 Z9216 D512 Z3584');
    expect(kinds(splitZeroRuns(b, 0, 512, { holeUnit: 4096 }))).toBe('D3072 Z9216 D4096');
  });
});

describe('isZeroRange on large ranges (compared with themselves shifted)', () => {
  it('finds a single non-zero byte anywhere, at any start offset', () => {
    for (const length of [8193, 65_536, (2 << 20) + 3]) {
      for (const start of [0, 7, 4096]) {
        const buf = Buffer.alloc(start + length + 5, 0);
        buf.fill(9, 0, start); // non-zero bytes outside the range must not matter
        buf.fill(9, start + length);
        expect(isZeroRange(buf, start, start + length), `${length}@${start}`).toBe(true);
        for (const at of [0, 1, 63, 4095, 4096, 4097, 8191, 8192, Math.floor(length / 2), length - 4097, length - 2, length - 1]) {
          buf[start + at] = 1;
          expect(isZeroRange(buf, start, start + length), `${length}@${start}, byte ${at}`).toBe(false);
          buf[start + at] = 0;
        }
      }
    }
  });
});
