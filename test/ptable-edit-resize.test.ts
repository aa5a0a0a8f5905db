/**
 * sfdisk -N N (move, resize, retype from a one-line script) against the machine's sfdisk 2.38.1,
 * bytes compared: util-linux's tests/ts/sfdisk/resize (its steps replayed one after the other on
 * the image each leaves, for dos and gpt) and the dos subtests resize, resize-empty-extended,
 * reduce-empty-extended, resize-extended, resize-logical, each on 512- and 4096-byte sectors.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import { editPartitionFromScript } from '../src/partition/edit-script.js';
import { growPartition } from '../src/partition/align.js';
import { sfdiskWrite, useTempDir } from './helpers.js';
import { replayEdit } from './ptable-edit-oracle.js';
import { imageDifference } from './sfdisk-oracle.js';

let dir = '';
useTempDir('ptable-edit-resize-', (d) => {
  dir = d;
});

const MiB = 1024 * 1024;

/** sfdisk -N N with `line`, and editPartitionFromScript on the same image: same bytes, same verdict. */
function expectSameEdit(name: string, image: (file: string) => void, number: number, line: string, bytes: number, sectorSize: 512 | 4096 = 512): Buffer {
  const r = replayEdit(dir, name, {
    bytes,
    sectorSize,
    setup: image,
    sfdisk: ['-N', String(number), 'DISK'],
    input: `${line}\n`,
    edit: (t) => editPartitionFromScript(t, number, line).table,
    device: sectorSize === 4096,
    // ptable's own command line is checked on the 512-byte chains (and on 4096-byte loop devices
    // in ptable-sfdisk-cli.test.ts); the pure edit is compared with sfdisk on both.
    cli: sectorSize === 512,
  });
  expect(r.oracle.status, `${name}: ${r.oracle.stderr}`).toBe(0);
  expect(r.ours.error, `${name}: ${String(r.ours.error)}`).toBeUndefined();
  expect(imageDifference(r.oracle.image, r.ours.image, sectorSize), name).toBeNull();
  return r.oracle.image;
}

const fromBytes = (bytes: Buffer) => (file: string) => fs.writeFileSync(file, bytes);

// tests/ts/sfdisk/resize, in its order (each step on the image the previous one left)
const RESIZE_STEPS: Array<[string, string]> = [
  ['move-up-absolute', '3000,'],
  ['move-down-absolute', '2048,'],
  ['move-up-relative', '+1M,'],
  ['move-down-relative', '-1M,'],
  ['enlarge-absolute', '-,15M'],
  ['reduce-absolute', ',5M,'],
  ['enlarge-relative', ', +10M'],
  ['reduce-relative', ', -10M'],
  ['enlarge-all', ',+'],
  ['up-preduce', '+10M,-10M'],
  ['down-enlarge', '-10M,+10M,,*'],
  ['absolute-move-resize', '2048,10M,L'],
];

describe('ptable -N N: util-linux tests/ts/sfdisk/resize replayed against sfdisk', () => {
  for (const label of ['dos', 'gpt'] as const) {
    for (const sectorSize of [512, 4096] as const) {
      it(`${label}, ${sectorSize}-byte sectors: every step, then reduce-middle and max-last after two appends`, () => {
        const bytes = 100 * MiB;
        // sfdisk's own image after each of its commands: the state the next step starts from
        const bySfdisk = (args: string[], input: string, from: Buffer | null): Buffer =>
          replayEdit(dir, 'sfdisk-step', {
            bytes,
            sectorSize,
            setup: (f) => (from ? fs.writeFileSync(f, from) : undefined),
            sfdisk: [...args, 'DISK'],
            input,
            edit: (t) => t,
            device: sectorSize === 4096,
            cli: false,
          }).oracle.image;
        let image = bySfdisk(['--label', label], ',10M,L\n', null);
        RESIZE_STEPS.forEach(([name, line]) => {
          image = expectSameEdit(`${label}-${sectorSize}-${name}`, fromBytes(image), 1, line, bytes, sectorSize);
        });
        image = bySfdisk(['--append'], ',10M,L\n', image);
        image = bySfdisk(['--append'], ',10M,L\n', image);
        image = expectSameEdit(`${label}-${sectorSize}-reduce-middle`, fromBytes(image), 2, ',-5M', bytes, sectorSize);
        expectSameEdit(`${label}-${sectorSize}-max-last`, fromBytes(image), 3, '-5M,+', bytes, sectorSize);
      });
    }
  }

  it('dos-unsorted: a primary after the extended partition grown', () => {
    const script = `label: dos\nlabel-id: 0xda2e45ac\nunit: sectors\n\nstart=2048, size=2048, type=83\nstart=4096, size=2048, type=83\nstart=6144, size=102400, type=5\nstart=108544, size=2048, type=83\nstart=8192, size=2048, type=83\nstart=12288, size=96256, type=83\n`;
    expectSameEdit('dos-unsorted', (f) => sfdiskWrite(f, script), 4, ',+,', 100 * MiB);
  });
});

