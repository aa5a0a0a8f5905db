/**
 * Seeded fuzzing of findSignatures. In process: thousands of corruptions of real signatures (each
 * fixture of signatures-fixtures.ts, corrupted around its signatures and in its first sectors; GPT
 * images also with their CRCs repaired so that the deeper checks are reached), each probed within
 * a time and heap bound, with every read small and inside the area, never an exception, and only
 * well-formed results. Then, against wipefs itself, a few hundred of those corruptions written to
 * a copy of the image: findSignatures lists what `wipefs -n` lists.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { findSignatures, SIGNATURE_TYPES, type Signature } from '../src/partition/signatures.js';
import { MAX_READ_BYTES, MAX_TOTAL_READ_BYTES } from '../src/partition/signatures/view.js';
import { copySparse, newImageIn, sfdiskWrite, useTempDir } from './helpers.js';
import { measured, mutants } from './hostile.js';
import { type Fixture, FIXTURES } from './signatures-fixtures.js';
import { repairGptCrcs } from './table-edits.js';
import { hasTool, onLoop, signaturesOf, wipefsList } from './signatures-tools.js';

let dir = '';
useTempDir('sig-fuzz-', (d) => (dir = d));

/** FUZZ_SCALE=10 (and FUZZ_SEED) for a longer local run; CI runs the default. */
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const SEED = Number(process.env.FUZZ_SEED ?? 0);
const MiB = 1024 * 1024;

/** Bytes laid over an image: a corruption of one region. */
interface Overlay {
  offset: number;
  bytes: Buffer;
}

interface Probed {
  signatures: Signature[];
  reads: { offset: number; length: number }[];
}

/** findSignatures over `read`, recording every read it makes. */
function probe(read: (offset: number, length: number) => Buffer, areaBytes: number, sectorSize = 512): Probed & { ms: number; heapGrowthBytes: number; error: unknown } {
  const reads: { offset: number; length: number }[] = [];
  const r = measured(() =>
    findSignatures(
      (offset, length) => {
        reads.push({ offset, length });
        return read(offset, length);
      },
      areaBytes,
      { sectorSize },
    ),
  );
  return { signatures: r.value ?? [], reads, ms: r.ms, heapGrowthBytes: r.heapGrowthBytes, error: r.error };
}

function expectBoundedAndWellFormed(p: ReturnType<typeof probe>, areaBytes: number, what: string): void {
  if (p.error) throw new Error(`${what}: ${String(p.error)}`);
  expect(p.ms, what).toBeLessThan(500);
  expect(p.heapGrowthBytes, what).toBeLessThan(64 * MiB);
  for (const r of p.reads) {
    expect(r.offset >= 0 && r.length > 0 && r.length <= MAX_READ_BYTES && r.offset + r.length <= areaBytes, `${what}: read ${r.length} at ${r.offset}`).toBe(true);
  }
  expect(p.reads.reduce((n, r) => n + r.length, 0), what).toBeLessThanOrEqual(MAX_TOTAL_READ_BYTES);
  const offsets = new Set<number>();
  for (const s of p.signatures) {
    expect(SIGNATURE_TYPES, what).toContain(s.type);
    expect(Number.isSafeInteger(s.offset) && s.offset >= 0 && s.length >= 1 && s.length <= 16 && s.offset + s.length <= areaBytes, `${what}: ${JSON.stringify(s)}`).toBe(true);
    expect(offsets.has(s.offset), what).toBe(false);
    offsets.add(s.offset);
  }
}

/** A signature in the shape (and key order) wipefsList gives. */
const asListed = (s: Signature): { type: string; offset: number; length: number; usage: string } => ({ type: s.type, offset: s.offset, length: s.length, usage: s.usage });

/** Reads `file` with `overlays` laid over it. */
function overlaidReader(fd: number, overlays: Overlay[]): (offset: number, length: number) => Buffer {
  return (offset, length) => {
    const buffer = Buffer.alloc(length);
    const got = fs.readSync(fd, buffer, 0, length, offset);
    for (const o of overlays) {
      const from = Math.max(o.offset, offset);
      const to = Math.min(o.offset + o.bytes.length, offset + length);
      if (from < to) o.bytes.copy(buffer, from - offset, from - o.offset, to - o.offset);
    }
    return buffer.subarray(0, got);
  };
}

/** Where to corrupt a fixture: its first sectors, and around each of its signatures (and the end, where MD and GPT keep copies). */
function regionsOf(bytes: number, good: Signature[]): { from: number; to: number }[] {
  const regions = [{ from: 0, to: Math.min(bytes, 8192) }, { from: Math.max(0, bytes - 128 * 1024), to: bytes }];
  for (const s of good) regions.push({ from: Math.max(0, s.offset - 1024) & ~511, to: Math.min(bytes, s.offset + 2048) });
  return regions;
}

interface Built {
  fixture: Fixture;
  file: string;
  bytes: number;
  good: Signature[];
}

const built: Built[] = [];

beforeAll(() => {
  for (const fixture of FIXTURES) {
    if (!hasTool(fixture.tool)) continue;
    const file = newImageIn(dir, `${fixture.name}.img`, fixture.bytes);
    fixture.make(file);
    built.push({ fixture, file, bytes: fs.statSync(file).size, good: signaturesOf(file) });
  }
}, 300_000);

