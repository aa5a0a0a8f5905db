/**
 * Input = output, under every name: symlinks (either side, chains), hard links, stdin redirected
 * from the destination, stdout redirected to the source, loop devices on one backing file, a loop
 * device and its backing file. Refused with exit 13 before anything is written; copies within one
 * file or device whose byte ranges do not overlap proceed. Replacing a file that a loop device is
 * backed by is refused with 14 (the device would keep the deleted file).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveTarget, sameTargetOrOverlap } from '../src/io/same-target.js';
import { SPARSECOPY, linesOf, loopUnavailableReason, patternBytes, readRange, snapshot, sparsecopy, tempLeftovers, useTempDir } from './helpers.js';

const MiB = 1 << 20;
let dir = '';
useTempDir('sc-same-', (d) => (dir = d));
let n = 0;
const fresh = (name: string): string => path.join(dir, `${name}-${++n}`);
function existing(name: string, bytes = patternBytes(9000, 1)): string {
  const p = fresh(name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** Exit 13 (or `code`), one line naming `mention`, the file as it was, no temporary file. */
function expectRefused(args: string[], file: string, mention: string, code = 13, stdio?: [number | 'pipe', number | 'pipe', 'pipe']): string {
  const before = snapshot(file);
  const r = stdio
    ? spawnSync(process.execPath, [SPARSECOPY, ...args], { stdio, encoding: 'utf8' })
    : { ...sparsecopy(args), error: undefined };
  expect(r.status, r.stderr).toBe(code);
  const lines = linesOf(r.stderr);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^sparsecopy: /);
  expect(lines[0]).toContain(mention);
  const after = snapshot(file);
  expect(after.bytes.equals(before.bytes), 'the file changed').toBe(true); // not toEqual: megabytes compared byte by byte
  expect({ ...after, bytes: null }).toEqual({ ...before, bytes: null });
  expect(tempLeftovers(path.dirname(file))).toEqual([]);
  return lines[0]!;
}

