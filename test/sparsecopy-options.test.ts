/**
 * Each sparsecopy option, with an assertion that fails when the option is ignored, and the size
 * syntax (blocks of -b by default, suffixes B K M G T P E, -b itself in 512-byte blocks).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ROOT,
  SPARSECOPY,
  allocatedBytes,
  lastLine,
  linesOf,
  useTempDir,
  parseSummary,
  patternBytes,
  snapshot,
  sparsecopy,
  tempLeftovers,
  writeSparseFile,
} from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let dir = '';
useTempDir('sc-opt-', (d) => (dir = d));

let n = 0;
const fresh = (name: string) => path.join(dir, `${name}-${++n}`);

function file(bytes: Buffer): string {
  const p = fresh('src');
  fs.writeFileSync(p, bytes);
  return p;
}

function ok(args: string[], input?: Buffer) {
  const r = sparsecopy(args, input === undefined ? undefined : { input });
  expect(r.status, r.stderr).toBe(0);
  return { r, summary: parseSummary(r.stderr) };
}

const zeros = (n: number) => Buffer.alloc(n);

describe('-b/--blocksize', () => {
  // Overlaying an existing all-zero (allocated) destination: nothing is known zero, so the zero
  // blocks show exactly at the -b granularity in `real`.
  const source = () => {
    const b = zeros(8 * KiB);
    b[0] = 1;
    return file(b);
  };
  const overlayReal = (blockArgs: string[]) => {
    const src = source();
    const dst = fresh('dst');
    fs.writeFileSync(dst, zeros(16 * KiB));
    const { summary } = ok(['-o', ...blockArgs, src, dst]);
    const expected = Buffer.concat([fs.readFileSync(src), zeros(8 * KiB)]);
    expect(fs.readFileSync(dst).equals(expected)).toBe(true);
    expect(summary.total).toBe(8 * KiB);
    expect(summary.nonzerodest).toBe(0);
    return summary.real;
  };

  it.each([
    [[], 512],
    [['-b', '1'], 512],
    [['-b', '4'], 2048],
    [['-b', '8'], 4096],
    [['--blocksize', '8'], 4096],
    [['-b', '4096B'], 4096],
    [['-b', '4K'], 4096],
    [['-b', '16'], 8192],
    // A bare 4096 is 4096 blocks of 512 bytes (2 MiB), not 4096 bytes: the whole file is one block.
    [['-b', '4096'], 8192],
  ])('%j: the data block is %d bytes', (args, expected) => {
    expect(overlayReal(args)).toBe(expected);
  });

  it('-b 128 (64 KiB) writes a 64 KiB block holding one byte, where the default makes holes', () => {
    const b = zeros(128 * KiB);
    b[0] = 1;
    const src = file(b);
    const small = ok([src, fresh('dst')]);
    expect(small.summary.real).toBe(512); // the zeros after byte 512 cover whole 4 KiB units: a hole
    const dst = fresh('dst');
    const big = ok(['-b', '128', src, dst]);
    expect(big.summary).toEqual({ total: 128 * KiB, real: 64 * KiB, sparse: 64 * KiB, nonzerodest: 0 });
    expect(fs.readFileSync(dst).equals(b)).toBe(true);
    expect(ok(['-b', '64K', src, fresh('dst')]).summary.real).toBe(64 * KiB);
  });

  it('-b sets the unit of bare -s, -m and -f values', () => {
    const src = file(patternBytes(20 * KiB, 1));
    const dst = fresh('dst');
    const { summary } = ok(['-b', '8', '-s', '2', '-m', '3', '-f', '6', src, dst]);
    expect(summary.total).toBe(12 * KiB);
    const out = fs.readFileSync(dst);
    expect(out.length).toBe(24 * KiB);
    expect(out.subarray(0, 8 * KiB).equals(zeros(8 * KiB))).toBe(true);
    expect(out.subarray(8 * KiB, 20 * KiB).equals(fs.readFileSync(src).subarray(0, 12 * KiB))).toBe(true);
    expect(out.subarray(20 * KiB).equals(zeros(4 * KiB))).toBe(true);
  });
});

describe('-m/--max (and --maxwrite)', () => {
  const data = patternBytes(40_000, 2);
  it.each([
    [['-m', '10'], 5120],
    [['--max', '10'], 5120],
    [['-m', '3K'], 3072],
    [['-m', '3k'], 3072],
    [['-m', '100B'], 100],
    [['-m', '1'], 512],
    [['-m', '0'], 0],
    [['--maxwrite', '7'], 3584],
    [['-b', '8', '-m', '2'], 8192],
    [['-m', '1M'], 40_000], // more than the source: the whole source
  ])('%j copies %d bytes', (args, bytes) => {
    const src = file(data);
    const dst = fresh('dst');
    const { summary } = ok([...args, src, dst]);
    expect(fs.readFileSync(dst).equals(data.subarray(0, bytes))).toBe(true);
    expect(summary.total).toBe(bytes);
  });

  it('limits a pipe', () => {
    const dst = fresh('dst');
    const { summary } = ok(['-m', '9', '-', dst], data);
    expect(fs.readFileSync(dst).equals(data.subarray(0, 4608))).toBe(true);
    expect(summary.total).toBe(4608);
  });
});

describe('-e/--errorremainder', () => {
  it('a regular file larger than --max: exit 12 before anything is written', () => {
    const src = file(patternBytes(10_000, 3));
    const dst = fresh('dst');
    fs.writeFileSync(dst, patternBytes(3000, 4));
    const before = snapshot(dst);
    const r = sparsecopy(['-e', '-m', '5000B', src, dst]);
    expect(r.status).toBe(12);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain(src);
    expect(snapshot(dst)).toEqual(before);
    expect(tempLeftovers(dir)).toEqual([]);
    // With --overlay too: the destination is untouched.
    const r2 = sparsecopy(['-o', '--errorremainder', '-m', '5000B', src, dst]);
    expect(r2.status).toBe(12);
    expect(snapshot(dst)).toEqual(before);
    // And a new destination is not created.
    const missing = fresh('dst');
    expect(sparsecopy(['-e', '-m', '1', src, missing]).status).toBe(12);
    expect(fs.existsSync(missing)).toBe(false);
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('a regular file of exactly --max bytes, or -e without -m: copied', () => {
    const data = patternBytes(10_000, 5);
    const src = file(data);
    const dst = fresh('dst');
    ok(['-e', '-m', '10000B', src, dst]);
    expect(fs.readFileSync(dst).equals(data)).toBe(true);
    const dst2 = fresh('dst');
    ok(['-e', src, dst2]);
    expect(fs.readFileSync(dst2).equals(data)).toBe(true);
  });

  it('a pipe with more than --max: exit 12 at the end, the old destination left as it was', () => {
    const data = patternBytes(10_000, 6);
    const dst = fresh('dst');
    fs.writeFileSync(dst, patternBytes(100, 7));
    const before = snapshot(dst);
    const r = sparsecopy(['-e', '-m', '5000B', '-', dst], { input: data });
    expect(r.status).toBe(12);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expect(snapshot(dst)).toEqual(before);
    expect(tempLeftovers(dir)).toEqual([]);
    // Exactly --max bytes in the pipe: fine.
    ok(['-e', '-m', '10000B', '-', dst], data);
    expect(fs.readFileSync(dst).equals(data)).toBe(true);
  });

  it('/dev/zero with -m and -e: exit 12', () => {
    const dst = fresh('dst');
    const r = sparsecopy(['-e', '-m', '1M', '/dev/zero', dst]);
    expect(r.status).toBe(12);
    expect(fs.existsSync(dst)).toBe(false);
    expect(tempLeftovers(dir)).toEqual([]);
  });
});

describe('-s/--seek', () => {
  const data = patternBytes(5000, 8);
  it.each([
    [['-s', '4'], 2048],
    [['--seek', '4'], 2048],
    [['-s', '3K'], 3072],
    [['-s', '100B'], 100],
    [['-b', '8', '-s', '2'], 8192],
  ])('%j starts the copy at byte %d of a new file', (args, at) => {
    const src = file(data);
    const dst = fresh('dst');
    const { summary } = ok([...args, src, dst]);
    expect(fs.readFileSync(dst).equals(Buffer.concat([zeros(at), data]))).toBe(true);
    expect(summary.total).toBe(data.length);
  });

  it('-s 1M leaves a hole before the data', () => {
    const src = file(data);
    const dst = fresh('dst');
    ok(['-s', '1M', src, dst]);
    expect(fs.statSync(dst).size).toBe(MiB + data.length);
    expect(allocatedBytes(dst)).toBeLessThanOrEqual(8 * KiB);
    expect(fs.readFileSync(dst).subarray(MiB).equals(data)).toBe(true);
  });

  it('with --overlay, writes in the middle of an existing file and keeps the rest', () => {
    const old = patternBytes(20_000, 9);
    const src = file(data);
    const dst = fresh('dst');
    fs.writeFileSync(dst, old);
    ok(['-o', '-s', '10000B', src, dst]);
    const expected = Buffer.from(old);
    data.copy(expected, 10_000);
    expect(fs.readFileSync(dst).equals(expected)).toBe(true);
  });

  it('with --overlay past the old end: the gap reads as zeros', () => {
    const old = patternBytes(10 * KiB, 10);
    const src = file(data);
    const dst = fresh('dst');
    fs.writeFileSync(dst, old);
    ok(['-o', '-s', '20K', src, dst]);
    expect(fs.readFileSync(dst).equals(Buffer.concat([old, zeros(10 * KiB), data]))).toBe(true);
  });
});

describe('-f/--finalsize', () => {
  const data = patternBytes(10 * KiB, 11);
  it('grows the file with a hole', () => {
    const src = file(data);
    const dst = fresh('dst');
    ok(['-f', '1M', src, dst]);
    expect(fs.statSync(dst).size).toBe(MiB);
    expect(allocatedBytes(dst)).toBeLessThanOrEqual(12 * KiB);
    const out = fs.readFileSync(dst);
    expect(out.subarray(0, data.length).equals(data)).toBe(true);
    expect(out.subarray(data.length).equals(zeros(MiB - data.length))).toBe(true);
  });

  it.each([
    [['-f', '1K'], 1024],
    [['--finalsize', '1K'], 1024],
    [['-f', '4'], 2048],
    [['-f', '0'], 0],
    [['-b', '8', '-f', '3'], 12 * KiB],
    [['-f', '12345B'], 12345],
  ])('%j sets the length to %d bytes', (args, size) => {
    const src = file(data);
    const dst = fresh('dst');
    ok([...args, src, dst]);
    const out = fs.readFileSync(dst);
    expect(out.length).toBe(size);
    expect(out.equals(Buffer.concat([data, zeros(Math.max(0, size - data.length))]).subarray(0, size))).toBe(true);
  });

  it('with --overlay: keeps the longer old length without -f, shrinks with -f', () => {
    const old = patternBytes(100 * KiB, 12);
    const src = file(data);
    const dst = fresh('dst');
    fs.writeFileSync(dst, old);
    ok(['-o', src, dst]);
    const expected = Buffer.from(old);
    data.copy(expected, 0);
    expect(fs.readFileSync(dst).equals(expected)).toBe(true);
    ok(['-o', '-f', '50K', src, dst]);
    expect(fs.readFileSync(dst).equals(expected.subarray(0, 50 * KiB))).toBe(true);
  });
});

describe('-c/--check', () => {
  const data = patternBytes(4 * KiB, 13);

  it('refuses (exit 11) when the first destination block holds data; nothing written', () => {
    const src = file(data);
    const dst = fresh('dst');
    fs.writeFileSync(dst, Buffer.concat([Buffer.from([0, 0, 7]), zeros(20 * KiB)]));
    const before = snapshot(dst);
    const r = sparsecopy(['-o', '-c', src, dst]);
    expect(r.status).toBe(11);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain(dst);
    expect(snapshot(dst)).toEqual(before);
    expect(sparsecopy(['-o', '--check', src, dst]).status).toBe(11);
    // Without -c the same copy goes ahead.
    ok(['-o', src, dst]);
    expect(fs.readFileSync(dst).subarray(0, data.length).equals(data)).toBe(true);
  });

  it('checks the block at the seek position, of the -b size', () => {
    const src = file(data);
    const dst = fresh('dst');
    const old = zeros(64 * KiB);
    old[0] = 9; // data in block 0
    old[32 * KiB + 600] = 9; // data in the second 512-byte block at 32 KiB
    fs.writeFileSync(dst, old);
    // At 16 KiB the destination is zero: accepted.
    ok(['-o', '-c', '-s', '16K', src, dst]);
    expect(fs.readFileSync(dst).subarray(16 * KiB, 20 * KiB).equals(data)).toBe(true);
    // At 32 KiB, the first 512 bytes are zero: accepted with the default block...
    const dst2 = fresh('dst');
    fs.writeFileSync(dst2, old);
    ok(['-o', '-c', '-s', '32K', src, dst2]);
    // ... but a 1024-byte block (-b 2) reaches the data: refused.
    const dst3 = fresh('dst');
    fs.writeFileSync(dst3, old);
    const before = snapshot(dst3);
    const r = sparsecopy(['-o', '-c', '-b', '2', '-s', '32K', src, dst3]);
    expect(r.status).toBe(11);
    expect(snapshot(dst3)).toEqual(before);
  });

  it('accepts a new destination', () => {
    const src = file(data);
    const dst = fresh('dst');
    ok(['-c', src, dst]);
    expect(fs.readFileSync(dst).equals(data)).toBe(true);
  });
});

describe('-p/--progress', () => {
  const scriptAvailable = spawnSync('script', ['--version']).status === 0;

  it('draws a progress bar on a terminal, and only with -p', (ctx) => {
    if (!scriptAvailable) {
      console.warn('skipping: util-linux `script` (needed to give sparsecopy a terminal) is not installed');
      ctx.skip();
    }
    const src = file(patternBytes(300 * KiB, 14));
    const run = (extra: string) =>
      execFileSync('script', ['-qec', `${process.execPath} ${SPARSECOPY} ${extra} ${src} ${fresh('dst')}`, '/dev/null']).toString();
    const withBar = run('-p');
    expect(withBar).toMatch(/\|=+\| 100\.0% /);
    expect(withBar).toContain('sparsecopy: total bytes = 307200');
    const withLong = run('--progress');
    expect(withLong).toMatch(/100\.0%/);
    const without = run('');
    expect(without).not.toMatch(/%/);
    expect(without).toContain('sparsecopy: total bytes = 307200');
  });

  it('is accepted without a terminal, and the summary stays the last line', () => {
    const src = file(patternBytes(3000, 15));
    const { r } = ok(['-p', src, fresh('dst')]);
    expect(lastLine(r.stderr)).toBe('sparsecopy: total bytes = 3000 (real = 3000, sparse = 0), nonzerodest = 0');
  });
});

describe('-y/--syncevery', () => {
  const straceAvailable = spawnSync('strace', ['-V']).status === 0;

  it('parses its size and copies', () => {
    const data = patternBytes(30_000, 16);
    const src = file(data);
    const dst = fresh('dst');
    ok(['-y', '8', src, dst]);
    expect(fs.readFileSync(dst).equals(data)).toBe(true);
    ok(['--syncevery', '4K', src, dst]);
    const bad = sparsecopy(['-y', '4Q', src, fresh('dst')]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('sync');
  });

  it('issues fdatasync calls (seen with strace)', (ctx) => {
    if (!straceAvailable) {
      console.warn('skipping: strace is not installed (the library-level -y test still runs)');
      ctx.skip();
    }
    const pieces = [0, 1, 2, 3].map((i) => ({ offset: i * 64 * KiB, data: patternBytes(8 * KiB, 20 + i) }));
    const src = fresh('src');
    writeSparseFile(src, 256 * KiB, pieces);
    const count = (extra: string[]) => {
      const r = spawnSync('strace', ['-f', '-e', 'trace=fdatasync', '-qq', process.execPath, SPARSECOPY, ...extra, src, fresh('dst')]);
      expect(r.status, r.stderr.toString()).toBe(0);
      return (r.stderr.toString().match(/fdatasync\(/g) ?? []).length;
    };
    expect(count([])).toBe(0);
    expect(count(['-y', '4K'])).toBeGreaterThanOrEqual(4);
  });
});

describe('-h/--help and --version', () => {
  it('-h prints the usage with every option and exits 0', () => {
    for (const flag of ['-h', '--help']) {
      const r = sparsecopy([flag]);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('Usage: sparsecopy [OPTIONS] SOURCE DEST');
      for (const opt of ['--overlay', '--nocheck', '--quiet', '--max', '--errorremainder', '--blocksize', '--seek', '--finalsize', '--check', '--progress', '--syncevery', '--help', '--json', '--version', '--force']) {
        expect(r.stdout).toContain(opt);
      }
      for (const short of ['-o', '-n', '-q', '-m', '-e', '-b', '-s', '-f', '-c', '-p', '-y']) {
        expect(r.stdout).toMatch(new RegExp(`(^|\\s)${short},`, 'm'));
      }
    }
  });

  it('--version prints the package version', () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const r = sparsecopy(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });
});

describe('usage errors (exit 1, one line)', () => {
  let src: string;
  beforeAll(() => {
    src = file(patternBytes(1000, 17));
  });

  it.each([
    ['-m', '12x'],
    ['-m', 'K'],
    ['-m', '-5'],
    ['-m', '1.5M'],
    ['-m', ''],
    ['-b', 'abc'],
    ['-b', '0'],
    ['-b', '0K'],
    ['-s', '1Z'],
    ['-f', 'ten'],
    ['-y', '3 blocks'],
    ['-m', '99999999999E'],
  ])('%s %j', (opt, value) => {
    const dst = fresh('dst');
    const r = sparsecopy([`${opt}`, value, src, dst]);
    expect(r.status).toBe(1);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^sparsecopy: /);
    if (value !== '' && value !== '0' && value !== '0K') expect(r.stderr).toContain(value);
    expect(fs.existsSync(dst)).toBe(false);
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('an unknown option, or a missing DEST', () => {
    const r1 = sparsecopy(['--bogus', src, fresh('dst')]);
    expect(r1.status).toBe(1);
    expect(r1.stderr).toContain('--bogus');
    const r2 = sparsecopy([src]);
    expect(r2.status).toBe(1);
    const r3 = sparsecopy([]);
    expect(r3.status).toBe(1);
  });

  it('attached values (-f2G, -m10) and suffix case and "KiB" spellings', () => {
    const data = patternBytes(4000, 18);
    const s = file(data);
    const d1 = fresh('dst');
    ok(['-m3', s, d1]);
    expect(fs.statSync(d1).size).toBe(1536);
    const d2 = fresh('dst');
    ok(['-m', '2KiB', s, d2]);
    expect(fs.statSync(d2).size).toBe(2048);
    const d3 = fresh('dst');
    ok(['-m', '2kb', s, d3]);
    expect(fs.statSync(d3).size).toBe(2048);
  });
});
