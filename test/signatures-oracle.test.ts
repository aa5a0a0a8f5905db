/**
 * findSignatures against wipefs on real signatures made by their own Debian tools: for each type,
 * in a whole image and inside a partition at an offset, the same types at the same offsets with
 * the same lengths as `wipefs -n -J`, and exactly the bytes `wipefs -a` erases.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Signature } from '../src/partition/signatures.js';
import { newImageIn, sfdiskWrite, useTempDir } from './helpers.js';
import { extract, hasTool, implant, signaturesOf, wipefsErase, wipefsList } from './signatures-tools.js';

let dir = '';
useTempDir('sig-oracle-', (d) => (dir = d));

const MiB = 1024 * 1024;

interface Fixture {
  name: string;
  /** The Debian command that makes it. */
  tool: string;
  bytes: number;
  /** Makes the signature in the (blank, sparse) file. */
  make: (file: string) => void;
  /** The types wipefs must list: guards against a fixture the tool did not make. */
  expect: string[];
}

const run = (command: string, args: string[]): void => void execFileSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });

const FIXTURES: Fixture[] = [
  { name: 'dos', tool: 'sfdisk', bytes: 50 * MiB, make: (f) => sfdiskWrite(f, 'label: dos\n,,L\n'), expect: ['dos'] },
  { name: 'gpt', tool: 'sfdisk', bytes: 50 * MiB, make: (f) => sfdiskWrite(f, 'label: gpt\n,,L\n'), expect: ['gpt', 'gpt', 'PMBR'] },
  { name: 'ext2', tool: 'mkfs.ext2', bytes: 32 * MiB, make: (f) => run('mkfs.ext2', ['-q', '-F', f]), expect: ['ext2'] },
  { name: 'ext3', tool: 'mkfs.ext3', bytes: 32 * MiB, make: (f) => run('mkfs.ext3', ['-q', '-F', f]), expect: ['ext3'] },
  { name: 'ext4', tool: 'mkfs.ext4', bytes: 32 * MiB, make: (f) => run('mkfs.ext4', ['-q', '-F', f]), expect: ['ext4'] },
  { name: 'xfs', tool: 'mkfs.xfs', bytes: 320 * MiB, make: (f) => run('mkfs.xfs', ['-q', '-f', f]), expect: ['xfs'] },
  { name: 'swap', tool: 'mkswap', bytes: 16 * MiB, make: (f) => run('mkswap', ['-q', f]), expect: ['swap'] },
  { name: 'swap-64k-pages', tool: 'mkswap', bytes: 16 * MiB, make: (f) => run('mkswap', ['-q', '-p', '65536', f]), expect: ['swap'] },
  { name: 'swap-v0', tool: 'mkswap', bytes: 16 * MiB, make: (f) => {
    // mkswap writes only v1; v0's magic is SWAP-SPACE at the page's end.
    run('mkswap', ['-q', f]);
    run('sh', ['-c', `printf 'SWAP-SPACE' | dd of=${f} bs=1 seek=4086 conv=notrunc status=none`]);
  }, expect: ['swap'] },
];

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
        const disk = newImageIn(dir, `${f.name}-in-dos.img`, f.bytes + 2 * MiB);
        sfdiskWrite(disk, `label: dos\nstart=2048, size=${f.bytes / 512}, type=83\n`);
        implant(alone, disk, MiB);
        const found = signaturesOf(disk, { start: MiB, bytes: f.bytes });
        expect(found.map((s) => s.type)).toEqual(f.expect);
        expectSameAsWipefs(extract(disk, MiB, f.bytes, path.join(dir, `${f.name}.extracted`)), found);
        // The disk itself still shows its table only.
        expect(signaturesOf(disk).map((s) => s.type)).toEqual(wipefsList(disk).map((s) => s.type));
      });
    });
  }
});
