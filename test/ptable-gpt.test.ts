/**
 * ptable's whole-table operations against the machine's sfdisk 2.38.1 and sgdisk 1.0.9, on the
 * same image (test/sfdisk-oracle.ts), bytes compared: relocate (three modes), zap [--all],
 * randomize-guids, convert --to gpt; 512-byte images and 4096-byte-sector loop devices.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GPT_DEFAULT_TABLE_LENGTH } from '../src/partition/align.js';
import { loopUnavailableReason, patternBytes, runTool, sfdiskWrite, useTempDir } from './helpers.js';
import { type ReplayCase, imageDifference, replay } from './sfdisk-oracle.js';
import { GPT_ENTRY_FIELD, GPT_HEADER_FIELD } from './table-edits.js';

let dir = '';
useTempDir('ptable-gpt-', (d) => {
  dir = d;
});

const MiB = 1024 * 1024;
const loopSkip = loopUnavailableReason();
const onLoop = loopSkip ? it.skip : it;

/** A GPT written by sfdisk at `smallBytes`, then the image grown to the replay's size. */
const grownGpt =
  (smallBytes: number, script: string, sectorSize = 512) =>
  (image: string): void => {
    const bytes = fs.statSync(image).size;
    fs.truncateSync(image, smallBytes);
    sfdiskOn(image, script, sectorSize);
    fs.truncateSync(image, bytes);
  };

/** sfdisk writes `script` on the image: through a loop device of `sectorSize` bytes when not 512. */
function sfdiskOn(image: string, script: string, sectorSize: number): void {
  if (sectorSize === 512) return sfdiskWrite(image, script);
  const device = execFileSync('losetup', ['-b', String(sectorSize), '-f', '--show', image]).toString().trim();
  try {
    sfdiskWrite(device, script);
  } finally {
    execFileSync('losetup', ['-d', device]);
  }
}

const tableOf =
  (script: string, sectorSize = 512) =>
  (image: string): void =>
    sfdiskOn(image, script, sectorSize);

/** Random bytes in sector 0's boot code (which every operation keeps or zeroes as the oracle does). */
function withBootCode(image: string, seed = 7): void {
  const fd = fs.openSync(image, 'r+');
  fs.writeSync(fd, patternBytes(440, seed), 0, 440, 0);
  fs.closeSync(fd);
}

/** Both tools succeed and leave the same image (random ids normalised unless `normalise` is false). */
function expectSame(name: string, c: ReplayCase, { normalise = true }: { normalise?: boolean } = {}): void {
  const r = replay(dir, name, c);
  expect(r.oracle.status, r.oracle.stderr).toBe(0);
  expect(r.ptable.status, r.ptable.stderr).toBe(0);
  expect(imageDifference(r.oracle.image, r.ptable.image, c.sectorSize ?? 512, normalise)).toBeNull();
}

/** An "oracle" that leaves its copy as prepared: the image ptable must leave when it refuses. */
const UNTOUCHED = { command: 'true', args: [] } as unknown as ReplayCase['oracle'];

const SCRIPT = 'label: gpt\nsize=4M, type=L, name=root\nsize=4M, type=S\n';

