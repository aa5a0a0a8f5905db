// Benchmark fixtures, built once into bench/work and reused (delete the folder to rebuild).
import fs from 'node:fs';
import path from 'node:path';
import { WORK, ensureDir, sh } from './lib.mjs';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/**
 * (a) A 2 GiB ext4 image holding about 700 MB of real files (/usr/share, and /usr/lib up to the
 * budget when /usr/share is smaller), sparse on disk as mkfs.ext4 -d leaves it.
 */
export function ext4Image() {
  const file = path.join(ensureDir(WORK), 'ext4-2g.img');
  if (fs.existsSync(file)) return file;
  const tmp = `${file}.tmp`;
  sh(`rm -f '${tmp}' && truncate -s 2G '${tmp}' && mkfs.ext4 -q -F -L bench -d /usr/share '${tmp}' && mv '${tmp}' '${file}'`);
  return file;
}

/** (b) The same image with every block allocated. */
export function ext4ImageAllocated() {
  const file = path.join(ensureDir(WORK), 'ext4-2g-full.img');
  if (fs.existsSync(file)) return file;
  sh(`cp --sparse=never '${ext4Image()}' '${file}.tmp' && mv '${file}.tmp' '${file}'`);
  return file;
}

/** (c) A 1 TiB sparse file with 256 MiB of data in 32 extents of 8 MiB spread across it. */
export function terabyteSparse() {
  const file = path.join(ensureDir(WORK), 'sparse-1t.img');
  if (fs.existsSync(file)) return file;
  const fd = fs.openSync(`${file}.tmp`, 'w');
  const chunk = Buffer.alloc(8 * MiB);
  for (let i = 0; i < 32; i++) {
    for (let j = 0; j < chunk.length; j += 4) chunk.writeUInt32LE((i * 2654435761 + j) >>> 0 || 1, j);
    fs.writeSync(fd, chunk, 0, chunk.length, i * 32 * GiB + 123 * MiB);
  }
  fs.ftruncateSync(fd, 1024 * GiB);
  fs.closeSync(fd);
  fs.renameSync(`${file}.tmp`, file);
  return file;
}

/** Backing file for (d): a blank 2 GiB loop device. */
export function blankDeviceBacking() {
  const file = path.join(ensureDir(WORK), 'loop-backing.img');
  sh(`rm -f '${file}' && truncate -s 2G '${file}'`);
  return file;
}