describe('findSignatures on corrupted real signatures', () => {
  it('never throws, reads only small places inside the area, stays in its time and heap bounds', () => {
    expect(built.length).toBeGreaterThanOrEqual(20);
    let cases = 0;
    for (const [index, b] of built.entries()) {
      expect(b.good.map((s) => s.type), b.fixture.name).toEqual(b.fixture.expect);
      const fd = fs.openSync(b.file, 'r');
      try {
        for (const [r, region] of regionsOf(b.bytes, b.good).entries()) {
          const original = Buffer.alloc(region.to - region.from);
          fs.readSync(fd, original, 0, original.length, region.from);
          for (const m of mutants(original, SEED + index * 100 + r, 40 * SCALE)) {
            const p = probe(overlaidReader(fd, [{ offset: region.from, bytes: m.bytes }]), b.bytes);
            expectBoundedAndWellFormed(p, b.bytes, `${b.fixture.name} at ${region.from}: ${m.description}`);
            cases++;
          }
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    expect(cases).toBeGreaterThan(3000);
  });

  it('GPT headers and entries corrupted with their CRCs repaired (the checks past the CRCs), 512- and 4096-byte sectors, some against wipefs', () => {
    let cases = 0;
    let compared = 0;
    const disagreements: string[] = [];
    for (const sectorSize of [512, 4096]) {
      const bytes = 4 * MiB;
      const file = newImageIn(dir, `gpt-${sectorSize}.img`, bytes);
      const script = 'label: gpt\nsize=1M\nsize=1M\n';
      onLoop(file, (device) => sfdiskWrite(device, script), sectorSize);
      const good = fs.readFileSync(file);
      const found = findSignatures((o, l) => good.subarray(o, o + l), bytes, { sectorSize });
      expect(found.map((s) => s.type)).toEqual(['gpt', 'gpt', 'PMBR']);
      const entriesBytes = 128 * 128;
      const regions = [
        { from: 0, to: 2 * sectorSize + entriesBytes },
        { from: bytes - sectorSize - entriesBytes, to: bytes },
      ];
      for (const [r, region] of regions.entries()) {
        for (const m of mutants(good, SEED + 7000 + r + sectorSize, 500 * SCALE, region)) {
          if (cases % 2 === 0) repairGptCrcs(m.bytes, sectorSize);
          const p = probe((o, l) => m.bytes.subarray(o, o + l), bytes, sectorSize);
          expectBoundedAndWellFormed(p, bytes, `gpt/${sectorSize}: ${m.description}`);
          // Every 100th against wipefs on a loop device of the same sector size.
          if (cases % 100 === 0) {
            fs.writeFileSync(file, m.bytes);
            const listed = onLoop(file, (device) => wipefsList(device), sectorSize);
            if (JSON.stringify(p.signatures.map(asListed)) !== JSON.stringify(listed)) disagreements.push(`gpt/${sectorSize}: ${m.description}: wipefs ${JSON.stringify(listed)}, findSignatures ${JSON.stringify(p.signatures)}`);
            compared++;
          }
          cases++;
        }
      }
    }
    expect(cases).toBe(2000 * SCALE);
    expect(compared).toBe(20 * SCALE);
    expect(disagreements).toEqual([]);
  });

  it('areas of every small size, and reads that come back short, end cleanly', () => {
    const image = Buffer.alloc(256 * 1024, 0);
    // Magics everywhere a prober looks first, so that every check runs.
    for (const b of built) {
      const fd = fs.openSync(b.file, 'r');
      fs.readSync(fd, image, 0, 4096, 0);
      fs.closeSync(fd);
      for (const bytes of [0, 1, 511, 512, 1023, 1024, 1025, 4096, 8191, 8192, 40959, 40960, 65536, 65537, 131072]) {
        const p = probe((o, l) => image.subarray(o, Math.min(o + l, bytes)), bytes);
        expectBoundedAndWellFormed(p, bytes, `${b.fixture.name} head in ${bytes} bytes`);
        const short = probe((o, l) => image.subarray(o, o + Math.floor(l / 2)), bytes);
        expectBoundedAndWellFormed(short, bytes, `${b.fixture.name} head in ${bytes} bytes, short reads`);
      }
    }
  });
});

describe('findSignatures agrees with wipefs on corrupted images', () => {
  it('lists what wipefs -n lists, corruption by corruption', () => {
    let cases = 0;
    const disagreements: string[] = [];
    for (const [index, b] of built.entries()) {
      const copy = path.join(dir, `${b.fixture.name}.mutant`);
      copySparse(b.file, copy);
      const fd = fs.openSync(copy, 'r+');
      try {
        const regions = regionsOf(b.bytes, b.good);
        for (const [r, region] of regions.entries()) {
          const original = Buffer.alloc(region.to - region.from);
          fs.readSync(fd, original, 0, original.length, region.from);
          for (const m of mutants(original, SEED + 50_000 + index * 100 + r, Math.ceil((12 * SCALE) / regions.length) + 2)) {
            fs.writeSync(fd, m.bytes, 0, m.bytes.length, region.from);
            const listed = wipefsList(copy);
            const found = signaturesOf(copy).map(asListed);
            // Types findSignatures does not know are not compared (the README lists them).
            const known = listed.filter((s) => SIGNATURE_TYPES.includes(s.type));
            if (JSON.stringify(found) !== JSON.stringify(known)) disagreements.push(`${b.fixture.name} at ${region.from}: ${m.description}: wipefs ${JSON.stringify(listed)}, findSignatures ${JSON.stringify(found)}`);
            fs.writeSync(fd, original, 0, original.length, region.from);
            cases++;
          }
        }
      } finally {
        fs.closeSync(fd);
        fs.rmSync(copy);
      }
    }
    expect(disagreements).toEqual([]);
    expect(cases).toBeGreaterThan(300);
  });
});
