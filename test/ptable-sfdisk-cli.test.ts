/**
 * sfdisk's own command lines given unchanged to ptable (its sfdisk compatibility, sfdisk-argv.ts):
 * each one run by sfdisk 2.38.1 on one copy of an image and by ptable on another, the images
 * compared byte for byte (random ids normalised), on image files and on 4096-byte-sector loop
 * devices; sfdisk's change options (--no-reread, -q, -f, -b/-O) accepted by every in-place command.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loopUnavailableReason, sfdiskWrite, useTempDir } from './helpers.js';
import { imageDifference, replay } from './sfdisk-oracle.js';

let dir = '';
useTempDir('ptable-sfdisk-cli-', (d) => {
  dir = d;
});

const MiB = 1024 * 1024;
const GPT = 'label: gpt\n,4M,L\n,8M,S\n,4M,U\n';
const DOS = 'label: dos\nlabel-id: 0x11223344\n,4M,83\n,8M,82\n,20M,5\n,4M,83\n,4M,83\n';

interface Case {
  name: string;
  table: string;
  args: string[];
  input?: string;
}

const CASES: Case[] = [
  { name: 'a script', table: GPT, args: ['--no-reread', '-q', 'DISK'], input: 'label: gpt\n,10M,L\n' },
  { name: '-X dos over a gpt disk', table: GPT, args: ['--no-reread', '-X', 'dos', 'DISK'], input: ',10M,L\n' },
  // sfdisk reads this N from 0: DISK 2 is partition 3 (grown to the end of the disk)
  { name: 'DISK N (a one-line edit)', table: GPT, args: ['--no-reread', '-q', 'DISK', '2'], input: ',+\n' },
  { name: '-N N', table: DOS, args: ['--no-reread', '-N', '1', 'DISK'], input: ',3M\n' },
  { name: '--append', table: DOS, args: ['--no-tell-kernel', '--append', 'DISK'], input: ',2M\n' },
  { name: '--delete N', table: GPT, args: ['--no-reread', '-q', '--delete', 'DISK', '2'] },
  { name: '--delete (all)', table: DOS, args: ['--no-reread', '--delete', 'DISK'] },
  { name: '--part-type', table: GPT, args: ['--no-reread', '--part-type', 'DISK', '1', 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B'] },
  { name: '--part-label', table: GPT, args: ['-f', '--part-label', 'DISK', '3', 'home'] },
  { name: '--part-uuid', table: GPT, args: ['--part-uuid', 'DISK', '1', '91DC657B-D7B4-4653-A367-663194FFD432'] },
  { name: '--part-attrs', table: GPT, args: ['--part-attrs', 'DISK', '2', 'RequiredPartition,LegacyBIOSBootable'] },
  { name: '--activate', table: DOS, args: ['--no-reread', '--activate', 'DISK', '1'] },
  { name: '--disk-id', table: DOS, args: ['--disk-id', 'DISK', '0x0badcafe'] },
  { name: '--relocate gpt-bak-std', table: GPT, args: ['--relocate', 'gpt-bak-std', 'DISK'] },
  { name: '--wipe always', table: GPT, args: ['--wipe', 'always', 'DISK'], input: 'label: dos\n,,L\n' },
];

function onLoop4096(file: string, body: (device: string) => void): void {
  const device = execFileSync('losetup', ['-b', '4096', '-f', '--show', file]).toString().trim();
  try {
    body(device);
  } finally {
    execFileSync('losetup', ['-d', device]);
  }
}

function check(c: Case, sectorSize: 512 | 4096): void {
  const r = replay(dir, `${c.name}-${sectorSize}`, {
    bytes: 64 * MiB,
    sectorSize,
    setup: (img) => (sectorSize === 4096 ? onLoop4096(img, (device) => sfdiskWrite(device, c.table)) : sfdiskWrite(img, c.table)),
    oracle: { command: 'sfdisk', args: c.args },
    ptable: c.args,
    device: sectorSize === 4096,
    ...(c.input === undefined ? {} : { input: c.input }),
  });
  expect(r.oracle.status, `sfdisk ${c.args.join(' ')}: ${r.oracle.stderr}`).toBe(0);
  expect(r.ptable.status, `ptable ${c.args.join(' ')}: ${r.ptable.stderr}`).toBe(0);
  expect(r.ptable.stderr).not.toMatch(/\n\s+at /);
  expect(imageDifference(r.oracle.image, r.ptable.image, sectorSize), c.name).toBeNull();
}

describe("sfdisk's command lines, unchanged, on ptable", () => {
  for (const c of CASES) it(`${c.name}: ${c.args.join(' ')}`, () => check(c, 512));

  const noLoop = loopUnavailableReason();
  if (noLoop) console.log(`skipping the 4096-byte-sector loop device cases: ${noLoop}`);
  for (const c of CASES.filter((x) => ['-N N', '--delete N', '--part-type', '--relocate gpt-bak-std', 'DISK N (a one-line edit)'].includes(x.name))) {
    it.skipIf(noLoop !== null)(`${c.name}, on a 4096-byte-sector loop device`, () => check(c, 4096));
  }

  it('-b -O on an in-place command saves the files sfdisk -b -O saves', () => {
    const saved = (tool: string): Map<string, Buffer> => {
      const folder = path.join(dir, `bak-${tool}`);
      return new Map(fs.readdirSync(folder).map((f) => [f.replace(/\.(oracle|ptable)\.img/, ''), fs.readFileSync(path.join(folder, f))]));
    };
    for (const tool of ['oracle', 'ptable']) fs.mkdirSync(path.join(dir, `bak-${tool}`), { recursive: true });
    const name = 'b-O';
    const argsFor = (tool: string): string[] => ['--no-reread', '-b', '-O', path.join(dir, `bak-${tool}`, 'pt'), '--part-label', 'DISK', '1', 'root'];
    // replay gives both tools the same words: the prefixes differ by a word each, so run twice
    const oracle = replay(dir, name, { bytes: 16 * MiB, setup: (img) => sfdiskWrite(img, 'label: gpt\nlabel-id: 0EDB7E6B-9E3B-4A2D-9F2E-7E5D2B7F0A11\nstart=2048, size=4M, type=L, uuid=9E0C8A8B-1C52-4C39-8F3A-6B3E1C2D4F55\n'), oracle: { command: 'sfdisk', args: argsFor('oracle') }, ptable: argsFor('ptable') });
    expect(oracle.oracle.status, oracle.oracle.stderr).toBe(0);
    expect(oracle.ptable.status, oracle.ptable.stderr).toBe(0);
    const theirs = saved('oracle');
    const ours = saved('ptable');
    expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    expect(ours.size).toBe(5);
    for (const [file, bytes] of theirs) expect(ours.get(file)?.equals(bytes), file).toBe(true);
    expect(oracle.ptable.stdout).toMatch(/^Backup files:/);
    expect(imageDifference(oracle.oracle.image, oracle.ptable.image, 512, false)).toBeNull();
  });
});