describe('sameTargetOrOverlap (the one test, in src/io/same-target.ts)', () => {
  it('a file and a hard link or symlink of it clash; another file does not', () => {
    const file = existing('f');
    const hard = fresh('hard');
    fs.linkSync(file, hard);
    const link = fresh('link');
    fs.symlinkSync(file, link);
    const other = existing('other');
    expect(sameTargetOrOverlap(fs.statSync(file), fs.statSync(hard))).not.toBeNull();
    expect(sameTargetOrOverlap(fs.statSync(file), fs.statSync(link))).not.toBeNull();
    expect(sameTargetOrOverlap(fs.statSync(file), fs.statSync(other))).toBeNull();
    expect(sameTargetOrOverlap(fs.statSync('/dev/null'), fs.statSync('/dev/null'))).toBeNull(); // holds no bytes
  });

  it('byte ranges of one file: touching ranges do not clash, overlapping ones do (and say where)', () => {
    const stat = fs.statSync(existing('f'));
    expect(sameTargetOrOverlap({ stat, start: 0, end: 100 }, { stat, start: 100, end: 200 })).toBeNull();
    expect(sameTargetOrOverlap({ stat, start: 0, end: 101 }, { stat, start: 100 })).toMatchObject({ start: 100, end: 101 });
  });

  /** A fake sysfs: a disk 8:16 with partition 8:17 from sector 2048, loop 7:0 on a file, loop 7:1 on the partition. */
  function fakeSysfs(backing: string, partitionBacking: string): string {
    const sys = fresh('sys');
    const device = (rel: string, id: string, files: Record<string, string>): void => {
      const d = path.join(sys, 'devices', rel);
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'dev'), `${id}\n`);
      for (const [name, text] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(d, name)), { recursive: true });
        fs.writeFileSync(path.join(d, name), `${text}\n`);
      }
      fs.mkdirSync(path.join(sys, 'dev/block'), { recursive: true });
      fs.symlinkSync(d, path.join(sys, 'dev/block', id));
      fs.mkdirSync(path.join(sys, 'block'), { recursive: true });
      if (!rel.includes('/sdz/')) fs.symlinkSync(d, path.join(sys, 'block', path.basename(rel)));
    };
    device('virtual/block/sdz', '8:16', { size: String(1 << 20) });
    device('virtual/block/sdz/sdz1', '8:17', { partition: '1', start: '2048', size: '4096' });
    device('virtual/block/loop0', '7:0', { 'loop/backing_file': backing, 'loop/offset': String(MiB), 'loop/sizelimit': String(4 * MiB) });
    device('virtual/block/loop1', '7:1', { 'loop/backing_file': partitionBacking, 'loop/offset': '512', 'loop/sizelimit': '0' });
    return sys;
  }
  const block = (major: number, minor: number): fs.Stats => ({ isBlockDevice: () => true, isFile: () => false, rdev: major * 256 + minor }) as fs.Stats;

  const noMknod = process.getuid?.() === 0 ? null : 'not root: cannot make a device node for the fake partition';
  if (noMknod) console.warn(`skipping the fake-sysfs case: ${noMknod}`);

  it.skipIf(noMknod !== null)('resolves a partition to its disk, a loop device to its backing file, and a loop on a partition to the disk', () => {
    const file = existing('backing', Buffer.alloc(8 * MiB));
    // The loop on the partition names it by a path that stats as 8:17: a block device node made here.
    const partNode = fresh('sdz1');
    execFileSync('mknod', [partNode, 'b', '8', '17']);
    const sys = fakeSysfs(file, partNode);
    const fileStat = fs.statSync(file);
    expect(resolveTarget(block(8, 17), { sysfs: sys })).toMatchObject({ identity: 'block 8:16', offset: 2048 * 512, limit: 4096 * 512 });
    expect(resolveTarget(block(7, 0), { sysfs: sys })).toMatchObject({ identity: `file ${fileStat.dev}:${fileStat.ino}`, name: file, offset: MiB, limit: 4 * MiB });
    expect(resolveTarget(block(7, 1), { sysfs: sys })).toMatchObject({ identity: 'block 8:16', offset: 2048 * 512 + 512, limit: 4096 * 512 - 512 });
    // Loop 7:0 shows bytes [1 MiB, 5 MiB) of the file: a write at byte 5 MiB of the file does not touch it.
    expect(sameTargetOrOverlap(block(7, 0), { stat: fileStat, start: 5 * MiB }, { sysfs: sys })).toBeNull();
    expect(sameTargetOrOverlap(block(7, 0), { stat: fileStat, start: 5 * MiB - 1 }, { sysfs: sys })).toMatchObject({ start: 5 * MiB - 1, end: 5 * MiB, name: file });
    // The loop on the partition and the whole disk clash inside the partition only.
    expect(sameTargetOrOverlap(block(7, 1), { stat: block(8, 16), start: 0, end: 2048 * 512 }, { sysfs: sys })).toBeNull();
    expect(sameTargetOrOverlap(block(7, 1), block(8, 16), { sysfs: sys })).toMatchObject({ start: 2048 * 512 + 512, end: 6144 * 512 });
  });
});

