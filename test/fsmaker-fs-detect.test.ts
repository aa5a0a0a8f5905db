/**
 * Filesystem detection against the real mkfs tools: for each filesystem whose mkfs is installed,
 * a small image is made with a pinned UUID and label, and detectFilesystem's type, UUID and label
 * are compared with `blkid -p -o export`. Random and zeroed images give null; an ext superblock
 * with impossible values is reported as corrupt.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeCorruption, detectFilesystem } from '../src/fsmaker/fs-detect.js';
import { makeTempDir, patternBytes } from './helpers.js';

const MiB = 1024 * 1024;
let dir = '';
beforeAll(() => {
  dir = makeTempDir('fs-detect-');
  fs.mkdirSync(path.join(dir, 'content'));
  fs.writeFileSync(path.join(dir, 'content', 'hello.txt'), 'hello\n');
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function which(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

function missing(tool: string): boolean {
  const gone = !which(tool);
  if (gone) console.log(`skipping: ${tool} is not installed`);
  return gone;
}

function fileReader(file: string): (offset: number, length: number) => Buffer {
  return (offset, length) => {
    const fd = fs.openSync(file, 'r');
    try {
      const b = Buffer.alloc(length);
      const n = fs.readSync(fd, b, 0, length, offset);
      return b.subarray(0, n);
    } finally {
      fs.closeSync(fd);
    }
  };
}

function blkid(file: string): Record<string, string> {
  const out = execFileSync('blkid', ['-p', '-o', 'export', file], { encoding: 'utf8' });
  const r: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) r[line.slice(0, eq)] = line.slice(eq + 1).replace(/\\(.)/g, '$1'); // export format escapes spaces
  }
  return r;
}

function sparse(name: string, size: number): string {
  const file = path.join(dir, name);
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  return file;
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function expectMatchesBlkid(file: string, expected: { type: string; uuid?: string; label?: string }): void {
  const info = detectFilesystem(fileReader(file));
  const b = blkid(file);
  expect(info).not.toBeNull();
  expect(info!.type).toBe(b.TYPE);
  expect(info!.uuid).toBe(b.UUID);
  expect(info!.label).toBe(b.LABEL);
  expect(info!.type).toBe(expected.type);
  expect(info!.uuid).toBe(expected.uuid);
  expect(info!.label).toBe(expected.label);
  expect(info!.corrupt).toBeUndefined();
  expect(describeCorruption(fileReader(file))).toBeNull();
}

describe('ext2/3/4', () => {
  for (const t of ['ext2', 'ext3', 'ext4'] as const) {
    it.skipIf(missing(`mkfs.${t}`))(`${t}: type, uuid, label and size match blkid`, () => {
      const file = sparse(`${t}.img`, 16 * MiB);
      const uuid = t === 'ext2' ? '0a1b2c3d-0000-4000-8000-000000000002' : t === 'ext3' ? '0a1b2c3d-0000-4000-8000-000000000003' : '0a1b2c3d-0000-4000-8000-000000000004';
      run(`mkfs.${t}`, ['-q', '-F', '-U', uuid, '-L', `lab-${t}`, file]);
      expectMatchesBlkid(file, { type: t, uuid, label: `lab-${t}` });
      expect(detectFilesystem(fileReader(file))!.sizeBytes).toBe(16 * MiB);
    });
  }

  it.skipIf(missing('mkfs.ext4'))('ext4 without a label or with a 16-byte label', () => {
    const file = sparse('ext4-nolabel.img', 8 * MiB);
    run('mkfs.ext4', ['-q', '-F', '-U', '0a1b2c3d-0000-4000-8000-0000000000aa', file]);
    expectMatchesBlkid(file, { type: 'ext4', uuid: '0a1b2c3d-0000-4000-8000-0000000000aa' });
    run('mkfs.ext4', ['-q', '-F', '-U', '0a1b2c3d-0000-4000-8000-0000000000ab', '-L', 'sixteen-char-lab', file]);
    expectMatchesBlkid(file, { type: 'ext4', uuid: '0a1b2c3d-0000-4000-8000-0000000000ab', label: 'sixteen-char-lab' });
  });

  it.skipIf(missing('mkfs.ext4'))('a corrupted ext superblock is reported as corrupt', () => {
    const file = sparse('ext4-corrupt.img', 8 * MiB);
    run('mkfs.ext4', ['-q', '-F', '-L', 'broken', file]);
    const corruptions: Array<[number, number, RegExp]> = [
      [0x18, 40, /block size/], // s_log_block_size
      [0x28, 0, /inodes per group/], // s_inodes_per_group
      [0x20, 0x7fffffff, /blocks per group/], // s_blocks_per_group
      [0x00, 12345, /inode count/], // s_inodes_count
      [0x04, 0, /block count/], // s_blocks_count_lo (64bit: hi is 0 too)
    ];
    const original = fileReader(file)(1024, 1024);
    for (const [field, value, why] of corruptions) {
      const sb = Buffer.from(original);
      sb.writeUInt32LE(value, field);
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, sb, 0, 1024, 1024);
      fs.closeSync(fd);
      const info = detectFilesystem(fileReader(file));
      expect(info?.type).toBe('ext4');
      expect(info?.label).toBe('broken');
      expect(info?.corrupt).toMatch(why);
      expect(info?.sizeBytes).toBeUndefined();
      expect(describeCorruption(fileReader(file))).toMatch(why);
    }
  });
});

it.skipIf(missing('mkfs.xfs'))('xfs matches blkid', () => {
  const file = sparse('xfs.img', 320 * MiB);
  const uuid = '0a1b2c3d-1111-4000-8000-000000000001';
  run('mkfs.xfs', ['-q', '-f', '-m', `uuid=${uuid}`, '-L', 'xfslab', file]);
  expectMatchesBlkid(file, { type: 'xfs', uuid, label: 'xfslab' });
  expect(detectFilesystem(fileReader(file))!.sizeBytes).toBe(320 * MiB);
});

it.skipIf(missing('mkfs.btrfs'))('btrfs matches blkid', () => {
  const file = sparse('btrfs.img', 128 * MiB);
  const uuid = '0a1b2c3d-2222-4000-8000-000000000001';
  run('mkfs.btrfs', ['-q', '-f', '-U', uuid, '-L', 'btrfs label', file]);
  expectMatchesBlkid(file, { type: 'btrfs', uuid, label: 'btrfs label' });
  expect(detectFilesystem(fileReader(file))!.sizeBytes).toBe(128 * MiB);
});

it.skipIf(missing('mksquashfs'))('squashfs matches blkid (no uuid or label)', () => {
  const file = path.join(dir, 'squash.img');
  run('mksquashfs', [path.join(dir, 'content'), file, '-quiet', '-noappend', '-no-progress']);
  expectMatchesBlkid(file, { type: 'squashfs' });
  const size = detectFilesystem(fileReader(file))!.sizeBytes!;
  expect(size).toBeGreaterThan(0);
  expect(size).toBeLessThanOrEqual(fs.statSync(file).size);
});

it.skipIf(missing('mkfs.erofs'))('erofs matches blkid (this mkfs.erofs has no -L: uuid only)', () => {
  const file = path.join(dir, 'erofs.img');
  const uuid = '0a1b2c3d-3333-4000-8000-000000000001';
  run('mkfs.erofs', ['--quiet', `-U${uuid}`, file, path.join(dir, 'content')]);
  expectMatchesBlkid(file, { type: 'erofs', uuid });
  expect(detectFilesystem(fileReader(file))!.sizeBytes).toBe(fs.statSync(file).size);
});

describe('vfat', () => {
  for (const [bits, size] of [
    [12, 4 * MiB],
    [16, 32 * MiB],
    [32, 64 * MiB],
  ] as const) {
    it.skipIf(missing('mkfs.fat'))(`FAT${bits} matches blkid`, () => {
      const file = sparse(`fat${bits}.img`, size);
      run('mkfs.fat', ['-F', String(bits), '-i', '1234ABCD', '-n', 'MYLABEL', file]);
      expectMatchesBlkid(file, { type: 'vfat', uuid: '1234-ABCD', label: 'MYLABEL' });
      expect(detectFilesystem(fileReader(file))!.sizeBytes).toBe(size);
    });
  }

  it.skipIf(missing('mkfs.fat'))('FAT without a label', () => {
    const file = sparse('fat-nolabel.img', 8 * MiB);
    run('mkfs.fat', ['-i', '00C0FFEE', file]);
    expectMatchesBlkid(file, { type: 'vfat', uuid: '00C0-FFEE' });
  });
});

describe('no filesystem', () => {
  it('a zeroed image gives null', () => {
    const zero = Buffer.alloc(256 * 1024);
    expect(detectFilesystem((o, l) => zero.subarray(o, o + l))).toBeNull();
    expect(describeCorruption((o, l) => zero.subarray(o, o + l))).toBeNull();
  });

  it('random images give null', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rnd = patternBytes(256 * 1024, seed * 7919);
      expect(detectFilesystem((o, l) => rnd.subarray(o, o + l))).toBeNull();
    }
  });

  it('a tiny image and a reader that throws give null', () => {
    const tiny = Buffer.alloc(100);
    expect(detectFilesystem((o, l) => tiny.subarray(o, o + l))).toBeNull();
    expect(
      detectFilesystem(() => {
        throw new Error('EIO');
      }),
    ).toBeNull();
  });

  it('an MBR boot sector (0x55AA without a BPB) is not vfat', () => {
    const mbr = Buffer.alloc(64 * 1024);
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    mbr.writeUInt32LE(2048, 446 + 8);
    expect(detectFilesystem((o, l) => mbr.subarray(o, o + l))).toBeNull();
  });
});
