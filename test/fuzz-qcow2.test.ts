/**
 * Seeded corruptions of small qcow2 images made by qemu-img (header fields, L1 and L2 entries,
 * compressed cluster descriptors and data): read in-process through the header parser, the map and
 * the layer's extents, each ends in a whole virtual disk or one ToolError with a documented code,
 * in bounded time and memory; refcount damage changes nothing. A few dozen through the CLI as real
 * processes: a documented exit code, one line, and nothing but the destination touched.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import type { Qcow2Image } from '../src/format/qcow2-image.js';
import { type ChainFile, openQcow2Chain, qcow2Extents } from '../src/format/qcow2-layer.js';
import { patternBytes, useTempDir, writeSparseFile } from './helpers.js';
import { type Mutant, mutants, runHostile } from './hostile.js';

let dir = '';
useTempDir('fuzz-qcow2-', (d) => (dir = d));

const KiB = 1024;
const at = (name: string): string => path.join(dir, name);

interface Sample {
  name: string;
  bytes: Buffer;
  /** Where its metadata lies: [from, to) byte ranges worth corrupting. */
  regions: { what: string; from: number; to: number }[];
  /** The refcount table and its first block: damage there must change nothing. */
  refcounts: { from: number; to: number }[];
}

const samples: Sample[] = [];

/** The file's metadata regions, read with plain DataView arithmetic (independent of the parser). */
function regionsOf(bytes: Buffer): Pick<Sample, 'regions' | 'refcounts'> {
  const clusterSize = 2 ** bytes.readUInt32BE(20);
  const l1Size = bytes.readUInt32BE(36);
  const l1Offset = Number(bytes.readBigUInt64BE(40));
  const extended = bytes.readUInt32BE(4) === 3 && (bytes.readBigUInt64BE(72) & 16n) !== 0n;
  const regions = [
    { what: 'header', from: 0, to: 112 },
    { what: 'header extensions', from: 72, to: Math.min(clusterSize, 1024) },
    { what: 'L1 table', from: l1Offset, to: l1Offset + l1Size * 8 },
  ];
  let dataFrom = Infinity;
  for (let i = 0; i < l1Size; i++) {
    const l2 = Number(bytes.readBigUInt64BE(l1Offset + i * 8) & 0x00fffffffffffe00n);
    if (l2 === 0) continue;
    regions.push({ what: `L2 table ${i}`, from: l2, to: l2 + clusterSize });
    for (let e = 0; e < clusterSize / (extended ? 16 : 8); e++) {
      const entry = bytes.readBigUInt64BE(l2 + e * (extended ? 16 : 8));
      if (entry !== 0n) dataFrom = Math.min(dataFrom, Number(entry & 0x00fffffffffffe00n));
    }
  }
  if (Number.isFinite(dataFrom) && dataFrom < bytes.length) regions.push({ what: 'cluster data', from: dataFrom, to: Math.min(bytes.length, dataFrom + 8 * KiB) });
  const refTable = Number(bytes.readBigUInt64BE(48));
  const refBlock = Number(bytes.readBigUInt64BE(refTable) & ~511n);
  return { regions, refcounts: [{ from: refTable, to: refTable + clusterSize }, { from: refBlock, to: refBlock + clusterSize }] };
}

beforeAll(() => {
  const raw = at('small.raw');
  writeSparseFile(raw, 768 * KiB, [
    { offset: 0, data: patternBytes(40 * KiB, 61) },
    { offset: 200 * KiB, data: Buffer.alloc(20 * KiB, 0x5a) },
    { offset: 700 * KiB, data: patternBytes(12 * KiB, 62) },
  ]);
  const make = (name: string, args: string[], after?: (file: string) => void): void => {
    const file = at(name);
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', ...args, raw, file]);
    after?.(file);
    const bytes = fs.readFileSync(file);
    samples.push({ name, bytes, ...regionsOf(bytes) });
  };
  make('v3-512.qcow2', ['-o', 'cluster_size=512,compat=1.1']);
  make('v2-4k.qcow2', ['-o', 'cluster_size=4k,compat=0.10']);
  make('compressed-4k.qcow2', ['-c', '-o', 'cluster_size=4k']);
  make('zstd-4k.qcow2', ['-c', '-o', 'cluster_size=4k,compression_type=zstd']);
  make('extended-16k.qcow2', ['-o', 'cluster_size=16k,extended_l2=on'], (file) => {
    execFileSync('qemu-io', ['-c', 'write -z 200k 4k', '-c', 'write -P 0x77 1k 1k', file]);
  });
});

