/**
 * v0.10's destination check (io/compare-zeros.ts), on its own and through the sink: zeros are
 * written exactly where the old destination holds data, and counted as v0.10 counted them (the
 * destination under a whole block judged, even past the end of a short last block; the source
 * block's length counted); reads may be O_DIRECT and aligned; failures name the phase and byte,
 * on the main thread and from the writer thread alike.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ToolError } from '../src/errors.js';
import { PAGE, allocAligned } from '../src/io/aligned.js';
import { COMPARE_COUNTER, COMPARE_COUNTER_SLOTS, COMPARE_READ_BYTES, type CompareZeros, compareAndZero, countZeroBlocks } from '../src/io/compare-zeros.js';
import { WriterThread, prestartWriterThread } from '../src/io/writer-thread.js';
import { PositionalSink } from '../src/sparsecopy/positional-sink.js';
import { patternBytes, prng, useTempDir } from './helpers.js';

let dir = '';
useTempDir('sc-compare-', (d) => (dir = d));
const scratch = { read: allocAligned(COMPARE_READ_BYTES + 2 * PAGE), zeros: allocAligned(COMPARE_READ_BYTES) };
const ZEROS = Buffer.alloc(16 << 20);
const isZero = (b: Buffer, from: number, to: number): boolean => to <= from || b.compare(ZEROS, 0, to - from, from, to) === 0;

/** Old destination bytes: runs of data and of zeros, some long. */
function oldBytes(random: () => number, size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let at = 0; at < size; ) {
    const length = 1 + Math.floor(random() * (random() < 0.2 ? 200_000 : 3000));
    if (random() < 0.5) patternBytes(Math.min(length, size - at), seed + at).copy(b, at);
    at += length;
  }
  return b;
}

describe('compareAndZero against a model of v0.10', () => {
  for (const direct of [false, true]) {
    it(`300 seeded ranges (${direct ? 'O_DIRECT, aligned reads' : 'buffered reads'})`, () => {
      const random = prng(direct ? 77 : 78);
      const file = path.join(dir, direct ? 'direct' : 'buffered');
      for (let i = 0; i < 300; i++) {
        const blockSize = [1, 512, 1000, 4096, 65_536, 3 << 20][i % 6]!;
        const size = 64 * 1024 + Math.floor(random() * (blockSize > COMPARE_READ_BYTES / 2 ? 9 : 3) * 1024 * 1024);
        const old = oldBytes(random, size, i * 1000);
        fs.writeFileSync(file, old);
        const checkLimit = random() < 0.3 ? Math.floor(random() * size) : size;
        const blockOrigin = random() < 0.5 ? 0 : Math.floor(random() * 5000);
        const inDataBlock = random() < 0.25;
        // Whole blocks from the origin, the last one short or not; or any range in blocks with data.
        const firstBlock = Math.floor((random() * (size - blockOrigin)) / blockSize);
        const position = inDataBlock ? blockOrigin + Math.floor(random() * (size - blockOrigin)) : blockOrigin + firstBlock * blockSize;
        const room = size - position;
        const length = Math.max(1, Math.min(room, inDataBlock || random() < 0.5 ? 1 + Math.floor(random() * room) : blockSize * (1 + Math.floor(random() * 8))));
        const label = JSON.stringify({ i, blockSize, size, checkLimit, blockOrigin, inDataBlock, position, length });

        const fd = fs.openSync(file, 'r+');
        const directFd = direct ? fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_DIRECT) : -1;
        const counters = new Float64Array(COMPARE_COUNTER_SLOTS);
        const command: CompareZeros = {
          position,
          length,
          blockOrigin,
          blockSize,
          checkLimit,
          inDataBlock,
          readFd: direct ? directFd : fd,
          readAlignment: direct ? 4096 : 0,
          directFd,
          directAlignment: 4096,
          bufferedFd: fd,
        };
        try {
          compareAndZero(fs, command, scratch, counters);
        } finally {
          fs.closeSync(fd);
          if (direct) fs.closeSync(directFd);
        }

        const end = position + length;
        const expected = Buffer.from(old);
        expected.fill(0, position, Math.min(end, checkLimit));
        expect(fs.readFileSync(file).equals(expected), label).toBe(true);
        let real = 0;
        let nonzerodest = 0;
        if (inDataBlock) real = length;
        else {
          for (let b = position; b < end; b += blockSize) {
            const n = Math.min(end, b + blockSize) - b;
            if (b < checkLimit && !isZero(old, b, Math.min(b + blockSize, checkLimit))) {
              real += n;
              nonzerodest += n;
            }
          }
        }
        const lastBlockEnd = end + ((blockSize - ((end - blockOrigin) % blockSize)) % blockSize);
        const readEnd = Math.min(checkLimit, inDataBlock ? end : lastBlockEnd);
        expect(counters[COMPARE_COUNTER.real], label).toBe(real);
        expect(counters[COMPARE_COUNTER.nonzerodest], label).toBe(nonzerodest);
        expect(counters[COMPARE_COUNTER.sparse], label).toBe(length - real);
        expect(counters[COMPARE_COUNTER.checked], label).toBe(Math.max(0, readEnd - position));
        // Zeros are written within the range, and only if it held data (the bytes are checked above).
        const zeroedEnd = Math.max(position, Math.min(end, checkLimit));
        expect(counters[COMPARE_COUNTER.written], label).toBeLessThanOrEqual(zeroedEnd - position);
        expect(counters[COMPARE_COUNTER.written] === 0, label).toBe(isZero(old, position, zeroedEnd));
      }
    });
  }
});

