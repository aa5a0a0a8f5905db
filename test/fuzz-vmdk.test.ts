/**
 * Seeded corruptions of small VMDKs made by qemu-img (monolithicSparse, with zeroed grains,
 * streamOptimized) and of one rebuilt as a stream writer lays it out (GD at the end, footer,
 * markers): headers, descriptors, grain directories and tables, grain markers and data. Read
 * in-process through the descriptor parser, the sparse extent map and the layer's extents (at any
 * offset) and through the forward stream reader, each ends in a whole virtual disk or one error of
 * a documented kind naming the file, in bounded time and memory. The named hostile cases of the
 * issue each get their error and offset. A few dozen through the CLI as real processes: a
 * documented exit code, one line, nothing but the destination touched.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import type { Extent } from '../src/extent/extent.js';
import type { ChainFile } from '../src/format/qcow2-layer.js';
import { qcow2Extents } from '../src/format/qcow2-layer.js';
import { DescriptorError, MAX_EXTENTS, parseDescriptor } from '../src/format/vmdk-descriptor.js';
import type { VmdkDisk } from '../src/format/vmdk-disk.js';
import { VmdkError } from '../src/format/vmdk-header.js';
import { descriptorDisk, sparseFileDisk } from '../src/format/vmdk-layer.js';
import { vmdkStreamExtents } from '../src/format/vmdk-stream.js';
import { patternBytes, snapshot, useTempDir, writeSparseFile } from './helpers.js';
import { type Mutant, measured, mutants, runHostile } from './hostile.js';
import { restream, sparseLayout } from './vmdk-edits.js';

let dir = '';
useTempDir('fuzz-vmdk-', (d) => (dir = d));

const KiB = 1024;
const at = (name: string): string => path.join(dir, name);

interface Sample {
  name: string;
  bytes: Buffer;
  regions: { what: string; from: number; to: number }[];
  /** Whether it can be read forward (grain markers). */
  stream: boolean;
}

const samples: Sample[] = [];
let reference = Buffer.alloc(0);
let flatDescriptor = '';

/** Where a sparse file's metadata lies, from the test's own reading of the layout. */
function regionsOf(bytes: Buffer): Sample['regions'] {
  const l = sparseLayout(bytes);
  const regions = [
    { what: 'header', from: 0, to: 512 },
    { what: 'descriptor', from: l.descriptorSector * 512, to: (l.descriptorSector + l.descriptorSectors) * 512 },
    { what: 'grain directory', from: l.gdSector * 512, to: l.gdSector * 512 + 64 },
  ];
  for (const t of l.tables.slice(0, 2)) regions.push({ what: `grain table ${t.gdIndex}`, from: t.tableAt, to: t.tableAt + l.gtes * 4 });
  const first = l.grains.find((g) => g.value > 1);
  if (first) regions.push({ what: 'first grain', from: first.value * 512, to: first.value * 512 + 2 * KiB });
  if (bytes.readBigUInt64LE(56) === 0xffffffffffffffffn) regions.push({ what: 'footer and end markers', from: bytes.length - 1536, to: bytes.length });
  return regions;
}

beforeAll(() => {
  const raw = at('small.raw');
  writeSparseFile(raw, 768 * KiB + 1024, [
    { offset: 0, data: patternBytes(40 * KiB, 61) },
    { offset: 200 * KiB, data: Buffer.alloc(20 * KiB, 0x5a) },
    { offset: 700 * KiB, data: patternBytes(12 * KiB, 62) },
    { offset: 768 * KiB, data: patternBytes(1024, 63) },
  ]);
  reference = fs.readFileSync(raw);
  const make = (name: string, options: string, edit?: (b: Buffer) => Buffer): void => {
    const file = at(name);
    execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', options, raw, file]);
    const bytes = edit ? edit(fs.readFileSync(file)) : fs.readFileSync(file);
    fs.writeFileSync(file, bytes);
    samples.push({ name: file, bytes, regions: regionsOf(bytes), stream: (bytes.readUInt32LE(8) & 0x30000) === 0x30000 });
  };
  make('sparse.vmdk', 'subformat=monolithicSparse');
  make('zeroed.vmdk', 'subformat=monolithicSparse,zeroed_grain=on');
  make('stream.vmdk', 'subformat=streamOptimized');
  make('restream.vmdk', 'subformat=streamOptimized', (b) => restream(b));
  execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=monolithicFlat', raw, at('flat.vmdk')]);
  // qemu-img's CID is random: fixed here, so that the seeded mutants are the same in every run.
  flatDescriptor = fs.readFileSync(at('flat.vmdk'), 'latin1').replace(/\0+$/, '').replace(/^CID=.*$/m, 'CID=5eed0042');
});

