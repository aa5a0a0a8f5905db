/**
 * The dos (MBR) driver against the real tools: tables written by sfdisk read back field by field
 * as `sfdisk -J` reports them; our serialized sectors byte-identical to sfdisk's for the same
 * script (pinned label-id); our tables accepted by sfdisk -V, blkid and file; check() finding
 * corruptions made by editing bytes; CHS, alignment and grow rules.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { growPartition, logicalEbrLbas, nextFreeStart } from '../src/partition/align.js';
import { chsToLba, lbaToChs, packChs, readChs } from '../src/partition/chs.js';
import { typeName } from '../src/partition/gpt-types.js';
import { mbrDriver, mergeMbrSector, serializeMbr } from '../src/partition/mbr.js';
import type { Partition, PartitionTable, SectorReader, SectorWrite } from '../src/partition/model.js';
import { bufferReader, checkTable, readTable } from '../src/partition/read.js';
import { loopUnavailableReason, newImageIn, nodeNumber, patternBytes, sfdiskWrite, useTempDir } from './helpers.js';

const MiB = 1024 * 1024;
let dir = '';
useTempDir('ptable-mbr-', (d) => (dir = d));

// ---------------------------------------------------------------------------------------------
// helpers

const newImage = (name: string, bytes: number): string => newImageIn(dir, name, bytes);


interface SfdiskJson {
  label: string;
  id: string;
  device: string;
  sectorsize: number;
  partitions: Array<{ node: string; start: number; size: number; type: string; bootable?: boolean }>;
}

function sfdiskJson(target: string): SfdiskJson {
  return (JSON.parse(execFileSync('sfdisk', ['-J', target], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()) as { partitiontable: SfdiskJson }).partitiontable;
}

/** The model as sfdisk reports it (no EBR positions: those are ours to reproduce). */
function modelFromJson(j: SfdiskJson, diskSectors: number): PartitionTable {
  return {
    label: 'dos',
    id: j.id,
    sectorSize: j.sectorsize,
    diskSectors,
    partitions: j.partitions.map((p) => {
      const q: Partition = { number: nodeNumber(j.device, p.node), start: p.start, size: p.size, type: p.type };
      if (p.bootable) q.bootable = true;
      return q;
    }),
  };
}

/** Our table without the reader-only fields, in sfdisk -J's terms. */
const comparable = (t: PartitionTable): unknown => ({
  ...t,
  partitions: t.partitions.map(({ ebrLba: _ebr, ...p }) => p),
});

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

function writeSectors(file: string, sectorSize: number, writes: SectorWrite[]): void {
  const fd = fs.openSync(file, 'r+');
  try {
    for (const w of writes) fs.writeSync(fd, w.data, 0, w.data.length, w.lba * sectorSize);
  } finally {
    fs.closeSync(fd);
  }
}

function patchBytes(file: string, offset: number, bytes: number[] | Buffer): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  fs.closeSync(fd);
}

/** The image a fresh zero disk becomes once `writes` are applied. */
function imageOf(bytes: number, sectorSize: number, writes: SectorWrite[]): Buffer {
  const img = Buffer.alloc(bytes);
  for (const w of writes) w.data.copy(img, w.lba * sectorSize);
  return img;
}

function firstDifference(a: Buffer, b: Buffer): string {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `byte ${i} (LBA ${Math.floor(i / 512)} of 512): ours ${a[i]}, sfdisk ${b[i]}`;
  }
  return 'none';
}

function attachLoop4096(file: string): string {
  return execFileSync('losetup', ['-b', '4096', '-f', '--show', file]).toString().trim();
}
function detachLoop(device: string): void {
  execFileSync('losetup', ['-d', device]);
}
const noLoop = loopUnavailableReason();

// ---------------------------------------------------------------------------------------------
// shapes written by sfdisk

interface Shape {
  name: string;
  bytes: number;
  script: string;
}

