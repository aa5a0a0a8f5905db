/**
 * The GPT driver against the real tools: tables written by sfdisk and sgdisk read back field by
 * field as `sfdisk -J` reports them; our serialized images byte-identical to sfdisk's for pinned
 * ids (512- and 4096-byte sectors, 128 or fewer entries, tiny and > 2 TiB disks); our tables
 * accepted by sfdisk -V, sgdisk -v, blkid and file; every corruption kind found by check() with
 * its code and LBA; the backup used when the primary is damaged; relocation and growth.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32 } from '../src/codec/crc32.js';
import { gptDefaultUsableLbas, growPartition, nextFreeStart } from '../src/partition/align.js';
import { GPT_ENTRY, GPT_HEADER, gptDriver, relocateBackup, serializeGpt, serializeGptHeader } from '../src/partition/gpt.js';
import { typeByName, typeName } from '../src/partition/gpt-types.js';
import { guidFromBytes, guidToBytes, isGuid, randomGuid } from '../src/partition/guid.js';
import type { Partition, PartitionTable, SectorReader, SectorWrite, TableProblem } from '../src/partition/model.js';
import { bufferReader, checkTable, detectGptSectorSize, readTable } from '../src/partition/read.js';
import { loopUnavailableReason, newImageIn, nodeNumber, sfdiskWrite, useTempDir } from './helpers.js';
import { editFile, editGptEntry } from './table-edits.js';

const MiB = 1024 * 1024;
let dir = '';
useTempDir('ptable-gpt-', (d) => (dir = d));

// ---------------------------------------------------------------------------------------------
// helpers

const newImage = (name: string, bytes: number): string => newImageIn(dir, name, bytes);


function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args);
  return { status: r.status, out: r.stdout.toString() + r.stderr.toString() };
}

interface GptJson {
  label: string;
  id: string;
  device: string;
  firstlba: number;
  lastlba: number;
  'table-length'?: string;
  sectorsize: number;
  partitions: Array<{ node: string; start: number; size: number; type: string; uuid: string; name?: string; attrs?: string }>;
}

function sfdiskJson(target: string): GptJson {
  return (JSON.parse(execFileSync('sfdisk', ['-J', target], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()) as { partitiontable: GptJson }).partitiontable;
}

/** sfdisk's attribute text ("RequiredPartition LegacyBIOSBootable GUID:60,63") as the 64-bit field. */
function attrsToBits(text: string | undefined): bigint {
  let bits = 0n;
  for (const word of (text ?? '').split(/\s+/).filter(Boolean)) {
    if (word === 'RequiredPartition') bits |= 1n;
    else if (word === 'NoBlockIOProtocol') bits |= 2n;
    else if (word === 'LegacyBIOSBootable') bits |= 4n;
    else if (word.startsWith('GUID:')) for (const b of word.slice(5).split(',')) bits |= 1n << BigInt(b);
    else throw new Error(`unknown attribute ${word}`);
  }
  return bits;
}

/** The model with every field as `sfdisk -J` reports it. */
function modelFromJson(j: GptJson, diskSectors: number): PartitionTable {
  return {
    label: 'gpt',
    id: j.id,
    sectorSize: j.sectorsize,
    diskSectors,
    firstLba: j.firstlba,
    lastLba: j.lastlba,
    tableLength: Number(j['table-length'] ?? 128),
    entriesLba: 2,
    partitions: j.partitions.map(
      (p): Partition => ({
        number: nodeNumber(j.device, p.node),
        start: p.start,
        size: p.size,
        type: p.type,
        uuid: p.uuid,
        name: p.name ?? '',
        attributes: attrsToBits(p.attrs),
      }),
    ),
  };
}

/** The same table with the usable LBAs left for us to compute (sfdisk's defaults). */
function withoutUsableLbas(t: PartitionTable): PartitionTable {
  const { firstLba: _f, lastLba: _l, entriesLba: _e, ...rest } = t;
  return rest;
}

function fileReader(file: string, sectorSize: number): { read: SectorReader; sectors: number; close: () => void } {
  const fd = fs.openSync(file, 'r');
  const sectors = Math.floor(fs.fstatSync(fd).size / sectorSize);
  const read: SectorReader = (lba, count) => {
    const b = Buffer.alloc(count * sectorSize);
    const n = fs.readSync(fd, b, 0, b.length, lba * sectorSize);
    return b.subarray(0, n);
  };
  return { read, sectors, close: () => fs.closeSync(fd) };
}