describe('ptable relocate equals sfdisk --relocate and sgdisk -e', () => {
  const grown = (sectorSize = 512): Partial<ReplayCase> => ({ bytes: 40 * MiB, sectorSize: sectorSize as 512, setup: grownGpt(20 * MiB, SCRIPT, sectorSize) });

  it('the default and gpt-bak-std: sfdisk --relocate gpt-bak-std, byte for byte', () => {
    for (const args of [['relocate', 'DISK'], ['relocate', '--mode', 'gpt-bak-std', 'DISK'], ['--relocate', 'gpt-bak-std', 'DISK']]) {
      expectSame(`std-${args.length}`, { ...grown(), bytes: 40 * MiB, oracle: { command: 'sfdisk', args: ['-q', '--relocate', 'gpt-bak-std', 'DISK'] }, ptable: args }, { normalise: false });
    }
  });

  it('gpt-bak-mini: sfdisk --relocate gpt-bak-mini (the backup right behind the last partition)', () => {
    expectSame('mini', { bytes: 20 * MiB, setup: tableOf(SCRIPT), oracle: { command: 'sfdisk', args: ['-q', '--relocate', 'gpt-bak-mini', 'DISK'] }, ptable: ['relocate', '--mode', 'gpt-bak-mini', 'DISK'] }, { normalise: false });
  });

  it('gpt-bak-mini on a grown disk: refused, nothing written (sfdisk 2.38.1 exits 1 and writes nothing)', () => {
    const r = replay(dir, 'mini-grown', { ...grown(), bytes: 40 * MiB, oracle: { command: 'sfdisk', args: ['-q', '--relocate', 'gpt-bak-mini', 'DISK'] }, ptable: ['relocate', '--mode', 'gpt-bak-mini', 'DISK'] });
    expect(r.oracle.status).toBe(1);
    expect(r.ptable.status).toBe(8);
    expect(r.ptable.stderr).toMatch(/^ptable: .*: the backup GPT header is at LBA 40959, not at the last LBA 81919/m);
    expect(r.ptable.image.equals(r.oracle.image)).toBe(true);
  });

  it('gpt-bak-mini on a table without partitions: refused (sfdisk 2.38.1 writes a backup header at LBA 34 over a broken table)', () => {
    const r = replay(dir, 'mini-empty', { bytes: 20 * MiB, setup: tableOf('label: gpt\n'), oracle: { command: 'sfdisk', args: ['-q', '--relocate', 'gpt-bak-mini', 'DISK'] }, ptable: ['relocate', '--mode', 'gpt-bak-mini', 'DISK'] });
    expect(r.oracle.status).toBe(0);
    expect(r.oracle.image.readBigUInt64LE(512 + GPT_HEADER_FIELD.alternateLba)).toBe(34n); // what sfdisk did
    expect(r.ptable.status).toBe(8);
    expect(r.ptable.stderr).toMatch(/no partition/);
    const untouched = Buffer.alloc(20 * MiB);
    const img = `${dir}/mini-empty-ref.img`;
    fs.writeFileSync(img, untouched);
    sfdiskWrite(img, 'label: gpt\n');
    expect(imageDifference(fs.readFileSync(img), r.ptable.image, 512)).toBeNull();
  });

  it('sgdisk-e: sgdisk -e, byte for byte (last usable LBA = size - first usable, entries after it, its protective MBR)', () => {
    expectSame('sgdisk-e', { ...grown(), bytes: 40 * MiB, oracle: { command: 'sgdisk', args: ['-e', 'DISK'] }, ptable: ['relocate', '--mode', 'sgdisk-e', 'DISK'] }, { normalise: false });
    const boot = { bytes: 40 * MiB, setup: (img: string): void => (grownGpt(20 * MiB, SCRIPT)(img), withBootCode(img)) };
    expectSame('sgdisk-e-boot', { ...boot, oracle: { command: 'sgdisk', args: ['-e', 'DISK'] }, ptable: ['relocate', '--mode', 'sgdisk-e', 'DISK'] }, { normalise: false });
  });

  it('sgdisk-e on a disk that did not grow moves the last usable LBA too, and refuses (as sgdisk, exit 4) a partition past it', () => {
    expectSame('sgdisk-e-same-size', { bytes: 20 * MiB, setup: tableOf(SCRIPT), oracle: { command: 'sgdisk', args: ['-e', 'DISK'] }, ptable: ['relocate', '--mode', 'sgdisk-e', 'DISK'] }, { normalise: false });
    const full = tableOf('label: gpt\nstart=2048, size=38879, type=L\n');
    const r = replay(dir, 'sgdisk-e-full', { bytes: 20 * MiB, setup: full, oracle: { command: 'sgdisk', args: ['-e', 'DISK'] }, ptable: ['relocate', '--mode', 'sgdisk-e', 'DISK'] });
    expect(r.oracle.status).toBe(4);
    expect(r.ptable.status).toBe(8);
    expect(r.ptable.stderr).toMatch(/partition 1 \(LBA 2048-40926\) would end past the last usable LBA 38912 of a 40960-sector disk; nothing written/);
    expect(r.ptable.image.equals(r.oracle.image)).toBe(true);
  });

  it('a bad --mode is a usage error', () => {
    const r = replay(dir, 'bad-mode', { bytes: 20 * MiB, setup: tableOf(SCRIPT), oracle: { command: 'sfdisk', args: ['-q', '--relocate', 'gpt-bak-odd', 'DISK'] }, ptable: ['relocate', '--mode', 'gpt-bak-odd', 'DISK'] });
    expect(r.oracle.status).toBe(1);
    expect(r.ptable.status).toBe(1);
    expect(r.ptable.stderr).toMatch(/bad --mode 'gpt-bak-odd'/);
    expect(r.ptable.image.equals(r.oracle.image)).toBe(true);
  });

  onLoop('on 4096-byte-sector loop devices, all three modes', () => {
    const g = { bytes: 64 * MiB, sectorSize: 4096 as const, device: true, setup: grownGpt(32 * MiB, SCRIPT, 4096) };
    expectSame('std-4k', { ...g, oracle: { command: 'sfdisk', args: ['-q', '--relocate', 'gpt-bak-std', 'DISK'] }, ptable: ['relocate', 'DISK'] }, { normalise: false });
    expectSame('e-4k', { ...g, oracle: { command: 'sgdisk', args: ['-e', 'DISK'] }, ptable: ['relocate', '--mode', 'sgdisk-e', 'DISK'] }, { normalise: false });
    const m = { bytes: 32 * MiB, sectorSize: 4096 as const, device: true, setup: tableOf(SCRIPT, 4096) };
    expectSame('mini-4k', { ...m, oracle: { command: 'sfdisk', args: ['-q', '--relocate', 'gpt-bak-mini', 'DISK'] }, ptable: ['relocate', '--mode', 'gpt-bak-mini', 'DISK'] }, { normalise: false });
  });
});

