/**
 * The ptable command against the real sfdisk (util-linux 2.38), sgdisk, blkid and file:
 *  - `ptable write` lays down the very sectors sfdisk writes for the same script,
 *  - `ptable dump` / `dump --json` print exactly what `sfdisk -d` / `sfdisk -J` print,
 *  - `ptable show`, `check`, `relocate`, `grow` and the error exits,
 *  - 4096-byte-sector and 512-byte loop devices (root only; skipped with the reason otherwise).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBLEM_CODES } from '../src/partition/read.js';
import {
  allocatedBytes,
  firstDifference,
  linesOf,
  loopUnavailableReason,
  makeTempDir,
  ptable,
  readRange,
  runTool,
  withLoop,
  type CliResult,
} from './helpers.js';
import { GPT_ENTRY_FIELD, editFile, editGptEntry } from './table-edits.js';

const MiB = 1024 * 1024;
const IMAGE_BYTES = 64 * MiB;
const SECTORS = IMAGE_BYTES / 512;

let dir = '';
let counter = 0;
beforeAll(() => {
  dir = makeTempDir('ptable-cli-');
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});
/** A fresh path in the test directory. */
const fresh = (name: string): string => path.join(dir, `${name}-${++counter}.img`);

interface Script {
  name: string;
  label: 'dos' | 'gpt';
  text: string;
}

const DOS_PRIMARIES: Script = {
  name: 'dos primaries with a bootable one',
  label: 'dos',
  text: `label: dos
label-id: 0x1234abcd

start=2048, size=8M, type=83, bootable
size=16M, type=c
size=4M, type=82
`,
};

const DOS_EXTENDED: Script = {
  name: 'dos with an extended partition and logical partitions',
  label: 'dos',
  text: `label: dos
label-id: 0xcafe0001

size=8M, type=83, bootable
type=5
size=10M, type=83
size=6M, type=82
type=7
`,
};

const GPT_NAMES: Script = {
  name: 'gpt with non-ASCII names, attributes, pinned label-id and uuids',
  label: 'gpt',
  text: `label: gpt
label-id: 3B1F2E6A-1C2D-4E5F-8A9B-0C1D2E3F4A5B
first-lba: 2048

start=2048, size=8M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=11111111-2222-3333-4444-555555555555, name="Données ✓", attrs="RequiredPartition LegacyBIOSBootable GUID:60,63"
start=18432, size=16M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=A1B2C3D4-E5F6-4789-ABCD-EF0123456789, name="EFI"
size=20M, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, uuid=DEADBEEF-0000-4000-8000-00000000CAFE, name="swap"
`,
};

const GPT_TABLE_LENGTH_8: Script = {
  name: 'gpt with table-length 8',
  label: 'gpt',
  text: `label: gpt
label-id: 0A0B0C0D-1111-2222-3333-444455556666
table-length: 8

size=10M, type=L, uuid=01234567-89AB-CDEF-0123-456789ABCDEF, name="root"
size=10M, type=S, uuid=FEDCBA98-7654-4321-8FED-CBA987654321
`,
};

const SCRIPTS: Script[] = [DOS_PRIMARIES, DOS_EXTENDED, GPT_NAMES, GPT_TABLE_LENGTH_8];

/** `ptable write --size 64M` on a new image; fails the test when ptable fails. */
function ptableImage(script: Script, size = '64M'): string {
  const img = fresh('ptable');
  const r = ptable(['write', '--size', size, img], { input: script.text });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return img;
}

/** sfdisk's own result for the script, on an image of `bytes`. */
function sfdiskImage(script: Script, bytes = IMAGE_BYTES): string {
  const img = fresh('sfdisk');
  fs.writeFileSync(img, '');
  fs.truncateSync(img, bytes);
  const r = runTool('sfdisk', ['--no-reread', '--no-tell-kernel', img], { input: script.text });
  expect(r.status, r.stderr).toBe(0);
  return img;
}

function copyOf(img: string): string {
  const c = fresh('copy');
  fs.copyFileSync(img, c);
  return c;
}

