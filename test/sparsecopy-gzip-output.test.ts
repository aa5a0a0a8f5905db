/**
 * Compressed output (issue 3): DEST.gz / --gzip[=LEVEL] / stdout, the precomputed zero-run path,
 * round trips, and temp-and-rename when the copy fails or is interrupted.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SPARSECOPY, makeTempDir, patternBytes, sparsecopy, sparsecopyRaw, tempLeftovers, writeSparseFile } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
let dir: string;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gunzip = (file: string): Buffer => execFileSync('gzip', ['-dc', file], { maxBuffer: 256 << 20 });
const gzipTest = (file: string): number | null => spawnSync('gzip', ['-t', file]).status;

beforeAll(() => {
  dir = makeTempDir('sc-gzout-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Text-like data: compressible, so the output size says whether holes were deflated. */
function textBytes(length: number, seed: number): Buffer {
  const words = ['sparse', 'image', 'block', 'device', 'extent', 'hole', 'gzip', 'deflate', `n${seed}`];
  let s = '';
  for (let i = 0; s.length < length; i++) s += `${words[(i * 7 + seed) % words.length]} ${i % 97}\n`;
  return Buffer.from(s.slice(0, length));
}

const shapes: [string, number, { offset: number; data: Buffer }[]][] = [
  ['hole at the start', 3 * MiB + 17, [{ offset: 2 * MiB + 3, data: textBytes(MiB, 1) }]],
  ['hole in the middle', 5 * MiB + 1, [
    { offset: 0, data: textBytes(700 * KiB + 1, 2) },
    { offset: 4 * MiB + 999, data: patternBytes(300 * KiB, 3) },
  ]],
  ['hole at the end', 4 * MiB + 4095, [{ offset: 0, data: textBytes(1500 * KiB + 7, 4) }]],
  ['holes everywhere, odd lengths', 9 * MiB + 12345, [
    { offset: 65537, data: textBytes(3, 5) },
    { offset: 1 * MiB, data: patternBytes(1, 6) },
    { offset: 3 * MiB + 7, data: textBytes(2 * MiB + 5, 7) },
    { offset: 8 * MiB + 100_000, data: patternBytes(10_000, 8) },
  ]],
  ['only a hole', 7 * MiB + 3, []],
  ['empty', 0, []],
];