/** Fills every sector of the image that no table uses with a pattern, so zeroing shows. */
function patterned(prepare: (image: string) => void) {
  return (image: string): void => {
    const bytes = fs.statSync(image).size;
    fs.writeFileSync(image, Buffer.alloc(bytes, 0xa5));
    prepare(image);
    withBootCode(image);
  };
}

describe('ptable zap equals sgdisk -z / -Z', () => {
  const zapCase = (name: string, setup: (img: string) => void, all: boolean, extra: Partial<ReplayCase> = {}): void =>
    expectSame(name, { bytes: 20 * MiB, setup, oracle: { command: 'sgdisk', args: [all ? '-Z' : '-z', 'DISK'] }, ptable: ['zap', ...(all ? ['--all'] : []), 'DISK'], ...extra }, { normalise: false });

  it('a GPT disk: -z zeroes the headers and arrays, -Z sector 0 too (boot code included)', () => {
    zapCase('z-gpt', patterned(tableOf(SCRIPT)), false);
    zapCase('Z-gpt', patterned(tableOf(SCRIPT)), true);
  });

  it("a grown GPT disk: the default places are zeroed, the old backup mid-disk stays (as sgdisk's)", () => {
    zapCase('z-grown', grownGpt(10 * MiB, SCRIPT), false);
    const r = replay(dir, 'z-grown-check', { bytes: 20 * MiB, setup: grownGpt(10 * MiB, SCRIPT), oracle: { command: 'sgdisk', args: ['-z', 'DISK'] }, ptable: ['zap', 'DISK'] });
    expect(r.ptable.image.subarray(20479 * 512, 20479 * 512 + 8).toString('latin1')).toBe('EFI PART');
  });

  it('a dos disk whose partitions stay clear of the GPT places: as sgdisk', () => {
    const dos = patterned(tableOf('label: dos\nstart=2048, size=8192, type=83\nstart=10240, size=20480, type=5\nstart=12288, size=4096, type=82\n'));
    zapCase('z-dos', dos, false);
    zapCase('Z-dos', dos, true);
  });

  it('a dos disk with a partition over the last sectors: refused without -f, as sgdisk with -f', () => {
    const dos = patterned(tableOf('label: dos\nstart=2048, type=83\n'));
    const r = replay(dir, 'z-dos-refused', { bytes: 20 * MiB, setup: dos, oracle: UNTOUCHED, ptable: ['zap', 'DISK'] });
    expect(r.ptable.status).toBe(8);
    expect(r.ptable.stderr).toMatch(/^ptable: .*: a dos disk: zap zeroes LBA 1-33 and 40927-40959 as sgdisk does, which lie inside partition 1 \(LBA 2048-40959\); nothing written/m);
    expect(r.ptable.image.equals(r.oracle.image)).toBe(true);
    expectSame('z-dos-force', { bytes: 20 * MiB, setup: dos, oracle: { command: 'sgdisk', args: ['-Z', 'DISK'] }, ptable: ['zap', '--all', '-f', 'DISK'] }, { normalise: false });
  });

  onLoop('on 4096-byte-sector loop devices', () => {
    const setup = patterned(tableOf(SCRIPT, 4096));
    zapCase('z-4k', setup, false, { bytes: 32 * MiB, sectorSize: 4096, device: true });
    zapCase('Z-4k', setup, true, { bytes: 32 * MiB, sectorSize: 4096, device: true });
  });
});