function withReader<T>(file: string, sectorSize: number, body: (read: SectorReader, sectors: number) => T): T {
  const r = fileReader(file, sectorSize);
  try {
    return body(r.read, r.sectors);
  } finally {
    r.close();
  }
}

function writeSectors(file: string, sectorSize: number, writes: SectorWrite[]): void {
  const fd = fs.openSync(file, 'r+');
  try {
    for (const w of writes) fs.writeSync(fd, w.data, 0, w.data.length, w.lba * sectorSize);
  } finally {
    fs.closeSync(fd);
  }
}

function imageOf(bytes: number, sectorSize: number, writes: SectorWrite[]): Buffer {
  const img = Buffer.alloc(bytes);
  for (const w of writes) w.data.copy(img, w.lba * sectorSize);
  return img;
}

function firstDifference(a: Buffer, b: Buffer, sectorSize: number): string {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `byte ${i} (LBA ${Math.floor(i / sectorSize)}): ours ${a[i]}, sfdisk ${b[i]}`;
  }
  return 'none';
}

function flipByte(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, offset);
  b[0]! ^= 0x5a;
  fs.writeSync(fd, b, 0, 1, offset);
  fs.closeSync(fd);
}

/** Edits entry `index` of both entry arrays with `edit`, then recomputes every CRC (a consistent but bad table). */
/** Edits entry `index` (0-based) of both entry arrays of an image file, every CRC repaired. */
const editEntries = (file: string, sectorSize: number, index: number, edit: (entry: Buffer) => void): void =>
  editFile(file, (image) => editGptEntry(image, sectorSize, index, edit));

const brief = (ps: TableProblem[]): Array<{ code: string; lba?: number; severity: string }> =>
  ps.map(({ code, lba, severity }) => (lba === undefined ? { code, severity } : { code, lba, severity }));

function attachLoop4096(file: string): string {
  return execFileSync('losetup', ['-b', '4096', '-f', '--show', file]).toString().trim();
}
function detachLoop(device: string): void {
  execFileSync('losetup', ['-d', device]);
}
/** Runs `body` on `file` attached as a 4096-byte-sector loop device, detaching that device after. */
function withLoop4096<T>(file: string, body: (device: string) => T): T {
  const device = attachLoop4096(file);
  try {
    return body(device);
  } finally {
    detachLoop(device);
  }
}
const noLoop = loopUnavailableReason();

const ESP = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const SWAP = '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F';

// ---------------------------------------------------------------------------------------------
// tables written by sfdisk

interface Shape {
  name: string;
  bytes: number;
  script: string;
}

const SHAPES: Shape[] = [
  {
    name: '128 entries, names with non-ASCII characters, attributes',
    bytes: 32 * MiB,
    script: `label: gpt
label-id: 01234567-89AB-CDEF-0123-456789ABCDEF
unit: sectors

start=2048, size=8192, type=${ESP}, uuid=11111111-2222-3333-4444-555555555555, name="EFI system"
start=10240, size=20480, type=${LINUX}, uuid=AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE, name="Données ✓", attrs="RequiredPartition LegacyBIOSBootable GUID:60,63"
start=30720, size=4096, type=${SWAP}, uuid=12345678-1234-1234-1234-123456789ABC, name="swap ünïcödé 日本語"
`,
  },
  {
    name: 'table-length 8, slots 2 and 8 used',
    bytes: 32 * MiB,
    script: `label: gpt
label-id: 6F1B2F1C-0C6B-4B7A-9D0C-2C1E3F4A5B6C
table-length: 8
unit: sectors

IMG2 : start=4096, size=2048, type=${LINUX}, uuid=00000000-1111-2222-3333-444444444444, name="second"
IMG8 : start=8192, size=4096, type=${LINUX}, uuid=88888888-1111-2222-3333-444444444444, name="eighth", attrs="NoBlockIOProtocol"
`,
  },
  {
    name: 'table-length 5 (a 640-byte entry array, padded)',
    bytes: 16 * MiB,
    script: `label: gpt
label-id: 55555555-4444-3333-2222-111111111111
table-length: 5
unit: sectors

start=2048, size=2048, type=${LINUX}, uuid=01010101-0202-0303-0404-050505050505
`,
  },
  {
    name: 'a tiny (2 MiB) disk: first-lba 34, grain of one sector',
    bytes: 2 * MiB,
    script: `label: gpt
label-id: 7E7E7E7E-1234-5678-9ABC-DEF012345678
unit: sectors

start=34, size=1000, type=${LINUX}, uuid=0A0A0A0A-0B0B-0C0C-0D0D-0E0E0E0E0E0E, name="tiny"
`,
  },
];