const DOS_SUBTESTS: Array<[string, string, number, string]> = [
  ['resize', 'label: dos\n,10M,S,*\n', 1, ',+'],
  ['resize-empty-extended', 'label: dos\n,1M\n,2M,E\n', 2, ',+'],
  ['reduce-empty-extended', 'label: dos\n,1M\n,5M,E\n', 2, ',-2M'],
  ['resize-extended', 'label: dos\n,1M\n,1M\n,1M\n,5M,E\n,1M\n,1M\n', 4, ',+'],
  ['resize-logical', 'label: dos\n,1M\n,1M\n,1M\n,10M,E\n,1M\n,1M\n', 6, ',+'],
  // beyond util-linux: free space between logical partitions (libfdisk counts it up to the next one's first sector)
  ['a logical partition moved up into that gap', 'label: dos\n,1M\n,30M,E\nstart=6144, size=2048\nstart=40960, size=2048\n', 5, '+4M,'],
];

describe('ptable -N N: util-linux tests/ts/sfdisk/dos resize subtests replayed against sfdisk', () => {
  for (const [name, script, number, line] of DOS_SUBTESTS) {
    it(`${name} (-N${number} '${line}')`, () => {
      expectSameEdit(name, (f) => sfdiskWrite(f, script), number, line, 50 * MiB);
    });
  }

  it("a logical partition grown into the gap before the next one: sfdisk overlaps it, ptable refuses (grow stops at the next EBR)", () => {
    const script = 'label: dos\n,1M\n,30M,E\nstart=6144, size=2048\nstart=40960, size=2048\n';
    const r = replayEdit(dir, 'gap', { bytes: 50 * MiB, setup: (f) => sfdiskWrite(f, script), sfdisk: ['-N', '5', 'DISK'], input: ',+\n', edit: (t) => editPartitionFromScript(t, 5, ',+').table });
    expect(r.oracle.status).toBe(0);
    // sfdisk's partition 5 now ends on partition 6's first sector, over its EBR
    expect(r.oracle.image.readUInt32LE(6144 * 512 - 2048 * 512 + 0x1be + 12)).toBe(40960 - 6144 + 1);
    expect(r.ours.error).toBeInstanceOf(ToolError);
    expect(String(r.ours.error)).toMatch(/cover the EBR of partition 6|overlap partition 6/);
    expect(imageDifference(r.oracle.image, r.ours.image, 512)).not.toBeNull();
    // the same quirk outside: free space at the start of the extended partition counts for the primary before it
    const before = 'label: dos\nstart=2048, size=2048\nstart=20480, size=20M, type=5\nstart=24576, size=2048\n';
    const p = replayEdit(dir, 'gap-primary', { bytes: 50 * MiB, setup: (f) => sfdiskWrite(f, before), sfdisk: ['-N', '1', 'DISK'], input: ',+\n', edit: (t) => editPartitionFromScript(t, 1, ',+').table });
    expect(p.oracle.status).toBe(0);
    expect(p.oracle.image.readUInt32LE(0x1be + 12), 'sfdisk runs partition 1 into the extended one').toBeGreaterThan(20480 - 2048);
    expect(String(p.ours.error)).toMatch(/overlap partition 2/);
    const grown = replayEdit(dir, 'gap-grow', { bytes: 50 * MiB, setup: (f) => sfdiskWrite(f, script), sfdisk: ['--dump', 'DISK'], edit: (t) => growPartition(t, 5), cli: false });
    expect(grown.ours.error).toBeUndefined();
    const size5 = grown.ours.image.readUInt32LE(4096 * 512 + 0x1be + 12);
    expect(size5).toBe(38912 - 6144); // up to the sector before partition 6's EBR
  });

  it('defect 3: growing logical partition 6 keeps the link entry of the EBR before it (growPartition too)', () => {
    const r = replayEdit(dir, 'grow-logical', {
      bytes: 50 * MiB,
      setup: (f) => sfdiskWrite(f, 'label: dos\n,1M\n,1M\n,1M\n,10M,E\n,1M\n,1M\n'),
      sfdisk: ['-N', '6', 'DISK'],
      input: ',+\n',
      edit: (t) => growPartition(t, 6),
    });
    expect(r.oracle.status).toBe(0);
    expect(imageDifference(r.oracle.image, r.ours.image, 512)).toBeNull();
  });
});

