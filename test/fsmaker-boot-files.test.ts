/**
 * The kernel and initrd checks (pure): what GRUB's linux command and the kernel's initramfs
 * unpacker accept passes, everything else is refused with its reason. The real Debian kernel and
 * the generated initramfs of the boot cache pass when they are there.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BOOT_FILE_HEAD_BYTES, initrdFormat, kernelProblem } from '../src/fsmaker/boot-files.js';
import { defaultBootCacheDir, findDefaultBootAssets } from '../src/fsmaker/boot-assets.js';
import { ROOT, makeTempDir, patternBytes } from './helpers.js';
import { fakeKernel } from './fsmaker-fixtures.js';

const head = (b: Buffer) => b.subarray(0, BOOT_FILE_HEAD_BYTES);
const kernelOf = (edit: (b: Buffer) => void, size = 100_000): string | null => {
  const b = fakeKernel(size);
  edit(b);
  return kernelProblem(head(b), b.length);
};

describe('kernelProblem', () => {
  it('accepts a bzImage header GRUB boots', () => {
    expect(kernelProblem(head(fakeKernel()), 300_000)).toBeNull();
  });

  it.each([
    ['an empty file', () => kernelProblem(Buffer.alloc(0), 0), /is empty/],
    ['a file too short for the header', () => kernelProblem(Buffer.alloc(100), 100), /too short to hold the x86 boot header/],
    ['no "HdrS"', () => kernelOf((b) => b.write('HdrX', 0x202)), /no "HdrS" at byte 514/],
    ['boot protocol 2.02', () => kernelOf((b) => b.writeUInt16LE(0x0202, 0x206)), /boot protocol 2\.02: GRUB's linux command needs 2\.03/],
    ['no boot flag', () => kernelOf((b) => b.writeUInt16LE(0, 0x1fe)), /no boot flag 0xAA55/],
    ['65 setup sectors', () => kernelOf((b) => (b[0x1f1] = 65)), /65 setup sectors .*at most 64/],
    ['a zImage', () => kernelOf((b) => (b[0x211] = 0)), /zImage/],
    ['a truncated kernel', () => kernelOf((b) => b.writeUInt32LE(1_000_000, 0x1f4)), /truncated: its header announces 16002560 bytes, the file holds 100000/],
    ['a kernel larger than FAT holds', () => kernelProblem(head(fakeKernel()), 2 ** 32), /at most 4 GiB - 1/],
  ])('refuses %s', (_what, problem, why) => expect(problem()).toMatch(why));

  it('reads setup_sects 0 as 4, as the boot protocol says', () => {
    expect(kernelOf((b) => (b[0x1f1] = 0))).toBeNull();
    expect(kernelOf((b) => (b[0x1f1] = 0), 2560)).toBeNull();
    expect(kernelOf((b) => (b[0x1f1] = 0), 2559)).toMatch(/truncated/);
  });
});

describe('initrdFormat', () => {
  const magic = (bytes: number[] | string, pad = 0) => Buffer.concat([Buffer.alloc(pad), Buffer.from(bytes as never), patternBytes(64)]);
  it.each([
    ['070701', 'newc cpio'],
    ['070702', 'newc cpio with checksums'],
    [[0x1f, 0x8b, 8], 'gzip'],
    [[0x1f, 0x9e], 'gzip (old)'],
    ['BZh9', 'bzip2'],
    [[0x5d, 0, 0, 0x80], 'lzma'],
    [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0], 'xz'],
    [[0x89, 0x4c, 0x5a, 0x4f], 'lzo'],
    [[0x02, 0x21, 0x4c, 0x18], 'lz4 (legacy)'],
    [[0x28, 0xb5, 0x2f, 0xfd], 'zstd'],
  ])('accepts %j as %s', (bytes, format) => {
    const b = magic(bytes);
    expect(initrdFormat(b, b.length)).toEqual({ format });
  });

  it('skips the zero padding Linux skips, but not without end', () => {
    const padded = magic('070701', 512);
    expect(initrdFormat(padded, padded.length)).toEqual({ format: 'newc cpio' });
    expect(initrdFormat(Buffer.alloc(4096), 1 << 30)).toEqual({ problem: 'starts with more than 4096 zero bytes' });
    expect(initrdFormat(Buffer.alloc(100), 100)).toEqual({ problem: 'holds only zero bytes' });
  });

  it.each([
    ['an empty file', Buffer.alloc(0), /is empty/],
    ['odc cpio', magic('070707'), /odc cpio archive .*cpio -H newc/],
    ['the lz4 frame format', magic([0x04, 0x22, 0x4d, 0x18]), /lz4 frame format/],
    ['random bytes', patternBytes(4096, 3), /neither a cpio archive .* it starts with [0-9a-f]{2} /],
  ])('refuses %s', (_what, b, why) => {
    const r = initrdFormat(b, b.length);
    expect('problem' in r && r.problem).toMatch(why);
  });
});

describe('the real boot files pass', () => {
  const assets = findDefaultBootAssets(defaultBootCacheDir(ROOT));
  it.skipIf(assets.status !== 'ok')('the cached Debian kernel and every cached initramfs', () => {
    if (assets.status !== 'ok') return;
    const k = fs.readFileSync(assets.kernel);
    expect(kernelProblem(head(k), k.length)).toBeNull();
    const cached = fs.readdirSync(path.dirname(assets.busybox)).filter((n) => /^initramfs-.*\.img$/.test(n));
    for (const n of cached) {
      const b = fs.readFileSync(path.join(path.dirname(assets.busybox), n));
      expect(initrdFormat(head(b), b.length), n).toEqual({ format: 'gzip' });
    }
  });

  it.skipIf(spawnSync('sh', ['-c', 'command -v cpio && command -v xz && command -v zstd'], { stdio: 'ignore' }).status !== 0)('archives made by cpio -H newc, xz and zstd', () => {
    const tree = makeTempDir('boot-files-');
    fs.writeFileSync(path.join(tree, 'init'), '#!/bin/sh\n');
    const newc = execFileSync('sh', ['-c', 'printf "init\\n" | cpio -o -H newc 2>/dev/null'], { cwd: tree });
    expect(initrdFormat(head(newc), newc.length)).toEqual({ format: 'newc cpio' });
    const odc = execFileSync('sh', ['-c', 'printf "init\\n" | cpio -o -H odc 2>/dev/null'], { cwd: tree });
    fs.rmSync(tree, { recursive: true });
    expect('problem' in initrdFormat(head(odc), odc.length)).toBe(true);
    for (const [tool, format] of [['xz --check=crc32', 'xz'], ['zstd -q', 'zstd']] as const) {
      const packed = execFileSync('sh', ['-c', `${tool} -c`], { input: newc });
      expect(initrdFormat(head(packed), packed.length), tool).toEqual({ format });
    }
  });
});