/** A file in memory, as the chain reads files (zeros past its end). */
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

/** Holes of a disk up to this size are hashed as the zeros they are; a mutant's huge disk hashes their lengths. */
const ZEROS_HASHED_UP_TO = 16 << 20;

/** The digest of the whole virtual disk's bytes, its extents checked for order and coverage. */
async function readWhole(name: string, bytes: Buffer): Promise<string> {
  return digestOf(openQcow2Chain(memoryFile(name, bytes), null));
}

async function digestOf(image: Qcow2Image): Promise<string> {
  const digest = crypto.createHash('sha256');
  let expected = 0;
  for await (const e of qcow2Extents(image, { start: 0, end: null }, 256 * KiB)) {
    if (e.offset !== expected) throw new Error(`extent at ${e.offset}, expected ${expected}`);
    if (e.data && e.data.length !== e.length) throw new Error(`extent of ${e.length} bytes with ${e.data.length} bytes of data`);
    expected += e.length;
    if (e.data) digest.update(e.data);
    else if (image.virtualSize <= ZEROS_HASHED_UP_TO) digest.update(Buffer.alloc(e.length));
    else digest.update(`hole ${e.length}`);
  }
  if (expected !== image.virtualSize) throw new Error(`extents end at ${expected}, the disk at ${image.virtualSize}`);
  return digest.digest('hex');
}

/** Reads a mutant and insists on a clean ending: its disk, or a ToolError of the documented kinds. */
async function expectCleanRead(sample: Sample, m: Mutant): Promise<string | null> {
  const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const started = performance.now();
  let result: string | null = null;
  try {
    result = await readWhole(sample.name, m.bytes);
  } catch (err) {
    const context = `${sample.name} ${m.description}: ${err instanceof Error ? err.stack : String(err)}`;
    expect(err instanceof ToolError, context).toBe(true);
    expect(['CORRUPT_INPUT', 'UNSUPPORTED_FORMAT', 'SOURCE_OPEN'], context).toContain((err as ToolError).code);
    expect((err as ToolError).message, context).toMatch(new RegExp(`^${sample.name}: `));
    expect((err as ToolError).message.includes('\n'), context).toBe(false);
  }
  expect(performance.now() - started, `${sample.name} ${m.description}: slow`).toBeLessThan(3000);
  const growth = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heapBefore;
  expect(growth, `${sample.name} ${m.description}: memory`).toBeLessThan(96 << 20);
  return result;
}

