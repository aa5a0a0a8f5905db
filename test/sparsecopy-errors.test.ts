/**
 * Failures: exit codes, one-line messages naming the path, the destination left exactly as it was
 * and no temporary file left behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SPARSECOPY, linesOf, makeTempDir, patternBytes, snapshot, sparsecopy, tempLeftovers } from './helpers.js';

let dir: string;
beforeAll(() => {
  dir = makeTempDir('sc-err-');
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

let n = 0;
const fresh = (name: string) => path.join(dir, `${name}-${++n}`);

function existing(name: string, bytes = patternBytes(7000, 1)): string {
  const p = fresh(name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** Exit code, exactly one stderr line that names `mention`, nothing on stdout, no temp files. */
function expectFailure(args: string[], code: number, mention: string) {
  const r = sparsecopy(args);
  expect(r.status, r.stderr).toBe(code);
  const lines = linesOf(r.stderr);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^sparsecopy: /);
  expect(lines[0]).toContain(mention);
  expect(r.stdout).toBe('');
  expect(tempLeftovers(dir)).toEqual([]);
  return r;
}

describe('cannot open the source (exit 2)', () => {
  it('a missing source: named, the destination untouched or not created', () => {
    const missing = path.join(dir, 'no-such-source');
    const dst = existing('dst');
    const before = snapshot(dst);
    expectFailure([missing, dst], 2, missing);
    expect(snapshot(dst)).toEqual(before);
    expectFailure(['-o', missing, dst], 2, missing);
    expect(snapshot(dst)).toEqual(before);
    const newDst = fresh('dst');
    expectFailure([missing, newDst], 2, missing);
    expect(fs.existsSync(newDst)).toBe(false);
  });

  it('a directory as source', () => {
    const d = fresh('srcdir');
    fs.mkdirSync(d);
    const dst = fresh('dst');
    expectFailure([d, dst], 2, d);
    expect(fs.existsSync(dst)).toBe(false);
  });
});

describe('cannot open the destination (exit 3)', () => {
  it('a destination in a directory that does not exist', () => {
    const src = existing('src');
    const dst = path.join(dir, 'no-such-dir', 'dst');
    expectFailure([src, dst], 3, dst);
    expectFailure(['-o', src, dst], 3, dst);
    expect(fs.existsSync(path.dirname(dst))).toBe(false);
  });

  it('a directory as destination: named, left empty', () => {
    const src = existing('src');
    const d = fresh('dstdir');
    fs.mkdirSync(d);
    expectFailure([src, d], 3, d);
    expectFailure(['-o', src, d], 3, d);
    expect(fs.readdirSync(d)).toEqual([]);
    expect(fs.statSync(d).isDirectory()).toBe(true);
  });
});

describe('source and destination are the same (exit 13)', () => {
  const cases: [string, (src: string) => string][] = [
    ['the same path', (src) => src],
    ['a symlink to the source', (src) => {
      const l = fresh('link');
      fs.symlinkSync(src, l);
      return l;
    }],
    ['a relative symlink to the source', (src) => {
      const l = fresh('rlink');
      fs.symlinkSync(path.basename(src), l);
      return l;
    }],
    ['a hard link to the source', (src) => {
      const l = fresh('hard');
      fs.linkSync(src, l);
      return l;
    }],
    ['the source through "dir/../"', (src) => path.join(dir, '..', path.basename(dir), path.basename(src))],
  ];

  for (const [label, makeDest] of cases) {
    it(`${label}: refused, the file unchanged`, () => {
      const data = Buffer.concat([patternBytes(5000, 2), Buffer.alloc(8192), patternBytes(100, 3)]);
      const src = existing('src', data);
      const dst = makeDest(src);
      const before = snapshot(src);
      for (const extra of [[], ['-o'], ['-o', '-n'], ['-s', '4']]) {
        expectFailure([...extra, src, dst], 13, dst);
        expect(snapshot(src)).toEqual(before);
      }
    });
  }

  it('stdin redirected from the destination file', () => {
    const dst = existing('dst');
    const before = snapshot(dst);
    for (const extra of [[], ['-o']]) {
      const fd = fs.openSync(dst, 'r');
      try {
        const r = spawnSync(process.execPath, [SPARSECOPY, ...extra, '-', dst], { stdio: [fd, 'pipe', 'pipe'] });
        expect(r.status, r.stderr.toString()).toBe(13);
        expect(r.stderr.toString()).toContain(dst);
      } finally {
        fs.closeSync(fd);
      }
      expect(snapshot(dst)).toEqual(before);
    }
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('a symlink as the source and its target as destination', () => {
    const target = existing('target');
    const link = fresh('link');
    fs.symlinkSync(target, link);
    const before = snapshot(target);
    expectFailure([link, target], 13, target);
    expect(snapshot(target)).toEqual(before);
  });
});

describe('a failed copy leaves the old destination as it was', () => {
  it('-c and -e refusals keep bytes and mtime', () => {
    const src = existing('src', patternBytes(20_000, 4));
    const dst = existing('dst', patternBytes(30_000, 5));
    const before = snapshot(dst);
    expectFailure(['-o', '-c', src, dst], 11, dst);
    expectFailure(['-e', '-m', '10', src, dst], 12, src);
    expect(snapshot(dst)).toEqual(before);
  });

  it('SIGTERM while waiting on an empty idle pipe, then end of input: still exit 143, nothing committed', async () => {
    const dst = existing('dst', patternBytes(50_000, 9));
    const before = snapshot(dst);
    const child = spawn(process.execPath, [SPARSECOPY, '-', dst], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    // Nothing is written: the copy waits on an empty pipe (sniffing it for the gzip magic, before
    // the destination is opened). Let it get there; a delay, not an assertion.
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGTERM');
    // Give the signal time to be handled before the input ends (a delay, not an assertion).
    await new Promise((r) => setTimeout(r, 300));
    child.stdin.end();
    const status = await exited;
    expect(status, stderr).toBe(143);
    expect(stderr).not.toMatch(/total bytes = /);
    expect(snapshot(dst)).toEqual(before);
    expect(tempLeftovers(dir)).toEqual([]);
  });

  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`${signal} during a copy: exit ${code}, the temporary file removed, the destination untouched`, async () => {
      const dst = existing('dst', patternBytes(50_000, 6));
      const before = snapshot(dst);
      const child = spawn(process.execPath, [SPARSECOPY, '-', dst], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      child.stdin.write(patternBytes(64 * 1024, 7));
      // Wait until the copy is under way: its temporary file exists.
      for (let i = 0; i < 1000 && tempLeftovers(dir).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(tempLeftovers(dir)).toHaveLength(1);
      child.kill(signal);
      // The copy notices the signal between chunks: keep feeding it until it exits (never ending
      // the input, which would let an unsignalled copy finish successfully).
      child.stdin.on('error', () => undefined); // EPIPE once it is gone
      const more = patternBytes(256 * 1024, 8);
      const feeder = setInterval(() => {
        if (child.stdin.writable && child.stdin.writableLength < 4 * more.length) child.stdin.write(more);
      }, 20);
      const status = await exited.finally(() => clearInterval(feeder));
      child.stdin.destroy();
      expect(status, stderr).toBe(code);
      expect(stderr).toContain('interrupted');
      expect(snapshot(dst)).toEqual(before);
      expect(tempLeftovers(dir)).toEqual([]);
    });
  }
});