const scriptFor = (shape: Shape, image: string): string => shape.script.replace(/IMG/g, image);

describe('gpt: tables written by sfdisk', () => {
  for (const shape of SHAPES) {
    it(`${shape.name}: read equals sfdisk -J, serialize equals sfdisk's image`, () => {
      const image = newImage('shape.img', shape.bytes);
      sfdiskWrite(image, scriptFor(shape, image));
      const j = sfdiskJson(image);
      const sectors = shape.bytes / 512;
      const sfdiskBytes = fs.readFileSync(image);
      const expected = modelFromJson(j, sectors);

      const { label, table, problems } = readTable(bufferReader(sfdiskBytes, 512), 512, sectors);
      expect(label).toBe('gpt');
      expect(problems).toEqual([]);
      expect(table).toEqual(expected);
      expect(checkTable(bufferReader(sfdiskBytes, 512), 512, sectors).problems).toEqual([]);

      // sfdisk's first/last usable LBAs are the defaults we compute.
      expect(gptDefaultUsableLbas(sectors, 512, expected.tableLength)).toEqual({ firstLba: j.firstlba, lastLba: j.lastlba });
      // Byte for byte, the whole image: protective MBR, headers, both arrays, zeros elsewhere.
      const ours = imageOf(shape.bytes, 512, serializeGpt(withoutUsableLbas(expected)));
      expect(ours.equals(sfdiskBytes), firstDifference(ours, sfdiskBytes, 512)).toBe(true);
    });
  }

  it('a 3 TiB disk: the protective entry is capped at 0xFFFFFFFF sectors, backup at the end', () => {
    const bytes = 3 * 1024 * 1024 * MiB;
    const image = newImage('huge.img', bytes);
    sfdiskWrite(image, `label: gpt\nlabel-id: 33333333-3333-3333-3333-333333333333\n\nstart=2048, size=4294967296, type=${LINUX}, uuid=44444444-4444-4444-4444-444444444444\n`);
    const sectors = bytes / 512;
    const j = sfdiskJson(image);
    withReader(image, 512, (read) => {
      const { table, problems } = readTable(read, 512, sectors);
      expect(problems).toEqual([]);
      expect(table).toEqual(modelFromJson(j, sectors));
      const writes = serializeGpt(withoutUsableLbas(table!));
      expect(writes.map((w) => w.lba)).toEqual([0, 1, 2, sectors - 33, sectors - 1]);
      for (const w of writes) expect(read(w.lba, w.data.length / 512).equals(w.data), `LBA ${w.lba}`).toBe(true);
      expect(read(0, 1).readUInt32LE(0x1be + 12)).toBe(0xffffffff);
    });
  });

  it.skipIf(noLoop !== null)('4096-byte sectors (loop device), 128 and 8 entries: read and byte-identical serialize', () => {
    const bytes = 64 * MiB;
    const sectors = bytes / 4096;
    for (const tableLength of [128, 8]) {
      const image = newImage(`gpt4k-${tableLength}.img`, bytes);
      const j = withLoop4096(image, (device) => {
        sfdiskWrite(
          device,
          `label: gpt
label-id: 40964096-4096-4096-4096-409640964096
table-length: ${tableLength}
unit: sectors

start=256, size=2560, type=${ESP}, uuid=11111111-2222-3333-4444-555555555555, name="Données ✓"
start=2816, size=10240, type=${LINUX}, uuid=AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE, attrs="LegacyBIOSBootable"
`,
        );
        return sfdiskJson(device);
      });
      expect(j.sectorsize).toBe(4096);
      expect(j.firstlba).toBe(256);
      const sfdiskBytes = fs.readFileSync(image);
      expect(detectGptSectorSize(sfdiskBytes.subarray(0, 8192))).toBe(4096);
      const expected = modelFromJson(j, sectors);
      const { table, problems } = readTable(bufferReader(sfdiskBytes, 4096), 4096, sectors);
      expect(problems).toEqual([]);
      expect(table).toEqual(expected);
      expect(gptDefaultUsableLbas(sectors, 4096, tableLength)).toEqual({ firstLba: j.firstlba, lastLba: j.lastlba });
      const ours = imageOf(bytes, 4096, serializeGpt(withoutUsableLbas(expected)));
      expect(ours.equals(sfdiskBytes), firstDifference(ours, sfdiskBytes, 4096)).toBe(true);
    }
  });
});

