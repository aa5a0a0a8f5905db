/**
 * How `ptable check` judges a damaged disk next to `sfdisk -V` (util-linux 2.38.1) and `sgdisk -v`
 * (1.0.9): one image per damage kind, built from sfdisk's own table with byte edits (CRCs repaired
 * where the damage is meant to be something else), judged by all three. The verdicts of each tool
 * are asserted, so a change in any of them shows; the README's table ("ptable check next to
 * sfdisk -V and sgdisk -v") is this one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { newImageIn, ptable, runTool, sfdiskWrite, useTempDir } from './helpers.js';
import { GPT_ENTRY_FIELD, GPT_HEADER_FIELD, editFile, editGptEntry, editGptHeader, editMbrEntry } from './table-edits.js';

let dir = '';
useTempDir('ptable-check-compare-', (d) => (dir = d));

const MiB = 1024 * 1024;
const SECTORS = (32 * MiB) / 512;
const GPT_TWO = 'label: gpt\n,8M,L\n,8M,L\n';
const DOS_TWO = 'label: dos\n,8M,83\n,,E\n,4M,83\n';

type Verdict = 'ok' | 'warning' | 'error' | 'no-table';

interface Damage {
  name: string;
  script: string;
  damage: (file: string) => void;
  /** Expected verdicts: ptable check, sfdisk -V, sgdisk -v. */
  verdicts: [Verdict, Verdict, Verdict];
  /** The problem code ptable reports (when its verdict is not ok). */
  code?: string;
}

const edit = (f: string, e: (image: Buffer) => void): void => editFile(f, e);
const zero = (offset: number, length: number) => (image: Buffer): void => void image.fill(0, offset, offset + length);
const flip = (offset: number) => (image: Buffer): void => void (image[offset] = image[offset]! ^ 0xff);
const lastLbaOf = (image: Buffer): number => image.length / 512 - 1;

const DAMAGES: Damage[] = [
  { name: 'gpt: none', script: GPT_TWO, damage: () => undefined, verdicts: ['ok', 'ok', 'ok'] },
  { name: 'gpt: primary header CRC wrong', script: GPT_TWO, damage: (f) => edit(f, flip(512 + 60)), verdicts: ['error', 'ok', 'error'], code: 'bad-header-crc' },
  { name: 'gpt: backup header CRC wrong', script: GPT_TWO, damage: (f) => edit(f, (i) => flip(lastLbaOf(i) * 512 + 60)(i)), verdicts: ['error', 'ok', 'warning'], code: 'bad-header-crc' },
  { name: 'gpt: primary entry array CRC wrong', script: GPT_TWO, damage: (f) => edit(f, flip(1024 + 3 * 128)), verdicts: ['error', 'ok', 'error'], code: 'bad-entries-crc' },
  { name: 'gpt: primary header zeroed', script: GPT_TWO, damage: (f) => edit(f, zero(512, 512)), verdicts: ['error', 'ok', 'error'] },
  { name: 'gpt: backup header zeroed', script: GPT_TWO, damage: (f) => edit(f, (i) => zero(lastLbaOf(i) * 512, 512)(i)), verdicts: ['error', 'ok', 'warning'], code: 'missing-backup' },
  { name: 'gpt: image grew (backup not at the end)', script: GPT_TWO, damage: (f) => fs.truncateSync(f, 48 * MiB), verdicts: ['error', 'error', 'error'], code: 'backup-not-at-end' },
  { name: 'gpt: image shrank (backup past the end)', script: 'label: gpt\n,8M,L\n', damage: (f) => fs.truncateSync(f, 24 * MiB), verdicts: ['error', 'ok', 'error'], code: 'backup-past-end' },
  {
    name: 'gpt: partition past the last usable LBA',
    script: GPT_TWO,
    damage: (f) => edit(f, (i) => editGptEntry(i, 512, 1, (e) => e.writeBigUInt64LE(BigInt(SECTORS - 10), GPT_ENTRY_FIELD.lastLba))),
    verdicts: ['error', 'ok', 'error'],
    code: 'outside-usable',
  },
  {
    name: 'gpt: two partitions overlap',
    script: GPT_TWO,
    damage: (f) => edit(f, (i) => editGptEntry(i, 512, 1, (e) => e.writeBigUInt64LE(BigInt(4096), GPT_ENTRY_FIELD.firstLba))),
    verdicts: ['error', 'error', 'error'],
    code: 'overlap',
  },
  {
    name: 'gpt: a partition ends before it starts',
    script: GPT_TWO,
    damage: (f) => edit(f, (i) => editGptEntry(i, 512, 1, (e) => e.writeBigUInt64LE(BigInt(100), GPT_ENTRY_FIELD.lastLba))),
    verdicts: ['error', 'error', 'error'],
    code: 'start-after-end',
  },
  {
    name: 'gpt: last usable LBA past the backup entries',
    script: GPT_TWO,
    damage: (f) => edit(f, (i) => editGptHeader(i, 512, 'primary', (h) => h.writeBigUInt64LE(BigInt(SECTORS - 2), GPT_HEADER_FIELD.lastUsable))),
    verdicts: ['error', 'ok', 'error'],
  },
  { name: 'gpt: protective MBR zeroed', script: GPT_TWO, damage: (f) => edit(f, zero(0, 512)), verdicts: ['warning', 'no-table', 'warning'], code: 'no-protective-mbr' },
  { name: 'gpt: protective MBR smaller than the disk', script: GPT_TWO, damage: (f) => edit(f, (i) => editMbrEntry(i, 0, 0, { sectors: 20000 })), verdicts: ['warning', 'ok', 'ok'], code: 'pmbr-size-mismatch' },
  { name: 'dos: leftover GPT headers (dos written over GPT without wipe)', script: GPT_TWO, damage: (f) => sfdiskWrite(f, 'label: dos\n,,L\n', ['--wipe', 'never']), verdicts: ['error', 'ok', 'error'], code: 'leftover-gpt' },
  { name: 'dos: none', script: DOS_TWO, damage: () => undefined, verdicts: ['ok', 'ok', 'ok'] },
  { name: 'dos: two primaries overlap', script: 'label: dos\n,8M,83\n,8M,83\n', damage: (f) => edit(f, (i) => editMbrEntry(i, 0, 1, { lbaStart: 4096 })), verdicts: ['error', 'error', 'error'], code: 'overlap' },
  { name: 'dos: a partition past the end of the disk', script: 'label: dos\n,8M,83\n,8M,83\n', damage: (f) => edit(f, (i) => editMbrEntry(i, 0, 1, { sectors: SECTORS })), verdicts: ['error', 'ok', 'error'], code: 'past-end' },
  { name: 'dos: boot flag neither 0 nor 0x80', script: DOS_TWO, damage: (f) => edit(f, (i) => editMbrEntry(i, 0, 0, { boot: 0x12 })), verdicts: ['warning', 'ok', 'ok'], code: 'bad-boot-flag' },
];