describe('countZeroBlocks against a model of v0.10', () => {
  for (const direct of [false, true]) {
    it(`300 seeded lists of short zero runs (${direct ? 'O_DIRECT, aligned reads' : 'buffered reads'})`, () => {
      const random = prng(direct ? 91 : 92);
      const file = path.join(dir, direct ? 'count-direct' : 'count-buffered');
      for (let i = 0; i < 300; i++) {
        const blockSize = [1, 512, 1000, 4096][i % 4]!;
        const size = 64 * 1024 + Math.floor(random() * 3 * 1024 * 1024);
        const old = oldBytes(random, size, i * 7);
        fs.writeFileSync(file, old);
        const checkLimit = random() < 0.3 ? Math.floor(random() * size) : size;
        const blockOrigin = Math.floor(random() * 3000);
        // Runs of 1 to 8 whole blocks, in order, some close together, some far apart.
        const ranges: number[] = [];
        for (let at = blockOrigin + blockSize * Math.floor(random() * 40); ; ) {
          const end = at + blockSize * (1 + Math.floor(random() * 8));
          if (end > size || end - at > 16_384) break;
          ranges.push(at, end);
          at = end + blockSize * (1 + Math.floor(random() * (random() < 0.5 ? 8 : 400)));
        }
        const fd = fs.openSync(file, direct ? fs.constants.O_RDONLY | fs.constants.O_DIRECT : fs.constants.O_RDONLY);
        const counters = new Float64Array(COMPARE_COUNTER_SLOTS);
        try {
          countZeroBlocks(fs, { ranges, blockOrigin, blockSize, checkLimit, readFd: fd, readAlignment: direct ? 4096 : 0 }, scratch, counters);
        } finally {
          fs.closeSync(fd);
        }
        let nonzerodest = 0;
        let total = 0;
        let checked = 0;
        for (let k = 0; k < ranges.length; k += 2) {
          total += ranges[k + 1]! - ranges[k]!;
          checked += Math.max(0, Math.min(ranges[k + 1]!, checkLimit) - ranges[k]!);
          for (let b = ranges[k]!; b < ranges[k + 1]!; b += blockSize) {
            if (b < checkLimit && !isZero(old, b, Math.min(b + blockSize, checkLimit))) nonzerodest += blockSize;
          }
        }
        const label = JSON.stringify({ i, blockSize, size, checkLimit, blockOrigin, ranges: ranges.length });
        expect(counters[COMPARE_COUNTER.nonzerodest], label).toBe(nonzerodest);
        expect(counters[COMPARE_COUNTER.real], label).toBe(nonzerodest);
        expect(counters[COMPARE_COUNTER.sparse], label).toBe(total - nonzerodest);
        expect(counters[COMPARE_COUNTER.checked], label).toBe(checked);
        expect(counters[COMPARE_COUNTER.written], label).toBe(0);
      }
    });
  }
});