const sfdiskDump = (img: string): string => {
  const r = runTool('sfdisk', ['-d', img]);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
};
const sfdiskJson = (img: string): string => {
  const r = runTool('sfdisk', ['-J', img]);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
};

interface JsonPartition {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
  bootable?: boolean;
}
interface JsonTable {
  label: string;
  id: string;
  device: string;
  lastlba?: number;
  partitions: JsonPartition[];
}
const parseJson = (text: string): JsonTable => (JSON.parse(text) as { partitiontable: JsonTable }).partitiontable;

/** The partition number sfdisk encodes in a node name ("img5" -> 5). */
const numberOf = (node: string): number => Number(/(\d+)$/.exec(node)![1]);

/** The "PATH: severity: message (LBA n) [code]" lines of `ptable check`. */
interface ListedProblem {
  severity: string;
  lba: number | undefined;
  code: string;
}
function listedProblems(img: string, stdout: string): ListedProblem[] {
  const out: ListedProblem[] = [];
  for (const line of linesOf(stdout)) {
    const m = /^(.*): (error|warning): .*?(?: \(LBA (\d+)\))? \[([a-z0-9-]+)\]$/.exec(line);
    if (!m) continue;
    expect(m[1]).toBe(img);
    out.push({ severity: m[2]!, lba: m[3] === undefined ? undefined : Number(m[3]), code: m[4]! });
  }
  return out;
}
const errorsOf = (problems: ListedProblem[]): ListedProblem[] => problems.filter((p) => p.severity === 'error');

