/**
 * One rule for every table write (issue 14): the plan of src/partition/wipe-plan.ts is what ptable,
 * sparsecopy and fsmaker put on a disk. fsmaker streams its disk, so its table pieces come from
 * that plan; on a device larger than the disk it builds, a former GPT's backup header at the
 * device's end must not survive it (the kernel and sfdisk read it there).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bufferReader } from '../src/partition/read.js';
import { planTableWrite } from '../src/partition/wipe-plan.js';
import type { PartitionTable } from '../src/partition/model.js';
import { ROOT, loopUnavailableReason, runCli, sfdiskWrite, useTempDir, withLoop } from './helpers.js';

let dir = '';
useTempDir('ptable-write-everywhere-', (d) => (dir = d));

const MiB = 1024 * 1024;
const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
const loopReason = loopUnavailableReason();

function layoutFile(label: 'gpt' | 'mbr'): string {
  const root = path.join(dir, 'root.ext4');
  if (!fs.existsSync(root)) execFileSync('mkfs.ext4', ['-q', '-F', root, '4M']);
  const file = path.join(dir, `${label}.yaml`);
  fs.writeFileSync(file, `label: ${label}\nbootloader: none\nseed: wipe\nsize: 16M\npartitions:\n  - { mount: /, contents: { kind: image, path: ${root} } }\n`);
  return file;
}

const wipefsTypes = (file: string): string[] =>
  spawnSync('wipefs', ['-n', '-O', 'TYPE,OFFSET', '--noheadings', file], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n')
    .map((l) => l.trim().replace(/\s+/g, ' '));

const signatureAt = (file: string, offset: number): string => {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(8);
    fs.readSync(fd, b, 0, 8, offset);
    return b.toString('latin1');
  } finally {
    fs.closeSync(fd);
  }
};

describe.skipIf(loopReason !== null)('fsmaker on a device larger than its disk, over an old GPT', () => {
  it.each(['gpt', 'mbr'] as const)('a %s layout: the old backup header at the device end is wiped, nothing else past the disk changes', async (label) => {
    const image = path.join(dir, `device-${label}.img`);
    fs.rmSync(image, { force: true });
    fs.writeFileSync(image, '');
    fs.truncateSync(image, 40 * MiB);
    sfdiskWrite(image, 'label: gpt\n,,L\n');
    const lastOffset = 40 * MiB - 512;
    expect(signatureAt(image, lastOffset)).toBe('EFI PART');
    const before = fs.readFileSync(image).subarray(16 * MiB);
    const r = await withLoop(image, (device) => runCli(FSMAKER, ['--layout', layoutFile(label), device]));
    expect(r.status, r.stderr).toBe(0);
    expect(signatureAt(image, lastOffset)).toBe('\0'.repeat(8));
    // Only those 8 bytes past the built disk: the rest of the old backup (and all else) stays.
    const after = fs.readFileSync(image).subarray(16 * MiB);
    const changed = [...after.keys()].filter((i) => after[i] !== before[i]);
    expect(changed).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => 24 * MiB - 512 + i));
    const types = wipefsTypes(image);
    expect(types.filter((t) => t.startsWith('gpt'))).toEqual(label === 'gpt' ? ['gpt 0x200'] : []);
  });
});

describe('fsmaker over an existing larger image file', () => {
  it('replaces it: no old GPT header survives past the new disk', () => {
    const image = path.join(dir, 'file.img');
    fs.rmSync(image, { force: true });
    fs.writeFileSync(image, '');
    fs.truncateSync(image, 40 * MiB);
    sfdiskWrite(image, 'label: gpt\n,,L\n');
    const r = runCli(FSMAKER, ['--layout', layoutFile('mbr'), image]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.statSync(image).size).toBe(16 * MiB);
    expect(wipefsTypes(image)).toEqual(['dos 0x1fe']);
  });
});

describe('the plan itself', () => {
  const dosTable = (diskSectors: number): PartitionTable => ({ label: 'dos', id: '0x01020304', sectorSize: 512, diskSectors, partitions: [{ number: 1, start: 2048, size: 4096, type: '83' }] });

  it('a medium larger than the table: a valid GPT header at its last LBA is wiped, whatever the label', () => {
    const image = path.join(dir, 'plan.img');
    fs.rmSync(image, { force: true });
    fs.writeFileSync(image, '');
    fs.truncateSync(image, 8 * MiB);
    sfdiskWrite(image, 'label: gpt\n,,L\n');
    const bytes = fs.readFileSync(image);
    const sectors = bytes.length / 512;
    const gpt: PartitionTable = { label: 'gpt', id: '00000000-0000-0000-0000-000000000001', sectorSize: 512, diskSectors: 4096, partitions: [{ number: 1, start: 2048, size: 1024, type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', uuid: '00000000-0000-0000-0000-000000000002' }] };
    const plan = planTableWrite(bufferReader(bytes, 512), gpt, { mediumSectors: sectors });
    expect(plan.wipes.map((w) => [w.offset, w.length, w.reason])).toEqual([[(sectors - 1) * 512, 8, 'old-label']]);
    const same = planTableWrite(bufferReader(bytes, 512), gpt);
    expect(same.wipes).toEqual([]);
    // A dos table over the whole disk: both headers.
    const dos = planTableWrite(bufferReader(bytes, 512), dosTable(sectors));
    expect(dos.wipes.map((w) => w.offset)).toEqual([512, (sectors - 1) * 512]);
    // The wiped sectors are written, zeroed only in those 8 bytes; the table sector 0 after them.
    const last = dos.writes.find((w) => w.lba === sectors - 1)!;
    expect(last.data.subarray(0, 8).equals(Buffer.alloc(8))).toBe(true);
    expect(last.data.subarray(8).equals(bytes.subarray((sectors - 1) * 512 + 8, sectors * 512))).toBe(true);
    expect(dos.writes.at(-1)!.lba).toBe(0);
  });

  it('--wipe-partitions: always wipes what the finder reports in a new partition, auto only notes it', () => {
    const image = Buffer.alloc(8 * MiB);
    const finder = (read: (o: number, l: number) => Buffer, area: number) => (area > 4096 && read(4086, 10).toString('latin1') === 'SWAPSPACE2' ? [{ type: 'swap', usage: 'other' as const, offset: 4086, length: 10 }] : []);
    image.write('SWAPSPACE2', 2048 * 512 + 4086, 'latin1');
    const always = planTableWrite(bufferReader(image, 512), dosTable(image.length / 512), { wipePartitions: 'always', findSignatures: finder });
    expect(always.wipes).toEqual([{ offset: 2048 * 512 + 4086, length: 10, type: 'swap', reason: 'partition', partition: 1 }]);
    const auto = planTableWrite(bufferReader(image, 512), dosTable(image.length / 512), { findSignatures: finder });
    expect(auto.wipes).toEqual([]);
    expect(auto.notes).toEqual(['Partition #1 contains a swap signature.']);
  });
});
