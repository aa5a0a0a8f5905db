/**
 * The sparsecopy command end to end on regular files, pipes and character devices: exact bytes,
 * sparse allocation, the summary line and --json.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Piece,
  SPARSECOPY,
  allocatedBytes,
  lastLine,
  linesOf,
  useTempDir,
  parseSummary,
  patternBytes,
  sparsecopy,
  sparsecopyRaw,
  tempLeftovers,
  writeSparseFile,
} from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SUMMARY_RE = /^sparsecopy: total bytes = \d+ \(real = \d+, sparse = \d+\), nonzerodest = \d+$/;

let dir = '';
useTempDir('sc-cli-', (d) => (dir = d));

let n = 0;
const fresh = (name: string) => path.join(dir, `${name}-${++n}`);

/** Copies `src` to a new file and checks exit 0, byte equality and that no temp file is left. */
function copyNew(src: string, extra: string[] = []) {
  const dst = fresh('dst');
  const r = sparsecopy([...extra, src, dst]);
  expect(r.status, r.stderr).toBe(0);
  expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
  expect(tempLeftovers(dir)).toEqual([]);
  return { dst, r, summary: parseSummary(r.stderr) };
}

describe('sparsecopy: bytes and allocation on regular files', () => {
  it('hole at the start: copied exactly, the hole stays a hole', () => {
    const src = fresh('src');
    const data = patternBytes(8 * KiB, 3);
    writeSparseFile(src, MiB + 8 * KiB, [{ offset: MiB, data }]);
    const { dst, summary } = copyNew(src);
    expect(fs.statSync(dst).size).toBe(MiB + 8 * KiB);
    expect(allocatedBytes(dst)).toBeLessThanOrEqual(8 * KiB);
    expect(allocatedBytes(dst)).toBeGreaterThan(0);
    expect(summary).toEqual({ total: MiB + 8 * KiB, real: 8 * KiB, sparse: MiB, nonzerodest: 0 });
  });

  it('hole at the end: the length is kept without allocating the hole', () => {
    const src = fresh('src');
    writeSparseFile(src, 2 * MiB, [{ offset: 0, data: patternBytes(12 * KiB, 4) }]);
    const { dst, summary } = copyNew(src);
    expect(fs.statSync(dst).size).toBe(2 * MiB);
    expect(allocatedBytes(dst)).toBeLessThanOrEqual(12 * KiB);
    expect(summary).toEqual({ total: 2 * MiB, real: 12 * KiB, sparse: 2 * MiB - 12 * KiB, nonzerodest: 0 });
  });

  it('a 1-byte tail after a hole', () => {
    const src = fresh('src');
    const size = MiB + 1;
    writeSparseFile(src, size, [
      { offset: 0, data: patternBytes(4 * KiB, 5) },
      { offset: MiB, data: Buffer.from([0x5a]) },
    ]);
    const { dst, summary } = copyNew(src);
    expect(fs.statSync(dst).size).toBe(size);
    expect(fs.readFileSync(dst)[MiB]).toBe(0x5a);
    expect(allocatedBytes(dst)).toBeLessThanOrEqual(8 * KiB);
    expect(summary.total).toBe(size);
    expect(summary.real + summary.sparse).toBe(size);
    expect(summary.real).toBeGreaterThanOrEqual(4 * KiB + 1);
  });

  it('a 1-byte zero tail after a hole (the last byte is zero but allocated)', () => {
    const src = fresh('src');
    writeSparseFile(src, 300_001, [
      { offset: 4096, data: patternBytes(100, 6) },
      { offset: 300_000, data: Buffer.from([0]) },
    ]);
    const { dst, summary } = copyNew(src);
    expect(fs.statSync(dst).size).toBe(300_001);
    expect(summary.total).toBe(300_001);
    expect(summary.real + summary.sparse).toBe(300_001);
  });

  it.each([
    ['1 byte', 1],
    ['511 bytes', 511],
    ['513 bytes', 513],
    ['4095 bytes', 4095],
    ['100001 bytes', 100_001],
  ])('a size that is not a multiple of the block size: %s', (_label, size) => {
    const src = fresh('src');
    fs.writeFileSync(src, patternBytes(size, size));
    const { dst, summary } = copyNew(src);
    expect(fs.statSync(dst).size).toBe(size);
    expect(summary).toEqual({ total: size, real: size, sparse: 0, nonzerodest: 0 });
  });

  it('an odd-sized file of data and zeros with -b 3 (1536-byte blocks)', () => {
    const src = fresh('src');
    const b = Buffer.alloc(50_000);
    patternBytes(700, 7).copy(b, 0);
    patternBytes(10, 8).copy(b, 20_000);
    patternBytes(3, 9).copy(b, 49_997);
    fs.writeFileSync(src, b);
    const { summary } = copyNew(src, ['-b', '3']);
    expect(summary.total).toBe(50_000);
    expect(summary.real + summary.sparse).toBe(50_000);
  });

  it('a fully allocated file holding zero blocks becomes sparse', () => {
    const src = fresh('src');
    const b = Buffer.alloc(MiB); // written explicitly: every block allocated
    patternBytes(64 * KiB, 10).copy(b, 0);
    patternBytes(64 * KiB, 11).copy(b, 576 * KiB);
    fs.writeFileSync(src, b);
    expect(allocatedBytes(src)).toBeGreaterThanOrEqual(MiB);
    const { dst, summary } = copyNew(src);
    expect(allocatedBytes(dst)).toBeLessThanOrEqual(128 * KiB);
    expect(summary).toEqual({ total: MiB, real: 128 * KiB, sparse: MiB - 128 * KiB, nonzerodest: 0 });
  });

  it('a zero block inside data at --blocksize granularity, not only whole files', () => {
    const src = fresh('src');
    const b = patternBytes(64 * KiB, 12);
    b.fill(0, 16 * KiB, 32 * KiB); // 16 KiB of zeros in the middle, 4 KiB-aligned
    fs.writeFileSync(src, b);
    const { dst, summary } = copyNew(src);
    expect(summary).toEqual({ total: 64 * KiB, real: 48 * KiB, sparse: 16 * KiB, nonzerodest: 0 });
    expect(allocatedBytes(dst)).toBeLessThanOrEqual(48 * KiB);
  });

  it('an empty file', () => {
    const src = fresh('src');
    fs.writeFileSync(src, '');
    const { dst, summary } = copyNew(src);
    expect(fs.statSync(dst).size).toBe(0);
    expect(summary).toEqual({ total: 0, real: 0, sparse: 0, nonzerodest: 0 });
  });

  it('a file that is only a hole: nothing allocated, nothing read', () => {
    const src = fresh('src');
    writeSparseFile(src, 3 * MiB, []);
    const { dst, summary, r } = copyNew(src, ['--json']);
    expect(fs.statSync(dst).size).toBe(3 * MiB);
    expect(allocatedBytes(dst)).toBe(0);
    expect(summary).toEqual({ total: 3 * MiB, real: 0, sparse: 3 * MiB, nonzerodest: 0 });
    expect(JSON.parse(r.stdout).bytesRead).toBe(0);
  });

  it('replaces an existing, larger destination (truncating mode)', () => {
    const src = fresh('src');
    const dst = fresh('dst');
    fs.writeFileSync(dst, patternBytes(200 * KiB, 13));
    fs.writeFileSync(src, patternBytes(10 * KiB, 14));
    const r = sparsecopy([src, dst]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('writes through a symlink destination to the file it names, keeping the link', () => {
    const src = fresh('src');
    const target = fresh('target');
    const link = fresh('link');
    fs.writeFileSync(target, patternBytes(9000, 15));
    fs.symlinkSync(target, link);
    writeSparseFile(src, 64 * KiB, [{ offset: 32 * KiB, data: patternBytes(4 * KiB, 16) }]);
    const r = sparsecopy([src, link]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(target).equals(fs.readFileSync(src))).toBe(true);
    expect(tempLeftovers(dir)).toEqual([]);
  });
});

describe('sparsecopy: what replacing a destination keeps', () => {
  it.each([
    ['666', 0o666],
    ['600', 0o600],
    ['755', 0o755],
    ['640', 0o640],
  ])('the permission bits of a replaced file (%s)', (_label, mode) => {
    const src = fresh('src');
    fs.writeFileSync(src, patternBytes(3000, 17));
    const dst = fresh('dst');
    fs.writeFileSync(dst, patternBytes(5000, 18));
    fs.chmodSync(dst, mode);
    const r = sparsecopy([src, dst]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
    expect((fs.statSync(dst).mode & 0o7777).toString(8)).toBe(mode.toString(8));
  });

  it('a dangling symlink as destination stays a symlink', () => {
    const src = fresh('src');
    fs.writeFileSync(src, patternBytes(3000, 19));
    const target = fresh('missing-target');
    const link = fresh('dangling');
    fs.symlinkSync(target, link);
    const r = sparsecopy([src, link]);
    // Either write through the link (v0.10's open(O_CREAT) creates the target) or refuse (exit
    // 3, as cp refuses to write through a dangling link); never replace the link by a file.
    expect([0, 3], r.stderr).toContain(r.status);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    if (r.status === 0) expect(fs.readFileSync(target).equals(fs.readFileSync(src))).toBe(true);
    expect(tempLeftovers(dir)).toEqual([]);
  });
});

describe('sparsecopy: summary line and --json', () => {
  it('the summary is the last stderr line, in v0.10 format, and total = real + sparse', () => {
    const src = fresh('src');
    writeSparseFile(src, 256 * KiB, [
      { offset: 0, data: patternBytes(4 * KiB, 20) },
      { offset: 128 * KiB, data: Buffer.alloc(8 * KiB) },
    ]);
    const { r, summary } = copyNew(src);
    expect(lastLine(r.stderr)).toMatch(SUMMARY_RE);
    expect(lastLine(r.stderr)).toBe('sparsecopy: total bytes = 262144 (real = 4096, sparse = 258048), nonzerodest = 0');
    expect(summary.real + summary.sparse).toBe(summary.total);
    expect(r.stdout).toBe('');
  });

  it('--json prints one object on stdout with every counter; holes are not read', () => {
    const src = fresh('src');
    writeSparseFile(src, 1024 * MiB + 4 * KiB, [{ offset: 1024 * MiB, data: patternBytes(4 * KiB, 21) }]);
    const dst = fresh('dst');
    const r = sparsecopy(['--json', src, dst]);
    expect(r.status, r.stderr).toBe(0);
    const out = linesOf(r.stdout);
    expect(out).toHaveLength(1);
    const j = JSON.parse(out[0]!);
    for (const key of ['total', 'real', 'sparse', 'nonzerodest', 'bytesRead', 'bytesWritten', 'bytesSkipped', 'bytesChecked', 'seconds']) {
      expect(typeof j[key], key).toBe('number');
    }
    expect(j.total).toBe(1024 * MiB + 4 * KiB);
    expect(j.real).toBe(4 * KiB);
    expect(j.sparse).toBe(1024 * MiB);
    expect(j.nonzerodest).toBe(0);
    expect(j.bytesRead).toBe(4 * KiB);
    expect(j.bytesWritten).toBe(4 * KiB);
    expect(j.bytesSkipped).toBe(1024 * MiB);
    expect(j.bytesChecked).toBe(0);
    expect(j.seconds).toBeGreaterThanOrEqual(0);
    // The summary line agrees with the JSON.
    expect(parseSummary(r.stderr)).toEqual({ total: j.total, real: j.real, sparse: j.sparse, nonzerodest: j.nonzerodest });
    expect(allocatedBytes(dst)).toBeLessThanOrEqual(4 * KiB);
    expect(fs.statSync(dst).size).toBe(1024 * MiB + 4 * KiB);
  });

  it('-q prints nothing at all; --json still prints its object', () => {
    const src = fresh('src');
    fs.writeFileSync(src, patternBytes(5000, 22));
    const q = sparsecopy(['-q', src, fresh('dst')]);
    expect(q.status).toBe(0);
    expect(q.stderr).toBe('');
    expect(q.stdout).toBe('');
    const long = sparsecopy(['--quiet', '--json', src, fresh('dst')]);
    expect(long.status).toBe(0);
    expect(long.stderr).toBe('');
    expect(JSON.parse(long.stdout).total).toBe(5000);
  });
});

describe('sparsecopy: pipes, stdin, stdout and character devices', () => {
  it('reads a pipe on stdin ("-") and makes the destination sparse', () => {
    const input = Buffer.alloc(512 * KiB);
    patternBytes(4 * KiB, 30).copy(input, 0);
    patternBytes(4 * KiB, 31).copy(input, 256 * KiB);
    patternBytes(333, 32).copy(input, input.length - 333);
    const dst = fresh('dst');
    const r = sparsecopy(['-', dst], { input });
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(dst).equals(input)).toBe(true);
    expect(allocatedBytes(dst)).toBeLessThanOrEqual(16 * KiB);
    const s = parseSummary(r.stderr);
    expect(s.total).toBe(input.length);
    expect(s.real + s.sparse).toBe(input.length);
    expect(s.sparse).toBeGreaterThanOrEqual(input.length - 16 * KiB);
  });

  it('reads stdin redirected from a regular file, from its current offset', () => {
    const src = fresh('src');
    const data = Buffer.concat([patternBytes(6000, 41), Buffer.alloc(64 * KiB), patternBytes(10, 42)]);
    fs.writeFileSync(src, data);
    const run = (skip: number) => {
      const fd = fs.openSync(src, 'r');
      try {
        if (skip > 0) fs.readSync(fd, Buffer.alloc(skip), 0, skip, null); // moves the file offset
        const dst = fresh('dst');
        const r = spawnSync(process.execPath, [SPARSECOPY, '-', dst], { stdio: [fd, 'pipe', 'pipe'] });
        expect(r.status, r.stderr.toString()).toBe(0);
        expect(fs.readFileSync(dst).equals(data.subarray(skip))).toBe(true);
        expect(parseSummary(r.stderr.toString()).total).toBe(data.length - skip);
      } finally {
        fs.closeSync(fd);
      }
    };
    run(0);
    run(1000);
  });

  it('reads an empty pipe', () => {
    const dst = fresh('dst');
    const r = sparsecopy(['-', dst], { input: Buffer.alloc(0) });
    expect(r.status, r.stderr).toBe(0);
    expect(fs.statSync(dst).size).toBe(0);
    expect(parseSummary(r.stderr).total).toBe(0);
  });

  it('copies /dev/zero with -m into a file with no allocated block', () => {
    const dst = fresh('dst');
    const r = sparsecopy(['-m', '3M', '/dev/zero', dst]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.statSync(dst).size).toBe(3 * MiB);
    expect(allocatedBytes(dst)).toBe(0);
    expect(parseSummary(r.stderr)).toEqual({ total: 3 * MiB, real: 0, sparse: 3 * MiB, nonzerodest: 0 });
  });

  it('/dev/null gives an empty file; -f2G /dev/null gives a 2 GiB file with nothing allocated', () => {
    const empty = fresh('dst');
    const r1 = sparsecopy(['/dev/null', empty]);
    expect(r1.status, r1.stderr).toBe(0);
    expect(fs.statSync(empty).size).toBe(0);
    const big = fresh('dst');
    const r2 = sparsecopy(['-f2G', '/dev/null', big]);
    expect(r2.status, r2.stderr).toBe(0);
    expect(fs.statSync(big).size).toBe(2 * 1024 * MiB);
    expect(allocatedBytes(big)).toBe(0);
    expect(parseSummary(r2.stderr).total).toBe(0);
  });

  it('writes to stdout ("-"): every byte, zeros and holes included; --json goes to stderr', () => {
    const src = fresh('src');
    writeSparseFile(src, 200_000, [
      { offset: 70_000, data: patternBytes(10_000, 33) },
      { offset: 199_990, data: patternBytes(10, 34) },
    ]);
    const r = sparsecopyRaw(['--json', src, '-']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.equals(fs.readFileSync(src))).toBe(true);
    const lines = linesOf(r.stderr);
    expect(lines[lines.length - 1]).toMatch(SUMMARY_RE);
    const j = JSON.parse(lines.find((l) => l.startsWith('{'))!);
    expect(j.total).toBe(200_000);
    expect(j.real).toBe(200_000); // a stream gets the zeros written
  });

  it('pipes stdin to stdout, with -m', () => {
    const input = Buffer.concat([patternBytes(3000, 35), Buffer.alloc(5000), patternBytes(3000, 36)]);
    const r = sparsecopyRaw(['-m', '9000B', '-', '-'], { input });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.equals(input.subarray(0, 9000))).toBe(true);
    expect(parseSummary(r.stderr).total).toBe(9000);
  });

  it('writes to a named pipe (FIFO) destination: every byte, in order', async () => {
    const src = fresh('src');
    writeSparseFile(src, 300_000, [
      { offset: 0, data: patternBytes(5000, 39) },
      { offset: 200_000, data: patternBytes(7, 40) },
    ]);
    const fifo = fresh('fifo');
    execFileSync('mkfifo', [fifo]);
    const out = fresh('out');
    // The reader writes to a file, so nothing waits on this (blocked) process's event loop.
    const reader = spawn('sh', ['-c', 'cat "$1" > "$2"', 'sh', fifo, out], { stdio: 'ignore' });
    const done = new Promise<number | null>((resolve) => reader.on('exit', resolve));
    const r = sparsecopy([src, fifo]);
    expect(r.status, r.stderr).toBe(0);
    expect(await done).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(src))).toBe(true);
    expect(fs.statSync(fifo).isFIFO()).toBe(true);
    expect(parseSummary(r.stderr).total).toBe(300_000);
  });

  it('writes to a character device destination (/dev/null)', () => {
    const src = fresh('src');
    fs.writeFileSync(src, patternBytes(10_000, 37));
    const r = sparsecopy([src, '/dev/null']);
    expect(r.status, r.stderr).toBe(0);
    expect(parseSummary(r.stderr)).toEqual({ total: 10_000, real: 10_000, sparse: 0, nonzerodest: 0 });
  });

  it('refuses --seek on a stream destination (exit 4)', () => {
    const src = fresh('src');
    fs.writeFileSync(src, patternBytes(1000, 38));
    const r = sparsecopyRaw(['-s', '1', src, '-']);
    expect(r.status).toBe(4);
    expect(r.stdout.length).toBe(0);
    expect(linesOf(r.stderr)).toHaveLength(1);
  });
});