function memoryFile(name: string, bytes: Buffer): ChainFile {
  return {
    name,
    size: bytes.length,
    identity: name,
    readAt: (offset, length) => {
      const out = Buffer.alloc(length);
      if (offset < bytes.length) bytes.copy(out, 0, offset, Math.min(bytes.length, offset + length));
      return out;
    },
  };
}

/** Holes of a disk up to this size are hashed as zeros; a mutant's huge disk hashes their lengths. */
const ZEROS_HASHED_UP_TO = 16 << 20;

/** The digest of a disk's extents, checked for order and coverage up to `size`. */
async function digestOf(extents: AsyncIterable<Extent>, size: number): Promise<string> {
  const digest = crypto.createHash('sha256');
  let expected = 0;
  for await (const e of extents) {
    if (e.offset !== expected) throw new Error(`extent at ${e.offset}, expected ${expected}`);
    if (e.data && e.data.length !== e.length) throw new Error(`extent of ${e.length} bytes with ${e.data.length} bytes of data`);
    expected += e.length;
    if (e.data) digest.update(e.data);
    else if (size <= ZEROS_HASHED_UP_TO) digest.update(Buffer.alloc(e.length));
    else digest.update(`hole ${e.length}`);
    e.release?.();
  }
  if (expected !== size) throw new Error(`extents end at ${expected}, the disk at ${size}`);
  return digest.digest('hex');
}

const randomAccess = async (name: string, bytes: Buffer): Promise<string> => {
  const disk: VmdkDisk = sparseFileDisk(memoryFile(name, bytes));
  return digestOf(qcow2Extents(disk, { start: 0, end: null }, 256 * KiB), disk.virtualSize);
};

async function* once(bytes: Buffer): AsyncGenerator<Extent> {
  // In pieces of odd sizes, as a pipe delivers them.
  for (let o = 0; o < bytes.length; o += 7777) yield { offset: o, length: Math.min(7777, bytes.length - o), data: bytes.subarray(o, o + 7777) };
}

const forward = async (bytes: Buffer): Promise<string> => {
  const capacity = Number(bytes.readBigUInt64LE(12)) * 512;
  return digestOf(vmdkStreamExtents(once(bytes), 256 * KiB), capacity);
};

const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

/** Reads a mutant both ways and insists on clean endings: its disk, or an error of the documented kinds. */
async function expectCleanRead(sample: Sample, m: Mutant): Promise<void> {
  const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const started = performance.now();
  const context = (err: unknown) => `${sample.name} ${m.description}: ${err instanceof Error ? err.stack : String(err)}`;
  try {
    await randomAccess(sample.name, m.bytes);
  } catch (err) {
    expect(err instanceof ToolError, context(err)).toBe(true);
    expect(['CORRUPT_INPUT', 'UNSUPPORTED_FORMAT'], context(err)).toContain((err as ToolError).code);
    expect((err as ToolError).message.startsWith(`${sample.name}: `), context(err)).toBe(true);
    expect((err as ToolError).message.includes('\n'), context(err)).toBe(false);
  }
  if (sample.stream) {
    try {
      await forward(m.bytes);
    } catch (err) {
      // The pure reader's errors: the layer names the source and turns them into exit 18.
      expect(err instanceof VmdkError, context(err)).toBe(true);
      expect((err as VmdkError).at, context(err)).toBeGreaterThanOrEqual(0);
    }
  }
  expect(performance.now() - started, `${sample.name} ${m.description}: slow`).toBeLessThan(3000);
  const growth = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heapBefore;
  expect(growth, `${sample.name} ${m.description}: memory`).toBeLessThan(96 << 20);
}

