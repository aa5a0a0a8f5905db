/**
 * --overlay onto existing files: zero blocks landing on old data are checked and written as zeros
 * (nonzerodest), or left alone with --nocheck; the old tail and length are kept.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocatedBytes, makeTempDir, parseSummary, patternBytes, sparsecopy, tempLeftovers, writeSparseFile } from './helpers.js';

const KiB = 1024;

let dir: string;
beforeAll(() => {
  dir = makeTempDir('sc-ovl-');
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

let n = 0;
const fresh = (name: string) => path.join(dir, `${name}-${++n}`);

function run(args: string[]) {
  const r = sparsecopy(['--json', ...args]);
  expect(r.status, r.stderr).toBe(0);
  const json = JSON.parse(r.stdout);
  const summary = parseSummary(r.stderr);
  expect(summary.total).toBe(summary.real + summary.sparse);
  return { summary, json };
}

describe('--overlay onto non-zero data', () => {
  const A = patternBytes(4 * KiB, 1);
  const B = patternBytes(4 * KiB, 2);
  // [0,4K) data A, [4K,12K) written zeros, [12K,20K) hole, [20K,24K) data B, [24K,32K) written zeros.
  const makeSource = () => {
    const src = fresh('src');
    writeSparseFile(src, 32 * KiB, [
      { offset: 0, data: A },
      { offset: 4 * KiB, data: Buffer.alloc(8 * KiB) },
      { offset: 20 * KiB, data: B },
      { offset: 24 * KiB, data: Buffer.alloc(8 * KiB) },
    ]);
    return src;
  };
  const old = patternBytes(64 * KiB, 3);

  it('writes zeros over the old data and counts them in nonzerodest and real', () => {
    const src = makeSource();
    const dst = fresh('dst');
    fs.writeFileSync(dst, old);
    const { summary, json } = run(['-o', src, dst]);
    const expected = Buffer.concat([fs.readFileSync(src), old.subarray(32 * KiB)]);
    expect(fs.readFileSync(dst).equals(expected)).toBe(true);
    expect(summary).toEqual({ total: 32 * KiB, real: 32 * KiB, sparse: 0, nonzerodest: 24 * KiB });
    expect(json.bytesChecked).toBe(24 * KiB);
    expect(json.bytesRead).toBe(24 * KiB); // the 8 KiB hole is not read
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('--overlay --nocheck keeps the old data under zero blocks and holes', () => {
    for (const flags of [['-o', '-n'], ['--overlay', '--nocheck']]) {
      const src = makeSource();
      const dst = fresh('dst');
      fs.writeFileSync(dst, old);
      const { summary, json } = run([...flags, src, dst]);
      const expected = Buffer.from(old);
      A.copy(expected, 0);
      B.copy(expected, 20 * KiB);
      expect(fs.readFileSync(dst).equals(expected)).toBe(true);
      expect(summary).toEqual({ total: 32 * KiB, real: 8 * KiB, sparse: 24 * KiB, nonzerodest: 0 });
      expect(json.bytesChecked).toBe(0);
    }
  });

  it('without --overlay the old content is gone (the destination is replaced)', () => {
    const src = makeSource();
    const dst = fresh('dst');
    fs.writeFileSync(dst, old);
    const { summary } = run([src, dst]);
    expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
    expect(summary.nonzerodest).toBe(0);
    expect(summary.real).toBe(8 * KiB);
    // -n changes nothing when the destination is replaced.
    const dst2 = fresh('dst');
    fs.writeFileSync(dst2, old);
    run(['-n', src, dst2]);
    expect(fs.readFileSync(dst2).equals(fs.readFileSync(src))).toBe(true);
  });
});

describe('nonzerodest granularity', () => {
  // Old destination: 32 KiB of zeros with one non-zero byte at 10000.
  const oldDest = () => {
    const b = Buffer.alloc(32 * KiB);
    b[10_000] = 0x77;
    return b;
  };
  const zeroSources: [string, (p: string) => void][] = [
    ['written zeros', (p) => fs.writeFileSync(p, Buffer.alloc(32 * KiB))],
    ['a hole', (p) => writeSparseFile(p, 32 * KiB, [])],
  ];

  for (const [label, makeSource] of zeroSources) {
    it.each([
      [[], 512],
      [['-b', '8'], 4096],
      [['-b', '128'], 32 * KiB], // the 64 KiB block is cut at the end of the copy
    ])(`source of ${label}, %j: nonzerodest = %d`, (args, expected) => {
      const src = fresh('src');
      makeSource(src);
      const dst = fresh('dst');
      fs.writeFileSync(dst, oldDest());
      const { summary } = run(['-o', ...args, src, dst]);
      expect(summary.nonzerodest).toBe(expected);
      expect(summary.real).toBe(expected);
      expect(summary.sparse).toBe(32 * KiB - expected);
      expect(fs.readFileSync(dst).equals(Buffer.alloc(32 * KiB))).toBe(true);
    });
  }

  it('counts whole source blocks over the old length, as v0.10 did (nonzerodest by the source block)', () => {
    // v0.10 judged the destination under each zero block up to its old end and, finding data,
    // counted the source block's whole length: 6144 / 8192 / 16384 for a 6000-byte old file
    // (v0.10 prints exactly these for these arguments).
    for (const [args, blockSize] of [[[], 512], [['-b', '8'], 4096], [['-b', '128'], 65_536]] as const) {
      const src = fresh('src');
      writeSparseFile(src, 16 * KiB, []);
      const dst = fresh('dst');
      fs.writeFileSync(dst, patternBytes(6000, 4));
      const { summary } = run(['-o', ...args, src, dst]);
      const counted = Math.min(16 * KiB, Math.ceil(6000 / blockSize) * blockSize);
      expect(summary).toEqual({ total: 16 * KiB, real: counted, sparse: 16 * KiB - counted, nonzerodest: counted });
      expect(fs.readFileSync(dst).equals(Buffer.alloc(16 * KiB))).toBe(true);
    }
  });

  it('blocks are aligned to the source offsets, not the destination offsets', () => {
    // Seek 1000: source block [512,1024) lands on destination [1512,2024). Old data at 1513 and
    // 2020 is in that one block (512 bytes), though it spans two destination-aligned blocks.
    const src = fresh('src');
    fs.writeFileSync(src, Buffer.alloc(8 * KiB));
    const dst = fresh('dst');
    const old = Buffer.alloc(16 * KiB);
    old[1513] = 1;
    old[2020] = 2;
    fs.writeFileSync(dst, old);
    const { summary } = run(['-o', '-s', '1000B', src, dst]);
    expect(summary.nonzerodest).toBe(512);
    expect(fs.readFileSync(dst).equals(Buffer.alloc(16 * KiB))).toBe(true);
  });

  it('a zero source over old data with --seek: the zeroed range is exactly the copy', () => {
    const src = fresh('src');
    fs.writeFileSync(src, Buffer.alloc(8 * KiB));
    const dst = fresh('dst');
    const old = patternBytes(64 * KiB, 5);
    fs.writeFileSync(dst, old);
    const { summary } = run(['-o', '-s', '1000B', src, dst]);
    const expected = Buffer.from(old);
    expected.fill(0, 1000, 1000 + 8 * KiB);
    expect(fs.readFileSync(dst).equals(expected)).toBe(true);
    expect(summary.nonzerodest).toBe(8 * KiB);
  });
});

describe('--overlay on sparse and missing destinations', () => {
  it('zeros over holes of the old destination are not written, and allocate nothing', () => {
    const dst = fresh('dst');
    const tail = patternBytes(4 * KiB, 6);
    writeSparseFile(dst, 1024 * KiB, [{ offset: 1020 * KiB, data: tail }]);
    const src = fresh('src');
    const head = patternBytes(4 * KiB, 7);
    writeSparseFile(src, 512 * KiB, [
      { offset: 0, data: head },
      { offset: 4 * KiB, data: Buffer.alloc(256 * KiB) },
    ]);
    const before = allocatedBytes(dst);
    const { summary } = run(['-o', src, dst]);
    expect(summary).toEqual({ total: 512 * KiB, real: 4 * KiB, sparse: 508 * KiB, nonzerodest: 0 });
    expect(allocatedBytes(dst)).toBeLessThanOrEqual(before + 4 * KiB);
    const out = fs.readFileSync(dst);
    expect(out.length).toBe(1024 * KiB);
    expect(out.subarray(0, 4 * KiB).equals(head)).toBe(true);
    expect(out.subarray(4 * KiB, 1020 * KiB).equals(Buffer.alloc(1016 * KiB))).toBe(true);
    expect(out.subarray(1020 * KiB).equals(tail)).toBe(true);
  });

  it('creates a missing destination', () => {
    const src = fresh('src');
    const data = patternBytes(5000, 8);
    fs.writeFileSync(src, data);
    const dst = fresh('dst');
    run(['-o', src, dst]);
    expect(fs.readFileSync(dst).equals(data)).toBe(true);
  });

  it('writes in place: the inode is kept (the default mode replaces it)', () => {
    const src = fresh('src');
    fs.writeFileSync(src, patternBytes(5000, 9));
    const dst = fresh('dst');
    fs.writeFileSync(dst, patternBytes(9000, 10));
    const ino = fs.statSync(dst).ino;
    run(['-o', src, dst]);
    expect(fs.statSync(dst).ino).toBe(ino);
  });
});
