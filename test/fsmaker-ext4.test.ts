/**
 * The ext2/3/4 reader against images built by mke2fs -d: file contents byte-for-byte, directory
 * listings (including a 500-entry htree directory indexed by e2fsck -D), fast and slow symlinks,
 * path resolution through relative and absolute symlinks, missing paths, a file fragmented through
 * debugfs (a depth-1 extent tree on ext4; indirect blocks on ext2/3), and the block map compared
 * with debugfs's `stat` listing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExtError, openExt, type ExtFs } from '../src/fsmaker/ext4.js';
import { makeTempDir, patternBytes } from './helpers.js';

const MiB = 1024 * 1024;
const haveTools = spawnSync('sh', ['-c', 'command -v mkfs.ext4 && command -v debugfs && command -v e2fsck'], { stdio: 'ignore' }).status === 0;
if (!haveTools) console.log('skipping ext reader tests: e2fsprogs (mkfs.ext4, debugfs, e2fsck) is not installed');

let dir = '';
let content = '';
const LONG_TARGET = 'boot/' + './'.repeat(40) + 'vmlinuz-1.2.3';
const manyNames = Array.from({ length: 500 }, (_, i) => `file-with-a-longish-name-${String(i).padStart(4, '0')}.txt`);

function readerFor(file: string): { read: (offset: number, length: number) => Buffer; close: () => void; maxRead: () => number } {
  const fd = fs.openSync(file, 'r');
  let max = 0;
  return {
    read: (offset, length) => {
      max = Math.max(max, length);
      const b = Buffer.alloc(length);
      const n = fs.readSync(fd, b, 0, length, offset);
      return b.subarray(0, n);
    },
    close: () => fs.closeSync(fd),
    maxRead: () => max,
  };
}

beforeAll(() => {
  if (!haveTools) return;
  dir = makeTempDir('ext-reader-');
  content = path.join(dir, 'content');
  const c = (p: string) => path.join(content, p);
  fs.mkdirSync(c('boot'), { recursive: true });
  fs.writeFileSync(c('boot/vmlinuz-1.2.3'), patternBytes(6 * MiB + 1234, 11));
  fs.writeFileSync(c('boot/initrd.img'), patternBytes(3 * MiB + 7, 12));
  fs.symlinkSync('vmlinuz-1.2.3', c('boot/vmlinuz'));
  fs.symlinkSync('boot/vmlinuz-1.2.3', c('vmlinuz'));
  fs.symlinkSync('/boot/initrd.img', c('initrd.img'));
  fs.symlinkSync(LONG_TARGET, c('longlink'));
  fs.symlinkSync('nowhere/at/all', c('dangling'));
  fs.symlinkSync('loop-b', c('loop-a'));
  fs.symlinkSync('loop-a', c('loop-b'));
  fs.mkdirSync(c('many'));
  manyNames.forEach((n, i) => fs.writeFileSync(c(`many/${n}`), `entry ${i}\n`));
  fs.mkdirSync(c('a/b/c'), { recursive: true });
  fs.writeFileSync(c('a/b/c/deep.txt'), 'deep\n');
  fs.symlinkSync('../..', c('a/b/c/up'));
  fs.writeFileSync(c('empty'), '');
  fs.writeFileSync(c('small.txt'), 'small file\n');
  // A sparse file: data, a hole, data.
  const fd = fs.openSync(c('sparse.bin'), 'w');
  fs.writeSync(fd, patternBytes(5000, 13), 0, 5000, 0);
  fs.writeSync(fd, patternBytes(3000, 14), 0, 3000, 2 * MiB);
  fs.closeSync(fd);
  // Small files to delete later so a file written afterwards is fragmented.
  fs.mkdirSync(c('frag'));
  for (let i = 0; i < 100; i++) fs.writeFileSync(c(`frag/s${String(i).padStart(3, '0')}`), patternBytes(8192, 100 + i));
  fs.writeFileSync(path.join(dir, 'fragged.src'), patternBytes(300_000, 15));
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Parses debugfs `stat`'s BLOCKS/EXTENTS listing into a logical->physical map (metadata blocks left out). */
function debugfsBlockMap(image: string, p: string): Map<number, number> {
  const out = execFileSync('debugfs', ['-R', `stat ${p}`, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const at = out.search(/^(BLOCKS|EXTENTS):/m);
  const map = new Map<number, number>();
  if (at < 0) return map;
  for (const m of out.slice(at).matchAll(/\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?/g)) {
    const l0 = Number(m[1]);
    const l1 = m[2] === undefined ? l0 : Number(m[2]);
    const p0 = Number(m[3]);
    for (let l = l0; l <= l1; l++) map.set(l, p0 + (l - l0));
  }
  return map;
}

interface Variant {
  name: string;
  mkfs: string[];
  extents: boolean;
}

const variants: Variant[] = [
  { name: 'ext4 (4 KiB blocks, 64bit, metadata_csum)', mkfs: ['-t', 'ext4', '-b', '4096'], extents: true },
  { name: 'ext4 (1 KiB blocks, no 64bit)', mkfs: ['-t', 'ext4', '-b', '1024', '-O', '^64bit'], extents: true },
  { name: 'ext3 (1 KiB blocks: double indirect)', mkfs: ['-t', 'ext3', '-b', '1024'], extents: false },
  { name: 'ext2 (4 KiB blocks)', mkfs: ['-t', 'ext2', '-b', '4096'], extents: false },
];

describe.skipIf(!haveTools).each(variants)('$name', (v) => {
  let image = '';
  let fsr: ExtFs;
  let reader: ReturnType<typeof readerFor>;

  beforeAll(() => {
    image = path.join(dir, `${v.name.split(' ')[0]}-${v.mkfs.join('')}.img`.replace(/[^\w.-]/g, '_'));
    execFileSync('mkfs.ext4', ['-q', '-F', ...v.mkfs, '-d', content, image, '48M'], { stdio: ['ignore', 'ignore', 'pipe'] });
    // Delete every other small file, then write a file through debugfs: it fills the gaps.
    const cmds = path.join(dir, 'debugfs.cmds');
    const lines = [];
    for (let i = 0; i < 100; i += 2) lines.push(`rm /frag/s${String(i).padStart(3, '0')}`);
    lines.push(`write ${path.join(dir, 'fragged.src')} /fragged`);
    fs.writeFileSync(cmds, lines.join('\n') + '\n');
    execFileSync('debugfs', ['-w', '-f', cmds, image], { stdio: 'ignore' });
    // Index the directories (htree) and check the result is clean.
    const fsck = spawnSync('e2fsck', ['-fyD', image], { encoding: 'utf8' });
    expect(fsck.status === 0 || fsck.status === 1, fsck.stdout + fsck.stderr).toBe(true);
    expect(spawnSync('e2fsck', ['-fn', image]).status).toBe(0);
    reader = readerFor(image);
    fsr = openExt(reader.read);
  });
  afterAll(() => reader?.close());

  it('reads the superblock', () => {
    expect(fsr.superblock.blockSize).toBe(v.mkfs.includes('1024') ? 1024 : 4096);
    expect(fsr.superblock.blocksCount * fsr.superblock.blockSize).toBe(48 * MiB);
  });

  it('reads files byte for byte', () => {
    for (const p of ['boot/vmlinuz-1.2.3', 'boot/initrd.img', 'a/b/c/deep.txt', 'empty', 'small.txt', 'sparse.bin', 'frag/s051']) {
      const inode = fsr.lookup('/' + p);
      expect(inode, p).not.toBeNull();
      expect(inode!.kind).toBe('file');
      expect(inode!.size).toBe(fs.statSync(path.join(content, p)).size);
      expect(fsr.readFile(inode!).equals(fs.readFileSync(path.join(content, p))), p).toBe(true);
    }
    const fragged = fsr.lookup('/fragged')!;
    expect(fsr.readFile(fragged).equals(fs.readFileSync(path.join(dir, 'fragged.src')))).toBe(true);
  });

  it('reads ranges, clamped to the size', () => {
    const original = fs.readFileSync(path.join(content, 'boot/vmlinuz-1.2.3'));
    const inode = fsr.lookup('/boot/vmlinuz-1.2.3')!;
    for (const [off, len] of [
      [0, 1],
      [1000, 5000],
      [4095, 2],
      [3 * MiB - 17, 1 * MiB + 33],
      [original.length - 10, 100],
      [original.length + 5, 10],
    ] as const) {
      expect(fsr.readFile(inode, off, len).equals(original.subarray(off, off + len)), `${off}+${len}`).toBe(true);
    }
    const sparse = fs.readFileSync(path.join(content, 'sparse.bin'));
    expect(fsr.readFile(fsr.lookup('/sparse.bin')!, MiB, 4096).equals(sparse.subarray(MiB, MiB + 4096))).toBe(true);
    expect(reader.maxRead()).toBeLessThanOrEqual(7 * MiB); // reads the file's runs, never the image
  });

  it('lists directories, including the 500-entry htree directory', () => {
    const many = fsr.lookup('/many')!;
    expect(many.flags & 0x1000).toBe(0x1000); // EXT4_INDEX_FL: e2fsck -D made it an htree
    expect(fsr.listDir('/many').sort()).toEqual([...manyNames].sort());
    expect(fsr.listDir('/boot').sort()).toEqual(fs.readdirSync(path.join(content, 'boot')).sort());
    expect(fsr.listDir('/').sort()).toEqual([...fs.readdirSync(content), 'fragged', 'lost+found'].sort());
    expect(fsr.listDir('/frag')).toHaveLength(50);
    expect(fsr.listDir('/a/b/c/up')).toEqual(['b']); // listing through a symlink to a directory
    expect(fsr.readFile(fsr.lookup('/many/' + manyNames[321])!).toString()).toBe('entry 321\n');
  });

  it('follows symlinks (relative, absolute, fast and slow)', () => {
    const kernel = fsr.lookup('/boot/vmlinuz-1.2.3')!;
    expect(fsr.lookup('/boot/vmlinuz')!.ino).toBe(kernel.ino);
    expect(fsr.lookup('/vmlinuz')!.ino).toBe(kernel.ino);
    expect(fsr.lookup('/longlink')!.ino).toBe(kernel.ino);
    expect(fsr.lookup('/initrd.img')!.ino).toBe(fsr.lookup('/boot/initrd.img')!.ino);
    expect(fsr.lookup('/a/b/c/up/b/c/deep.txt')!.ino).toBe(fsr.lookup('/a/b/c/deep.txt')!.ino);
    expect(fsr.lookup('//boot/./../boot/vmlinuz')!.ino).toBe(kernel.ino);

    const fast = fsr.lookup('/boot/vmlinuz', { follow: false })!;
    expect(fast.kind).toBe('symlink');
    expect(fsr.readLink(fast)).toBe('vmlinuz-1.2.3');
    const slow = fsr.lookup('/longlink', { follow: false })!;
    expect(slow.kind).toBe('symlink');
    expect(slow.size).toBeGreaterThan(60);
    expect(fsr.readLink(slow)).toBe(LONG_TARGET);
    expect(fsr.readLink(fsr.lookup('/dangling', { follow: false })!)).toBe('nowhere/at/all');
  });

  it('returns null for missing paths and throws on symlink loops', () => {
    expect(fsr.lookup('/no/such/file')).toBeNull();
    expect(fsr.lookup('/boot/nothing')).toBeNull();
    expect(fsr.lookup('/small.txt/below')).toBeNull();
    expect(fsr.lookup('/dangling')).toBeNull();
    expect(fsr.lookup('/frag/s000')).toBeNull(); // deleted through debugfs
    expect(() => fsr.lookup('/loop-a')).toThrow(ExtError);
    expect(() => fsr.listDir('/nothing')).toThrow(/no such file/);
    expect(() => fsr.listDir('/small.txt')).toThrow(/not a directory/);
  });

  it('maps blocks as debugfs does', () => {
    const bs = fsr.superblock.blockSize;
    for (const p of ['/boot/vmlinuz-1.2.3', '/fragged', '/sparse.bin', '/small.txt']) {
      const inode = fsr.lookup(p)!;
      const ours = new Map<number, number>();
      for (const e of fsr.fileExtents(inode)) {
        expect(e.fileOffset % bs).toBe(0);
        for (let i = 0; i < e.length / bs; i++) ours.set(e.fileOffset / bs + i, e.diskOffset / bs + i);
      }
      expect([...ours.entries()], p).toEqual([...debugfsBlockMap(image, p).entries()].sort((a, b) => a[0] - b[0]));
    }
    const fragged = fsr.lookup('/fragged')!;
    expect(fsr.fileExtents(fragged).length).toBeGreaterThan(4);
    if (v.extents) {
      expect(fragged.flags & 0x80000).toBe(0x80000);
      expect(fragged.iBlock.readUInt16LE(6)).toBeGreaterThan(0); // extent tree depth > 0
    } else {
      expect(fragged.flags & 0x80000).toBe(0);
    }
    // The sparse file's hole is absent from the map.
    const sparseExtents = fsr.fileExtents(fsr.lookup('/sparse.bin')!);
    expect(sparseExtents.some((e) => e.fileOffset <= MiB && e.fileOffset + e.length > MiB)).toBe(false);
  });
});

describe.skipIf(!haveTools)('bad input', () => {
  it('rejects an image without an ext superblock', () => {
    const zero = Buffer.alloc(8192);
    expect(() => openExt((o, l) => zero.subarray(o, o + l))).toThrow(expect.objectContaining({ code: 'NOT_EXT' }));
  });

  it('rejects a corrupt superblock with CORRUPT', () => {
    const image = path.join(dir, 'corrupt.img');
    execFileSync('mkfs.ext4', ['-q', '-F', image, '8M'], { stdio: 'ignore' });
    const img = fs.readFileSync(image);
    img.writeUInt32LE(0, 1024 + 0x28); // s_inodes_per_group
    expect(() => openExt((o, l) => img.subarray(o, o + l))).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
  });
});