describe("ptable -N N: sfdisk's refusals refused (a ToolError, nothing written)", () => {
  const TWO = 'label: gpt\n,10M\n,10M\n';
  const DOS = 'label: dos\n,10M\n,10M\n,10M\n,20M,E\n,5M\n';
  const cases: Array<[string, string, number, string]> = [
    ['gpt: moved onto partition 2', TWO, 1, '+10M,'],
    ['gpt: an absolute start inside partition 2', TWO, 1, '30000,'],
    ['gpt: reduced by more than its size', TWO, 1, ',-20M'],
    ['gpt: enlarged into partition 2', TWO, 1, ',+1M'],
    ['gpt: moved down past the first usable sector', TWO, 1, '-2M,'],
    ['gpt: a line that does not parse', TWO, 1, 'start=x'],
    ['dos: a primary moved into the extended partition', DOS, 3, '+10M,'],
    ['dos: a logical partition enlarged past the extended one', DOS, 5, ',+30M'],
    ['dos: a logical partition moved out of the extended one', DOS, 5, '-20M,'],
    ['dos: the extended partition retyped while it holds logical ones', DOS, 4, ',,83'],
    ['dos: a second extended partition', DOS, 1, ',,E'],
  ];
  for (const [name, script, number, line] of cases) {
    it(name, () => {
      const r = replayEdit(dir, name, { bytes: 64 * MiB, setup: (f) => sfdiskWrite(f, script), sfdisk: ['-N', String(number), 'DISK'], input: `${line}\n`, edit: (t) => editPartitionFromScript(t, number, line).table });
      expect(r.oracle.status, `sfdisk: ${r.oracle.stdout}`).not.toBe(0);
      expect(r.ours.error, String(r.ours.error)).toBeInstanceOf(ToolError);
      expect(imageDifference(r.oracle.image, r.ours.image, 512, false)).toBeNull();
    });
  }
});

describe('ptable -N N: the script around the line', () => {
  it('comments, blank and header lines before the line are skipped, lines after it ignored (as sfdisk)', () => {
    const script = '# resize\n\nunit: sectors\n,+\n,-1M\n';
    const r = replayEdit(dir, 'around', { bytes: 64 * MiB, setup: (f) => sfdiskWrite(f, 'label: gpt\n,10M\n'), sfdisk: ['-N', '1', 'DISK'], input: script, edit: (t) => editPartitionFromScript(t, 1, script).table });
    expect(r.oracle.status).toBe(0);
    expect(r.ours.error).toBeUndefined();
    expect(imageDifference(r.oracle.image, r.ours.image, 512)).toBeNull();
  });

  it('no partition line: the partition stays as it is (sfdisk writes the same table)', () => {
    const r = replayEdit(dir, 'empty', { bytes: 64 * MiB, setup: (f) => sfdiskWrite(f, 'label: gpt\n,10M\n'), sfdisk: ['-N', '1', 'DISK'], input: '\n# nothing\n', edit: (t) => editPartitionFromScript(t, 1, '\n# nothing\n').table });
    expect(r.oracle.status).toBe(0);
    expect(imageDifference(r.oracle.image, r.ours.image, 512, false)).toBeNull();
  });

  it("a GPT name= with \\x escapes, decoded as sfdisk's scripts decode it", () => {
    const line = 'name="a\\x20b"';
    const r = replayEdit(dir, 'name', { bytes: 64 * MiB, setup: (f) => sfdiskWrite(f, 'label: gpt\n,10M\n'), sfdisk: ['-N', '1', 'DISK'], input: `${line}\n`, edit: (t) => editPartitionFromScript(t, 1, line).table });
    expect(r.oracle.status).toBe(0);
    expect(imageDifference(r.oracle.image, r.ours.image, 512)).toBeNull();
  });
});
