/**
 * The FAT writer against the real tools: images materialised from planFat's extents must pass
 * fsck.fat -n without complaint, list and copy out byte-exactly with mtools, and be recognised by
 * blkid/minfo with the right serial and label. Also: extent stream invariants, lazy bounded reads,
 * reproducibility, type and size rules.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Extent } from '../src/extent/extent.js';
import { planFat, type FatFile, type FatOptions } from '../src/fsmaker/fat.js';
import { makeTempDir, patternBytes } from './helpers.js';

const MiB = 1024 * 1024;
const SERIAL = 0x5eedb007;
const LABEL = 'REFBOOT';
const env = { ...process.env, LC_ALL: 'C' };

let dir = '';
beforeAll(() => {
  dir = makeTempDir('fsmaker-fat-');
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Spec {
  path: string;
  content: Buffer;
}

/** FatFiles over in-memory contents, recording the largest read asked for. */
function fatFiles(specs: Spec[], stats: { maxRead: number; reads: number }): FatFile[] {
  return specs.map((s) => ({
    path: s.path,
    size: s.content.length,
    read: (offset: number, length: number) => {
      stats.reads++;
      stats.maxRead = Math.max(stats.maxRead, length);
      return Buffer.from(s.content.subarray(offset, offset + length));
    },
  }));
}

function clusterBytesFor(sizeBytes: number): number {
  return planFat({ sizeBytes, volumeLabel: LABEL, serial: SERIAL, hiddenSectors: 2048, files: [] }).clusterBytes;
}

function specsFor(clusterBytes: number, bigSize: number): Spec[] {
  return [
    { path: 'EFI/BOOT/BOOTX64.EFI', content: patternBytes(663_552, 3) },
    { path: 'grub/grub.cfg', content: Buffer.from('search --no-floppy --fs-uuid --set=root 5eed-b007\nset prefix=($root)/grub\n') },
    { path: 'vmlinuz', content: patternBytes(bigSize, 7) },
    { path: 'initrd.img', content: patternBytes(clusterBytes, 11) },
    { path: 'empty.txt', content: Buffer.alloc(0) },
    { path: 'Long Name With Spaces.txt', content: Buffer.from('long names survive\n') },
    { path: 'EFI/BOOT/Mixed.Case', content: Buffer.from('mixed case needs a long name\n') },
    { path: 'docs/a-rather-long-file-name.markdown', content: patternBytes(3 * clusterBytes + 5, 13) },
    { path: 'docs/a-rather-long-file-name.md', content: Buffer.from('same basis name, other alias\n') },
  ];
}

function materialise(file: string, sizeBytes: number, extents: Iterable<Extent>): Extent[] {
  const seen: Extent[] = [];
  const fd = fs.openSync(file, 'w');
  try {
    for (const e of extents) {
      seen.push({ offset: e.offset, length: e.length });
      if (e.data) {
        expect(e.data.length).toBe(e.length);
        fs.writeSync(fd, e.data, 0, e.length, e.offset);
      }
    }
    fs.ftruncateSync(fd, sizeBytes);
  } finally {
    fs.closeSync(fd);
  }
  return seen;
}

function run(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', maxBuffer: 256 * MiB });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function mcopyOut(image: string, p: string): Buffer {
  const r = spawnSync('mcopy', ['-n', '-i', image, `::/${p}`, '-'], { env, maxBuffer: 256 * MiB });
  expect(r.status, r.stderr.toString()).toBe(0);
  return r.stdout;
}

const haveGrub = spawnSync('grub-fstest', ['--help']).status === 0 && spawnSync('grub-probe', ['--help']).status === 0;

const sha256 = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

const cases = [
  { name: '16 MiB', sizeBytes: 16 * MiB, type: 'fat16', big: 3 * MiB + 123 },
  { name: '64 MiB', sizeBytes: 64 * MiB, type: 'fat32', big: 5 * MiB + 4321 },
  { name: '300 MiB', sizeBytes: 300 * MiB, type: 'fat32', big: 9 * MiB + 1 },
  { name: '20 MiB + 1000 bytes (odd size)', sizeBytes: 20 * MiB + 1000, type: 'fat16', big: 2 * MiB },
] as const;

