/**
 * Image formats are recognised from real files made by the tools that make them (qemu-img, xz,
 * zstd, bzip2, lz4, zip, img2simg, genisoimage), and raw images (a filesystem, partitioned disks,
 * random bytes) are recognised as nothing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { IDENTIFY_HEAD_BYTES, IDENTIFY_TAIL_BYTES, type ImageFormat, identifyImage } from '../src/format/identify.js';
import { patternBytes, prng, sfdiskWrite, useTempDir } from './helpers.js';

let dir = '';
useTempDir('identify-', (d) => (dir = d));

const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

function identifyFile(file: string): ImageFormat | null {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, IDENTIFY_HEAD_BYTES));
    fs.readSync(fd, head, 0, head.length, 0);
    const tail = Buffer.alloc(Math.min(size, IDENTIFY_TAIL_BYTES));
    fs.readSync(fd, tail, 0, tail.length, size - tail.length);
    return identifyImage(head, tail);
  } finally {
    fs.closeSync(fd);
  }
}

/** A small raw disk with data in it: the input every converter below starts from. */
function rawDisk(): string {
  const file = path.join(dir, 'raw.img');
  if (!fs.existsSync(file)) {
    fs.writeFileSync(file, Buffer.alloc(0));
    fs.truncateSync(file, 8 << 20);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, patternBytes(64 << 10), 0, 64 << 10, 1 << 20);
    fs.closeSync(fd);
  }
  return file;
}

function made(name: string, command: string, args: string[]): string {
  const out = path.join(dir, name);
  execFileSync(command, args.map((a) => a.replace('OUT', out).replace('RAW', rawDisk())), { stdio: 'ignore' });
  return out;
}

describe('identifyImage', () => {
  const qemu: [string, string[], ImageFormat][] = [
    ['qcow2 v3', ['-O', 'qcow2', '-o', 'compat=1.1'], 'qcow2'],
    ['qcow2 v2', ['-O', 'qcow2', '-o', 'compat=0.10'], 'qcow2'],
    ['qcow v1', ['-O', 'qcow'], 'qcow'],
    ['vmdk monolithicSparse', ['-O', 'vmdk'], 'vmdk-sparse'],
    ['vmdk streamOptimized', ['-O', 'vmdk', '-o', 'subformat=streamOptimized'], 'vmdk-sparse'],
    ['vmdk monolithicFlat (the descriptor)', ['-O', 'vmdk', '-o', 'subformat=monolithicFlat'], 'vmdk-descriptor'],
    ['vhd dynamic', ['-O', 'vpc'], 'vhd'],
    ['vhd fixed (footer at the end)', ['-O', 'vpc', '-o', 'subformat=fixed'], 'vhd'],
    ['vhdx', ['-O', 'vhdx'], 'vhdx'],
    ['vdi', ['-O', 'vdi'], 'vdi'],
  ];
  it.skipIf(!has('qemu-img')).each(qemu)('%s made by qemu-img', (name, options, expected) => {
    const out = made(`${name.replace(/\W+/g, '-')}.img`, 'qemu-img', ['convert', '-f', 'raw', ...options, 'RAW', 'OUT']);
    expect(identifyFile(out)).toBe(expected);
  });

  const compressors: [string, string, string[], ImageFormat][] = [
    ['gzip', 'gzip', ['-c'], 'gzip'],
    ['xz', 'xz', ['-c', '-T0'], 'xz'],
    ['zstd', 'zstd', ['-q', '-c'], 'zstd'],
    ['bzip2', 'bzip2', ['-c'], 'bzip2'],
    ['lz4', 'lz4', ['-q', '-c'], 'lz4'],
    ['lz4 legacy', 'lz4', ['-q', '-l', '-c'], 'lz4'],
  ];
  it.each(compressors)('%s data', (name, tool, args, expected) => {
    if (!has(tool)) return void console.warn(`skipping ${name}: ${tool} is not installed`);
    const out = path.join(dir, `raw.${name.replace(/\W+/g, '-')}`);
    fs.writeFileSync(out, execFileSync(tool, [...args, rawDisk()], { maxBuffer: 1 << 30 }));
    expect(identifyFile(out)).toBe(expected);
  });

  it('empty compressed streams too (bzip2 end-of-stream magic, zstd skippable frame first)', () => {
    expect(identifyImage(execFileSync('bzip2', ['-c'], { input: Buffer.alloc(0) }))).toBe('bzip2');
    const skippable = Buffer.from([0x53, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
    expect(identifyImage(skippable)).toBe('zstd');
  });

  it.skipIf(!has('zip'))('a zip archive', () => {
    const out = path.join(dir, 'raw.zip');
    execFileSync('zip', ['-q', '-j', out, rawDisk()]);
    expect(identifyFile(out)).toBe('zip');
  });

  it.skipIf(!has('img2simg'))('an Android sparse image made by img2simg', () => {
    expect(identifyFile(made('raw.simg', 'img2simg', ['RAW', 'OUT']))).toBe('android-sparse');
  });

  it.skipIf(!has('genisoimage'))('an ISO 9660 image made by genisoimage', () => {
    const tree = path.join(dir, 'isotree');
    fs.mkdirSync(tree, { recursive: true });
    fs.writeFileSync(path.join(tree, 'hello.txt'), 'hello');
    expect(identifyFile(made('raw.iso', 'genisoimage', ['-quiet', '-o', 'OUT', tree]))).toBe('iso9660');
  });

  it('a DMG by its koly trailer', () => {
    const tail = Buffer.alloc(512);
    tail.write('koly', 0, 'latin1');
    expect(identifyImage(patternBytes(4096), tail)).toBe('dmg');
  });

  it('raw images are nothing: an ext4 filesystem, MBR and GPT disks with boot code, random bytes, zeros', () => {
    const ext4 = path.join(dir, 'fs.ext4');
    fs.writeFileSync(ext4, Buffer.alloc(0));
    fs.truncateSync(ext4, 16 << 20);
    execFileSync('mkfs.ext4', ['-q', '-F', ext4]);
    expect(identifyFile(ext4)).toBeNull();
    for (const label of ['dos', 'gpt']) {
      const disk = path.join(dir, `${label}.img`);
      fs.copyFileSync(rawDisk(), disk);
      fs.writeFileSync(disk, patternBytes(440, 9), { flag: 'r+' }); // boot code
      sfdiskWrite(disk, `label: ${label}\n,4M,L\n`);
      expect(identifyFile(disk)).toBeNull();
    }
    expect(identifyImage(Buffer.alloc(IDENTIFY_HEAD_BYTES), Buffer.alloc(512))).toBeNull();
    const random = prng(7);
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.alloc(64);
      for (let k = 0; k < b.length; k++) b[k] = Math.floor(random() * 256);
      expect(identifyImage(b)).toBeNull();
    }
  });
});