/** Overwrites bytes of an image in place. */
function patch(img: string, offset: number, bytes: Buffer): void {
  const fd = fs.openSync(img, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

function expectSameBytes(actual: string, expected: string): void {
  const a = fs.readFileSync(actual);
  const b = fs.readFileSync(expected);
  expect(a.length, 'image sizes').toBe(b.length);
  const at = firstDifference(a, b);
  expect(at, `first differing byte: ${at} (LBA ${Math.floor(at / 512)})`).toBe(-1);
}

describe.each(SCRIPTS)('ptable write/dump/show/check vs sfdisk: $name', (script) => {
  let mine = '';
  let theirs = '';
  beforeAll(() => {
    mine = ptableImage(script);
    theirs = sfdiskImage(script);
  });

  it('writes the same sectors as sfdisk, on a sparse image of the requested size', () => {
    expect(fs.statSync(mine).size).toBe(IMAGE_BYTES);
    // The table sectors at both ends, then every sector (nothing else was written either).
    expect(readRange(mine, 0, MiB).equals(readRange(theirs, 0, MiB))).toBe(true);
    expect(readRange(mine, IMAGE_BYTES - MiB, MiB).equals(readRange(theirs, IMAGE_BYTES - MiB, MiB))).toBe(true);
    expectSameBytes(mine, theirs);
    expect(allocatedBytes(mine)).toBeLessThan(MiB);
  });

  it('dumps exactly what sfdisk -d and sfdisk -J print, on both images', () => {
    for (const img of [mine, theirs]) {
      const d = ptable(['dump', img]);
      expect(d.status, d.stderr).toBe(0);
      expect(d.stderr).toBe('');
      expect(d.stdout).toBe(sfdiskDump(img));
      const j = ptable(['dump', '--json', img]);
      expect(j.status, j.stderr).toBe(0);
      expect(j.stdout).toBe(sfdiskJson(img));
    }
  });

  it('is accepted by sfdisk -V, sgdisk -v, blkid -p and file -s', () => {
    const v = runTool('sfdisk', ['-V', mine]);
    expect(v.status).toBe(0);
    expect(v.stdout).toContain('No errors detected');
    expect(v.stderr).toBe('');
    if (script.label === 'gpt') {
      const s = runTool('sgdisk', ['-v', mine]);
      expect(s.status).toBe(0);
      expect(s.stdout).toContain('No problems found');
      expect(s.stdout).not.toMatch(/Problem:/);
    }
    const json = parseJson(sfdiskJson(theirs));
    const b = runTool('blkid', ['-p', mine]);
    expect(b.status, b.stderr).toBe(0);
    expect(b.stdout).toContain(`PTTYPE="${script.label}"`);
    expect(b.stdout).toContain(`PTUUID="${json.id.replace(/^0x/, '').toLowerCase()}"`);
    const f = runTool('file', ['-s', mine]);
    expect(f.status).toBe(0);
    expect(f.stdout).toContain('DOS/MBR boot sector');
    if (script.label === 'gpt') expect(f.stdout).toMatch(/partition 1 : ID=0xee, .*startsector 1, 131071 sectors/);
    else {
      const first = json.partitions[0]!;
      expect(f.stdout).toMatch(new RegExp(`partition 1 : ID=0x${first.type},${first.bootable ? ' active,' : ''} .*startsector ${first.start}, ${first.size} sectors`));
    }
  });

  it('shows one row per partition: number, start, end, sectors, type name, PARTUUID', () => {
    const json = parseJson(sfdiskJson(theirs));
    // Type names as fdisk/sfdisk -l print them.
    const listed = runTool('sfdisk', ['-l', '-o', 'Device,Start,End,Sectors,Type', theirs]);
    expect(listed.status).toBe(0);
    const typeNames = new Map<number, string>();
    for (const line of linesOf(listed.stdout)) {
      const m = /^(\S+\d)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.+?)\s*$/.exec(line);
      if (m && m[1]!.startsWith(theirs)) typeNames.set(numberOf(m[1]!), m[5]!);
    }
    expect(typeNames.size).toBe(json.partitions.length);
    const ptuuid = /PTUUID="([^"]+)"/.exec(runTool('blkid', ['-p', mine]).stdout)![1]!;

    const r = ptable(['show', mine]);
    expect(r.status, r.stderr).toBe(0);
    const lines = linesOf(r.stdout);
    const title = lines.findIndex((l) => /^#\s+Boot\s+Start\s+End\s+Sectors\s+Size\s+Type\s+Name\s+PARTUUID$/.test(l));
    expect(title, r.stdout).toBeGreaterThan(0);
    const rows = lines.slice(title + 1);
    expect(rows).toHaveLength(json.partitions.length);
    const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    json.partitions.forEach((p, i) => {
      const n = numberOf(p.node);
      const uuid = script.label === 'gpt' ? p.uuid!.toLowerCase() : `${ptuuid}-${n.toString(16).padStart(2, '0')}`;
      const name = p.name ? `${esc(p.name)}\\s+` : '';
      const boot = p.bootable ? '\\*\\s+' : '';
      const re = new RegExp(`^${n}\\s+${boot}${p.start}\\s+${p.start + p.size - 1}\\s+${p.size}\\s+\\S+\\s+${esc(typeNames.get(n)!)}\\s+${name}${uuid}$`);
      expect(rows[i]).toMatch(re);
    });
    if (script.label === 'dos') expect(r.stdout).toContain(`${json.id.replace(/^0x/, '')}-01`);
  });

  it('checks clean', () => {
    const r = ptable(['check', mine]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(listedProblems(mine, r.stdout)).toEqual([]);
    expect(linesOf(r.stdout)).toEqual([`${mine}: ${script.label} table OK`]);
  });
});

describe('ptable check on damaged tables', () => {
  let gpt = '';
  let dos = '';
  beforeAll(() => {
    gpt = ptableImage(GPT_NAMES);
    dos = ptableImage(DOS_PRIMARIES);
  });

  function check(img: string): { r: CliResult; problems: ListedProblem[] } {
    const r = ptable(['check', img]);
    return { r, problems: listedProblems(img, r.stdout) };
  }

  it('a corrupted byte of the primary GPT header: bad-header-crc at LBA 1, exit 4', () => {
    const img = copyOf(gpt);
    const b = readRange(img, 512 + 56, 1); // first byte of the disk GUID, covered by the header CRC
    patch(img, 512 + 56, Buffer.from([b[0]! ^ 0x5a]));
    const { r, problems } = check(img);
    expect(r.status, r.stdout + r.stderr).toBe(4);
    expect(errorsOf(problems)).toEqual([{ severity: 'error', lba: 1, code: 'bad-header-crc' }]);
    expect(linesOf(r.stderr)).toHaveLength(1);
  });

  it('a corrupted entry: bad-entries-crc at LBA 2, exit 4', () => {
    const img = copyOf(gpt);
    const b = readRange(img, 1024 + 56, 1); // entry 1, first byte of its name
    patch(img, 1024 + 56, Buffer.from([b[0]! ^ 0x01]));
    const { r, problems } = check(img);
    expect(r.status, r.stdout + r.stderr).toBe(4);
    expect(errorsOf(problems)).toEqual([{ severity: 'error', lba: 2, code: 'bad-entries-crc' }]);
  });

  it('an image enlarged after writing: the backup is not at the end, at its LBA, exit 4', () => {
    expect(PROBLEM_CODES).toHaveProperty('backup-not-at-end');
    const img = copyOf(gpt);
    fs.truncateSync(img, 80 * MiB);
    // The reference tools call this a problem too.
    expect(runTool('sgdisk', ['-v', img]).stdout).toContain("secondary header's self-pointer");
    const { r, problems } = check(img);
    expect(problems).toContainEqual(expect.objectContaining({ code: 'backup-not-at-end', lba: SECTORS - 1 }));
    expect(r.status, r.stdout + r.stderr).toBe(4);
  });

  it('overlapping GPT partitions (entry edited, CRCs fixed): overlap at the first shared LBA, exit 4', () => {
    const img = copyOf(gpt);
    // partition 1 is 2048-18431; both entry arrays edited, every CRC fixed: only the layout is wrong
    editFile(img, (image) => editGptEntry(image, 512, 1, (e) => e.writeBigUInt64LE(10000n, GPT_ENTRY_FIELD.firstLba)));
    const { r, problems } = check(img);
    expect(r.status, r.stdout + r.stderr).toBe(4);
    expect(errorsOf(problems)).toEqual([{ severity: 'error', lba: 10000, code: 'overlap' }]);
    // Only the layout is wrong: the headers and entries still verify.
    expect(problems.map((p) => p.code)).not.toContain('bad-entries-crc');
    expect(problems.map((p) => p.code)).not.toContain('bad-header-crc');
  });

  it('overlapping dos partitions (MBR entry edited): overlap at the first shared LBA, exit 4', () => {
    const img = copyOf(dos);
    const start = Buffer.alloc(4);
    start.writeUInt32LE(10000);
    patch(img, 446 + 16 + 8, start); // partition 2's start: inside partition 1 (2048-18431)
    const { r, problems } = check(img);
    expect(r.status, r.stdout + r.stderr).toBe(4);
    expect(errorsOf(problems)).toEqual([{ severity: 'error', lba: 10000, code: 'overlap' }]);
  });

  it('a GPT with a damaged primary header is still dumped (from the backup), with a warning', () => {
    const img = copyOf(gpt);
    patch(img, 512 + 60, Buffer.from([0x99, 0x99]));
    const d = ptable(['dump', img]);
    expect(d.status, d.stderr).toBe(0);
    expect(d.stdout).toBe(sfdiskDump(img)); // sfdisk also falls back to the backup
    expect(d.stdout).toContain('uuid=DEADBEEF-0000-4000-8000-00000000CAFE, name="swap"');
    const warnings = linesOf(d.stderr);
    expect(warnings.some((l) => l.startsWith(`${img}: warning: `) && l.endsWith('[read-from-backup]'))).toBe(true);
    expect(warnings.every((l) => l.startsWith(`${img}: warning: `))).toBe(true);
    const j = ptable(['dump', '--json', img]);
    expect(j.status).toBe(0);
    expect(j.stdout).toBe(sfdiskJson(img));
  });
});

describe('ptable relocate and grow', () => {
  it('relocate on an enlarged image: clean for sgdisk -v and ptable check, as sfdisk --relocate gpt-bak-std', () => {
    const img = ptableImage(GPT_NAMES);
    fs.truncateSync(img, 80 * MiB);
    const theirs = copyOf(img);
    const before = ptable(['check', img]);
    expect(listedProblems(img, before.stdout).map((p) => p.code)).toContain('backup-not-at-end');

    const r = ptable(['relocate', img]);
    expect(r.status, r.stderr).toBe(0);
    const s = runTool('sfdisk', ['--no-reread', '--no-tell-kernel', '--relocate', 'gpt-bak-std', theirs]);
    expect(s.status, s.stderr).toBe(0);

    expect(fs.statSync(img).size).toBe(80 * MiB);
    const v = runTool('sgdisk', ['-v', img]);
    expect(v.stdout).toContain('No problems found');
    expect(v.stdout).not.toMatch(/Problem:/);
    const c = ptable(['check', img]);
    expect(c.status, c.stdout).toBe(0);
    expect(listedProblems(img, c.stdout)).toEqual([]);

    const lastLba = (dump: string): number => Number(/^last-lba: (\d+)$/m.exec(dump)![1]);
    const mine = ptable(['dump', img]);
    expect(mine.status).toBe(0);
    expect(lastLba(mine.stdout)).toBe(lastLba(sfdiskDump(theirs)));
    expect(lastLba(mine.stdout)).toBeGreaterThan(131038);
    expect(mine.stdout.replaceAll(img, 'X')).toBe(sfdiskDump(theirs).replaceAll(theirs, 'X'));
    expectSameBytes(img, theirs);
  });

  const grown = (img: string, n: number): JsonPartition => parseJson(sfdiskJson(img)).partitions.find((p) => numberOf(p.node) === n)!;

  it('grow on an enlarged GPT image: the last partition reaches the end, as sfdisk -N N with ", +"', () => {
    const img = ptableImage(GPT_NAMES);
    fs.truncateSync(img, 100 * MiB);
    const theirs = copyOf(img);
    const r = ptable(['grow', img, '3']);
    expect(r.status, r.stderr).toBe(0);
    const s = runTool('sfdisk', ['--no-reread', '--no-tell-kernel', '-N', '3', theirs], { input: ', +\n' });
    expect(s.status, s.stderr).toBe(0);
    const a = grown(img, 3);
    const b = grown(theirs, 3);
    expect(a.start).toBe(b.start);
    expect(a.size).toBe(b.size);
    expect(a.size).toBeGreaterThan(40960);
    expect(runTool('sgdisk', ['-v', img]).stdout).toContain('No problems found');
    expect(ptable(['check', img]).status).toBe(0);
  });

  it('grow a dos primary into the free space after it, as sfdisk -N N with ", +"', () => {
    const img = ptableImage(DOS_PRIMARIES);
    const theirs = copyOf(img);
    const r = ptable(['grow', img, '3']);
    expect(r.status, r.stderr).toBe(0);
    const s = runTool('sfdisk', ['--no-reread', '--no-tell-kernel', '-N', '3', theirs], { input: ', +\n' });
    expect(s.status, s.stderr).toBe(0);
    const a = grown(img, 3);
    const b = grown(theirs, 3);
    expect({ start: a.start, size: a.size }).toEqual({ start: b.start, size: b.size });
    expect(a.size).toBeGreaterThan(8192);
    // The other partitions did not move.
    const layout = ({ node: _node, ...rest }: JsonPartition): Omit<JsonPartition, 'node'> => rest;
    expect(layout(grown(img, 1))).toEqual(layout(grown(theirs, 1)));
    expect(layout(grown(img, 2))).toEqual(layout(grown(theirs, 2)));
    expect(layout(grown(img, 1))).toEqual({ start: 2048, size: 16384, type: '83', bootable: true });
  });
});

describe('ptable errors', () => {
  it('a missing disk: exit 2, one line', () => {
    const missing = path.join(dir, 'no-such-dir', 'disk.img');
    for (const cmd of ['dump', 'show', 'check']) {
      const r = ptable([cmd, missing]);
      expect(r.status, `${cmd}: ${r.stderr}`).toBe(2);
      expect(linesOf(r.stderr)).toHaveLength(1);
      expect(r.stderr).toContain(missing);
      expect(r.stdout).toBe('');
    }
  });

  it('an image without a table: exit 3, one line', () => {
    const img = fresh('blank');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 4 * MiB);
    for (const args of [['dump', img], ['dump', '--json', img], ['show', img]]) {
      const r = ptable(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(3);
      expect(linesOf(r.stderr)).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`^ptable: ${img}: `));
      expect(r.stdout).toBe('');
    }
  });

  it('a bad script line: exit 6 naming the line, and no table written', () => {
    const img = fresh('badscript');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 8 * MiB);
    const r = ptable(['write', img], { input: 'label: gpt\n\nsize=1M\nstart=abc, size=1M\n' });
    expect(r.status, r.stderr).toBe(6);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/line 4\b/);
    expect(readRange(img, 0, 1024).equals(Buffer.alloc(1024))).toBe(true);
  });

  it('grow of a partition that does not exist: exit 7, image unchanged', () => {
    const img = ptableImage(GPT_NAMES);
    const before = fs.readFileSync(img);
    const r = ptable(['grow', img, '9']);
    expect(r.status, r.stderr).toBe(7);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain('9');
    expect(firstDifference(fs.readFileSync(img), before)).toBe(-1);
  });
});