describe('the good samples read as the raw disk', () => {
  it('at any offset, and forward for the streams', async () => {
    for (const s of samples) {
      expect(await randomAccess(s.name, s.bytes), s.name).toBe(sha(reference));
      if (s.stream) expect(await forward(s.bytes), s.name).toBe(sha(reference));
    }
    expect(samples.filter((s) => s.stream).length).toBe(2);
  });
});

describe('seeded corruptions, in-process', () => {
  it('each region of each sample: the disk or one error of a documented kind, bounded', async () => {
    let cases = 0;
    let failures = 0;
    for (const [i, sample] of samples.entries()) {
      for (const [j, region] of sample.regions.entries()) {
        for (const m of mutants(sample.bytes, 1000 * i + j, 60, region)) {
          await expectCleanRead(sample, m);
          cases++;
        }
      }
      // Anywhere in the file too.
      for (const m of mutants(sample.bytes, 9000 + i, 100)) {
        await expectCleanRead(sample, m);
        cases++;
      }
    }
    for (const s of samples) {
      for (const m of mutants(s.bytes, 777, 30, s.regions[0])) {
        try {
          await randomAccess(s.name, m.bytes);
        } catch {
          failures++;
        }
      }
    }
    expect(cases).toBeGreaterThan(1500);
    expect(failures).toBeGreaterThan(0); // the header mutants do trip the checks
  }, 120_000);

  it('descriptors: each mutant parses or is one DescriptorError naming a line, bounded; opened, one ToolError', () => {
    const text = Buffer.from(flatDescriptor, 'latin1');
    const flat = memoryFile(at('flat-flat.vmdk'), reference);
    const open = (p: string): ChainFile => {
      if (p !== flat.name) throw new ToolError('SOURCE_OPEN', `cannot open ${p}`);
      return flat;
    };
    let parsed = 0;
    for (const m of mutants(text, 4242, 1500)) {
      const r = measured(() => parseDescriptor(m.bytes.toString('latin1')));
      expect(r.ms, m.description).toBeLessThan(200);
      if (r.error !== undefined) {
        expect(r.error instanceof DescriptorError, `${m.description}: ${String(r.error)}`).toBe(true);
        expect((r.error as DescriptorError).line).toBeGreaterThanOrEqual(0);
        continue;
      }
      parsed++;
      const d = measured(() => descriptorDisk(memoryFile(at('flat.vmdk'), m.bytes), open));
      if (d.error !== undefined) {
        expect(d.error instanceof ToolError, `${m.description}: ${String(d.error)}`).toBe(true);
        expect(['CORRUPT_INPUT', 'UNSUPPORTED_FORMAT', 'SOURCE_OPEN']).toContain((d.error as ToolError).code);
      }
    }
    // The mutants are not vacuous: the descriptor they come from is valid, and many of them still parse.
    expect(parseDescriptor(flatDescriptor).extents, flatDescriptor).toHaveLength(1);
    expect(parsed, `${parsed} of 1500 mutants of this descriptor parsed:\n${flatDescriptor}`).toBeGreaterThan(100);
  });
});

/** A sample's bytes with `edit` applied to a copy. */
const edited = (name: string, edit: (b: Buffer) => void): Buffer => {
  const b = Buffer.from(samples.find((s) => s.name === at(name))!.bytes);
  edit(b);
  return b;
};

async function errorOf(read: () => Promise<unknown>): Promise<Error> {
  try {
    await read();
  } catch (err) {
    return err as Error;
  }
  throw new Error('read without an error');
}

