/**
 * sparsecopy on partitions: --from-partition N (file, pipe, gzip file, gzip on stdin; GPT and a dos
 * logical partition), --to-partition N (image file and loop device; refused when too large), and
 * --relocate-gpt onto a larger loop device. Partition offsets come from `sfdisk -J`, the checks
 * of the result from byte comparisons, `sgdisk -v` and `ptable check`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import { fdSectorReader } from '../src/io/disk.js';
import { locatePartition } from '../src/sparsecopy/partitions.js';
import {
  allocatedBytes,
  firstDifference,
  linesOf,
  loopUnavailableReason,
  makeTempDir,
  parseSummary,
  patternBytes,
  ptable,
  readRange,
  runTool,
  sparsecopy,
  tempLeftovers,
  withLoop,
  writeSparseFile,
  type Piece,
} from './helpers.js';
import { ebrChain, editFile, editGptEntry, editGptHeader, editMbrEntry } from './table-edits.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const DISK_BYTES = 8 * MiB;

let dir = '';
let counter = 0;
const fresh = (name: string): string => path.join(dir, `${name}-${++counter}.img`);

const GPT_SCRIPT = `label: gpt
label-id: 11112222-3333-4444-5555-666677778888

start=2048, size=2M, type=L, uuid=AAAAAAAA-0000-4000-8000-000000000001, name="one"
size=3M, type=L, uuid=AAAAAAAA-0000-4000-8000-000000000002, name="two"
size=1M, type=L, uuid=AAAAAAAA-0000-4000-8000-000000000003, name="three"
`;

const DOS_SCRIPT = `label: dos
label-id: 0x0badcafe

size=2M, type=83
type=5
size=3M, type=83
size=2M, type=82
`;

interface Range {
  number: number;
  offset: number;
  length: number;
}

/** The partitions of an image, in bytes, as sfdisk sees them. */
function partitionsOf(img: string): Map<number, Range> {
  const r = runTool('sfdisk', ['-J', img]);
  expect(r.status, r.stderr).toBe(0);
  const pt = (JSON.parse(r.stdout) as { partitiontable: { sectorsize: number; partitions: { node: string; start: number; size: number }[] } }).partitiontable;
  const out = new Map<number, Range>();
  for (const p of pt.partitions) {
    const number = Number(/(\d+)$/.exec(p.node)![1]);
    out.set(number, { number, offset: p.start * pt.sectorsize, length: p.size * pt.sectorsize });
  }
  return out;
}

