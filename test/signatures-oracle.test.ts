/**
 * findSignatures against wipefs on real signatures made by their own Debian tools: for each type,
 * in a whole image and inside a partition at an offset, the same types at the same offsets with
 * the same lengths as `wipefs -n -J`, and exactly the bytes `wipefs -a` erases.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Signature } from '../src/partition/signatures.js';
import { copySparse, newImageIn, sfdiskWrite, useTempDir } from './helpers.js';
import { FIXTURES, run } from './signatures-fixtures.js';
import { extract, hasTool, implant, onLoop, signaturesOf, wipefsErase, wipefsList, writeMdSuperblock } from './signatures-tools.js';

let dir = '';
useTempDir('sig-oracle-', (d) => (dir = d));

const MiB = 1024 * 1024;

function expectSameAsWipefs(file: string, found: Signature[]): void {
  const listed = wipefsList(file);
  expect(found.map((s) => ({ type: s.type, offset: s.offset, length: s.length, usage: s.usage }))).toEqual(listed);
  const erased = wipefsErase(file, `${file}.wiped`);
  expect(found.map((s) => ({ type: s.type, offset: s.offset, length: s.length }))).toEqual(erased.reported);
  // Every changed byte is inside a signature, and every signature's non-zero bytes changed.
  const inSignature = (o: number): boolean => found.some((s) => o >= s.offset && o < s.offset + s.length);
  expect(erased.changed.filter((o) => !inSignature(o))).toEqual([]);
  expect(erased.changed.length).toBeGreaterThan(0);
}

describe('findSignatures agrees with wipefs', () => {
  for (const f of FIXTURES) {
    describe(f.name, () => {
      it.skipIf(!hasTool(f.tool))(`in a whole image (${f.tool})`, () => {
        const file = newImageIn(dir, `${f.name}.img`, f.bytes);
        f.make(file);
        expect(wipefsList(file).map((s) => s.type)).toEqual(f.expect);
        expectSameAsWipefs(file, signaturesOf(file));
      });
      it.skipIf(!hasTool(f.tool))(`inside a partition at 1 MiB of a dos disk (${f.tool})`, () => {
        const alone = newImageIn(dir, `${f.name}.part`, f.bytes);
        f.make(alone);
        const bytes = fs.statSync(alone).size;
        expect(bytes % 512).toBe(0);
        const disk = newImageIn(dir, `${f.name}-in-dos.img`, bytes + 2 * MiB);
        sfdiskWrite(disk, `label: dos\nstart=2048, size=${bytes / 512}, type=83\n`);
        implant(alone, disk, MiB);
        const found = signaturesOf(disk, { start: MiB, bytes });
        expect(found.map((s) => s.type)).toEqual(f.expect);
        expectSameAsWipefs(extract(disk, MiB, bytes, path.join(dir, `${f.name}.extracted`)), found);
        // The disk itself still shows its table only.
        expect(signaturesOf(disk).map((s) => s.type)).toEqual(wipefsList(disk).map((s) => s.type));
      });
    });
  }
});

describe('findSignatures on 4096-byte-sector devices agrees with wipefs on a loop device', () => {
  const lists = (file: string): ReturnType<typeof wipefsList> => onLoop(file, (dev) => wipefsList(dev), 4096);
  for (const label of ['gpt', 'dos']) {
    it(`${label} written by sfdisk on a 4096-byte-sector loop device`, () => {
      const file = newImageIn(dir, `${label}-4k.img`, 64 * MiB);
      onLoop(file, (dev) => sfdiskWrite(dev, `label: ${label}\n,,L\n`), 4096);
      const listed = lists(file);
      expect(listed.map((s) => s.type)).toEqual(label === 'gpt' ? ['gpt', 'gpt', 'PMBR'] : ['dos']);
      const found = signaturesOf(file, { sectorSize: 4096 });
      expect(found).toEqual(listed);
      if (label === 'gpt') expect(found.map((s) => s.offset)).toEqual([4096, 64 * MiB - 4096, 510]);
      // What wipefs -a erases on the device is what findSignatures gives.
      const copy = `${file}.wiped`;
      copySparse(file, copy);
      const before = fs.readFileSync(copy);
      onLoop(copy, (dev) => run('wipefs', ['-a', dev]), 4096);
      const after = fs.readFileSync(copy);
      const changed: number[] = [];
      for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) changed.push(i);
      expect(changed.length).toBeGreaterThan(0);
      expect(changed.filter((o) => !found.some((s) => o >= s.offset && o < s.offset + s.length))).toEqual([]);
      // With 512-byte sectors the same GPT is not found (its headers are not at LBA 1 and the last LBA).
      if (label === 'gpt') expect(signaturesOf(file).map((s) => s.type)).toEqual(['PMBR']);
    });
  }
});

describe('MD RAID 0.90 at the end of the last partition belongs to the partition', () => {
  it('wipefs and findSignatures list only the table on the whole disk, the member in the partition', () => {
    const bytes = 32 * MiB;
    const file = newImageIn(dir, 'md090-in-last.img', bytes);
    sfdiskWrite(file, 'label: dos\nstart=2048, type=fd\n');
    const partStart = MiB;
    const partBytes = bytes - partStart;
    const part = newImageIn(dir, 'md090.part', partBytes);
    writeMdSuperblock(part, partBytes, '0.90');
    implant(part, file, partStart);
    // The whole disk's 0.90 slot is the partition's (both end at the disk's end, both 64 KiB aligned).
    expect(wipefsList(file).map((s) => s.type)).toEqual(['dos']);
    expect(signaturesOf(file)).toEqual(wipefsList(file));
    expect(signaturesOf(file, { start: partStart, bytes: partBytes }).map((s) => s.type)).toEqual(['linux_raid_member']);
    // Without the table the same bytes are a member of the whole disk.
    const bare = newImageIn(dir, 'md090-bare.img', bytes);
    implant(part, bare, partStart);
    expect(wipefsList(bare).map((s) => s.type)).toEqual(['linux_raid_member']);
    expect(signaturesOf(bare)).toEqual(wipefsList(bare));
  });
});