const reason = loopUnavailableReason();
if (reason) console.warn(`ptable loop-device tests skipped: ${reason}`);

describe.skipIf(reason)('ptable on loop devices', () => {
  it('a 4096-byte-sector GPT written by sfdisk on the device is dumped identically by ptable', async () => {
    const backing = fresh('loop4k');
    fs.writeFileSync(backing, '');
    fs.truncateSync(backing, 32 * MiB);
    const device = execFileSync('losetup', ['-b', '4096', '-f', '--show', backing]).toString().trim();
    try {
      expect(fs.readFileSync(`/sys/block/${path.basename(device)}/queue/logical_block_size`, 'utf8').trim()).toBe('4096');
      const s = runTool('sfdisk', ['--no-reread', '--no-tell-kernel', device], { input: GPT_TABLE_LENGTH_8.text });
      expect(s.status, s.stderr).toBe(0);
      const dump = sfdiskDump(device);
      expect(dump).toContain('sector-size: 4096');
      const d = ptable(['dump', device]);
      expect(d.status, d.stderr).toBe(0);
      expect(d.stdout).toBe(dump);
      const j = ptable(['dump', '--json', device]);
      expect(j.status).toBe(0);
      expect(j.stdout).toBe(sfdiskJson(device));
      const c = ptable(['check', device]);
      expect(c.status, c.stdout).toBe(0);
      // The backing file: its sector size is found from where the GPT header is.
      const f = ptable(['dump', backing]);
      expect(f.status, f.stderr).toBe(0);
      expect(f.stdout).toBe(dump.replaceAll(`${device}p`, backing).replace(`device: ${device}`, `device: ${backing}`));
    } finally {
      execFileSync('losetup', ['-d', device]);
    }
  });

  it('ptable write to a loop device: the table sfdisk writes, a BLKRRPART warning, exit 0', async () => {
    const backing = fresh('loop512');
    fs.writeFileSync(backing, '');
    fs.truncateSync(backing, IMAGE_BYTES);
    const reference = sfdiskImage(GPT_NAMES);
    await withLoop(backing, (device) => {
      const r = ptable(['write', device], { input: GPT_NAMES.text });
      expect(r.status, r.stderr).toBe(0);
      const warnings = linesOf(r.stderr);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(new RegExp(`^ptable: ${device}: .*re-read`));
      const dump = sfdiskDump(device);
      expect(ptable(['dump', device]).stdout).toBe(dump);
      expect(dump.replaceAll(`${device}p`, 'X').replace(device, 'X')).toBe(sfdiskDump(reference).replaceAll(reference, 'X'));
      expect(runTool('sgdisk', ['-v', device]).stdout).toContain('No problems found');
    });
    expect(fs.statSync(backing).size).toBe(IMAGE_BYTES);
    expectSameBytes(backing, reference);
  });
});