/** Writes pieces into an existing file in place. */
function writePieces(file: string, pieces: Piece[]): void {
  const fd = fs.openSync(file, 'r+');
  try {
    for (const p of pieces) fs.writeSync(fd, p.data, 0, p.data.length, p.offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** A table written by ptable on a new sparse image, then data (with holes) inside partitions. */
function buildDisk(script: string, bytes: number, content: (parts: Map<number, Range>) => Piece[]): { file: string; parts: Map<number, Range> } {
  const file = fresh('disk');
  const w = ptable(['write', '--size', String(bytes / 512), file], { input: script });
  expect(w.status, w.stderr).toBe(0);
  expect(fs.statSync(file).size).toBe(bytes);
  const parts = partitionsOf(file);
  writePieces(file, content(parts));
  return { file, parts };
}

/** Distinct content in each of the three GPT partitions, with holes inside each. */
function gptContent(parts: Map<number, Range>): Piece[] {
  const p1 = parts.get(1)!;
  const p2 = parts.get(2)!;
  const p3 = parts.get(3)!;
  return [
    { offset: p1.offset, data: patternBytes(64 * KiB, 11) },
    { offset: p1.offset + MiB, data: patternBytes(4 * KiB, 12) },
    { offset: p2.offset, data: patternBytes(8 * KiB, 21) },
    { offset: p2.offset + MiB + 512, data: patternBytes(3000, 22) },
    { offset: p2.offset + p2.length - 4 * KiB, data: patternBytes(4 * KiB, 23) },
    { offset: p3.offset, data: patternBytes(16 * KiB, 31) },
    { offset: p3.offset + 512 * KiB, data: patternBytes(4 * KiB, 32) },
  ];
}
/** Bytes of data gptContent puts in partition 2 (the rest of it is holes). */
const P2_DATA = 8 * KiB + 3000 + 4 * KiB;

let gptDisk = '';
let gptParts = new Map<number, Range>();
let gptBytes = Buffer.alloc(0);

beforeAll(() => {
  dir = makeTempDir('sc-part-');
  const d = buildDisk(GPT_SCRIPT, DISK_BYTES, gptContent);
  gptDisk = d.file;
  gptParts = d.parts;
  gptBytes = fs.readFileSync(gptDisk);
  expect([...gptParts.keys()]).toEqual([1, 2, 3]);
  expect(gptParts.get(2)).toEqual({ number: 2, offset: 6144 * 512, length: 3 * MiB });
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const slice = (image: Buffer, r: Range): Buffer => image.subarray(r.offset, r.offset + r.length);

function expectSame(actual: Buffer, expected: Buffer, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const at = firstDifference(actual, expected);
  expect(at, `${what}: first differing byte`).toBe(-1);
}

/** A copied partition: its exact bytes, sparse where the partition had holes. */
function expectPartitionCopy(out: string, stderr: string, expected: Buffer, dataBytes: number): void {
  expectSame(fs.readFileSync(out), expected, out);
  expect(parseSummary(stderr).total).toBe(expected.length);
  const allocated = allocatedBytes(out);
  expect(allocated).toBeGreaterThanOrEqual(dataBytes);
  // Holes stay holes: only the data blocks (rounded to file-system blocks) are allocated.
  expect(allocated).toBeLessThanOrEqual(dataBytes + 64 * KiB);
  expect(allocated).toBeLessThan(expected.length / 4);
}

describe('sparsecopy --from-partition', () => {
  it('from an image file: exactly partition 2, sparse where it had holes', () => {
    const out = fresh('part2');
    const r = sparsecopy(['--from-partition', '2', gptDisk, out]);
    expect(r.status, r.stderr).toBe(0);
    expectPartitionCopy(out, r.stderr, slice(gptBytes, gptParts.get(2)!), P2_DATA);
  });

  it('every partition of the image, each its own bytes', () => {
    for (const n of [1, 3]) {
      const out = fresh(`part${n}`);
      const r = sparsecopy(['--from-partition', String(n), gptDisk, out]);
      expect(r.status, r.stderr).toBe(0);
      expectSame(fs.readFileSync(out), slice(gptBytes, gptParts.get(n)!), `partition ${n}`);
    }
  });

  it('from a pipe (the image on stdin)', () => {
    const out = fresh('part2-pipe');
    const r = sparsecopy(['--from-partition', '2', '-', out], { input: gptBytes });
    expect(r.status, r.stderr).toBe(0);
    expectPartitionCopy(out, r.stderr, slice(gptBytes, gptParts.get(2)!), P2_DATA);
  });

  it('from a gzip of the image, as a file and on stdin', () => {
    const gz = `${fresh('disk')}.gz`;
    fs.writeFileSync(gz, execFileSync('gzip', ['-c', gptDisk], { maxBuffer: 1 << 30 }));
    const expected = slice(gptBytes, gptParts.get(2)!);

    const outFile = fresh('part2-gzfile');
    const f = sparsecopy(['--from-partition', '2', gz, outFile]);
    expect(f.status, f.stderr).toBe(0);
    expectPartitionCopy(outFile, f.stderr, expected, P2_DATA);

    const outPipe = fresh('part2-gzpipe');
    const p = sparsecopy(['--from-partition', '2', '-', outPipe], { input: fs.readFileSync(gz) });
    expect(p.status, p.stderr).toBe(0);
    expectPartitionCopy(outPipe, p.stderr, expected, P2_DATA);
  });

  it('a dos logical partition (5) from an image file', () => {
    const { file, parts } = buildDisk(DOS_SCRIPT, 16 * MiB, (ps) => {
      expect([...ps.keys()]).toEqual([1, 2, 5, 6]);
      const p5 = ps.get(5)!;
      const p6 = ps.get(6)!;
      return [
        { offset: ps.get(1)!.offset, data: patternBytes(8 * KiB, 51) },
        { offset: p5.offset, data: patternBytes(12 * KiB, 55) },
        { offset: p5.offset + 2 * MiB, data: patternBytes(4 * KiB, 56) },
        { offset: p6.offset, data: patternBytes(8 * KiB, 66) },
      ];
    });
    const image = fs.readFileSync(file);
    const out = fresh('part5');
    const r = sparsecopy(['--from-partition', '5', file, out]);
    expect(r.status, r.stderr).toBe(0);
    expectPartitionCopy(out, r.stderr, slice(image, parts.get(5)!), 16 * KiB);
  });

  it('a partition that does not exist: exit 19, one line, no output', () => {
    const out = fresh('part9');
    const r = sparsecopy(['--from-partition', '9', gptDisk, out]);
    expect(r.status, r.stderr).toBe(19);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain('9');
    expect(fs.existsSync(out)).toBe(false);
    expect(tempLeftovers(dir)).toEqual([]);
  });
});

describe('sparsecopy --to-partition', () => {
  const FS_BYTES = 768 * KiB;
  /** A "file system" smaller than partition 3 (1 MiB), with holes over old data of the partition. */
  function fsImage(bytes = FS_BYTES): { file: string; data: Buffer } {
    const file = fresh('fs');
    writeSparseFile(file, bytes, [
      { offset: 0, data: patternBytes(4 * KiB, 41) },
      { offset: 256 * KiB, data: patternBytes(8 * KiB, 42) },
      { offset: bytes - 512, data: patternBytes(512, 43) },
    ]);
    return { file, data: fs.readFileSync(file) };
  }

  /** Partition 3 holds the source; every byte outside partition 3 is as before. */
  function expectWrittenIntoPartition3(after: Buffer, before: Buffer, source: Buffer): void {
    const p3 = gptParts.get(3)!;
    expect(after.length).toBe(before.length);
    expectSame(after.subarray(p3.offset, p3.offset + source.length), source, 'partition 3');
    // The old data of partition 3 under the source's holes is gone (it was there before).
    expect(before.subarray(p3.offset + 512 * KiB, p3.offset + 516 * KiB).equals(Buffer.alloc(4 * KiB))).toBe(false);
    expectSame(after.subarray(0, p3.offset), before.subarray(0, p3.offset), 'before partition 3');
    expectSame(after.subarray(p3.offset + p3.length), before.subarray(p3.offset + p3.length), 'after partition 3');
  }

  it('writes the source into partition 3 of an image, nothing outside it, size unchanged', () => {
    const disk = fresh('disk-to');
    fs.copyFileSync(gptDisk, disk);
    const src = fsImage();
    const r = sparsecopy(['--to-partition', '3', src.file, disk]);
    expect(r.status, r.stderr).toBe(0);
    expect(parseSummary(r.stderr).total).toBe(FS_BYTES);
    expect(fs.statSync(disk).size).toBe(DISK_BYTES);
    expectWrittenIntoPartition3(fs.readFileSync(disk), gptBytes, src.data);
    expect(ptable(['check', disk]).status).toBe(0);
  });

  it('a source one sector larger than the partition: exit 15, the image byte-for-byte unchanged', () => {
    const disk = fresh('disk-big');
    fs.copyFileSync(gptDisk, disk);
    const src = fsImage(gptParts.get(3)!.length + 512);
    const r = sparsecopy(['--to-partition', '3', src.file, disk]);
    expect(r.status, r.stderr).toBe(15);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expectSame(fs.readFileSync(disk), gptBytes, 'disk after a refused copy');

    // A gzip file declares its size: refused up front too.
    const gz = `${src.file}.gz`;
    fs.writeFileSync(gz, execFileSync('gzip', ['-c', src.file]));
    const g = sparsecopy(['--to-partition', '3', gz, disk]);
    expect(g.status, g.stderr).toBe(15);
    expect(linesOf(g.stderr)).toHaveLength(1);
    expectSame(fs.readFileSync(disk), gptBytes, 'disk after a refused copy from a gzip file');
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('from a pipe (size unknown up front): exit 15, and nothing written outside the partition', () => {
    const disk = fresh('disk-big-pipe');
    fs.copyFileSync(gptDisk, disk);
    const src = fsImage(gptParts.get(3)!.length + 512);
    const p = sparsecopy(['--to-partition', '3', '-', disk], { input: src.data });
    expect(p.status, p.stderr).toBe(15);
    const after = fs.readFileSync(disk);
    const p3 = gptParts.get(3)!;
    expect(after.length).toBe(DISK_BYTES);
    expectSame(after.subarray(0, p3.offset), gptBytes.subarray(0, p3.offset), 'before partition 3');
    expectSame(after.subarray(p3.offset + p3.length), gptBytes.subarray(p3.offset + p3.length), 'after partition 3');
  });

  it('a source exactly the partition size fits', () => {
    const disk = fresh('disk-exact');
    fs.copyFileSync(gptDisk, disk);
    const src = fsImage(gptParts.get(3)!.length);
    const r = sparsecopy(['--to-partition', '3', src.file, disk]);
    expect(r.status, r.stderr).toBe(0);
    expectWrittenIntoPartition3(fs.readFileSync(disk), gptBytes, src.data);
  });

  it('no such partition in the destination: exit 19, the image unchanged', () => {
    const disk = fresh('disk-no4');
    fs.copyFileSync(gptDisk, disk);
    const r = sparsecopy(['--to-partition', '4', fsImage().file, disk]);
    expect(r.status, r.stderr).toBe(19);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expectSame(fs.readFileSync(disk), gptBytes, 'disk');
  });
});

const reason = loopUnavailableReason();
if (reason) console.warn(`sparsecopy partition loop-device tests skipped: ${reason}`);

describe.skipIf(reason)('sparsecopy partitions on loop devices', () => {
  it('--to-partition 3 on a loop device attached to the disk image', async () => {
    const disk = fresh('disk-loop');
    fs.copyFileSync(gptDisk, disk);
    const src = fresh('fs-loop');
    writeSparseFile(src, 768 * KiB, [
      { offset: 0, data: patternBytes(4 * KiB, 71) },
      { offset: 300 * KiB, data: patternBytes(8 * KiB, 72) },
    ]);
    const source = fs.readFileSync(src);
    await withLoop(disk, (dev) => {
      const r = sparsecopy(['--to-partition', '3', src, dev]);
      expect(r.status, r.stderr).toBe(0);
      expect(parseSummary(r.stderr).total).toBe(source.length);
    });
    const after = fs.readFileSync(disk);
    const p3 = gptParts.get(3)!;
    expect(after.length).toBe(DISK_BYTES);
    expectSame(after.subarray(p3.offset, p3.offset + source.length), source, 'partition 3');
    expectSame(after.subarray(0, p3.offset), gptBytes.subarray(0, p3.offset), 'before partition 3');
    expectSame(after.subarray(p3.offset + p3.length), gptBytes.subarray(p3.offset + p3.length), 'after partition 3');
  });

  /** A blank 32 MiB backing file for a larger device. */
  function blank(): string {
    const file = fresh('blank32');
    writeSparseFile(file, 32 * MiB, []);
    return file;
  }

  function expectPartitionsCopied(dev: string): void {
    for (const p of gptParts.values()) expectSame(readRange(dev, p.offset, p.length), slice(gptBytes, p), `partition ${p.number} on ${dev}`);
  }

  it('--relocate-gpt onto a larger loop device: sgdisk -v and ptable check find no problem', async () => {
    await withLoop(blank(), (dev) => {
      const r = sparsecopy(['--relocate-gpt', gptDisk, dev]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/backup GPT/);
      const v = runTool('sgdisk', ['-v', dev]);
      expect(v.stdout).toContain('No problems found');
      expect(v.stdout).not.toMatch(/Problem:/);
      const c = ptable(['check', dev]);
      expect(c.status, c.stdout).toBe(0);
      expect(linesOf(c.stdout)).toEqual([`${dev}: gpt table OK`]);
      // The backup header is at the device's last LBA, and the partitions are the image's.
      expect(readRange(dev, 32 * MiB - 512, 8).toString('latin1')).toBe('EFI PART');
      const dump = runTool('sfdisk', ['-d', dev]).stdout;
      expect(dump).toMatch(/^last-lba: 65502$/m);
      expectPartitionsCopied(dev);
    });
  });

  it('without --relocate-gpt, ptable check reports the backup not at the end', async () => {
    await withLoop(blank(), (dev) => {
      const r = sparsecopy([gptDisk, dev]);
      expect(r.status, r.stderr).toBe(0);
      expectPartitionsCopied(dev);
      const c = ptable(['check', dev]);
      const line = linesOf(c.stdout).find((l) => l.endsWith('[backup-not-at-end]'));
      expect(line, c.stdout).toBeDefined();
      expect(line).toContain(`(LBA ${DISK_BYTES / 512 - 1})`);
      expect(runTool('sgdisk', ['-v', dev]).stdout).toMatch(/Problem:/);
    });
  });
});

/** A disk as fsmaker makes it: GRUB's boot code in the first 440 bytes of the protective MBR. */
function bootableGptDisk(): { file: string; bootCode: Buffer } {
  const file = fresh('bootable');
  fs.copyFileSync(gptDisk, file);
  const bootCode = patternBytes(440, 99);
  writePieces(file, [{ offset: 0, data: bootCode }]);
  return { file, bootCode };
}

/** The copy kept the boot code and moved the backup GPT to the end of `target` (`bytes` long). */
function expectRelocatedWithBootCode(target: string, bytes: number, bootCode: Buffer): void {
  expectSame(readRange(target, 0, 440), bootCode, `${target}: boot code`);
  expect(readRange(target, bytes - 512, 8).toString('latin1')).toBe('EFI PART');
  const c = ptable(['check', target]);
  expect(c.status, c.stdout + c.stderr).toBe(0);
}

describe('sparsecopy --relocate-gpt keeps the boot code of sector 0', () => {
  it('to a larger new file (--finalsize)', () => {
    const { file, bootCode } = bootableGptDisk();
    const out = fresh('relocated-f');
    const r = sparsecopy(['--relocate-gpt', '-f', '32M', file, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/backup GPT moved/);
    expectRelocatedWithBootCode(out, 32 * MiB, bootCode);
  });

  it('over a larger existing file (-o)', () => {
    const { file, bootCode } = bootableGptDisk();
    const out = fresh('relocated-o');
    writeSparseFile(out, 32 * MiB, []);
    const r = sparsecopy(['--relocate-gpt', '-o', file, out]);
    expect(r.status, r.stderr).toBe(0);
    expectRelocatedWithBootCode(out, 32 * MiB, bootCode);
  });

  it.skipIf(reason)('onto a larger loop device', async () => {
    const { file, bootCode } = bootableGptDisk();
    const backing = fresh('relocated-loop');
    writeSparseFile(backing, 32 * MiB, []);
    await withLoop(backing, (dev) => {
      const r = sparsecopy(['--relocate-gpt', file, dev]);
      expect(r.status, r.stderr).toBe(0);
      expectRelocatedWithBootCode(dev, 32 * MiB, bootCode);
    });
  });
});

describe('sparsecopy --to-partition refuses a partition that overlaps what ptable check flags', () => {
  /** --to-partition N into `disk`: exit 19, one line naming the problem, the disk byte-for-byte as before. */
  function expectRefused(disk: string, n: number, problem: RegExp): void {
    const before = fs.readFileSync(disk);
    const src = fresh('small-src');
    writeSparseFile(src, 64 * KiB, [{ offset: 0, data: patternBytes(64 * KiB, 5) }]);
    const r = sparsecopy(['--to-partition', String(n), src, disk]);
    expect(r.status, r.stderr).toBe(19);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^sparsecopy: ${disk}: refusing to write into partition ${n}: `));
    expect(r.stderr).toMatch(problem);
    expectSame(fs.readFileSync(disk), before, `${disk} after a refused copy`);
  }

  it('a logical partition that covers its own EBR', () => {
    const { file } = buildDisk(DOS_SCRIPT, 16 * MiB, () => []);
    // Partition 6: its EBR's entry made to start at the EBR itself (relative start 0).
    editFile(file, (image) => {
      const ebr6 = ebrChain(image)[1]!;
      editMbrEntry(image, ebr6, 0, { lbaStart: 0 });
    });
    const c = ptable(['check', file]);
    expect(c.stdout).toMatch(/partition 6 .*covers the EBR/);
    expectRefused(file, 6, /covers the EBR at LBA \d+/);
    // Its neighbour 5 is sound: written as usual.
    const src = fresh('src5');
    writeSparseFile(src, 4096, [{ offset: 0, data: patternBytes(4096, 6) }]);
    expect(sparsecopy(['--to-partition', '5', src, file]).status).toBe(0);
  });

  it('GPT partitions 1 and 2 overlapping (entry edited, CRCs repaired): neither is written', () => {
    const disk = fresh('gpt-overlap');
    fs.copyFileSync(gptDisk, disk);
    editFile(disk, (image) => editGptEntry(image, 512, 1, (e) => e.writeBigUInt64LE(BigInt(gptParts.get(1)!.offset / 512 + 100), 32)));
    expect(ptable(['check', disk]).stdout).toMatch(/partitions 1 and 2 overlap/);
    expectRefused(disk, 1, /partitions 1 and 2 overlap/);
    expectRefused(disk, 2, /partitions 1 and 2 overlap/);
  });

  it('a GPT partition whose entry covers the primary entry array (CRCs repaired)', () => {
    const disk = fresh('gpt-over-entries');
    fs.copyFileSync(gptDisk, disk);
    editFile(disk, (image) => {
      editGptEntry(image, 512, 0, (e) => e.writeBigUInt64LE(2n, 32));
      editGptHeader(image, 512, 'primary', (h) => h.writeBigUInt64LE(2n, 40)); // first usable LBA 2
      editGptHeader(image, 512, 'backup', (h) => h.writeBigUInt64LE(2n, 40));
    });
    expectRefused(disk, 1, /covers the primary GPT entry array/);
  });
});

describe('sparsecopy --to-partition on a GPT whose two headers are damaged', () => {
  it('refuses (exit 19) rather than write into the protective MBR\'s "partition 1", which covers the GPT', () => {
    const disk = fresh('gpt-both-bad');
    fs.copyFileSync(gptDisk, disk);
    editFile(disk, (image) => {
      image[512 + 56]! ^= 0xff; // the disk GUID: both header CRCs fail
      image[image.length - 512 + 56]! ^= 0xff;
    });
    const before = fs.readFileSync(disk);
    const src = fresh('src-bad-gpt');
    writeSparseFile(src, 4096, [{ offset: 0, data: patternBytes(4096, 8) }]);
    const r = sparsecopy(['--to-partition', '1', src, disk]);
    expect(r.status, r.stderr).toBe(19);
    expect(linesOf(r.stderr)).toEqual([expect.stringMatching(new RegExp(`^sparsecopy: ${disk}: its gpt table cannot be read \\(.*\\): refusing to write into what its protective MBR describes; nothing written$`))]);
    expectSame(fs.readFileSync(disk), before, 'disk');
    // Reading is harmless: --from-partition 1 still copies what sfdisk calls partition 1.
    expect(sparsecopy(['--from-partition', '1', disk, fresh('pmbr-part')]).status).toBe(0);
  });
});

describe('sparsecopy --from-partition when reading the table fails', () => {
  it('a read error on the EBR: SOURCE_READ (16) naming the LBA, not a stack trace (injected EIO)', () => {
    const { file, parts } = buildDisk(DOS_SCRIPT, 16 * MiB, () => []);
    const image = fs.readFileSync(file);
    const ebr6 = ebrChain(image)[1]!;
    const fd = fs.openSync(file, 'r');
    try {
      const eio = (_fd: number, buffer: Buffer, offset: number, length: number, position: number): number => {
        if (position <= ebr6 * 512 && ebr6 * 512 < position + length) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
        return fs.readSync(fd, buffer, offset, length, position);
      };
      const read = fdSectorReader(file, fd, 512, { errorCode: 'SOURCE_READ', pread: eio });
      // Partition 5's EBR reads fine; the chain stops at 6's.
      let error: unknown;
      try {
        locatePartition(file, read, 512, image.length / 512, 6);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ToolError);
      expect((error as ToolError).exitCode).toBe(16);
      expect((error as ToolError).message).toBe(`${file}: reading the partition table failed at LBA ${ebr6} (byte ${ebr6 * 512}): i/o error`);
      expect(parts.get(6)).toBeDefined();
    } finally {
      fs.closeSync(fd);
    }
  });

  it('a real EIO through the CLI: /proc/self/mem as SOURCE (reading its offset 0 fails): exit 16 naming byte 0, no output', () => {
    // No device-mapper here for an error target over an EBR; this file fails the same read call
    // (the first read of the source is the one that recognises its format, at byte 0).
    const out = fresh('from-mem');
    const r = sparsecopy(['--from-partition', '7', '/proc/self/mem', out]);
    expect(r.status, r.stderr).toBe(16);
    expect(linesOf(r.stderr)).toEqual(['sparsecopy: /proc/self/mem: read failed at byte 0: i/o error']);
    expect(fs.existsSync(out)).toBe(false);
    expect(tempLeftovers(dir)).toEqual([]);
  });
});

/**
 * Logical partitions from a pipe or inside a compressed image: their EBRs lie further in than any
 * head a stream could hold, so the chain is followed as the bytes pass (issue 10). Each result
 * must equal the dd recipe (skip to the partition's start, its length) on the raw disk.
 */
describe('sparsecopy --from-partition of logical partitions from streams', () => {
  const DOS = `label: dos
label-id: 0x5eed5eed

start=2048, size=6M, type=83
start=14336, size=52M, type=5
start=16384, size=20M, type=83
start=59392, size=8M, type=83
start=79872, size=6M, type=83
`;
  let disk = '';
  beforeAll(() => {
    disk = path.join(dir, 'logical-far.img');
    writeSparseFile(disk, 64 * MiB, [1, 8, 29, 39].map((mib, i) => ({ offset: mib * MiB + 12_345, data: patternBytes(700_000, 40 + i) })));
    execFileSync('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', disk], { input: DOS });
    execFileSync('bash', ['-c', `xz -c -T0 '${disk}' > '${disk}.xz'`]);
  });

  /** sfdisk's view of partition `n`: [start, size] in bytes. */
  const geometry = (n: number): [number, number] => {
    const table = JSON.parse(runTool('sfdisk', ['-J', disk]).stdout).partitiontable.partitions as { node: string; start: number; size: number }[];
    const p = table.find((x) => x.node.endsWith(String(n)))!;
    return [p.start * 512, p.size * 512];
  };

  it.each([
    ['a pipe', (n: number, out: string) => `cat '${disk}' | '${process.execPath}' '${SPARSECOPY_BIN}' -q --from-partition ${n} - '${out}'`],
    ['an xz image', (n: number, out: string) => `'${process.execPath}' '${SPARSECOPY_BIN}' -q --from-partition ${n} '${disk}.xz' '${out}'`],
    ['gzip on stdin', (n: number, out: string) => `gzip -c '${disk}' | '${process.execPath}' '${SPARSECOPY_BIN}' -q --from-partition ${n} - '${out}'`],
  ])('from %s: partitions 5, 6 and 7 (EBRs at 8, 29 and 39 MiB) equal the dd recipe', (_what, command) => {
    for (const n of [5, 6, 7]) {
      const [start, size] = geometry(n);
      const out = fresh(`logical-${n}`);
      const r = execFileSync('bash', ['-c', command(n, out)]);
      expect(r.length).toBe(0);
      expect(fs.readFileSync(out).equals(readRange(disk, start, size))).toBe(true);
    }
    const missing = fresh('logical-missing');
    const r = spawnSyncShell(command(8, missing));
    expect(r.status).toBe(19);
    expect(r.stderr).toMatch(/no partition 8 in its dos table \(its EBR chain holds 3 logical partitions\)/);
  });
});

const SPARSECOPY_BIN = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'dist/bin/sparsecopy.mjs');

function spawnSyncShell(script: string): { status: number | null; stderr: string } {
  const r = spawnSync('bash', ['-c', script]);
  return { status: r.status, stderr: r.stderr.toString() };
}