describe('failures name the phase and the byte', () => {
  const file = () => {
    const f = path.join(dir, 'old');
    fs.writeFileSync(f, patternBytes(3 << 20, 9));
    return f;
  };
  const sinkOn = (fd: number, writerThread: boolean) =>
    new PositionalSink({ fd, name: 'DEV', baseOffset: 0, checkLimit: 3 << 20, zeroPolicy: 'compare', blockSize: 512, syncEveryBytes: 0, writerThread });

  for (const writerThread of [false, true]) {
    it(`a failed check read is DEST_CHECK_READ (exit 6) at its byte (${writerThread ? 'writer thread' : 'main thread'})`, async () => {
      if (writerThread) await prestartWriterThread();
      const fd = fs.openSync(file(), 'w'); // write-only: reading it back fails (EBADF)
      const sink = sinkOn(fd, writerThread);
      try {
        const failure = await (async () => {
          await sink.write({ offset: 1 << 20, length: 1 << 20 });
          await sink.close();
        })().then(
          () => null,
          (e: unknown) => e,
        );
        expect(failure).toBeInstanceOf(ToolError);
        expect((failure as ToolError).code).toBe('DEST_CHECK_READ');
        expect((failure as ToolError).exitCode).toBe(6);
        expect((failure as ToolError).message).toMatch(/^DEV: check read failed at byte 1048576: /);
      } finally {
        await sink.abort();
        fs.closeSync(fd);
      }
    });

    it(`a failed write of zeros over old data is WRITE (exit 9) at its byte (${writerThread ? 'writer thread' : 'main thread'})`, async () => {
      if (writerThread) await prestartWriterThread();
      const fd = fs.openSync(file(), 'r'); // read-only: the zeros cannot be written (EBADF)
      const sink = sinkOn(fd, writerThread);
      try {
        const failure = await (async () => {
          await sink.write({ offset: 4096, length: 8192 });
          await sink.close();
        })().then(
          () => null,
          (e: unknown) => e,
        );
        expect((failure as ToolError).code).toBe('WRITE');
        expect((failure as ToolError).exitCode).toBe(9);
        expect((failure as ToolError).message).toMatch(/^DEV: write failed at byte 4096 \(zeros over destination data\): /);
      } finally {
        await sink.abort();
        fs.closeSync(fd);
      }
    });
  }
});

describe('the sink gathers what it compares', () => {
  const sinkOn = (fd: number, checkLimit: number, writerThread: boolean) =>
    new PositionalSink({ fd, name: 'OLD', baseOffset: 0, checkLimit, zeroPolicy: 'compare', blockSize: 512, syncEveryBytes: 0, writerThread, holeUnit: 4096 });

  it('short zero runs between data are written with it in one write; the old data under them is still counted (nonzerodest)', async () => {
    await prestartWriterThread();
    const writes = vi.spyOn(WriterThread.prototype, 'post');
    const compares = vi.spyOn(WriterThread.prototype, 'postCompare');
    try {
      // 1 MiB of data cut every 8 KiB by a zero block, over an old file with data everywhere but
      // under every other one of those zero blocks: 128 zero runs, none covering a 4 KiB unit.
      const file = path.join(dir, 'gaps');
      const old = patternBytes(1 << 20, 3);
      for (let at = 0; at < old.length; at += 16_384) old.fill(0, at + 4096, at + 4608);
      fs.writeFileSync(file, old);
      const fd = fs.openSync(file, 'r+');
      const expected = Buffer.alloc(old.length);
      const sink = sinkOn(fd, old.length, true);
      let nonzerodest = 0;
      for (let at = 0; at < old.length; at += 8192) {
        const data = allocAligned(8192 - 512);
        patternBytes(data.length, at + 1).copy(data);
        data.copy(expected, at);
        await sink.write({ offset: at, length: data.length, data });
        await sink.write({ offset: at + data.length, length: 512 });
        if (!isZero(old, at + data.length, at + 8192)) nonzerodest += 512;
      }
      const counters = await sink.close();
      fs.closeSync(fd);
      expect(fs.readFileSync(file).equals(expected)).toBe(true);
      // All of it in 1 MiB writes; only the last run, which no data follows, is compared.
      expect(writes.mock.calls.length).toBeLessThanOrEqual(2);
      expect(compares).toHaveBeenCalledTimes(1);
      expect(counters.nonzerodest).toBe(nonzerodest);
      expect(counters.real).toBe(old.length - 128 * 512 + nonzerodest);
      expect(counters.sparse).toBe(128 * 512 - nonzerodest);
      expect(counters.written).toBe(old.length);
    } finally {
      writes.mockRestore();
      compares.mockRestore();
    }
  });

  it('consecutive zero extents are compared in commands of 16 MiB, read 4 MiB at a time', async () => {
    await prestartWriterThread();
    const compares = vi.spyOn(WriterThread.prototype, 'postCompare');
    try {
      const file = path.join(dir, 'long');
      fs.writeFileSync(file, patternBytes(40 << 20, 5));
      const fd = fs.openSync(file, 'r+');
      const sink = sinkOn(fd, 40 << 20, true);
      for (let at = 0; at < 40 << 20; at += 2 << 20) await sink.write({ offset: at, length: 2 << 20 }); // as a source hands them out
      const counters = await sink.close();
      fs.closeSync(fd);
      expect(compares.mock.calls.map(([c]) => c.length)).toEqual([16 << 20, 16 << 20, 8 << 20]);
      expect(counters).toMatchObject({ nonzerodest: 40 << 20, checkedBytes: 40 << 20, written: 40 << 20 });
      expect(fs.readFileSync(file).equals(Buffer.alloc(40 << 20))).toBe(true);
    } finally {
      compares.mockRestore();
    }
  });
});