/** The disk GUID and the used entries' unique GUIDs of the primary GPT (raw bytes, hex). */
function guidsOf(image: Buffer, sectorSize = 512): string[] {
  const h = sectorSize;
  const entriesLba = Number(image.readBigUInt64LE(h + GPT_HEADER_FIELD.entriesLba));
  const out = [image.subarray(h + 56, h + 72).toString('hex')];
  for (let i = 0; i < GPT_DEFAULT_TABLE_LENGTH; i++) {
    const e = entriesLba * sectorSize + i * 128;
    if (image.subarray(e, e + 16).every((b) => b === 0)) continue;
    out.push(image.subarray(e + GPT_ENTRY_FIELD.unique, e + GPT_ENTRY_FIELD.unique + 16).toString('hex'));
  }
  return out;
}

describe('ptable randomize-guids equals sgdisk -G', () => {
  it('new disk and partition GUIDs, both copies; every other byte as sgdisk leaves it', () => {
    const setup = tableOf(SCRIPT);
    const r = replay(dir, 'G', { bytes: 20 * MiB, setup, oracle: { command: 'sgdisk', args: ['-G', 'DISK'] }, ptable: ['randomize-guids', 'DISK'] });
    expect(r.oracle.status).toBe(0);
    expect(r.ptable.status, r.ptable.stderr).toBe(0);
    expect(imageDifference(r.oracle.image, r.ptable.image, 512)).toBeNull();
    const before = `${dir}/G-before.img`;
    fs.writeFileSync(before, Buffer.alloc(20 * MiB));
    setup(before);
    const old = guidsOf(fs.readFileSync(before));
    const now = guidsOf(r.ptable.image);
    expect(now).toHaveLength(3);
    expect(new Set([...old, ...now]).size).toBe(6);
    const after = `${dir}/G-after.img`;
    fs.writeFileSync(after, r.ptable.image);
    expect(runTool('sgdisk', ['-v', after]).stdout).toMatch(/No problems found/);
  });

  onLoop('on a 4096-byte-sector loop device', () => {
    expectSame('G-4k', { bytes: 32 * MiB, sectorSize: 4096, device: true, setup: tableOf(SCRIPT, 4096), oracle: { command: 'sgdisk', args: ['-G', 'DISK'] }, ptable: ['randomize-guids', 'DISK'] });
  });

  it('a dos disk is a usage error, nothing written', () => {
    const r = replay(dir, 'G-dos', { bytes: 8 * MiB, setup: tableOf('label: dos\n,2M,83\n'), oracle: UNTOUCHED, ptable: ['randomize-guids', 'DISK'] });
    expect(r.ptable.status).toBe(1);
    expect(r.ptable.stderr).toMatch(/^ptable: .*: randomize-guids applies to GPT disks; this one is dos$/m);
    expect(r.ptable.image.equals(r.oracle.image)).toBe(true);
  });
});

