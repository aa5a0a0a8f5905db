/**
 * Stand-ins fsmaker accepts without booting them: a kernel with a valid x86 boot header (the bytes
 * GRUB's `linux` command checks) and an initrd with a gzip magic; and small ext4 rootfs images
 * built with mkfs.ext4 -d from a tree.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { patternBytes } from './helpers.js';

/** A file GRUB would load as a bzImage: boot flag, "HdrS", protocol 2.15, LOADED_HIGH, 4 setup sectors, syssize. */
export function fakeKernel(size = 300_000, seed = 1): Buffer {
  const b = patternBytes(size, seed);
  b[0x1f1] = 4; // setup_sects
  b.writeUInt16LE(0xaa55, 0x1fe); // boot_flag
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x020f, 0x206); // boot protocol version
  b[0x211] = 0x01; // loadflags: LOADED_HIGH
  b.writeUInt32LE(Math.max(0, Math.floor((size - 5 * 512) / 16)), 0x1f4); // syssize: what follows the setup
  return b;
}

/** A gzip stream (what a compressed initramfs starts with). */
export function fakeInitrd(size = 100_000, seed = 2): Buffer {
  return gzipSync(patternBytes(size, seed), { level: 1 });
}

/** Writes a stand-in kernel and initrd into `dir`; returns their paths. */
export function writeBootFiles(dir: string): { kernel: string; initrd: string } {
  const kernel = path.join(dir, 'vmlinuz');
  const initrd = path.join(dir, 'initrd.img');
  fs.writeFileSync(kernel, fakeKernel());
  fs.writeFileSync(initrd, fakeInitrd());
  return { kernel, initrd };
}

export interface RootfsSpec {
  /** Extra mkfs.ext4 options (block size, features...). */
  mkfs?: string[];
  size?: string;
  /** Adds files to the tree before mkfs. */
  tree?: (root: string) => void;
  /** Index the directories (e2fsck -fyD: large directories become htrees). */
  htree?: boolean;
}

/**
 * An ext4 image at `file` with /boot/vmlinuz-1.0 (a stand-in kernel), /boot/vmlinuz -> vmlinuz-1.0,
 * /boot/initrd.img and whatever `spec.tree` adds.
 */
export function buildRootfs(file: string, spec: RootfsSpec = {}): string {
  const tree = `${file}.tree`;
  fs.rmSync(tree, { recursive: true, force: true });
  fs.mkdirSync(path.join(tree, 'boot'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'boot/vmlinuz-1.0'), fakeKernel(64 * 1024, 7));
  fs.symlinkSync('vmlinuz-1.0', path.join(tree, 'boot/vmlinuz'));
  fs.writeFileSync(path.join(tree, 'boot/initrd.img'), fakeInitrd(20_000, 8));
  spec.tree?.(tree);
  fs.rmSync(file, { force: true });
  execFileSync('mkfs.ext4', ['-q', '-F', ...(spec.mkfs ?? []), '-d', tree, file, spec.size ?? '16M'], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (spec.htree) execFileSync('sh', ['-c', 'e2fsck -fyD "$1" >/dev/null 2>&1; [ $? -le 1 ]', 'sh', file]);
  fs.rmSync(tree, { recursive: true, force: true });
  return file;
}