const SHAPES: Shape[] = [
  {
    name: 'primaries only, one bootable',
    bytes: 32 * MiB,
    script: `label: dos
label-id: 0x0badcafe
unit: sectors

start=2048, size=8192, type=83, bootable
start=10240, size=16384, type=c
start=26624, size=8192, type=7
start=34816, size=30720, type=82
`,
  },
  {
    name: 'extended (5) with 3 logical partitions',
    bytes: 32 * MiB,
    script: `label: dos
label-id: 0x12345678
unit: sectors

start=2048, size=8192, type=ef, bootable
start=10240, type=5
size=4096, type=83
size=4096, type=82
type=83
`,
  },
  {
    name: 'extended (f) with logical partitions packed one sector after their EBR',
    bytes: 32 * MiB,
    script: `label: dos
label-id: 0xcafef00d
unit: sectors

start=2048, size=40000, type=f
start=2049, size=100, type=83
start=2151, size=1000, type=b, bootable
start=5000, size=100, type=6
start=50000, size=1000, type=83
`,
  },
  {
    name: 'slots 1 and 3 only, empty extended partition (85)',
    bytes: 32 * MiB,
    script: `label: dos
label-id: 0x00000001
unit: sectors

IMG1 : start=2048, size=4096, type=83
IMG3 : start=8192, size=20000, type=85
`,
  },
];

/** sfdisk names partitions after the image; our script's "IMG" placeholder becomes that name. */
const scriptFor = (shape: Shape, image: string): string => shape.script.replace(/IMG/g, image);