describe('qcow2 mutants in-process', () => {
  it('the good samples read whole (the baseline the mutants are judged against)', async () => {
    expect(samples.length).toBe(5);
    for (const s of samples) expect(await readWhole(s.name, s.bytes)).toMatch(/^[0-9a-f]{64}$/);
    // The samples without qemu-io's edits hold the same disk.
    const digests = await Promise.all(samples.filter((s) => !s.name.startsWith('extended')).map((s) => readWhole(s.name, s.bytes)));
    expect(new Set(digests).size).toBe(1);
    expect(digests[0]).toBe(crypto.createHash('sha256').update(fs.readFileSync(at('small.raw'))).digest('hex'));
  });

  it('header, extension, L1, L2, compressed-descriptor and data mutants end whole or in one clean error', async () => {
    let cases = 0;
    let errors = 0;
    let seed = 1100;
    for (const sample of samples) {
      for (const region of sample.regions) {
        for (const m of mutants(sample.bytes, seed++, region.what.startsWith('L2') || region.what === 'header' ? 120 : 60, region)) {
          const result = await expectCleanRead(sample, { ...m, description: `${region.what}: ${m.description}` });
          cases++;
          if (result === null) errors++;
        }
      }
    }
    expect(cases).toBeGreaterThan(2000);
    // The corruptions are found: a good share of the cases end in an error, not all of them.
    expect(errors).toBeGreaterThan(cases / 10);
    expect(errors).toBeLessThan(cases);
  }, 120_000);

  it('refcount table and block damage changes nothing: refcounts are not read', async () => {
    let seed = 1900;
    for (const sample of samples) {
      const good = await readWhole(sample.name, sample.bytes);
      for (const region of sample.refcounts) {
        for (const m of mutants(sample.bytes, seed++, 40, region)) expect(await expectCleanRead(sample, m), `${sample.name} ${m.description}`).toBe(good);
      }
    }
  });

  it('targeted lies each end in exit-18 errors with the offset', async () => {
    const s = samples.find((x) => x.name === 'v3-512.qcow2')!;
    const edit = (at: number, width: 4 | 8, value: bigint): Buffer => {
      const b = Buffer.from(s.bytes);
      if (width === 4) b.writeUInt32BE(Number(value), at);
      else b.writeBigUInt64BE(value, at);
      return b;
    };
    const l1 = Number(s.bytes.readBigUInt64BE(40));
    const l2 = Number(s.bytes.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
    const cases: [string, Buffer, RegExp][] = [
      ['cluster_bits 8', edit(20, 4, 8n), /cluster_bits 8 out of range \(expected 9 to 21\) \(at byte 20\)/],
      ['cluster_bits 22', edit(20, 4, 22n), /cluster_bits 22 out of range/],
      ['L1 beyond the file', edit(40, 8, BigInt(s.bytes.length + 512)), /L1 table \(\d+ entries at byte \d+\) lies outside the file .* \(at byte 40\)/],
      ['L1 size beyond the file', edit(36, 4, 1_000_000n), /L1 table \(1000000 entries at byte \d+\) lies outside the file/],
      ['L2 entry past the end', edit(l2, 8, (1n << 63n) | BigInt(s.bytes.length + 512 * 8)), new RegExp(`data cluster at byte \\d+ is past the end of the file .* \\(at byte ${l2}\\)`)],
      ['L1 entry past the end', edit(l1, 8, (1n << 63n) | BigInt(s.bytes.length + 512 * 8)), new RegExp(`L2 table at byte \\d+ is past the end of the file .* \\(at byte ${l1}\\)`)],
      ['header_length lie', edit(100, 4, 4096n), /header_length 4096 is invalid/],
      ['header_length not a multiple of 8', edit(100, 4, 108n), /header_length 108 is invalid/],
      ['virtual size beyond the L1 table', edit(24, 8, 1n << 50n), /L1 table too small/],
    ];
    for (const [what, bytes, message] of cases) {
      const err = await readWhole(s.name, bytes).then(() => null, (e: unknown) => e);
      expect(err, what).toBeInstanceOf(ToolError);
      expect((err as ToolError).exitCode, what).toBe(18);
      expect((err as ToolError).message, what).toMatch(message);
    }
    // A compressed cluster whose descriptor claims more sectors than are there reads to the file's end, then fails to inflate: one error.
    const c = samples.find((x) => x.name === 'compressed-4k.qcow2')!;
    const cl1 = Number(c.bytes.readBigUInt64BE(40));
    const cl2 = Number(c.bytes.readBigUInt64BE(cl1) & 0x00fffffffffffe00n);
    const entry = c.bytes.readBigUInt64BE(cl2);
    expect(entry & (1n << 62n)).not.toBe(0n);
    const lengthLie = Buffer.from(c.bytes);
    const offsetBits = 62n - (12n - 8n);
    lengthLie.writeBigUInt64BE((entry & ((1n << offsetBits) - 1n)) | (1n << 62n) | (((1n << (62n - offsetBits)) - 1n) << offsetBits) | 1n, cl2);
    const err = await readWhole(c.name, lengthLie).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ToolError);
    expect((err as ToolError).message).toMatch(/compressed cluster \(\d+ bytes at byte \d+\) (does not inflate|inflates to)/);
  });
});

