/**
 * Real signatures made by their own Debian tools (sfdisk, mkfs.*, mkswap, genisoimage, mksquashfs,
 * make-bcache, pvcreate, cryptsetup), plus the few a tool cannot make here (MD RAID superblocks:
 * no md driver; swap v0, swsuspend, leftovers of an old table) written by byte edits.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { newImageIn, sfdiskWrite } from './helpers.js';
import { onLoop, writeMdSuperblock } from './signatures-tools.js';

const MiB = 1024 * 1024;

export interface Fixture {
  name: string;
  /** The Debian command that makes it. */
  tool: string;
  bytes: number;
  /** Makes the signature in the (blank, sparse) file of `bytes`; 0: the tool makes the file. */
  make: (file: string) => void;
  /** The types wipefs must list: guards against a fixture the tool did not make. */
  expect: string[];
}

/** Builds a read-only filesystem image at `f` from a one-file tree (`fresh`: the tool makes `f` itself). */
function fromHelloTree(f: string, fresh: boolean, build: (tree: string) => void): void {
  const tree = `${f}.tree`;
  fs.mkdirSync(tree, { recursive: true });
  fs.writeFileSync(path.join(tree, 'hello.txt'), 'hello\n');
  if (fresh) fs.rmSync(f);
  try {
    build(tree);
  } finally {
    fs.rmSync(tree, { recursive: true });
  }
}

export const run = (command: string, args: string[], input?: string): void => void execFileSync(command, args, { input, stdio: ['pipe', 'ignore', 'pipe'] });
const putBytes = (file: string, offset: number, bytes: string): void => {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from(bytes, 'latin1'), 0, bytes.length, offset);
  fs.closeSync(fd);
};
const LUKS_FAST = ['--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000'];