describe('dos: tables written by sfdisk', () => {
  for (const shape of SHAPES) {
    it(`${shape.name}: read equals sfdisk -J, serialize equals sfdisk's bytes`, () => {
      const image = newImage('shape.img', shape.bytes);
      sfdiskWrite(image, scriptFor(shape, image));
      const j = sfdiskJson(image);
      const sfdiskBytes = fs.readFileSync(image);
      const sectors = shape.bytes / 512;

      const { label, table, problems } = readTable(bufferReader(sfdiskBytes, 512), 512, sectors);
      expect(label).toBe('dos');
      expect(problems).toEqual([]);
      expect(comparable(table!)).toEqual(modelFromJson(j, sectors));
      expect(checkTable(bufferReader(sfdiskBytes, 512), 512, sectors).problems).toEqual([]);

      // From sfdisk's view of the table alone (no EBR positions), we write what sfdisk wrote,
      // and nothing else: the whole images are equal.
      const ours = imageOf(shape.bytes, 512, serializeMbr(modelFromJson(j, sectors)));
      expect(ours.equals(sfdiskBytes), firstDifference(ours, sfdiskBytes)).toBe(true);
      // Reading then writing keeps everything too (EBRs where they were).
      expect(imageOf(shape.bytes, 512, serializeMbr(table!)).equals(sfdiskBytes)).toBe(true);
    });
  }

  it('a 20 GiB disk: CHS past cylinder 1023 is FE FF FF, as sfdisk writes it', () => {
    const image = newImage('big.img', 20 * 1024 * MiB);
    sfdiskWrite(
      image,
      `label: dos
label-id: 0xdeadbeef
unit: sectors

start=2048, size=16000000, type=83
start=16003072, size=1000000, type=7
start=17004544, type=5
start=17006592, size=100000, type=83
start=17108992, size=100000, type=8e
`,
    );
    const j = sfdiskJson(image);
    const { read, sectors, close } = fileReader(image, 512);
    try {
      const { table, problems } = readTable(read, 512, sectors);
      expect(problems).toEqual([]);
      expect(comparable(table!)).toEqual(modelFromJson(j, sectors));
      const writes = serializeMbr(modelFromJson(j, sectors));
      expect(writes.map((w) => w.lba)).toEqual([0, 17004544, 17106944]);
      for (const w of writes) expect(read(w.lba, 1).equals(w.data), `LBA ${w.lba}`).toBe(true);
      // Partition 1 ends at cylinder 996 (exact CHS); partition 2 starts there and ends past 1023.
      const s0 = read(0, 1);
      expect(readChs(s0, 0x1be + 5)).toEqual({ cylinder: 996, head: 20, sector: 48 });
      expect(lbaToChs(16002047)).toEqual({ cylinder: 996, head: 20, sector: 48 });
      expect([...s0.subarray(0x1ce + 5, 0x1ce + 8)]).toEqual([0xfe, 0xff, 0xff]);
      expect([...s0.subarray(0x1de + 1, 0x1de + 4)]).toEqual([0xfe, 0xff, 0xff]);
    } finally {
      close();
    }
  });

  it.skipIf(noLoop !== null)('4096-byte sectors (loop device): read and byte-identical serialize', () => {
    const bytes = 64 * MiB;
    const image = newImage('dos4k.img', bytes);
    const device = attachLoop4096(image);
    let j: SfdiskJson;
    try {
      sfdiskWrite(
        device,
        `label: dos
label-id: 0x40964096
unit: sectors

start=256, size=2048, type=c, bootable
start=2304, type=5
size=1024, type=83
size=1024, type=82
`,
      );
      j = sfdiskJson(device);
    } finally {
      detachLoop(device);
    }
    expect(j.sectorsize).toBe(4096);
    const sectors = bytes / 4096;
    const sfdiskBytes = fs.readFileSync(image);
    const { table, problems } = readTable(bufferReader(sfdiskBytes, 4096), 4096, sectors);
    expect(problems).toEqual([]);
    const expected = modelFromJson(j, sectors);
    expect(comparable(table!)).toEqual(expected);
    const ours = imageOf(bytes, 4096, serializeMbr(expected));
    expect(ours.equals(sfdiskBytes), firstDifference(ours, sfdiskBytes)).toBe(true);
  });

  it('mergeMbrSector keeps the boot code as sfdisk does on a disk that has some', () => {
    const bootCode = patternBytes(440, 7);
    const image = newImage('boot.img', 16 * MiB);
    patchBytes(image, 0, bootCode);
    const script = 'label: dos\nlabel-id: 0x11223344\nunit: sectors\n\nstart=2048, size=4096, type=83\n';
    sfdiskWrite(image, script);
    const sfdiskSector0 = fs.readFileSync(image).subarray(0, 512);
    expect(sfdiskSector0.subarray(0, 440).equals(bootCode)).toBe(true);
    const table: PartitionTable = {
      label: 'dos',
      id: '0x11223344',
      sectorSize: 512,
      diskSectors: 32768,
      partitions: [{ number: 1, start: 2048, size: 4096, type: '83' }],
    };
    const existing = Buffer.concat([bootCode, Buffer.alloc(72, 0xaa)]);
    expect(mergeMbrSector(existing, serializeMbr(table)[0]!.data).equals(sfdiskSector0)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// our tables, judged by the tools

describe('dos: tables we write, judged by sfdisk, blkid and file', () => {
  const table: PartitionTable = {
    label: 'dos',
    id: '0xa1b2c3d4',
    sectorSize: 512,
    diskSectors: 65536,
    partitions: [
      { number: 1, start: 2048, size: 10240, type: 'c', bootable: true },
      { number: 2, start: 12288, size: 8192, type: '82' },
      { number: 4, start: 20480, size: 45056, type: 'f' },
      { number: 5, start: 22528, size: 10240, type: '83' },
      { number: 6, start: 34816, size: 20480, type: '8e' },
      { number: 7, start: 57344, size: 8192, type: '7' },
    ],
  };

  it('sfdisk -V finds no error, sfdisk -J reads the same table, blkid and file see an MBR', () => {
    const image = newImage('ours.img', 32 * MiB);
    writeSectors(image, 512, serializeMbr(table));
    const v = spawnSync('sfdisk', ['-V', image]);
    expect(v.stdout.toString() + v.stderr.toString()).toContain('No errors detected');
    expect(v.status).toBe(0);
    expect(modelFromJson(sfdiskJson(image), 65536)).toEqual(table);
    expect(execFileSync('blkid', ['-p', '-o', 'export', image]).toString()).toMatch(/^PTTYPE=dos$/m);
    expect(execFileSync('blkid', ['-p', '-o', 'export', image]).toString()).toMatch(/^PTUUID=a1b2c3d4$/m);
    const f = execFileSync('file', ['-s', image]).toString();
    expect(f).toContain('DOS/MBR boot sector');
    expect(f).toContain('ID=0xc, active');
    expect(f).toContain('startsector 2048, 10240 sectors');
  });

  it('the EBR chain: link entries have type 5 and cover EBR..end of the next logical', () => {
    const writes = serializeMbr(table);
    const ebrs = logicalEbrLbas(table);
    expect([...ebrs.values()]).toEqual([20480, 32768, 55296]);
    expect(writes.map((w) => w.lba)).toEqual([0, 20480, 32768, 55296]);
    const first = writes[1]!.data;
    expect(first[0x1ce + 4]).toBe(0x05);
    expect(first.readUInt32LE(0x1ce + 8)).toBe(32768 - 20480);
    expect(first.readUInt32LE(0x1ce + 12)).toBe(34816 + 20480 - 32768);
    expect(first.readUInt32LE(0x1be + 8)).toBe(22528 - 20480);
    expect(writes[3]!.data.subarray(0x1ce, 0x1de).equals(Buffer.alloc(16))).toBe(true);
  });

  it('refuses tables that cannot be written', () => {
    const base = { ...table, partitions: table.partitions.slice(0, 2) };
    expect(() => serializeMbr({ ...base, partitions: [...base.partitions, { number: 5, start: 40000, size: 10, type: '83' }] })).toThrow(/without an extended/);
    expect(() => serializeMbr({ ...base, partitions: [{ number: 1, start: 2048, size: 2 ** 32, type: '83' }] })).toThrow(/32-bit/);
    expect(() => serializeMbr({ ...base, id: 'xyz' })).toThrow(/label-id/);
    expect(() => serializeMbr({ ...base, partitions: [{ number: 1, start: 2048, size: 8, type: 'zz' }] })).toThrow(/type/);
  });
});

// ---------------------------------------------------------------------------------------------
// check()

describe('dos: check() finds corruptions made by editing bytes', () => {
  const script = `label: dos
label-id: 0x5eed5eed
unit: sectors

start=2048, size=8192, type=83
start=10240, size=8192, type=83
start=18432, type=5
start=20480, size=4096, type=83
start=26624, size=4096, type=83
`;
  const fresh = (): string => {
    const image = newImage('check.img', 32 * MiB);
    sfdiskWrite(image, script);
    return image;
  };
  const problemsOf = (image: string): Array<{ code: string; lba?: number; severity: string }> => {
    const { read, sectors, close } = fileReader(image, 512);
    try {
      return checkTable(read, 512, sectors).problems.map(({ code, lba, severity }) => ({ code, lba, severity }));
    } finally {
      close();
    }
  };

  it('overlapping primaries: code overlap at the first shared sector, as sfdisk -V complains', () => {
    const image = fresh();
    patchBytes(image, 0x1ce + 8, [0x00, 0x18, 0x00, 0x00]); // partition 2 now starts at 6144
    expect(problemsOf(image)).toContainEqual({ code: 'overlap', lba: 6144, severity: 'error' });
    const v = spawnSync('sfdisk', ['-V', image]);
    expect(v.stdout.toString() + v.stderr.toString()).toMatch(/overlaps partition/);
  });

  it('a partition past the end of the disk (image truncated)', () => {
    const image = fresh();
    fs.truncateSync(image, 28000 * 512);
    expect(problemsOf(image)).toEqual([
      { code: 'past-end', lba: 18432, severity: 'error' },
      { code: 'past-end', lba: 26624, severity: 'error' },
    ]);
  });

  it('a logical partition outside its extended partition, and overlapping logical partitions', () => {
    const image = fresh();
    // Logical 6 (EBR at 24576) grows past the extended partition's end.
    patchBytes(image, 24576 * 512 + 0x1be + 12, [0x00, 0x00, 0x01, 0x00]);
    // Logical 5 (EBR at 18432) grows into the second EBR.
    patchBytes(image, 18432 * 512 + 0x1be + 12, [0x00, 0x20, 0x00, 0x00]);
    const problems = problemsOf(image);
    expect(problems).toContainEqual({ code: 'logical-outside-extended', lba: 26624, severity: 'error' });
    expect(problems).toContainEqual({ code: 'overlap', lba: 24576, severity: 'error' });
    expect(problems).toContainEqual({ code: 'past-end', lba: 26624, severity: 'error' });
  });

  it('an EBR chain that loops, and an EBR without its signature', () => {
    const image = fresh();
    patchBytes(image, 24576 * 512 + 0x1ce, [0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]); // link back to the first EBR
    patchBytes(image, 24576 * 512 + 510, [0, 0]);
    const problems = problemsOf(image);
    expect(problems).toContainEqual({ code: 'ebr-loop', lba: 18432, severity: 'error' });
    expect(problems).toContainEqual({ code: 'bad-ebr-signature', lba: 24576, severity: 'warning' });
  });

  it('no MBR signature: the dos driver says bad-signature at LBA 0, readTable finds no table', () => {
    const image = fresh();
    patchBytes(image, 510, [0x55, 0x00]);
    const { read, sectors, close } = fileReader(image, 512);
    try {
      expect(mbrDriver.check(read, 512, sectors)).toMatchObject([{ code: 'bad-signature', lba: 0, severity: 'error' }]);
      expect(readTable(read, 512, sectors)).toMatchObject({ label: null, table: null, problems: [{ code: 'no-table' }] });
    } finally {
      close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// CHS, alignment, growing, names

describe('dos: CHS, placement and names', () => {
  it('CHS bytes for known LBAs (255 heads x 63 sectors)', () => {
    expect(packChs(lbaToChs(0))).toEqual([0x00, 0x01, 0x00]);
    expect(packChs(lbaToChs(2048))).toEqual([0x20, 0x21, 0x00]);
    expect(packChs(lbaToChs(22527))).toEqual([0x66, 0x25, 0x01]);
    expect(packChs(lbaToChs(204799))).toEqual([0xbe, 0x32, 0x0c]);
    expect(packChs(lbaToChs(1024 * 255 * 63 - 1))).toEqual([0xfe, 0xff, 0xff]);
    expect(packChs(lbaToChs(1024 * 255 * 63))).toEqual([0xfe, 0xff, 0xff]);
    expect(packChs(lbaToChs(2 ** 40))).toEqual([0xfe, 0xff, 0xff]);
    for (const lba of [0, 1, 62, 63, 16064, 16065, 1023 * 16065 + 7]) expect(chsToLba(lbaToChs(lba))).toBe(lba);
  });

  it('nextFreeStart and growPartition agree with sfdisk (new partition default start; -N n ", +")', () => {
    const image = newImage('grow.img', 32 * MiB);
    sfdiskWrite(image, 'label: dos\nlabel-id: 0x600d600d\nunit: sectors\n\nstart=2048, size=10000, type=83\nstart=30000, size=5000, type=83\n');
    const sectors = 65536;
    let table = modelFromJson(sfdiskJson(image), sectors);
    expect(nextFreeStart(table)).toBe(12288);
    sfdiskWrite(image, 'size=1000, type=83\n', ['--append']);
    expect(sfdiskJson(image).partitions[2]!.start).toBe(12288);

    table = modelFromJson(sfdiskJson(image), sectors);
    sfdiskWrite(image, ', +\n', ['-N', '1']);
    sfdiskWrite(image, ', +\n', ['-N', '3']);
    sfdiskWrite(image, ', +\n', ['-N', '2']);
    const grown = growPartition(growPartition(growPartition(table, 1), 3), 2);
    expect(grown).toEqual(modelFromJson(sfdiskJson(image), sectors));
    expect(grown.partitions.map((p) => p.size)).toEqual([10240, 65536 - 30000, 30000 - 12288]);
    // Aligned growth ends before a grain boundary; a partition with no room keeps its size.
    expect(growPartition(table, 3, { alignmentSectors: 2048 }).partitions[2]!.size).toBe(28672 - 12288);
    expect(growPartition(table, 2, { alignmentSectors: 2048 }).partitions[1]!.size).toBe(65536 - 30000);
    expect(growPartition(grown, 1)).toEqual(grown);
  });

  it('growPartition on a logical partition stops before the next EBR and at the extended end', () => {
    const table: PartitionTable = {
      label: 'dos',
      id: '0x1',
      sectorSize: 512,
      diskSectors: 65536,
      partitions: [
        { number: 1, start: 2048, size: 50000, type: '5' },
        { number: 5, start: 4096, size: 1000, type: '83' },
        { number: 6, start: 10240, size: 1000, type: '83' },
      ],
    };
    expect(growPartition(table, 5).partitions[1]!.size).toBe(10240 - 2048 - 4096); // EBR of 6 at 8192
    expect(growPartition(table, 6).partitions[2]!.size).toBe(2048 + 50000 - 10240);
  });

  it('type names for ptable show', () => {
    expect(typeName('dos', '83')).toBe('Linux');
    expect(typeName('dos', 'c')).toBe('W95 FAT32 (LBA)');
    expect(typeName('dos', '0x0f')).toBe("W95 Ext'd (LBA)");
    expect(typeName('dos', 'ee')).toBe('GPT');
    expect(typeName('dos', '82')).toBe('Linux swap / Solaris');
    expect(typeName('dos', '7')).toBe('HPFS/NTFS/exFAT');
    expect(typeName('dos', '3d')).toBeUndefined();
  });
});
