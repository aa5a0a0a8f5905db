/**
 * sparsecopy's VMDK and OVA writers read back by its own VMDK and OVA readers (both are checked
 * against qemu-img elsewhere; this pins that the two halves agree with each other): every
 * subformat from a file, streamOptimized and OVA through pipes both ways, and a partition of the
 * disk taken straight out of each.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SPARSECOPY, firstDifference, patternBytes, sfdiskWrite, sparsecopy, useTempDir, writeSparseFile } from './helpers.js';

const MiB = 1 << 20;
const SIZE = 96 * MiB + 3 * 512; // a partial last grain
let dir = '';
let source = '';
let original: Buffer;
useTempDir('vmdk-rt-', (d) => {
  dir = d;
  source = path.join(dir, 'disk.img');
  writeSparseFile(source, SIZE, [
    { offset: 1 * MiB, data: patternBytes(3 * MiB + 700, 1) }, // ends mid-grain
    { offset: 32 * MiB - 4096, data: patternBytes(8192, 2) }, // across a grain table's region
    { offset: SIZE - 1000, data: patternBytes(1000, 3) },
  ]);
  sfdiskWrite(source, 'label: dos\nstart=2048, size=40960, type=83\n');
  original = fs.readFileSync(source);
});

const readBack = (file: string, extra: string[] = []): Buffer => {
  const out = path.join(dir, `back-${path.basename(file)}-${extra.join('')}.img`);
  fs.rmSync(out, { force: true });
  const r = sparsecopy([...extra, file, out]);
  expect(r.status, r.stderr).toBe(0);
  return fs.readFileSync(out);
};

describe('written by sparsecopy, read by sparsecopy', () => {
  for (const subformat of ['streamOptimized', 'monolithicSparse', 'monolithicFlat', 'twoGbMaxExtentFlat']) {
    it(`${subformat}: the disk and its partition 1 come back`, () => {
      const vmdk = path.join(dir, `${subformat}.vmdk`);
      const w = sparsecopy(['--vmdk-subformat', subformat, source, vmdk]);
      expect(w.status, w.stderr).toBe(0);
      const back = readBack(vmdk);
      expect(firstDifference(back, original)).toBe(-1);
      expect(readBack(vmdk, ['--from-partition', '1']).equals(original.subarray(2048 * 512, (2048 + 40960) * 512))).toBe(true);
    });
  }

  for (const format of ['vmdk', 'ova']) {
    it(`${format} through pipes both ways: sparsecopy - | sparsecopy -`, () => {
      const out = path.join(dir, `piped-${format}.img`);
      const r = spawnSync('bash', ['-c', `set -o pipefail; node "$0" -q --format ${format} "$1" - | node "$0" -q - "$2"`, SPARSECOPY, source, out], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(firstDifference(fs.readFileSync(out), original)).toBe(-1);
    });
  }
});