function ptableVerdict(file: string): { verdict: Verdict; out: string } {
  const r = ptable(['check', file]);
  const out = r.stdout + r.stderr;
  if (r.status === 3) return { verdict: 'no-table', out };
  if (r.status === 4) return { verdict: 'error', out };
  expect(r.status, out).toBe(0);
  return { verdict: /\] *$/m.test(r.stdout) ? 'warning' : 'ok', out };
}

function sfdiskVerdict(file: string): Verdict {
  const r = runTool('sfdisk', ['-V', file]);
  const out = r.stdout + r.stderr;
  if (/unrecognized partition table type/.test(out)) return 'no-table';
  if (r.status !== 0 || /errors? detected/.test(out.replace(/No errors detected/, ''))) return 'error';
  expect(out).toMatch(/No errors detected/);
  return 'ok';
}

function sgdiskVerdict(file: string): Verdict {
  const r = runTool('sgdisk', ['-v', file]);
  const out = r.stdout + r.stderr;
  // sgdisk exits 0 even when it "Identified N problems"; its cautions precede "No problems found".
  if (/Identified \d+ problems/.test(out) || !/No problems found/.test(out)) return 'error';
  return /Caution|corrupt|CRCs don't match/.test(out) ? 'warning' : 'ok';
}

describe('ptable check next to sfdisk -V and sgdisk -v, per damage kind', () => {
  it.each(DAMAGES.map((d) => [d.name, d] as const))('%s', (_name, d) => {
    const file = newImageIn(dir, `${d.name.replace(/[^a-z0-9]+/gi, '_')}.img`, 32 * MiB);
    sfdiskWrite(file, d.script);
    d.damage(file);
    const ours = ptableVerdict(file);
    const got: [Verdict, Verdict, Verdict] = [ours.verdict, sfdiskVerdict(file), sgdiskVerdict(file)];
    expect(got, ours.out).toEqual(d.verdicts);
    if (d.code) expect(ours.out).toContain(`[${d.code}]`);
    fs.rmSync(file);
  });

  it('covers at least 13 damage kinds', () => {
    expect(DAMAGES.filter((d) => !d.name.endsWith(': none')).length).toBeGreaterThanOrEqual(13);
    expect(path.basename(dir)).toMatch(/^ptable-check-compare-/);
  });
});
