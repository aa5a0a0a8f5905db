/**
 * cpio newc writer against GNU cpio: listing order, extraction as root (contents, modes, symlink
 * targets, a 5:1 character device), gzip'ed archive readable through zcat, deterministic bytes,
 * and header fields equal to `cpio -o -H newc -R 0:0` run over the same tree built on disk
 * (except inode, device and mtime fields).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CPIO_TRAILER, cpioArchive, cpioChunks, normalizeCpioPath, parseCpioNewc, type CpioEntry } from '../src/fsmaker/cpio.js';
import { makeTempDir, patternBytes } from './helpers.js';

const haveCpio = spawnSync('sh', ['-c', 'command -v cpio && command -v zcat']).status === 0;
const isRoot = process.getuid?.() === 0;

let dir = '';
beforeAll(() => {
  dir = makeTempDir('fsmaker-cpio-');
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const INIT = Buffer.from('#!/bin/sh\necho hello\nexec /bin/sh\n');
const BIG = patternBytes(70_001, 7);

/** An initramfs-like tree; parents before children. */
function entries(): CpioEntry[] {
  return [
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/busybox', data: BIG, mode: 0o755 },
    { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    { type: 'dir', path: 'dev' },
    { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { type: 'dir', path: 'etc', mode: 0o750 },
    { type: 'file', path: 'etc/empty', data: Buffer.alloc(0) },
    { type: 'file', path: 'etc/abc', data: Buffer.from('abc') },
    { type: 'dir', path: 'lib' },
    { type: 'dir', path: 'lib/modules' },
    { type: 'dir', path: 'lib/modules/6.1' },
    { type: 'file', path: 'lib/modules/6.1/x.ko', data: patternBytes(4096, 3), mode: 0o644 },
    { type: 'symlink', path: 'lib64', target: 'lib' },
    { type: 'file', path: 'init', data: INIT, mode: 0o755 },
  ];
}
const NAMES = entries().map((e) => e.path);

function cpioList(archive: Buffer): string[] {
  const out = execFileSync('cpio', ['-it', '--quiet'], { input: archive }).toString();
  return out.split('\n').filter((l) => l !== '');
}

describe('format', () => {
  it('headers, padding, trailer and block padding', () => {
    const a = cpioArchive(entries(), { mtime: 1_700_000_000 });
    expect(a.length % 512).toBe(0);
    const h = parseCpioNewc(a);
    expect(h.map((x) => x.name)).toEqual([...NAMES, CPIO_TRAILER]);
    expect(h.slice(0, -1).map((x) => x.ino)).toEqual(NAMES.map((_, i) => i + 1));
    for (const x of h.slice(0, -1)) {
      expect(x.uid).toBe(0);
      expect(x.gid).toBe(0);
      expect(x.mtime).toBe(1_700_000_000);
      expect(x.check).toBe(0);
      expect(x.dataOffset % 4).toBe(0);
    }
    const byName = new Map(h.map((x) => [x.name, x]));
    expect(byName.get('bin')!.mode).toBe(0o40755);
    expect(byName.get('bin')!.nlink).toBe(2);
    expect(byName.get('lib')!.nlink).toBe(3); // one subdirectory
    expect(byName.get('etc')!.mode).toBe(0o40750);
    expect(byName.get('init')!.mode).toBe(0o100755);
    expect(byName.get('etc/abc')!.mode).toBe(0o100644);
    const sh = byName.get('bin/sh')!;
    expect(sh.mode).toBe(0o120777);
    expect(a.toString('utf8', sh.dataOffset, sh.dataOffset + sh.filesize)).toBe('busybox');
    const con = byName.get('dev/console')!;
    expect([con.mode, con.rdevmajor, con.rdevminor, con.filesize]).toEqual([0o20600, 5, 1, 0]);
    const init = byName.get('init')!;
    expect(a.subarray(init.dataOffset, init.dataOffset + init.filesize).equals(INIT)).toBe(true);
    const t = h[h.length - 1]!;
    expect([t.ino, t.mode, t.nlink, t.filesize, t.mtime]).toEqual([0, 0, 1, 0, 0]);
    // the magic and upper-case hex like GNU cpio
    expect(a.toString('latin1', 0, 6)).toBe('070701');
  });

  it('deterministic, streamed chunks equal the buffer, block size option', () => {
    const a = cpioArchive(entries(), { mtime: 5 });
    const b = cpioArchive(entries(), { mtime: 5 });
    expect(a.equals(b)).toBe(true);
    expect(Buffer.concat([...cpioChunks(entries(), { mtime: 5 })]).equals(a)).toBe(true);
    // the big file's data is passed through, not copied
    expect([...cpioChunks(entries())].some((c) => c === BIG)).toBe(true);
    const unpadded = cpioArchive(entries(), { mtime: 5, blockSize: 0 });
    expect(a.subarray(0, unpadded.length).equals(unpadded)).toBe(true);
    expect(a.subarray(unpadded.length).every((x) => x === 0)).toBe(true);
    expect(unpadded.length % 4).toBe(0);
  });

  it('paths are normalized; duplicates and bad paths are refused', () => {
    expect(normalizeCpioPath('/dev/console')).toBe('dev/console');
    expect(normalizeCpioPath('./init')).toBe('init');
    expect(normalizeCpioPath('/')).toBe('.');
    expect(normalizeCpioPath('usr/')).toBe('usr');
    expect(() => normalizeCpioPath('a/../b')).toThrow();
    expect(() => normalizeCpioPath('a//b')).toThrow();
    expect(() => cpioArchive([{ type: 'dir', path: 'a' }, { type: 'dir', path: '/a' }])).toThrow(/duplicate/);
    expect(() => cpioArchive([{ type: 'symlink', path: 'a', target: '' }])).toThrow(/symlink/);
    expect(() => cpioArchive([], { mtime: -1 })).toThrow(RangeError);
    expect(parseCpioNewc(cpioArchive([])).map((x) => x.name)).toEqual([CPIO_TRAILER]);
  });
});

describe.skipIf(!haveCpio)('GNU cpio reads it', () => {
  it('cpio -it lists the entries in order, also gzip-compressed through zcat', () => {
    const a = cpioArchive(entries());
    expect(cpioList(a)).toEqual(NAMES);
    const gz = path.join(dir, 'initrd.img');
    fs.writeFileSync(gz, zlib.gzipSync(a, { level: 9 }));
    const listed = execFileSync('sh', ['-c', `zcat "${gz}" | cpio -it --quiet`]).toString().split('\n').filter(Boolean);
    expect(listed).toEqual(NAMES);
  });

  it.skipIf(!isRoot)('cpio -idv extracts identical contents, modes, symlinks and a 5:1 char device', () => {
    const out = path.join(dir, 'x');
    fs.mkdirSync(out);
    const r = spawnSync('cpio', ['-idmv', '--no-absolute-filenames'], { cwd: out, input: cpioArchive(entries(), { mtime: 1_600_000_000 }), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l !== '' && !/blocks?$/.test(l))).toEqual(NAMES);
    for (const e of entries()) {
      const p = path.join(out, e.path);
      const st = fs.lstatSync(p);
      expect(st.uid).toBe(0);
      expect(st.gid).toBe(0);
      switch (e.type) {
        case 'dir':
          expect(st.isDirectory()).toBe(true);
          expect(st.mode & 0o7777).toBe(e.mode ?? 0o755);
          break;
        case 'file':
          expect(st.isFile()).toBe(true);
          expect(st.mode & 0o7777).toBe(e.mode ?? 0o644);
          expect(fs.readFileSync(p).equals(e.data)).toBe(true);
          expect(st.mtimeMs).toBe(1_600_000_000_000);
          break;
        case 'symlink':
          expect(st.isSymbolicLink()).toBe(true);
          expect(fs.readlinkSync(p)).toBe(e.target);
          break;
        case 'char':
        case 'block':
          expect(st.isCharacterDevice()).toBe(true);
          expect(st.mode & 0o7777).toBe(0o600);
          expect(st.rdev).toBe((5 << 8) | 1);
          break;
      }
    }
  });

  it.skipIf(!isRoot)('same entries and header fields as cpio -o -H newc -R 0:0 over the same tree', () => {
    const tree = path.join(dir, 'tree');
    fs.mkdirSync(tree);
    for (const e of entries()) {
      const p = path.join(tree, e.path);
      switch (e.type) {
        case 'dir':
          fs.mkdirSync(p);
          fs.chmodSync(p, e.mode ?? 0o755);
          break;
        case 'file':
          fs.writeFileSync(p, e.data);
          fs.chmodSync(p, e.mode ?? 0o644);
          break;
        case 'symlink':
          fs.symlinkSync(e.target, p);
          break;
        case 'char':
        case 'block':
          execFileSync('mknod', ['-m', '600', p, e.type === 'char' ? 'c' : 'b', String(e.major), String(e.minor)]);
          break;
      }
    }
    const theirs = execFileSync('cpio', ['-o', '-H', 'newc', '-R', '0:0', '--quiet'], { cwd: tree, input: NAMES.join('\n') + '\n' });
    const ours = cpioArchive(entries());
    expect(ours.length).toBe(theirs.length);
    const strip = (h: ReturnType<typeof parseCpioNewc>[number]) => {
      const { ino: _i, devmajor: _a, devminor: _b, mtime: _m, ...rest } = h;
      return rest;
    };
    const a = parseCpioNewc(ours).map(strip);
    const b = parseCpioNewc(theirs).map(strip);
    expect(a).toEqual(b);
    // same bytes for every member's data
    const ha = parseCpioNewc(ours);
    const hb = parseCpioNewc(theirs);
    ha.forEach((x, i) => {
      const y = hb[i]!;
      expect(ours.subarray(x.dataOffset, x.dataOffset + x.filesize).equals(theirs.subarray(y.dataOffset, y.dataOffset + y.filesize))).toBe(true);
    });
  });
});
