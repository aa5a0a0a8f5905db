/**
 * Digests in the same pass (--md5, --sha256, --verify-*), --pad, and the temp-and-rename rule.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SPARSECOPY, linesOf, loopUnavailableReason, makeTempDir, patternBytes, sparsecopy, tempLeftovers, withLoop, writeSparseFile } from './helpers.js';

const KiB = 1024;
let dir: string;
let src: string;
let bytes: Buffer;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(() => {
  dir = makeTempDir('sc-digest-');
  src = path.join(dir, 'src.img');
  // Holes at the start and the end, a length that is no multiple of any block.
  writeSparseFile(src, 900 * KiB + 123, [
    { offset: 100 * KiB, data: patternBytes(200 * KiB + 3, 7) },
    { offset: 700 * KiB, data: patternBytes(5000, 8) },
  ]);
  bytes = fs.readFileSync(src);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('digests', () => {
  it('--md5 and --sha256 print md5sum/sha256sum lines for the copied bytes', () => {
    const out = path.join(dir, 'out.img');
    const r = sparsecopy(['--md5', '--sha256', src, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(linesOf(r.stdout)).toEqual([`${md5(bytes)}  ${out}`, `${sha256(bytes)}  ${out}`]);
    // Agree with the tools people trust, on the file written.
    expect(execFileSync('md5sum', [out]).toString().trim()).toBe(`${md5(bytes)}  ${out}`);
    expect(execFileSync('sha256sum', [out]).toString().trim()).toBe(`${sha256(bytes)}  ${out}`);
  });

  it('hashes the uncompressed bytes of a gzip source', () => {
    const gz = path.join(dir, 'src.img.gz');
    fs.writeFileSync(gz, zlib.gzipSync(bytes));
    const out = path.join(dir, 'from-gz.img');
    const r = sparsecopy(['--md5', gz, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(linesOf(r.stdout)).toEqual([`${md5(bytes)}  ${out}`]);
  });

  it('--verify-md5 passes on a match and keeps the output', () => {
    const out = path.join(dir, 'verified.img');
    const r = sparsecopy(['--verify-md5', md5(bytes).toUpperCase(), src, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(out).equals(bytes)).toBe(true);
  });

  it('--verify-sha256 mismatch: exit 17, one line, no file under the final name, no temporary left', () => {
    const sub = makeTempDir('sc-verify-');
    try {
      const out = path.join(sub, 'never.img');
      const r = sparsecopy(['--verify-sha256', '0'.repeat(64), src, out]);
      expect(r.status).toBe(17);
      expect(linesOf(r.stderr)).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`sha256 mismatch: expected 0{64}, computed ${sha256(bytes)}`));
      expect(fs.existsSync(out)).toBe(false);
      expect(tempLeftovers(sub)).toEqual([]);
    } finally {
      fs.rmSync(sub, { recursive: true, force: true });
    }
  });

  it('a mismatch leaves an existing destination untouched', () => {
    const out = path.join(dir, 'existing.img');
    fs.writeFileSync(out, 'old contents');
    const r = sparsecopy(['--verify-md5', 'f'.repeat(32), src, out]);
    expect(r.status).toBe(17);
    expect(fs.readFileSync(out, 'utf8')).toBe('old contents');
  });

  it('rejects a malformed expected digest before doing anything', () => {
    const out = path.join(dir, 'bad-hex.img');
    const r = sparsecopy(['--verify-md5', 'xyz', src, out]);
    expect(r.status).toBe(1);
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('--pad', () => {
  it('rounds the logical size up to a multiple, with zeros, digests included', () => {
    const out = path.join(dir, 'padded.img');
    const r = sparsecopy(['--pad', '4K', '--md5', src, out]);
    expect(r.status, r.stderr).toBe(0);
    const expectedLength = Math.ceil(bytes.length / 4096) * 4096;
    const padded = Buffer.concat([bytes, Buffer.alloc(expectedLength - bytes.length)]);
    expect(fs.statSync(out).size).toBe(expectedLength);
    expect(fs.readFileSync(out).equals(padded)).toBe(true);
    expect(r.stdout.trim()).toBe(`${md5(padded)}  ${out}`);
  });

  it('adds nothing to a size that is already a multiple', () => {
    const exact = path.join(dir, 'exact.img');
    writeSparseFile(exact, 8192, [{ offset: 0, data: patternBytes(100, 1) }]);
    const out = path.join(dir, 'exact-out.img');
    const r = sparsecopy(['--pad', '4096B', '--json', exact, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).padded).toBe(0);
    expect(fs.statSync(out).size).toBe(8192);
  });

  it('pads a stream to stdout', () => {
    const piped = sparsecopyBytes(['--pad', '1K', '-', '-'], Buffer.from('abc'));
    expect(piped.length).toBe(1024);
    expect(piped.subarray(0, 3).toString()).toBe('abc');
    expect(piped.subarray(3).equals(Buffer.alloc(1021))).toBe(true);
  });
});

function sparsecopyBytes(args: string[], input: Buffer): Buffer {
  return execFileSync(process.execPath, [SPARSECOPY, '-q', ...args], { input });
}

const loopReason = loopUnavailableReason();
if (loopReason) console.warn(`skipping digest-on-device tests: ${loopReason}`);

describe.skipIf(loopReason !== null)('digests onto block devices', () => {
  it('reports a mismatch with what was written (exit 17)', async () => {
    const backing = path.join(dir, 'disk.img');
    fs.writeFileSync(backing, Buffer.alloc(1024 * KiB));
    await withLoop(backing, (dev) => {
      const r = sparsecopy(['--verify-md5', '0'.repeat(32), src, dev]);
      expect(r.status).toBe(17);
      expect(r.stderr).toMatch(/written to the device/);
      expect(fs.readFileSync(dev).subarray(0, bytes.length).equals(bytes)).toBe(true);
    });
  });
});
