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

  it('absorbs zero blocks that share a filesystem block with data when the destination is known zero', () => {
    const b = Buffer.alloc(16384);
    b[0] = 1; // data in block 0 ...
    b[3000] = 1; // ... zeros 512..2560 are inside the first 4 KiB unit: absorbed
    b[12288] = 1; // zeros 3072..12288: 3072..4096 share the first unit with data (absorbed), 4096..12288 are whole units (a hole)
    expect(kinds(splitZeroRuns(b, 0, 512))).toBe('D512 Z2048 D512 Z9216 D512 Z3584');
    const joined = splitZeroRuns(b, 0, 512, { holeUnit: 4096 });
    expect(kinds(joined)).toBe('D4096 Z8192 D4096');
    // v0.10 skipped those zero blocks: the data extents say how many bytes of them they carry.
    expect(joined.map((e) => e.zeroBlockBytes ?? 0)).toEqual([2048 + 1024, 0, 3584]);
    // Units follow the destination (--seek): shifted by 1024, they start at source 3072, 7168,
    // 11264, 15360: the zeros before 12288 share the unit from 11264 with data, and the last
    // 1024 bytes (running to the buffer's end) a unit without data so far.
    expect(kinds(splitZeroRuns(b, 0, 512, { holeUnit: 4096, destinationShift: 1024 }))).toBe('D3072 Z8192 D4096 Z1024');
  });

  it('leaves zeros running to the end of the buffer as they are, beyond the unit they share with data', () => {
    // 4096 data + 409 zeros (a 4505-byte file): the zeros share no unit with the data: a hole, as cp --sparse=always leaves it.
    const tail = Buffer.alloc(4505);
    tail.fill(1, 0, 4096);
    expect(kinds(splitZeroRuns(tail, 0, 512, { holeUnit: 4096 }))).toBe('D4096 Z409');
    // Zeros at the end of a chunk may go on in the next one (a unit not yet known to hold data):
    // only the part that shares a unit with the data before them is written with it.
    const chunk = Buffer.alloc(12_288);
    chunk.fill(1, 0, 1024);
    expect(kinds(splitZeroRuns(chunk, 0, 512, { holeUnit: 4096, destinationShift: 1000 }))).toBe('D3096 Z9192');
    // ... and zeros at the start of a buffer, only from the unit of the data after them.
    const lead = Buffer.alloc(12_288);
    lead.fill(1, 11_264);
    expect(kinds(splitZeroRuns(lead, 0, 512, { holeUnit: 4096 }))).toBe('Z8192 D4096');
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
