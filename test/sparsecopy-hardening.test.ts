/**
 * Messages that say what happened and what to do: a replacement that does not fit beside the old
 * file (ENOSPC) says the old file is kept and when -o would do; a pipe closed early names the first
 * byte it did not take; gzip errors name the same compressed offset from a file and from stdin.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { SPARSECOPY, linesOf, patternBytes, sparsecopy, tempLeftovers, useTempDir } from './helpers.js';

const MiB = 1 << 20;
let dir = '';
useTempDir('sc-hard-', (d) => (dir = d));
let n = 0;
const fresh = (name: string): string => path.join(dir, `${name}-${++n}`);

const noMount = process.getuid?.() === 0 ? null : 'not root: cannot mount a small tmpfs';
if (noMount) console.warn(`skipping the full-filesystem cases: ${noMount}`);

describe.skipIf(noMount !== null)('replacing a file on a filesystem without room for two copies', () => {
  it('exit 9 saying the old file is kept and that -o writes in place; -o then succeeds with the same bytes', () => {
    const mnt = fs.mkdtempSync(path.join(dir, 'mnt-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=100m', 'tmpfs', mnt]);
    try {
      const oldBytes = patternBytes(60 * MiB, 1);
      const dst = path.join(mnt, 'disk.img');
      fs.writeFileSync(dst, oldBytes);
      const next = patternBytes(60 * MiB, 2);
      const src = fresh('src');
      fs.writeFileSync(src, next);
      const r = sparsecopy([src, dst]);
      expect(r.status, r.stderr).toBe(9);
      const lines = linesOf(r.stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^sparsecopy: ${dst}: write failed at bytes \\d+\\.\\.\\d+: no space left on device; `));
      expect(lines[0]).toContain('the old file is kept');
      expect(lines[0]).toContain('room for both');
      expect(lines[0]).toContain('-o writes over the old file in place');
      expect(fs.readFileSync(dst).equals(oldBytes)).toBe(true);
      expect(tempLeftovers(mnt)).toEqual([]);
      // Where -o would not give the same bytes (--seek keeps the old bytes before it), it is not offered.
      const seek = sparsecopy(['-s', '1M', src, dst]);
      expect(seek.status).toBe(9);
      expect(seek.stderr).toContain('the old file is kept');
      // (after the path: a temporary directory's random name may hold "-o" itself)
      expect(seek.stderr.replaceAll(dst, 'DEST')).not.toContain('-o');
      // A shorter image needs -f to cut the old tail: offered with its length.
      const short = fresh('short');
      fs.writeFileSync(short, next.subarray(0, 50 * MiB));
      const cut = sparsecopy([short, dst]);
      expect(cut.status).toBe(9);
      expect(cut.stderr).toContain(`-o -f ${50 * MiB}B writes over the old file in place`);
      const o = sparsecopy(['-q', '-o', src, dst]);
      expect(o.status, o.stderr).toBe(0);
      expect(fs.readFileSync(dst).equals(next)).toBe(true);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

describe('a pipe that closes early', () => {
  it('"write failed at byte N" names the first byte the pipe did not take, not the start of the write', () => {
    const src = fresh('src');
    fs.writeFileSync(src, patternBytes(8 * MiB, 3));
    // head takes 1000 bytes and leaves; the pipe had taken some more (its buffer) before that.
    const r = spawnSync('sh', ['-c', `"${process.execPath}" "${SPARSECOPY}" "${src}" - | head -c 1000 > /dev/null; exit \${PIPESTATUS:-0}`], { encoding: 'utf8' });
    const m = /^sparsecopy: stdout: write failed at byte (\d+): broken pipe$/m.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const at = Number(m![1]);
    expect(at).toBeGreaterThanOrEqual(1000);
    expect(at).toBeLessThanOrEqual(1000 + 2 * 65536); // a pipe buffer's worth past what head read
  });
});

describe('corrupt gzip: the same message from a file, from stdin redirected from it, and from a pipe', () => {
  /** 3 MB of text lines, gzip'd: 2.2 MB of compressed input, in several chunks. */
  function goodGzip(): { gz: Buffer; raw: Buffer } {
    const raw = Buffer.from(patternBytes(2_300_000, 20).toString('base64').replace(/(.{100})/g, '$1\n')).subarray(0, 3_000_000);
    return { gz: zlib.gzipSync(raw, { level: 6 }), raw };
  }

  function messages(bytes: Buffer): { file: string; redirected: string; pipe: string; status: number[] } {
    const bad = fresh('bad.gz');
    fs.writeFileSync(bad, bytes);
    const out = fresh('out');
    const file = sparsecopy([bad, out]);
    const fd = fs.openSync(bad, 'r');
    const redirected = spawnSync(process.execPath, [SPARSECOPY, '-', out], { stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8' });
    fs.closeSync(fd);
    const pipe = sparsecopy(['-', out], { input: bytes });
    expect(fs.existsSync(out)).toBe(false);
    return {
      file: file.stderr.replace(bad, 'SOURCE'),
      redirected: redirected.stderr.replace('stdin', 'SOURCE'),
      pipe: pipe.stderr.replace('stdin', 'SOURCE'),
      status: [file.status!, redirected.status!, pipe.status!],
    };
  }

  it('bit flips in the deflate data, a bad CRC, a bad length, truncation, trailing garbage: one message, exit 18', () => {
    const { gz } = goodGzip();
    const flip = (at: number): Buffer => {
      const b = Buffer.from(gz);
      b[at]! ^= 0x10;
      return b;
    };
    const cases = [flip(1000), flip(Math.floor(gz.length / 3)), flip(gz.length - 8), flip(gz.length - 4), gz.subarray(0, gz.length - 1000), Buffer.concat([gz, Buffer.from('garbage')])];
    for (const bytes of cases) {
      const m = messages(bytes);
      expect(m.status).toEqual([18, 18, 18]);
      expect(m.file).toMatch(/^sparsecopy: SOURCE: .* compressed byte/);
      expect(m.redirected).toBe(m.file);
      expect(m.pipe).toBe(m.file);
    }
  });

  it('zeros after the last member are padding (exit 0); a member or garbage after the zeros is not (18)', () => {
    const { gz, raw } = goodGzip();
    const second = zlib.gzipSync(Buffer.from('a second member'));
    const padded = fresh('padded.gz');
    fs.writeFileSync(padded, Buffer.concat([gz, Buffer.alloc(3 * MiB)]));
    const out = fresh('out');
    expect(sparsecopy(['-q', padded, out]).status).toBe(0);
    expect(fs.readFileSync(out).equals(raw)).toBe(true);
    for (const tail of [Buffer.concat([Buffer.alloc(1), second]), Buffer.concat([Buffer.alloc(2 * MiB), Buffer.from('x')])]) {
      const m = messages(Buffer.concat([gz, tail]));
      expect(m.status).toEqual([18, 18, 18]);
      expect(m.file).toMatch(/^sparsecopy: SOURCE: trailing garbage after zero padding at compressed byte \d+\n$/);
      expect(m.pipe).toBe(m.file);
    }
  });
});
