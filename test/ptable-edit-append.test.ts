/**
 * sfdisk --append and -N N for an unused N (appendFromScript) against the machine's sfdisk
 * 2.38.1 on the same images, bytes compared (random GUIDs normalised), and sfdisk's refusals
 * refused. Also -N's own refusals (a move onto another partition, a bad line).
 */
import { describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import { appendFromScript, editPartitionFromScript } from '../src/partition/edit-script.js';
import { useTempDir } from './helpers.js';
import { replayEdit } from './ptable-edit-oracle.js';
import { imageDifference } from './sfdisk-oracle.js';

let dir = '';
useTempDir('ptable-edit-append-', (d) => {
  dir = d;
});

const MiB = 1024 * 1024;

/**
 * sfdisk 2.38.1 fills an EBR of a 4096-byte sector past byte 512 with whatever its heap held
 * (libfdisk zeroes only the first 512 bytes of the buffer); ptable writes zeros there. The
 * comparison skips bytes 512-4095 of every sector of these test images (only tables, no data).
 */
function withoutSectorTails(image: Buffer, sectorSize: number): Buffer {
  if (sectorSize === 512) return image;
  const copy = Buffer.from(image);
  for (let at = 0; at < copy.length; at += sectorSize) copy.fill(0, at + 512, at + sectorSize);
  return copy;
}

interface Case {
  name: string;
  setup: string;
  /** sfdisk's extra arguments before DISK (--append or -N N). */
  args: string[];
  script: string;
  bytes?: number;
  sectorSize?: 512 | 4096;
  /** sfdisk fails on this one (and so must ptable, disk untouched). */
  fails?: boolean;
  /** sfdisk writes a table it cannot read back (a second extended partition): ptable refuses. */
  departure?: boolean;
}

const CASES: Case[] = [
  { name: 'gpt: two appended after one', setup: 'label: gpt\n,10M,L\n', args: ['--append'], script: ',10M,L\n,5M,S\n' },
  { name: 'gpt: the first free slot, at a start before the partitions there', setup: 'label: gpt\nstart=8192,size=10M\n', args: ['--append'], script: 'start=2048,size=2048\n' },
  { name: 'gpt: named fields kept (uuid, name, attrs)', setup: 'label: gpt\n,10M\n', args: ['--append'], script: 'size=4M, type=U, uuid=01234567-89AB-CDEF-0123-456789ABCDEF, name="esp two", attrs="RequiredPartition"\n' },
  { name: 'gpt: the rest of the disk', setup: 'label: gpt\n,10M\n', args: ['--append'], script: ',,\n' },
  { name: 'gpt: -N 3 of a table of two adds partition 3', setup: 'label: gpt\n,10M\n,10M\n', args: ['-N', '3'], script: ',5M,S\n' },
  { name: 'dos: a primary after two', setup: 'label: dos\n,10M\n,10M\n', args: ['--append'], script: ',5M,S,*\n' },
  { name: 'dos: logical partitions appended to an extended one', setup: 'label: dos\n,1M\n,1M\n,1M\n,20M,E\n,1M\n', args: ['--append'], script: ',2M\n,3M,S\n' },
  { name: 'dos: logical partitions to an empty extended one', setup: 'label: dos\n,1M\n,20M,E\n', args: ['--append'], script: ',2M\n,2M\n' },
  { name: 'dos: an extended partition, then logical ones', setup: 'label: dos\n,10M\n', args: ['--append'], script: ',30M,E\n,4M\n,4M\n' },
  { name: 'dos: -N 2 of a table of one adds partition 2', setup: 'label: dos\n,10M\n', args: ['-N', '2'], script: ',5M\n' },
  { name: 'dos, 4096-byte sectors: a primary and an extended one with a logical one', setup: 'label: dos\n,10M\n', args: ['--append'], script: ',10M\n,20M,E\n,5M\n', sectorSize: 4096 },
  { name: 'gpt, 4096-byte sectors: one more', setup: 'label: gpt\n,10M\n', args: ['--append'], script: ',10M,L\n', sectorSize: 4096 },
  { name: 'gpt: no room left', setup: 'label: gpt\n,,\n', args: ['--append'], script: ',10M\n', fails: true },
  { name: 'dos: four primaries used (sfdisk ignores the line)', setup: 'label: dos\n,1M\n,1M\n,1M\n,1M\n', args: ['--append'], script: ',1M\n' },
  { name: 'dos: a second extended partition', setup: 'label: dos\n,1M\n,10M,E\n', args: ['--append'], script: ',10M,E\n', departure: true },
  { name: 'dos: a logical partition larger than the extended one', setup: 'label: dos\n,1M\n,10M,E\n', args: ['--append'], script: 'start=5000, size=20M\n', fails: true },
  { name: 'gpt: a start inside a partition', setup: 'label: gpt\n,10M\n', args: ['--append'], script: 'start=4096, size=1M\n', fails: true },
];

describe('ptable --append / -N N (unused N) against sfdisk, bytes compared', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const ss = c.sectorSize ?? 512;
      const bytes = c.bytes ?? 64 * MiB;
      const partno = c.args[0] === '-N' ? Number(c.args[1]) : undefined;
      const r = replayEdit(dir, c.name, {
        bytes,
        sectorSize: ss,
        setupScript: c.setup,
        sfdisk: [...c.args, 'DISK'],
        input: c.script,
        edit: (t) => appendFromScript(t, c.script, partno).table,
        device: ss === 4096,
      });
      if (c.fails) {
        expect(r.oracle.status, r.oracle.stdout).not.toBe(0);
        expect(r.ours.error).toBeInstanceOf(ToolError);
        expect(imageDifference(r.oracle.image, r.ours.image, ss, false)).toBeNull();
        return;
      }
      expect(r.oracle.status, r.oracle.stderr).toBe(0);
      if (c.departure) {
        expect(r.ours.error).toBeInstanceOf(ToolError);
        return;
      }
      expect(r.ours.error, String(r.ours.error)).toBeUndefined();
      expect(imageDifference(withoutSectorTails(r.oracle.image, ss), withoutSectorTails(r.ours.image, ss), ss)).toBeNull();
    });
  }
});
