/**
 * Compressed input (issue 3): transparent gunzip of files and pipes, multi-member streams, --raw,
 * and one-line errors with the compressed offset for every kind of corrupt input.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  linesOf,
  loopUnavailableReason,
  makeTempDir,
  parseSummary,
  patternBytes,
  sparsecopy,
  tempLeftovers,
  withLoop,
  writeSparseFile,
} from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
let dir: string;
let image: Buffer; // the uncompressed image: data, holes, data, trailing hole
let imageGz: string;

beforeAll(() => {
  dir = makeTempDir('sc-gzin-');
  const raw = path.join(dir, 'image.raw');
  writeSparseFile(raw, 3 * MiB + 1000, [
    { offset: 0, data: patternBytes(64 * KiB, 1) },
    { offset: 1 * MiB + 512, data: patternBytes(300 * KiB + 7, 2) },
    { offset: 3 * MiB, data: patternBytes(1000, 3) },
  ]);
  image = fs.readFileSync(raw);
  imageGz = path.join(dir, 'image.raw.gz');
  fs.writeFileSync(imageGz, zlib.gzipSync(image));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('gzip input', () => {
  it('decompresses a gzip file transparently into a sparse file', () => {
    const out = path.join(dir, 'from-file.img');
    const r = sparsecopy([imageGz, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(out).equals(image)).toBe(true);
    const s = parseSummary(r.stderr);
    expect(s.total).toBe(image.length);
    expect(s.sparse).toBeGreaterThanOrEqual(2 * MiB); // the holes became holes again
    expect(fs.statSync(out).blocks * 512).toBeLessThan(image.length / 2);
  });

  it('follows concatenated members (cat a.gz b.gz, as pigz writes)', () => {
    const cut = 1 * MiB + 4096;
    const multi = path.join(dir, 'multi.gz');
    fs.writeFileSync(multi, Buffer.concat([zlib.gzipSync(image.subarray(0, cut)), zlib.gzipSync(image.subarray(cut))]));
    const out = path.join(dir, 'multi.img');
    const r = sparsecopy([multi, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(out).equals(image)).toBe(true);
  });

  it('decompresses gzip arriving on stdin', () => {
    const out = path.join(dir, 'from-stdin.img');
    const r = sparsecopy(['-', out], { input: fs.readFileSync(imageGz) });
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(out).equals(image)).toBe(true);
  });

  it('--raw copies the compressed bytes as they are', () => {
    const out = path.join(dir, 'raw-copy.gz');
    const r = sparsecopy(['--raw', imageGz, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(imageGz))).toBe(true);
  });

  it('reports progress on the compressed bytes (--progress=json)', () => {
    const out = path.join(dir, 'progress.img');
    const r = sparsecopy(['--progress=json', imageGz, out]);
    expect(r.status, r.stderr).toBe(0);
    const updates = linesOf(r.stderr)
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { done: number; total: number; output: number; finished: boolean });
    const last = updates[updates.length - 1]!;
    expect(last.finished).toBe(true);
    expect(last.total).toBe(fs.statSync(imageGz).size);
    expect(last.done).toBe(fs.statSync(imageGz).size);
    expect(last.output).toBe(image.length);
  });
});

describe('corrupt gzip input', () => {
  const gz = (): Buffer => fs.readFileSync(imageGz);
  const cases: [string, () => Buffer, RegExp][] = [
    ['truncated', () => gz().subarray(0, Math.floor(gz().length / 2)), /truncated gzip data .* at compressed byte \d+/],
    [
      'bad CRC',
      () => {
        const b = Buffer.from(gz());
        b[b.length - 8]! ^= 0xff;
        return b;
      },
      /bad CRC-32 .* within compressed bytes \d+\.\.\d+$/,
    ],
    [
      'bad length',
      () => {
        const b = Buffer.from(gz());
        b[b.length - 4]! ^= 0x01;
        return b;
      },
      /bad length .* within compressed bytes \d+\.\.\d+$/,
    ],
    ['trailing garbage', () => Buffer.concat([gz(), Buffer.from('this is not gzip at all')]), /trailing garbage .* within compressed bytes \d+\.\.\d+$/],
  ];
  for (const [name, make, pattern] of cases) {
    it(`${name}: exit 18, one line naming the source and the offset, no destination`, () => {
      const sub = makeTempDir('sc-gzbad-');
      try {
        const bad = path.join(sub, `${name.replace(/ /g, '-')}.gz`);
        fs.writeFileSync(bad, make());
        const out = path.join(sub, 'out.img');
        const r = sparsecopy([bad, out]);
        expect(r.status).toBe(18);
        const lines = linesOf(r.stderr);
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain(bad);
        expect(lines[0]).toMatch(pattern);
        expect(fs.existsSync(out)).toBe(false);
        expect(tempLeftovers(sub)).toEqual([]);
      } finally {
        fs.rmSync(sub, { recursive: true, force: true });
      }
    });
  }

  it('a failure leaves an existing destination as it was', () => {
    const out = path.join(dir, 'keep.img');
    fs.writeFileSync(out, 'precious');
    const bad = path.join(dir, 'trunc.gz');
    fs.writeFileSync(bad, fs.readFileSync(imageGz).subarray(0, 5000));
    const r = sparsecopy([bad, out]);
    expect(r.status).toBe(18);
    expect(fs.readFileSync(out, 'utf8')).toBe('precious');
  });
});

const loopReason = loopUnavailableReason();
if (loopReason) console.warn(`skipping gzip-to-loop-device tests: ${loopReason}`);

describe.skipIf(loopReason !== null)('gzip input onto block devices', () => {
  it('streams gzip from stdin into a loop device (gzip -dc | sparsecopy - /dev/loopN)', async () => {
    const backing = path.join(dir, 'disk.img');
    fs.writeFileSync(backing, Buffer.alloc(4 * MiB, 0xee)); // not blank: zeros must be written where needed
    await withLoop(backing, (dev) => {
      const r = sparsecopy(['--json', '-', dev], { input: fs.readFileSync(imageGz) });
      expect(r.status, r.stderr).toBe(0);
      const onDevice = execFileSync('head', ['-c', String(image.length), dev], { maxBuffer: 64 << 20 });
      expect(onDevice.equals(image)).toBe(true);
      const summary = JSON.parse(r.stdout) as { nonzerodest: number; decompressed: boolean };
      expect(summary.decompressed).toBe(true);
      expect(summary.nonzerodest).toBeGreaterThan(2 * MiB); // the old 0xee bytes under the holes
    });
  });

  it('refuses, before writing, a gzip whose declared size exceeds the device', async () => {
    const big = path.join(dir, 'big.gz');
    fs.writeFileSync(big, zlib.gzipSync(Buffer.alloc(6 * MiB, 1)));
    const backing = path.join(dir, 'small-disk.img');
    fs.writeFileSync(backing, Buffer.alloc(4 * MiB, 0x5a));
    await withLoop(backing, (dev) => {
      const r = sparsecopy([big, dev]);
      expect(r.status).toBe(15);
      expect(linesOf(r.stderr)).toHaveLength(1);
      expect(r.stderr).toContain(dev);
    });
    expect(fs.readFileSync(backing).equals(Buffer.alloc(4 * MiB, 0x5a))).toBe(true);
  });

  it('stops with exit 15 when a gzip stream turns out larger than the device', async () => {
    const backing = path.join(dir, 'small-disk2.img');
    fs.writeFileSync(backing, Buffer.alloc(4 * MiB));
    await withLoop(backing, (dev) => {
      const r = sparsecopy(['-', dev], { input: zlib.gzipSync(Buffer.alloc(6 * MiB, 1)) });
      expect(r.status).toBe(15);
      expect(r.stderr).toMatch(/does not fit/);
    });
  });
});