describe('ptable convert --to gpt equals sgdisk -g', () => {
  const DOS = 'label: dos\nlabel-id: 0x11223344\nstart=2048, size=8192, type=83, bootable\nstart=10240, size=8192, type=82\nstart=18432, size=40960, type=5\nstart=59392, size=8192, type=7\nstart=20480, size=8192, type=8e\nstart=30720, size=28672, type=c\n';

  it('primaries and logical partitions: numbers, types, names, usable LBAs, protective MBR, boot code', () => {
    const setup = (img: string): void => (tableOf(DOS)(img), withBootCode(img));
    expectSame('g', { bytes: 64 * MiB, setup, oracle: { command: 'sgdisk', args: ['-g', 'DISK'] }, ptable: ['convert', '--to', 'gpt', 'DISK'] });
  });

  it('every MBR type byte maps to the GPT type and name sgdisk gives it', () => {
    const types = Array.from({ length: 255 }, (_, i) => i + 1).filter((t) => ![0x05, 0x0f, 0x85, 0xee].includes(t));
    for (let i = 0; i < types.length; i += 50) {
      const batch = types.slice(i, i + 50);
      const primaries = batch.slice(0, 3).map((t, j) => `start=${2048 + j * 2048}, size=2048, type=${t.toString(16)}\n`);
      // Once the four slots are taken, sfdisk makes each further line a logical partition.
      const logicals = batch.slice(3).map((t) => `size=1024, type=${t.toString(16)}\n`);
      const script = `label: dos\n${primaries.join('')}start=8192, size=${batch.length * 4096 + 8192}, type=5\n${logicals.join('')}`;
      expectSame(`g-types-${i}`, { bytes: 128 * MiB, setup: tableOf(script), oracle: { command: 'sgdisk', args: ['-g', 'DISK'] }, ptable: ['convert', '--to', 'gpt', 'DISK'] });
    }
  });

  it('refuses a partition over the primary or the backup GPT by name, nothing written (sgdisk exits 4)', () => {
    for (const [name, line, where] of [
      ['g-first', 'start=33, size=2048, type=83', /partition 1 \(LBA 33-2080\) covers the primary GPT \(LBA 1-33\)/],
      ['g-last', 'start=2048, type=83', /partition 1 \(LBA 2048-40959\) covers the backup GPT \(LBA 40927-40959\)/],
    ] as const) {
      const r = replay(dir, name, { bytes: 20 * MiB, setup: tableOf(`label: dos\n${line}\n`), oracle: { command: 'sgdisk', args: ['-g', 'DISK'] }, ptable: ['convert', '--to', 'gpt', 'DISK'] });
      expect(r.oracle.status).toBe(4);
      expect(r.ptable.status).toBe(8);
      expect(r.ptable.stderr).toMatch(where);
      expect(r.ptable.image.equals(r.oracle.image)).toBe(true);
    }
  });

  it('a GPT disk is left as it is (as sgdisk -g leaves it); --to dos is a usage error', () => {
    expectSame('g-gpt', { bytes: 20 * MiB, setup: tableOf(SCRIPT), oracle: { command: 'sgdisk', args: ['-g', 'DISK'] }, ptable: ['convert', '--to', 'gpt', 'DISK'] }, { normalise: false });
    const r = replay(dir, 'g-to-dos', { bytes: 8 * MiB, setup: tableOf('label: dos\n,2M,83\n'), oracle: UNTOUCHED, ptable: ['convert', '--to', 'dos', 'DISK'] });
    expect(r.ptable.status).toBe(1);
    expect(r.ptable.image.equals(r.oracle.image)).toBe(true);
  });

  onLoop('on a 4096-byte-sector loop device', () => {
    const dos4k = 'label: dos\nstart=256, size=1024, type=83\nstart=1280, size=4096, type=5\nstart=1536, size=1024, type=82\n';
    expectSame('g-4k', { bytes: 32 * MiB, sectorSize: 4096, device: true, setup: tableOf(dos4k, 4096), oracle: { command: 'sgdisk', args: ['-g', 'DISK'] }, ptable: ['convert', '--to', 'gpt', 'DISK'] });
  });
});