describe('gzip output', () => {
  for (const [name, size, pieces] of shapes) {
    it(`${name}: passes gzip -t and decompresses to the same bytes`, () => {
      const src = path.join(dir, `${name.replace(/\W+/g, '-')}.img`);
      writeSparseFile(src, size, pieces);
      const out = `${src}.gz`;
      const r = sparsecopy(['--json', src, out]);
      expect(r.status, r.stderr).toBe(0);
      expect(gzipTest(out)).toBe(0);
      const back = gunzip(out);
      expect(back.length).toBe(size);
      expect(sha256(back)).toBe(sha256(fs.readFileSync(src)));
      const summary = JSON.parse(r.stdout) as { compressed: boolean; bytesWritten: number };
      expect(summary.compressed).toBe(true);
      expect(summary.bytesWritten).toBe(fs.statSync(out).size);
    });
  }

  it('round trip file -> .gz -> file is identical (cmp), and the copy back is sparse', () => {
    const src = path.join(dir, 'round.img');
    writeSparseFile(src, 6 * MiB + 333, [
      { offset: 4096, data: textBytes(MiB, 9) },
      { offset: 5 * MiB, data: patternBytes(100 * KiB, 10) },
    ]);
    const gz = path.join(dir, 'round.img.gz');
    const back = path.join(dir, 'round-back.img');
    expect(sparsecopy([src, gz]).status).toBe(0);
    expect(sparsecopy([gz, back]).status).toBe(0);
    expect(spawnSync('cmp', [src, back]).status).toBe(0);
    expect(fs.statSync(back).blocks * 512).toBeLessThan(2 * MiB);
  });

  it('does not deflate holes: 4.5 GiB of holes cost a few MB, and decompress (CRC, length mod 2^32) right', async () => {
    const src = path.join(dir, 'big-sparse.img');
    const dataOffset = 3 * 1024 * MiB;
    const data = patternBytes(MiB, 11);
    const size = 4608 * MiB + 5; // past 4 GiB: the trailer's length wraps
    writeSparseFile(src, size, [{ offset: dataOffset, data }]);
    const gz = path.join(dir, 'big-sparse.img.gz');
    const r = sparsecopy([src, gz]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.statSync(gz).size).toBeLessThan(10 * MiB);
    // zlib's own inflater checks every CRC and the length; the bytes are checked here as they pass.
    let offset = 0;
    let mismatches = 0;
    const zeros = Buffer.alloc(1 << 20);
    await new Promise<void>((resolve, reject) => {
      const stream = fs.createReadStream(gz).pipe(zlib.createGunzip({ chunkSize: 1 << 20 }));
      stream.on('data', (chunk: Buffer) => {
        for (let i = 0; i < chunk.length; ) {
          const at = offset + i;
          const inData = at >= dataOffset && at < dataOffset + data.length;
          const end = inData ? Math.min(chunk.length, i + dataOffset + data.length - at) : Math.min(chunk.length, at < dataOffset ? i + dataOffset - at : chunk.length);
          const expected = inData ? data.subarray(at - dataOffset, at - dataOffset + end - i) : zeros.subarray(0, end - i);
          if (!chunk.subarray(i, end).equals(expected)) mismatches++;
          i = end;
        }
        offset += chunk.length;
      });
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    expect(offset).toBe(size);
    expect(mismatches).toBe(0);
  }, 60_000);

  it('--gzip writes gzip to a name without .gz, and --gzip=LEVEL changes the level', () => {
    const src = path.join(dir, 'levels.img');
    writeSparseFile(src, 2 * MiB, [{ offset: 0, data: textBytes(2 * MiB, 12) }]);
    const fast = path.join(dir, 'fast.out');
    const best = path.join(dir, 'best.out');
    expect(sparsecopy(['--gzip=1', src, fast]).status).toBe(0);
    expect(sparsecopy(['--gzip=9', src, best]).status).toBe(0);
    expect(gunzip(fast).equals(fs.readFileSync(src))).toBe(true);
    expect(gunzip(best).equals(fs.readFileSync(src))).toBe(true);
    expect(fs.statSync(best).size).toBeLessThan(fs.statSync(fast).size);
    expect(sparsecopy(['--gzip=10', src, path.join(dir, 'bad.out')]).status).toBe(1);
  });

  it('writes gzip to stdout with --gzip and -', () => {
    const src = path.join(dir, 'stdout.img');
    writeSparseFile(src, 3 * MiB, [{ offset: MiB, data: textBytes(100 * KiB, 13) }]);
    const r = sparsecopyRaw(['-q', '--gzip', src, '-']);
    expect(r.status, r.stderr).toBe(0);
    const out = path.join(dir, 'stdout.gz');
    fs.writeFileSync(out, r.stdout);
    expect(gzipTest(out)).toBe(0);
    expect(gunzip(out).equals(fs.readFileSync(src))).toBe(true);
  });

  it('is as small as gzip -6 for ordinary data (dictionary carried across pieces)', () => {
    const src = path.join(dir, 'text.img');
    fs.writeFileSync(src, textBytes(6 * MiB, 14));
    const ours = path.join(dir, 'text.img.gz');
    expect(sparsecopy([src, ours]).status).toBe(0);
    const theirs = execFileSync('gzip', ['-6', '-c', src], { maxBuffer: 64 << 20 });
    expect(fs.statSync(ours).size).toBeLessThan(theirs.length * 1.03);
  });

  it('refuses --seek, --overlay and --finalsize with gzip output', () => {
    const src = path.join(dir, 'levels.img');
    for (const opt of [['-s', '1'], ['-o'], ['-f', '1M']]) {
      const out = path.join(dir, 'refused.gz');
      const r = sparsecopy([...opt, src, out]);
      expect(r.status).toBe(1);
      expect(fs.existsSync(out)).toBe(false);
    }
  });
});

describe('no half-written .gz under its final name', () => {
  it('SIGINT while writing: exit 130, no file, no temporary', async () => {
    const sub = makeTempDir('sc-gzint-');
    try {
      const out = path.join(sub, 'interrupted.img.gz');
      const child = spawn(process.execPath, [SPARSECOPY, '-', out], { stdio: ['pipe', 'pipe', 'pipe'] });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      child.stdin.on('error', () => undefined);
      child.stdin.write(textBytes(256 * KiB, 15));
      for (let i = 0; i < 1000 && tempLeftovers(sub).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(tempLeftovers(sub)).toHaveLength(1);
      child.kill('SIGINT');
      const more = textBytes(256 * KiB, 16);
      const feeder = setInterval(() => {
        if (child.stdin.writable && child.stdin.writableLength < 1 << 20) child.stdin.write(more);
      }, 20);
      const status = await exited.finally(() => clearInterval(feeder));
      child.stdin.destroy();
      expect(status).toBe(130);
      expect(fs.existsSync(out)).toBe(false);
      expect(tempLeftovers(sub)).toEqual([]);
    } finally {
      fs.rmSync(sub, { recursive: true, force: true });
    }
  });

  it('a corrupt gzip source into DEST.gz leaves no DEST.gz', () => {
    const src = path.join(dir, 'corrupt-src.gz');
    const good = execFileSync('gzip', ['-c'], { input: textBytes(300 * KiB, 17) });
    fs.writeFileSync(src, good.subarray(0, good.length - 20));
    const out = path.join(dir, 'from-corrupt.img.gz');
    const r = sparsecopy([src, out]);
    expect(r.status).toBe(18);
    expect(fs.existsSync(out)).toBe(false);
  });
});