describe('the named hostile cases: each an error with its offset', () => {
  it('a GT pointing past the end, a grain past the end, a grain size not a power of two, an absurd numGTEsPerGT, an absurd capacity', async () => {
    const name = at('sparse.vmdk');
    const l = sparseLayout(samples.find((s) => s.name === name)!.bytes);
    const gtPast = edited('sparse.vmdk', (b) => b.writeUInt32LE(0x7fffffff, l.tables[0]!.gdeAt));
    expect((await errorOf(() => randomAccess(name, gtPast))).message).toBe(
      `${name}: corrupt VMDK sparse extent: grain directory entry 0 points at sector 2147483647, past the end of the file (${gtPast.length} bytes) (at byte ${l.tables[0]!.gdeAt})`,
    );
    const grainPast = edited('sparse.vmdk', (b) => b.writeUInt32LE(0x7fffffff, l.grains[0]!.gteAt));
    expect((await errorOf(() => randomAccess(name, grainPast))).message).toMatch(new RegExp(`grain table entry points at sector 2147483647, past the end of the file .*\\(at byte ${l.grains[0]!.gteAt}\\)$`));
    const grain3 = edited('sparse.vmdk', (b) => b.writeBigUInt64LE(3n, 20));
    expect((await errorOf(() => randomAccess(name, grain3))).message).toMatch(/grain size 3 sectors is not a power of two from 1 to 65536 \(at byte 20\)$/);
    const gtes = edited('sparse.vmdk', (b) => b.writeUInt32LE(1 << 30, 44));
    expect((await errorOf(() => randomAccess(name, gtes))).message).toMatch(/1073741824 entries per grain table is not a power of two up to 512 \(at byte 44\)$/);
    const capacity = edited('sparse.vmdk', (b) => b.writeBigUInt64LE(1n << 40n, 12));
    const measuredCapacity = measured(() => sparseFileDisk(memoryFile(name, capacity)));
    expect(String(measuredCapacity.error)).toMatch(/grain directory of \d+ entries at sector \d+ does not lie within the file/);
    expect(measuredCapacity.heapGrowthBytes).toBeLessThan(16 << 20);
  });

  it('a stream: an absurd marker size, a grain past the capacity, a huge capacity (a hole, nothing allocated), an absurd metadata marker', async () => {
    const stream = samples.find((s) => s.name === at('restream.vmdk'))!.bytes;
    const firstMarker = Number(stream.readBigUInt64LE(64)) * 512;
    const absurd = Buffer.from(stream);
    absurd.writeUInt32LE(0xffffffff, firstMarker + 8);
    expect((await errorOf(() => forward(absurd))).message).toMatch(/^grain marker of 4294967295 compressed bytes \(a 65536-byte grain takes at most \d+\)$/);
    expect(((await errorOf(() => forward(absurd))) as VmdkError).at).toBe(firstMarker);
    const past = Buffer.from(stream);
    past.writeBigUInt64LE(1n << 40n, firstMarker);
    expect((await errorOf(() => forward(past))).message).toMatch(/grain marker for sector 1099511627776, past the disk's 1538 sectors/);
    // 512 TiB, its first grain and the end-of-stream marker: the tail is one hole.
    const firstBlock = 512 * Math.ceil((12 + stream.readUInt32LE(firstMarker + 8)) / 512);
    const huge = Buffer.concat([stream.subarray(0, firstMarker + firstBlock), Buffer.alloc(512)]);
    huge.writeBigUInt64LE(1n << 40n, 12);
    const heapBefore = process.memoryUsage().heapUsed;
    const extents: Extent[] = [];
    for await (const e of vmdkStreamExtents(once(huge), 256 * KiB)) extents.push({ offset: e.offset, length: e.length });
    expect(extents.at(-1)!.offset + extents.at(-1)!.length).toBe(2 ** 49);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 << 20);
    // The GT marker after the first grains: an absurd sector count.
    const l = sparseLayout(stream);
    const markerAt = l.tables[0]!.tableAt - 512;
    expect(stream.readUInt32LE(markerAt + 12)).toBe(1);
    const bigMeta = Buffer.from(stream);
    bigMeta.writeBigUInt64LE(1n << 40n, markerAt);
    const err = (await errorOf(() => forward(bigMeta))) as VmdkError;
    expect(err.message).toMatch(/^metadata marker of 1099511627776 sectors \(this disk's tables take at most \d+\)$/);
    expect(err.at).toBe(markerAt);
  });

  it('a compressed grain that inflates to more or less than a grain: an error at its marker, both ways', async () => {
    const name = at('restream.vmdk');
    const stream = samples.find((s) => s.name === name)!.bytes;
    const firstMarker = Number(stream.readBigUInt64LE(64)) * 512;
    const oldSize = stream.readUInt32LE(firstMarker + 8);
    const oldBlock = 512 * Math.ceil((12 + oldSize) / 512);
    for (const [what, grain, message] of [
      ['more', Buffer.alloc(128 * KiB, 1), /inflates to more than a grain/],
      ['less', Buffer.alloc(1000, 1), /compressed grain inflates to 1000 bytes, expected 65536/],
    ] as const) {
      const deflated = zlib.deflateSync(grain);
      expect(12 + deflated.length).toBeLessThanOrEqual(oldBlock);
      const b = Buffer.from(stream);
      b.fill(0, firstMarker + 12, firstMarker + oldBlock);
      b.writeUInt32LE(deflated.length, firstMarker + 8);
      deflated.copy(b, firstMarker + 12);
      const f = (await errorOf(() => forward(b))) as VmdkError;
      expect(f.message, what).toMatch(message);
      expect(f.at, what).toBe(firstMarker);
      expect((await errorOf(() => randomAccess(name, b))).message, what).toMatch(new RegExp(`${message.source} \\(at byte ${firstMarker}\\)$`));
    }
  });

  it('a descriptor with 10^6 extents, and extent sizes summing past any disk: one error naming the line, bounded', () => {
    const many = measured(() => parseDescriptor(`createType="custom"\n${'RW 1 ZERO\n'.repeat(1_000_000)}`));
    expect(many.error).toBeInstanceOf(DescriptorError);
    expect(String(many.error)).toMatch(/more than 4096 extents/);
    expect(many.heapGrowthBytes).toBeLessThan(64 << 20);
    const justOver = measured(() => parseDescriptor(`createType="custom"\n${'RW 1 ZERO\n'.repeat(MAX_EXTENTS + 1)}`));
    expect(justOver.error).toBeInstanceOf(DescriptorError);
    expect((justOver.error as DescriptorError).line).toBe(MAX_EXTENTS + 2);
    expect(justOver.heapGrowthBytes).toBeLessThan(32 << 20);
    const sum = measured(() => parseDescriptor(`RW 9007199254740 ZERO\nRW 9007199254740 ZERO\n`));
    expect(sum.error).toBeInstanceOf(DescriptorError);
    expect((sum.error as DescriptorError).message).toMatch(/extents add up to more than any disk/);
    expect((sum.error as DescriptorError).line).toBe(2);
    const huge = measured(() => parseDescriptor(`RW 99999999999999999999 ZERO\n`));
    expect((huge.error as DescriptorError).message).toMatch(/extent size 99999999999999999999 sectors is beyond any disk/);
  });
});

describe('seeded corruptions through the CLI', () => {
  it('a documented exit code, one line on failure, nothing but the destination touched (file and stdin)', () => {
    let n = 0;
    for (const [i, sample] of samples.entries()) {
      const source = at(`cli-${i}.vmdk`);
      for (const m of mutants(sample.bytes, 5000 + i, 8, sample.regions[i % sample.regions.length])) {
        fs.writeFileSync(source, m.bytes);
        const before = fs.readdirSync(dir).sort();
        const sourceBefore = snapshot(source);
        const out = at(`cli-${i}.out`);
        const args = n % 2 === 0 ? [source, out] : ['-', out];
        const r = runHostile('sparsecopy', args, { input: n % 2 === 0 ? undefined : m.bytes, what: `${sample.name} ${m.description}` });
        expect(snapshot(source), m.description).toEqual(sourceBefore);
        const after = fs.readdirSync(dir).sort();
        expect(after.filter((f) => !before.includes(f) && f !== path.basename(out)), m.description).toEqual([]);
        if (r.status !== 0) expect(fs.existsSync(out), m.description).toBe(false);
        fs.rmSync(out, { force: true });
        n++;
      }
    }
    expect(n).toBe(32);
  }, 120_000);
});