describe('files: refused under any name (exit 13)', () => {
  it('symlink chains on either side and on both', () => {
    const file = existing('f');
    const link1 = fresh('l1');
    const link2 = fresh('l2');
    fs.symlinkSync(file, link1);
    fs.symlinkSync(path.basename(link1), link2); // relative, to another link
    expectRefused([link2, file], file, file);
    expectRefused([file, link2], file, link2);
    expectRefused([link1, link2], file, link2);
    expectRefused(['-o', link2, link1], file, link1);
  });

  it('stdin from a hard link of the destination', () => {
    const file = existing('f');
    const hard = fresh('hard');
    fs.linkSync(file, hard);
    const fd = fs.openSync(hard, 'r');
    try {
      expectRefused(['-', file], file, file, 13, [fd, 'pipe', 'pipe']);
      expectRefused(['-o', '-', file], file, file, 13, [fd, 'pipe', 'pipe']);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('stdout redirected to the source file (appending, or opened read-write)', () => {
    const file = existing('f');
    for (const flags of ['a', 'r+'] as const) {
      const fd = fs.openSync(file, flags);
      try {
        expectRefused([file, '-'], file, 'stdout', 13, ['pipe', fd, 'pipe']);
        expectRefused(['--gzip', file, '-'], file, 'stdout', 13, ['pipe', fd, 'pipe']);
      } finally {
        fs.closeSync(fd);
      }
    }
  });

  it('-o within one file: overlapping ranges refused; ranges apart copied', () => {
    const data = patternBytes(64 * 1024, 5);
    const file = existing('f', data);
    expectRefused(['-o', '-m', '16K', '-s', '8K', file, file], file, 'bytes 8192 to byte 16384');
    const r = sparsecopy(['-q', '-o', '-m', '16K', '-s', '32K', file, file]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(file).equals(Buffer.concat([data.subarray(0, 32 * 1024), data.subarray(0, 16 * 1024), data.subarray(48 * 1024)]))).toBe(true);
    // Without -o the file would be replaced: all of it, whatever the ranges.
    expectRefused(['-m', '16K', '-s', '32K', file, file], file, 'same file');
  });
});

const noLoop = loopUnavailableReason();
if (noLoop) console.warn(`skipping the loop-device cases: ${noLoop}`);

/** Attaches `file` from `offset` (`sizelimit` bytes, 0: to the end) and returns the exact device. */
function attach(file: string, offset = 0, sizelimit = 0): string {
  return execFileSync('losetup', ['-f', '--show', '--offset', String(offset), '--sizelimit', String(sizelimit), file]).toString().trim();
}
async function withLoops<T>(devices: string[], body: () => Promise<T> | T): Promise<T> {
  try {
    return await body();
  } finally {
    for (const d of devices) execFileSync('losetup', ['-d', d]);
  }
}

describe.skipIf(noLoop !== null)('loop devices resolved to their backing file', () => {
  it('two loop devices on one file: overlapping ranges refused (13), the file untouched', async () => {
    const file = existing('backing', patternBytes(64 * MiB, 7));
    const [a, b] = [attach(file), attach(file)];
    await withLoops([a, b], () => {
      const line = expectRefused(['-s', '1M', '-m', '50M', a, b], file, file);
      expect(line).toContain(`bytes ${MiB} to byte ${50 * MiB}`); // read 0..50M, written 1M..51M
      expectRefused([a, b], file, file);
    });
  });

  it('two loop devices on disjoint windows of one file: copied, the rest of the file kept', async () => {
    const data = patternBytes(24 * MiB, 8);
    const file = existing('backing', data);
    const [a, b] = [attach(file, 0, 8 * MiB), attach(file, 16 * MiB, 8 * MiB)];
    await withLoops([a, b], () => {
      const r = sparsecopy(['-q', a, b]);
      expect(r.status, r.stderr).toBe(0);
    });
    const out = fs.readFileSync(file);
    expect(out.subarray(0, 16 * MiB).equals(data.subarray(0, 16 * MiB))).toBe(true);
    expect(out.subarray(16 * MiB).equals(data.subarray(0, 8 * MiB))).toBe(true);
  });

  it('a loop device and its backing file, either way round: refused (13)', async () => {
    const file = existing('backing', patternBytes(8 * MiB, 9));
    const other = existing('other', patternBytes(8 * MiB, 10));
    const loop = attach(file, MiB);
    await withLoops([loop], () => {
      expectRefused([loop, file], file, file);
      expectRefused(['-o', loop, file], file, file);
      expectRefused([file, loop], file, loop);
      // Through a symlink to the backing file, too.
      const link = fresh('link');
      fs.symlinkSync(file, link);
      expectRefused([link, loop], file, loop);
      expect(fs.readFileSync(other).equals(patternBytes(8 * MiB, 10))).toBe(true);
    });
  });

  it('replacing a backing file is refused (14); -o writes into it in place, which the device sees', async () => {
    const file = existing('backing', patternBytes(4 * MiB, 11));
    const next = patternBytes(4 * MiB, 12);
    const source = existing('next', next);
    const loop = attach(file);
    await withLoops([loop], () => {
      const inode = fs.statSync(file).ino;
      const line = expectRefused([source, file], file, loop, 14);
      expect(line).toContain('-o');
      expectRefused(['--gzip', source, file], file, loop, 14);
      const r = sparsecopy(['-q', '-o', source, file]);
      expect(r.status, r.stderr).toBe(0);
      expect(fs.statSync(file).ino).toBe(inode);
      expect(readRange(loop, 0, 4 * MiB).equals(next)).toBe(true);
    });
  });
});