describe('qcow2 chain mutants in-process', () => {
  it('a layer and its base, either corrupted, end whole or in one clean error naming the file at fault', async () => {
    const base = at('chain-base.qcow2');
    const top = at('chain-top.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', '-o', 'cluster_size=4k', at('small.raw'), base]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', '-b', 'chain-base.qcow2', '-F', 'qcow2', top, `${768 * KiB}`]);
    execFileSync('qemu-io', ['-c', 'write -z 0 8k', '-c', 'write -P 0x99 200k 8k', top]);
    const good = { top: fs.readFileSync(top), base: fs.readFileSync(base) };
    const read = (topBytes: Buffer, baseBytes: Buffer): Promise<string> => {
      const files = new Map([[base, memoryFile(base, baseBytes)]]);
      const open = (where: string): ChainFile => {
        const file = files.get(where);
        if (!file) throw new ToolError('SOURCE_OPEN', `${top}: cannot open its backing file ${where}`);
        return file;
      };
      const image = openQcow2Chain(memoryFile(top, topBytes), open);
      return digestOf(image);
    };
    const expected = await read(good.top, good.base);
    expect(expected).not.toBe(await readWhole(base, good.base)); // the layer changes the disk
    let seed = 3100;
    let cases = 0;
    for (const [which, bytes] of [['top', good.top], ['base', good.base]] as const) {
      for (const region of regionsOf(bytes).regions) {
        for (const m of mutants(bytes, seed++, 60, region)) {
          const started = performance.now();
          try {
            await (which === 'top' ? read(m.bytes, good.base) : read(good.top, m.bytes));
          } catch (err) {
            const context = `${which} ${region.what}: ${m.description}: ${err instanceof Error ? err.stack : String(err)}`;
            expect(err instanceof ToolError, context).toBe(true);
            expect(['CORRUPT_INPUT', 'UNSUPPORTED_FORMAT', 'SOURCE_OPEN'], context).toContain((err as ToolError).code);
            // A corrupt base is named as the base, a corrupt layer as the layer.
            if ((err as ToolError).code === 'CORRUPT_INPUT') expect((err as ToolError).message.startsWith(`${which === 'top' ? top : base}: `), context).toBe(true);
          }
          expect(performance.now() - started).toBeLessThan(3000);
          cases++;
        }
      }
    }
    expect(cases).toBeGreaterThan(500);
  }, 120_000);
});

describe('qcow2 mutants through the CLI', () => {
  it('a few dozen end in a documented exit code, one line, and touch nothing but the destination', () => {
    let seed = 2500;
    let runs = 0;
    let read = 0;
    for (const sample of samples.filter((s) => ['v3-512.qcow2', 'compressed-4k.qcow2', 'extended-16k.qcow2'].includes(s.name))) {
      for (const region of sample.regions.slice(0, 4)) {
        for (const m of mutants(sample.bytes, seed++, 3, region)) {
          const work = fs.mkdtempSync(at('cli-'));
          const input = path.join(work, 'in.qcow2');
          fs.writeFileSync(input, m.bytes);
          const out = path.join(work, 'out.img');
          const r = runHostile('sparsecopy', ['-q', input, out], { codes: [0, 2, 18, 28], what: `${sample.name} ${region.what}: ${m.description}`, timeoutMs: 15_000 });
          expect(fs.readFileSync(input).equals(m.bytes)).toBe(true);
          expect(fs.readdirSync(work).sort()).toEqual(r.status === 0 ? ['in.qcow2', 'out.img'] : ['in.qcow2']);
          if (r.status !== 0) expect(r.stderr.trim().split('\n')).toHaveLength(1);
          fs.rmSync(work, { recursive: true });
          runs++;
          if (r.status === 0) read++;
        }
      }
    }
    expect(runs).toBeGreaterThanOrEqual(30);
    expect(read, 'some mutants (data bytes, ignorable fields) are still read as qcow2').toBeGreaterThan(0);
  }, 120_000);
});