describe.each(cases)('planFat $name', ({ sizeBytes, type, big }) => {
  const clusterBytes = clusterBytesFor(sizeBytes);
  const specs = specsFor(clusterBytes, big);
  const stats = { maxRead: 0, reads: 0 };
  const options = (): FatOptions => ({
    sizeBytes,
    volumeLabel: LABEL,
    serial: SERIAL,
    hiddenSectors: 2048,
    files: fatFiles(specs, stats),
    directories: ['empty-dir', 'grub'],
    timestamp: new Date(Date.UTC(2024, 4, 17, 12, 34, 56)),
  });
  let image = '';
  let seen: Extent[] = [];

  beforeAll(() => {
    image = path.join(dir, `img-${sizeBytes}.fat`);
    const layout = planFat(options());
    seen = materialise(image, sizeBytes, layout.extents());
  });

  it(`is ${type} with the expected geometry`, () => {
    const layout = planFat(options());
    expect(layout.type).toBe(type);
    expect(layout.clusterBytes).toBe(clusterBytes);
    if (type === 'fat32') expect(layout.totalClusters).toBeGreaterThanOrEqual(65525);
    else {
      expect(layout.totalClusters).toBeGreaterThanOrEqual(4085);
      expect(layout.totalClusters).toBeLessThan(65525);
    }
  });

  it('yields extents in strictly increasing order that cover [0, size) exactly, reading at most 1 MiB at a time', () => {
    let pos = 0;
    for (const e of seen) {
      expect(e.offset).toBe(pos);
      expect(e.length).toBeGreaterThan(0);
      pos += e.length;
    }
    expect(pos).toBe(sizeBytes);
    expect(stats.maxRead).toBeGreaterThan(0);
    expect(stats.maxRead).toBeLessThanOrEqual(MiB);
    // Mostly holes: the image is sparse by construction.
    expect(fs.statSync(image).blocks * 512).toBeLessThan(sizeBytes);
  });

  it('passes fsck.fat -n without complaints', () => {
    const r = run('fsck.fat', ['-n', image]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const lines = (r.stdout + r.stderr).trim().split('\n');
    expect(lines.length, r.stdout + r.stderr).toBe(2);
    expect(lines[1]).toMatch(/: \d+ files, \d+\/\d+ clusters$/);
  });

  it('lists the files with mdir', () => {
    const top = run('mdir', ['-i', image, '::']);
    expect(top.status, top.stderr).toBe(0);
    expect(top.stderr).toBe('');
    for (const name of ['EFI', 'grub', 'vmlinuz', 'initrd', 'empty', 'Long Name With Spaces.txt', 'empty-dir', 'docs']) {
      expect(top.stdout).toContain(name);
    }
    expect(top.stdout).toMatch(/Volume in drive : is REFBOOT/);
    const boot = run('mdir', ['-i', image, '::/EFI/BOOT']);
    expect(boot.status, boot.stderr).toBe(0);
    expect(boot.stdout).toMatch(/BOOTX64\s+EFI\s+663552/);
    expect(boot.stdout).toContain('Mixed.Case');
    const all = run('mdir', ['-/', '-b', '-i', image, '::']);
    expect(all.status, all.stderr).toBe(0);
    const listed = all.stdout.trim().split('\n').sort();
    expect(listed).toEqual(
      [
        '::/EFI/',
        '::/EFI/BOOT/',
        '::/EFI/BOOT/BOOTX64.EFI',
        '::/EFI/BOOT/Mixed.Case',
        '::/grub/',
        '::/grub/grub.cfg',
        '::/vmlinuz',
        '::/initrd.img',
        '::/empty.txt',
        '::/Long Name With Spaces.txt',
        '::/empty-dir/',
        '::/docs/',
        '::/docs/a-rather-long-file-name.markdown',
        '::/docs/a-rather-long-file-name.md',
      ].sort(),
    );
  });

  it('gives back every file byte for byte with mcopy', () => {
    for (const s of specs) {
      const out = mcopyOut(image, s.path);
      expect(out.length, s.path).toBe(s.content.length);
      expect(out.equals(s.content), s.path).toBe(true);
    }
  });

  it('reports the serial and label (minfo, blkid, file)', () => {
    const info = run('minfo', ['-i', image, '::']);
    expect(info.status, info.stderr).toBe(0);
    expect(info.stdout).toMatch(/serial number: 5EEDB007/i);
    expect(info.stdout).toMatch(/disk label="REFBOOT\s*"/);
    expect(info.stdout).toMatch(/hidden sectors: 2048/);
    const id = run('blkid', ['-p', '-o', 'export', image]);
    expect(id.status, id.stderr).toBe(0);
    expect(id.stdout).toContain('TYPE=vfat');
    expect(id.stdout).toContain('UUID=5EED-B007');
    expect(id.stdout).toContain('LABEL=REFBOOT');
    expect(id.stdout).toContain(`VERSION=${type.toUpperCase()}`);
    const f = run('file', ['-s', image]);
    expect(f.stdout).toMatch(/serial number 0x5eedb007/);
    expect(f.stdout).toMatch(/label: "REFBOOT\s*"/);
  });

  it.skipIf(!haveGrub)('is read by GRUB: fs_uuid, label and every file (grub-probe, grub-fstest)', () => {
    const uuid = run('grub-probe', ['-t', 'fs_uuid', '-d', image]);
    expect(uuid.status, uuid.stderr).toBe(0);
    expect(uuid.stdout.trim().toLowerCase()).toBe('5eed-b007');
    expect(run('grub-probe', ['-t', 'fs_label', '-d', image]).stdout.trim()).toBe(LABEL);
    for (const [i, s] of specs.entries()) {
      const local = path.join(dir, `grub-cmp-${i}`);
      fs.writeFileSync(local, s.content);
      const r = run('grub-fstest', [image, 'cmp', `/${s.path}`, local]);
      expect(r.status, `${s.path}: ${r.stdout}${r.stderr}`).toBe(0);
      fs.rmSync(local);
    }
  });

  it('is reproducible: the same extents and bytes on a second run', () => {
    const second = path.join(dir, `img-${sizeBytes}-again.fat`);
    const again = materialise(second, sizeBytes, planFat(options()).extents());
    expect(again).toEqual(seen);
    expect(sha256(second)).toBe(sha256(image));
    fs.rmSync(second);
  });
});

describe('planFat rules', () => {
  const base = { volumeLabel: LABEL, serial: SERIAL, hiddenSectors: 0, files: [] as FatFile[] };

  it('throws a clear error when the size is too small for FAT16', () => {
    expect(() => planFat({ ...base, sizeBytes: MiB })).toThrow(/too small for FAT16/);
  });

  it('picks FAT32 from about 33 MiB (512-byte clusters) and FAT16 below', () => {
    expect(planFat({ ...base, sizeBytes: 32 * MiB }).type).toBe('fat16');
    const l = planFat({ ...base, sizeBytes: 34 * MiB });
    expect(l.type).toBe('fat32');
    expect(l.clusterBytes).toBe(512);
  });

  it('honours a forced type and refuses an impossible one', () => {
    expect(planFat({ ...base, sizeBytes: 64 * MiB, fatType: 'fat16' }).type).toBe('fat16');
    expect(() => planFat({ ...base, sizeBytes: 16 * MiB, fatType: 'fat32' })).toThrow(/too small for FAT32/);
    expect(planFat({ ...base, sizeBytes: 64 * MiB, sectorsPerCluster: 1 }).clusterBytes).toBe(512);
    expect(() => planFat({ ...base, sizeBytes: 64 * MiB, sectorsPerCluster: 3 })).toThrow(/power of two/);
  });

  it('refuses files that do not fit, duplicate names and bad names', () => {
    const file = (p: string, size: number): FatFile => ({ path: p, size, read: (_o, l) => Buffer.alloc(l) });
    expect(() => planFat({ ...base, sizeBytes: 16 * MiB, files: [file('big', 20 * MiB)] })).toThrow(/clusters/);
    expect(() => planFat({ ...base, sizeBytes: 16 * MiB, files: [file('a.txt', 1), file('A.TXT', 1)] })).toThrow(/twice/);
    expect(() => planFat({ ...base, sizeBytes: 16 * MiB, files: [file('a:b', 1)] })).toThrow(/not allowed/);
    expect(() => planFat({ ...base, sizeBytes: 16 * MiB, volumeLabel: 'MUCH TOO LONG LABEL' })).toThrow(/longer than 11/);
  });

  it('uses SOURCE_DATE_EPOCH when no timestamp is given', () => {
    const saved = process.env['SOURCE_DATE_EPOCH'];
    process.env['SOURCE_DATE_EPOCH'] = String(Date.UTC(2020, 1, 3, 4, 5, 6) / 1000);
    try {
      const image = path.join(dir, 'sde.fat');
      const files: FatFile[] = [{ path: 'hello.txt', size: 3, read: () => Buffer.from('hi\n') }];
      materialise(image, 16 * MiB, planFat({ ...base, sizeBytes: 16 * MiB, files }).extents());
      const r = run('mdir', ['-i', image, '::']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/hello\s+txt\s+3 2020-02-03\s+4:05/);
    } finally {
      if (saved === undefined) delete process.env['SOURCE_DATE_EPOCH'];
      else process.env['SOURCE_DATE_EPOCH'] = saved;
    }
  });
});