describe('gpt: tables written by sgdisk', () => {
  it('read equals sfdisk -J (names, attributes, first-lba 34, whole-disk last partition)', () => {
    const image = newImage('sgdisk.img', 32 * MiB);
    const r = run('sgdisk', [
      '-o',
      '-U', '01234567-89AB-CDEF-0123-456789ABCDEF',
      '-n', '1:2048:+4M', '-t', '1:ef00', '-c', '1:Données ✓', '-u', '1:11111111-2222-3333-4444-555555555555',
      '-n', '3:0:+8M', '-t', '3:8200', '-A', '3:set:0', '-A', '3:set:62',
      '-n', '2:0:0', '-t', '2:8300', '-c', '2:root',
      image,
    ]);
    expect(r.status, r.out).toBe(0);
    const j = sfdiskJson(image);
    const sectors = 65536;
    const { table, problems } = withReader(image, 512, (read) => readTable(read, 512, sectors));
    expect(problems).toEqual([]);
    expect(table).toEqual(modelFromJson(j, sectors));
    expect(table!.firstLba).toBe(34);
    expect(table!.partitions.map((p) => p.number)).toEqual([1, 2, 3]);
    expect(withReader(image, 512, (read) => checkTable(read, 512, sectors)).problems).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// our tables, judged by the tools

describe('gpt: tables we write, judged by sfdisk, sgdisk, blkid and file', () => {
  const table = (sectorSize: number, diskSectors: number): PartitionTable => {
    const mib = MiB / sectorSize;
    return {
      label: 'gpt',
      id: 'D0D0D0D0-1111-4222-8333-444455556666',
      sectorSize,
      diskSectors,
      tableLength: 128,
      partitions: [
        { number: 1, start: mib, size: 4 * mib, type: '21686148-6449-6E6F-744E-656564454649', uuid: 'B105B105-0000-4000-8000-000000000001', name: 'BIOS boot', attributes: 0n },
        { number: 2, start: 5 * mib, size: 16 * mib, type: ESP, uuid: 'E5E5E5E5-0000-4000-8000-000000000002', name: 'EFI ✓', attributes: 1n },
        { number: 4, start: 21 * mib, size: 32 * mib, type: LINUX, uuid: 'A0A0A0A0-0000-4000-8000-000000000004', name: 'rootfs', attributes: (1n << 2n) | (1n << 59n) },
      ],
    };
  };
  const expectFromSfdisk = (t: PartitionTable, j: GptJson): void => {
    const got = modelFromJson(j, t.diskSectors);
    const usable = gptDefaultUsableLbas(t.diskSectors, t.sectorSize, 128);
    expect(got).toEqual({ ...t, ...usable, entriesLba: 2 });
  };

  it('512-byte sectors: sfdisk -V and sgdisk -v find no problem, blkid says gpt, file sees the 0xEE entry', () => {
    const t = table(512, 131072);
    const image = newImage('ours.img', 64 * MiB);
    writeSectors(image, 512, serializeGpt(t));
    const v = run('sfdisk', ['-V', image]);
    expect(v.out).toContain('No errors detected');
    expect(v.status).toBe(0);
    const g = run('sgdisk', ['-v', image]);
    expect(g.out).toContain('No problems found');
    expect(g.status).toBe(0);
    expectFromSfdisk(t, sfdiskJson(image));
    const b = execFileSync('blkid', ['-p', '-o', 'export', image]).toString();
    expect(b).toMatch(/^PTTYPE=gpt$/m);
    expect(b).toMatch(/^PTUUID=d0d0d0d0-1111-4222-8333-444455556666$/m);
    const f = execFileSync('file', ['-s', image]).toString();
    expect(f).toContain('DOS/MBR boot sector');
    expect(f).toContain('ID=0xee');
    expect(f).toContain('startsector 1, 131071 sectors');
  });

  it.skipIf(noLoop !== null)('4096-byte sectors: the tools accept it on a 4096-byte loop device', () => {
    const t = table(4096, 16384);
    const image = newImage('ours4k.img', 64 * MiB);
    writeSectors(image, 4096, serializeGpt(t));
    withLoop4096(image, (device) => {
      const v = run('sfdisk', ['-V', device]);
      expect(v.out).toContain('No errors detected');
      const g = run('sgdisk', ['-v', device]);
      expect(g.out).toContain('No problems found');
      const j = sfdiskJson(device);
      expect(j.sectorsize).toBe(4096);
      expectFromSfdisk(t, j);
      expect(execFileSync('blkid', ['-p', '-o', 'export', device]).toString()).toMatch(/^PTTYPE=gpt$/m);
    });
  });

  it('refuses tables that cannot be written', () => {
    const t = table(512, 131072);
    const p = t.partitions;
    expect(() => serializeGpt({ ...t, partitions: [{ ...p[0]!, name: 'x'.repeat(37) }] })).toThrow(/36/);
    expect(() => serializeGpt({ ...t, partitions: [p[0]!, { ...p[1]!, start: p[0]!.start + 1 }] })).toThrow(/overlap/);
    expect(() => serializeGpt({ ...t, partitions: [{ ...p[2]!, size: 131072 }] })).toThrow(/usable/);
    expect(() => serializeGpt({ ...t, tableLength: 2, partitions: p })).toThrow(/table length/);
    expect(() => serializeGpt({ ...t, partitions: [{ ...p[0]!, type: 'not-a-guid' }] })).toThrow(/GUID/);
    // A partition without a uuid gets a random one, the same in both arrays.
    const writes = serializeGpt({ ...t, partitions: [{ ...p[0]!, uuid: undefined }] });
    const uuid = guidFromBytes(writes[2]!.data, GPT_ENTRY.uniqueGuid);
    expect(isGuid(uuid)).toBe(true);
    expect(writes[3]!.data.equals(writes[2]!.data)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// check() and the fallback to the backup

describe('gpt: corruptions found by check(), and reading from the backup', () => {
  const bytes = 32 * MiB;
  const sectors = bytes / 512;
  const script = `label: gpt
label-id: C4EC4EC4-0000-4000-8000-000000000000
unit: sectors

start=2048, size=8192, type=${ESP}, uuid=C4EC4EC4-0000-4000-8000-000000000001, name="esp"
start=10240, size=8192, type=${LINUX}, uuid=C4EC4EC4-0000-4000-8000-000000000002, name="root"
start=18432, size=8192, type=${SWAP}, uuid=C4EC4EC4-0000-4000-8000-000000000003
`;
  let pristine: PartitionTable;
  const fresh = (name = 'check.img'): string => {
    const image = newImage(name, bytes);
    sfdiskWrite(image, script);
    return image;
  };
  beforeAll(() => {
    const image = fresh('pristine.img');
    pristine = modelFromJson(sfdiskJson(image), sectors);
  });
  const check = (image: string): ReturnType<typeof brief> => withReader(image, 512, (read, n) => brief(checkTable(read, 512, n).problems));
  const readIt = (image: string): ReturnType<typeof readTable> => withReader(image, 512, (read, n) => readTable(read, 512, n));

  it('damaged primary header: bad-header-crc at LBA 1; the table comes from the backup with a warning, as sfdisk reads it', () => {
    const image = fresh();
    flipByte(image, 512 + GPT_HEADER.diskGuid + 3);
    expect(check(image)).toEqual([
      { code: 'bad-header-crc', lba: 1, severity: 'error' },
      { code: 'read-from-backup', lba: sectors - 1, severity: 'warning' },
    ]);
    const { label, table, problems } = readIt(image);
    expect(label).toBe('gpt');
    expect(table).toEqual(pristine);
    expect(problems.every((p) => p.severity === 'warning')).toBe(true);
    expect(brief(problems).map((p) => p.code)).toEqual(['bad-header-crc', 'read-from-backup']);
    expect(modelFromJson(sfdiskJson(image), sectors)).toEqual(pristine); // libfdisk falls back too
  });

  it('damaged primary entries: bad-entries-crc at LBA 2, read from the backup', () => {
    const image = fresh();
    flipByte(image, 2 * 512 + 128 + GPT_ENTRY.firstLba);
    expect(check(image)).toEqual([
      { code: 'bad-entries-crc', lba: 2, severity: 'error' },
      { code: 'read-from-backup', lba: sectors - 1, severity: 'warning' },
    ]);
    expect(readIt(image).table).toEqual(pristine);
  });

  it('primary signature gone: bad-signature at LBA 1, read from the backup', () => {
    const image = fresh();
    flipByte(image, 512);
    expect(check(image)).toEqual([
      { code: 'bad-signature', lba: 1, severity: 'error' },
      { code: 'read-from-backup', lba: sectors - 1, severity: 'warning' },
    ]);
    expect(readIt(image).table).toEqual(pristine);
  });

  it('a header that is not where it says it is: wrong-my-lba', () => {
    const image = fresh();
    const img = fs.readFileSync(image);
    img.copy(img, 512, (sectors - 1) * 512, sectors * 512); // the backup header copied to LBA 1
    fs.writeFileSync(image, img);
    const problems = check(image);
    expect(problems).toContainEqual({ code: 'wrong-my-lba', lba: 1, severity: 'error' });
    expect(problems).toContainEqual({ code: 'read-from-backup', lba: sectors - 1, severity: 'warning' });
  });

  it('damaged backup header or backup entries: found at their LBAs, the primary is read', () => {
    let image = fresh();
    flipByte(image, (sectors - 1) * 512 + GPT_HEADER.lastUsableLba);
    expect(check(image)).toEqual([{ code: 'bad-header-crc', lba: sectors - 1, severity: 'error' }]);
    expect(readIt(image)).toMatchObject({ table: pristine, problems: [{ code: 'bad-header-crc', severity: 'warning' }] });

    image = fresh();
    flipByte(image, (sectors - 33) * 512 + 200);
    expect(check(image)).toEqual([{ code: 'bad-entries-crc', lba: sectors - 33, severity: 'error' }]);
    expect(readIt(image).table).toEqual(pristine);
  });

  it('both headers damaged: no GPT; the protective MBR is what is left (dos, type ee), as sfdisk shows', () => {
    const image = fresh();
    flipByte(image, 512 + 30);
    flipByte(image, (sectors - 1) * 512 + 30);
    expect(check(image)).toEqual([
      { code: 'bad-header-crc', lba: 1, severity: 'error' },
      { code: 'bad-header-crc', lba: sectors - 1, severity: 'error' },
    ]);
    const { label, table, problems } = readIt(image);
    expect(label).toBe('dos');
    expect(table!.partitions).toEqual([{ number: 1, start: 1, size: sectors - 1, type: 'ee' }]);
    expect(brief(problems).map((p) => p.code)).toEqual(['bad-header-crc', 'bad-header-crc']);
    expect(sfdiskJson(image).label).toBe('dos');
  });

  it('the image was enlarged: stale backup (backup-not-at-end) and protective size; relocateBackup equals sfdisk --relocate', () => {
    const image = fresh();
    const grown = 48 * MiB / 512;
    fs.truncateSync(image, 48 * MiB);
    expect(check(image)).toEqual([
      { code: 'pmbr-size-mismatch', lba: 0, severity: 'warning' },
      { code: 'backup-not-at-end', lba: sectors - 1, severity: 'error' },
    ]);
    const { table, problems } = readIt(image);
    expect(problems.map((p) => p.code)).toEqual(['pmbr-size-mismatch', 'backup-not-at-end']);
    expect(table).toEqual({ ...pristine, diskSectors: grown });

    const relocated = relocateBackup(table!, grown);
    expect(relocated.lastLba).toBe(grown - 34);
    const ours = path.join(dir, 'relocated-ours.img');
    fs.copyFileSync(image, ours);
    writeSectors(ours, 512, serializeGpt(relocated));
    const theirs = path.join(dir, 'relocated-sfdisk.img');
    fs.copyFileSync(image, theirs);
    expect(run('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', '--relocate', 'gpt-bak-std', theirs]).status).toBe(0);
    expect(fs.readFileSync(ours).equals(fs.readFileSync(theirs))).toBe(true);
    expect(check(ours)).toEqual([]);
    expect(run('sgdisk', ['-v', ours]).out).toContain('No problems found');

    // sgdisk -e's own last usable LBA: disk size minus the first usable LBA.
    const bySgdisk = path.join(dir, 'relocated-sgdisk.img');
    fs.copyFileSync(image, bySgdisk);
    expect(run('sgdisk', ['-e', bySgdisk]).status).toBe(0);
    const sg = readIt(bySgdisk);
    expect(sg.problems).toEqual([]);
    expect(relocateBackup(table!, grown, { lastLba: 'sgdisk' })).toEqual({ ...sg.table, diskSectors: grown });
  });

  it('the image was truncated: backup past the end, missing backup, usable LBAs and partitions past the end', () => {
    const image = fresh();
    const cut = 14000;
    fs.truncateSync(image, cut * 512);
    expect(check(image)).toEqual([
      { code: 'pmbr-size-mismatch', lba: 0, severity: 'warning' },
      { code: 'bad-lba', lba: 1, severity: 'error' },
      { code: 'backup-past-end', lba: sectors - 1, severity: 'error' },
      { code: 'missing-backup', lba: cut - 1, severity: 'error' },
      { code: 'past-end', lba: 10240, severity: 'error' },
      { code: 'past-end', lba: 18432, severity: 'error' },
    ]);
    expect(readIt(image).label).toBe('dos'); // as sfdisk -J: only the protective MBR is readable
  });

  it('overlapping partitions (entries edited, CRCs recomputed): overlap at the first shared LBA, as sgdisk -v says', () => {
    const image = fresh();
    editEntries(image, 512, 1, (e) => e.writeBigUInt64LE(8000n, GPT_ENTRY.firstLba));
    expect(check(image)).toEqual([{ code: 'overlap', lba: 8000, severity: 'error' }]);
    expect(run('sgdisk', ['-v', image]).out).toMatch(/overlap/i);
    expect(readIt(image).problems).toEqual([]); // reading is not checking
  });

  it('partitions outside the usable LBAs, past the end of the disk, or ending before they start', () => {
    const image = fresh();
    editEntries(image, 512, 2, (e) => e.writeBigUInt64LE(BigInt(sectors - 10), GPT_ENTRY.lastLba));
    // It also covers the backup entry array (the last 33 sectors but one).
    expect(check(image)).toEqual([
      { code: 'outside-usable', lba: 18432, severity: 'error' },
      { code: 'overlap', lba: sectors - 33, severity: 'error' },
    ]);
    editEntries(image, 512, 2, (e) => e.writeBigUInt64LE(BigInt(sectors + 10), GPT_ENTRY.lastLba));
    editEntries(image, 512, 0, (e) => e.writeBigUInt64LE(2000n, GPT_ENTRY.lastLba));
    expect(check(image)).toEqual([
      { code: 'start-after-end', lba: 2048, severity: 'error' },
      { code: 'past-end', lba: 18432, severity: 'error' },
      { code: 'overlap', lba: sectors - 1, severity: 'error' }, // the backup header
      { code: 'overlap', lba: sectors - 33, severity: 'error' }, // the backup entry array
    ]);
  });

  it('64-bit values above 2^53 are refused, not rounded', () => {
    const img = Buffer.alloc(64 * 512);
    const writes = serializeGpt({ ...withoutUsableLbas(pristine), diskSectors: 64, tableLength: 4, partitions: [] });
    for (const w of writes) w.data.copy(img, w.lba * 512);
    const header = serializeGptHeader(
      { myLba: 1, alternateLba: 2 ** 53 + 1, firstUsableLba: 4, lastUsableLba: 59, diskGuid: pristine.id, entriesLba: 2, entryCount: 4, entriesCrc32: crc32(Buffer.alloc(512)) },
      512,
    );
    header.copy(img, 512);
    const problems = brief(gptDriver.check(bufferReader(img, 512), 512, 64));
    expect(problems).toContainEqual({ code: 'value-too-large', lba: 1, severity: 'error' });
  });
});

// ---------------------------------------------------------------------------------------------
// placement, growth, GUIDs, names

describe('gpt: placement, growth, GUIDs and type names', () => {
  it('nextFreeStart and growPartition agree with sfdisk (default start; -N n ", +")', () => {
    const image = newImage('grow.img', 32 * MiB);
    const sectors = 65536;
    sfdiskWrite(image, `label: gpt\nlabel-id: 0F0F0F0F-0000-4000-8000-000000000000\n\nstart=2048, size=5000, type=${LINUX}, uuid=0F0F0F0F-0000-4000-8000-000000000001\nstart=30000, size=5000, type=${LINUX}, uuid=0F0F0F0F-0000-4000-8000-000000000002\n`);
    let table = modelFromJson(sfdiskJson(image), sectors);
    // sfdisk places a partition without start= after the partition that ends last, not in a gap.
    expect(nextFreeStart(table)).toBe(36864);
    expect(nextFreeStart(table, undefined, { firstGap: true })).toBe(8192);
    expect(nextFreeStart(table, 1, { firstGap: true })).toBe(7048);
    sfdiskWrite(image, `size=1000, type=${SWAP}, uuid=0F0F0F0F-0000-4000-8000-000000000003\n`, ['--append']);
    table = modelFromJson(sfdiskJson(image), sectors);
    expect(table.partitions[2]!.start).toBe(36864);
    expect(nextFreeStart(table)).toBe(38912);

    for (const n of [1, 3, 2]) sfdiskWrite(image, ', +\n', ['-N', String(n)]);
    let grown = table;
    for (const n of [1, 3, 2]) grown = growPartition(grown, n);
    expect(grown).toEqual(modelFromJson(sfdiskJson(image), sectors));
    expect(grown.partitions.map((p) => p.start + p.size - 1)).toEqual([29999, 36863, table.lastLba]);
    expect(growPartition(table, 3, { alignmentSectors: 2048 }).partitions[2]!.size).toBe(63488 - 36864);
    expect(nextFreeStart(grown)).toBeNull();
  });

  it('GUID text <-> mixed-endian bytes, random v4', () => {
    const bytes = guidToBytes('01234567-89ab-CDEF-0123-456789ABCDEF');
    expect(bytes.toString('hex')).toBe('67452301ab89efcd0123456789abcdef');
    expect(guidFromBytes(bytes)).toBe('01234567-89AB-CDEF-0123-456789ABCDEF');
    const r = randomGuid();
    expect(r).toMatch(/^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/);
    expect(guidFromBytes(guidToBytes(r))).toBe(r);
    expect(() => guidToBytes('0123')).toThrow(/not a GUID/);
  });

  it('names beyond the BMP round-trip as UTF-16 surrogate pairs (sfdisk 2.38 drops such names)', () => {
    const t: PartitionTable = {
      label: 'gpt',
      id: randomGuid(),
      sectorSize: 512,
      diskSectors: 8192,
      partitions: [{ number: 1, start: 2048, size: 100, type: LINUX, uuid: randomGuid(), name: 'a🙂b'.padEnd(35, '.'), attributes: 0n }],
    };
    const img = imageOf(8192 * 512, 512, serializeGpt(t));
    expect(readTable(bufferReader(img, 512), 512, 8192).table!.partitions[0]!.name).toBe(t.partitions[0]!.name);
  });

  it('type names for ptable show', () => {
    expect(typeName('gpt', LINUX)).toBe('Linux filesystem');
    expect(typeName('gpt', ESP.toLowerCase())).toBe('EFI System');
    expect(typeName('gpt', '21686148-6449-6E6F-744E-656564454649')).toBe('BIOS boot');
    expect(typeName('gpt', SWAP)).toBe('Linux swap');
    expect(typeName('gpt', 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7')).toBe('Microsoft basic data');
    expect(typeName('gpt', 'E6D6D379-F507-44C2-A23C-238F2A3DF928')).toBe('Linux LVM');
    expect(typeName('gpt', 'A19D880F-05FC-4D3B-A006-743F0F84911E')).toBe('Linux RAID');
    expect(typeByName('gpt', 'L')).toBe(LINUX);
    expect(typeByName('dos', 'swap')).toBe('82');
    expect(typeByName('gpt', 'efi system')).toBe(ESP);
  });
});