export const FIXTURES: Fixture[] = [
  { name: 'dos', tool: 'sfdisk', bytes: 50 * MiB, make: (f) => sfdiskWrite(f, 'label: dos\n,,L\n'), expect: ['dos'] },
  { name: 'gpt', tool: 'sfdisk', bytes: 50 * MiB, make: (f) => sfdiskWrite(f, 'label: gpt\n,,L\n'), expect: ['gpt', 'gpt', 'PMBR'] },
  {
    name: 'gpt-backup-only',
    tool: 'sfdisk',
    bytes: 50 * MiB,
    make: (f) => {
      sfdiskWrite(f, 'label: gpt\n,,L\n');
      putBytes(f, 512, 'XFI PART');
    },
    expect: ['gpt', 'PMBR'],
  },
  {
    name: 'dos-over-gpt',
    tool: 'sfdisk',
    bytes: 50 * MiB,
    // Issue 14's defect 1: a dos table written over a GPT disk, LBA 0 only.
    make: (f) => {
      sfdiskWrite(f, 'label: gpt\n,,L\n');
      const dos = newImageIn(path.dirname(f), 'dos-only.tmp', 50 * MiB);
      sfdiskWrite(dos, 'label: dos\n,,L\n');
      const fd = fs.openSync(f, 'r+');
      fs.writeSync(fd, fs.readFileSync(dos).subarray(0, 512), 0, 512, 0);
      fs.closeSync(fd);
      fs.rmSync(dos);
    },
    expect: ['dos', 'gpt', 'gpt'],
  },
  { name: 'ext2', tool: 'mkfs.ext2', bytes: 32 * MiB, make: (f) => run('mkfs.ext2', ['-q', '-F', f]), expect: ['ext2'] },
  { name: 'ext3', tool: 'mkfs.ext3', bytes: 32 * MiB, make: (f) => run('mkfs.ext3', ['-q', '-F', f]), expect: ['ext3'] },
  { name: 'ext4', tool: 'mkfs.ext4', bytes: 32 * MiB, make: (f) => run('mkfs.ext4', ['-q', '-F', f]), expect: ['ext4'] },
  { name: 'jbd', tool: 'mke2fs', bytes: 8 * MiB, make: (f) => run('mke2fs', ['-q', '-F', '-O', 'journal_dev', f]), expect: ['jbd'] },
  { name: 'xfs', tool: 'mkfs.xfs', bytes: 320 * MiB, make: (f) => run('mkfs.xfs', ['-q', '-f', f]), expect: ['xfs'] },
  { name: 'btrfs', tool: 'mkfs.btrfs', bytes: 128 * MiB, make: (f) => run('mkfs.btrfs', ['-q', '-f', f]), expect: ['btrfs'] },
  ...[4096, 8192, 16384, 32768, 65536].map(
    (page): Fixture => ({ name: `swap-${page / 1024}k-pages`, tool: 'mkswap', bytes: 16 * MiB, make: (f) => run('mkswap', ['-q', '-p', String(page), f]), expect: ['swap'] }),
  ),
  {
    name: 'swap-v0',
    tool: 'mkswap',
    bytes: 16 * MiB,
    // mkswap writes only v1; v0's magic is SWAP-SPACE at the page's end.
    make: (f) => {
      run('mkswap', ['-q', f]);
      putBytes(f, 4086, 'SWAP-SPACE');
    },
    expect: ['swap'],
  },
  {
    name: 'swsuspend',
    tool: 'mkswap',
    bytes: 16 * MiB,
    // A hibernation image keeps mkswap's header and replaces the magic.
    make: (f) => {
      run('mkswap', ['-q', f]);
      putBytes(f, 4086, 'S1SUSPEND\0');
    },
    expect: ['swsuspend'],
  },
  { name: 'fat12', tool: 'mkfs.vfat', bytes: 4 * MiB, make: (f) => run('mkfs.vfat', ['-F', '12', f]), expect: ['vfat', 'vfat', 'vfat'] },
  { name: 'fat16', tool: 'mkfs.vfat', bytes: 32 * MiB, make: (f) => run('mkfs.vfat', ['-F', '16', f]), expect: ['vfat', 'vfat', 'vfat'] },
  { name: 'fat32', tool: 'mkfs.vfat', bytes: 64 * MiB, make: (f) => run('mkfs.vfat', ['-F', '32', f]), expect: ['vfat', 'vfat', 'vfat'] },
  { name: 'exfat', tool: 'mkfs.exfat', bytes: 32 * MiB, make: (f) => run('mkfs.exfat', [f]), expect: ['exfat', 'dos'] },
  { name: 'ntfs', tool: 'mkfs.ntfs', bytes: 32 * MiB, make: (f) => run('mkfs.ntfs', ['-q', '-F', '-f', f]), expect: ['ntfs', 'dos'] },
  {
    name: 'iso9660',
    tool: 'genisoimage',
    bytes: 0,
    make: (f) => fromHelloTree(f, false, (tree) => run('genisoimage', ['-quiet', '-o', f, tree])),
    expect: ['iso9660'],
  },
  {
    name: 'squashfs',
    tool: 'mksquashfs',
    bytes: 0,
    make: (f) => fromHelloTree(f, true, (tree) => run('mksquashfs', [tree, f, '-quiet', '-noappend'])),
    expect: ['squashfs'],
  },
  {
    name: 'erofs',
    tool: 'mkfs.erofs',
    bytes: 0,
    make: (f) => fromHelloTree(f, true, (tree) => run('mkfs.erofs', ['--quiet', f, tree])),
    expect: ['erofs'],
  },
  { name: 'f2fs', tool: 'mkfs.f2fs', bytes: 64 * MiB, make: (f) => run('mkfs.f2fs', ['-q', '-f', f]), expect: ['f2fs'] },
  { name: 'bcache-cache', tool: 'make-bcache', bytes: 128 * MiB, make: (f) => run('make-bcache', ['-C', f]), expect: ['bcache'] },
  { name: 'bcache-backing', tool: 'make-bcache', bytes: 32 * MiB, make: (f) => run('make-bcache', ['-B', f]), expect: ['bcache'] },
  { name: 'LVM2', tool: 'pvcreate', bytes: 32 * MiB, make: (f) => onLoop(f, (dev) => run('pvcreate', ['-q', '-ff', '-y', dev])), expect: ['LVM2_member'] },
  { name: 'luks1', tool: 'cryptsetup', bytes: 32 * MiB, make: (f) => run('cryptsetup', ['luksFormat', '-q', '--type', 'luks1', '--pbkdf-force-iterations', '1000', f, '-'], 'pw'), expect: ['crypto_LUKS'] },
  { name: 'luks2', tool: 'cryptsetup', bytes: 32 * MiB, make: (f) => run('cryptsetup', ['luksFormat', '-q', '--type', 'luks2', ...LUKS_FAST, f, '-'], 'pw'), expect: ['crypto_LUKS', 'crypto_LUKS'] },
  {
    name: 'luks2-secondary-only',
    tool: 'cryptsetup',
    bytes: 32 * MiB,
    make: (f) => {
      run('cryptsetup', ['luksFormat', '-q', '--type', 'luks2', '--luks2-metadata-size', '64k', ...LUKS_FAST, f, '-'], 'pw');
      putBytes(f, 0, 'XXXX');
    },
    expect: ['crypto_LUKS'],
  },
  {
    name: 'ext4-under-dos',
    tool: 'mkfs.ext4',
    bytes: 32 * MiB,
    // A table written over a filesystem without wiping it: both are listed, superblocks first.
    make: (f) => {
      run('mkfs.ext4', ['-q', '-F', f]);
      sfdiskWrite(f, 'label: dos\n,,L\n', ['--wipe', 'never']);
    },
    expect: ['ext4', 'dos'],
  },
  {
    name: 'LVM2-under-empty-dos',
    tool: 'pvcreate',
    bytes: 32 * MiB,
    // libblkid's "empty MBR on an LVM device" exception does not apply in wipefs's loop.
    make: (f) => {
      onLoop(f, (dev) => run('pvcreate', ['-q', '-ff', '-y', dev]));
      sfdiskWrite(f, 'label: dos\n', ['--wipe', 'never']);
    },
    expect: ['LVM2_member', 'dos'],
  },
  ...(['0.90', '1.0', '1.1', '1.2'] as const).map(
    (version): Fixture => ({
      name: `md-${version}`,
      tool: 'mdadm',
      bytes: 16 * MiB,
      make: (f) => {
        writeMdSuperblock(f, 16 * MiB, version);
        // mdadm itself must accept the superblock as the one it writes.
        const examined = execFileSync('mdadm', ['--examine', f]).toString();
        expect(examined).toMatch(new RegExp(`Version : ${version.replace('.', '\\.')}`));
      },
      expect: ['linux_raid_member'],
    }),
  ),
];

