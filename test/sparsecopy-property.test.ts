/**
 * Property test of the library `sparseCopy` against an in-memory model of the documented
 * semantics, over random extent maps, block sizes, seeks, limits, overlays and chunk sizes.
 *
 * The model:
 *  - The source is cut into pieces at every --blocksize boundary (aligned to source offsets) and
 *    at every boundary between the source's holes and data (holes are found with SEEK_DATA and
 *    never read; on this filesystem they are the 4 KiB blocks no fixture write touched). A piece
 *    is "zero" when it is a hole or all its bytes are zero; zero pieces are skipped.
 *  - A skipped piece landing within the old destination length (overlay only): without --nocheck
 *    it is checked, and if the old bytes there are not all zero it is written as zeros; with
 *    --nocheck the old bytes stay. Beyond the old length it reads as zero. bytesChecked counts
 *    every checked byte, and the rest of the old bytes under the source's short last block when
 *    that block is all zero (v0.10 judged the destination under a whole block).
 *  - Final length: --finalsize, else max(seek + copied, old length).
 *  - total = copied = min(source size, --max); real, sparse and nonzerodest are v0.10's: the source
 *    is cut at every --blocksize boundary only (holes read as zeros), the last block short; a block
 *    with data is real; an all-zero block is sparse, unless (without --nocheck) it lands below the
 *    old length and the old bytes under a whole block from its start (up to the old length) are
 *    not all zero: then its length counts in real and nonzerodest.
 *  - bytesWritten (physical) is at least the non-zero pieces, and at most those, the zero pieces
 *    beyond the old end (short zero runs written along with their neighbours) and the zero pieces
 *    below it (written over old data).
 *  - -e with --max on a larger source fails with MORE_THAN_MAX; -c on a non-zero first block at
 *    the seek position fails with FIRST_BLOCK_NOT_ZERO; either way the destination is untouched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ToolError } from '../src/errors.js';
import { WriterThread, prestartWriterThread } from '../src/io/writer-thread.js';
import { type SparseCopyOptions, sparseCopy } from '../src/sparsecopy/copy.js';
import { type Piece, makeTempDir, prng, tempLeftovers, writeSparseFile } from './helpers.js';

const SEED = 0x5eed_2024;
const ITERATIONS = 150;
const FS_BLOCK = 4096;

type Kind = 'data' | 'hole' | 'zero' | 'sprinkle';
interface Fixture {
  bytes: Buffer;
  pieces: Piece[];
}

type Rnd = () => number;
const int = (rnd: Rnd, n: number) => Math.floor(rnd() * n);
const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[int(rnd, xs.length)]!;

function segmentLength(rnd: Rnd): number {
  const r = rnd();
  if (r < 0.25) return 1 + int(rnd, 700);
  if (r < 0.5) return FS_BLOCK * (1 + int(rnd, 8));
  if (r < 0.7) return Math.max(1, FS_BLOCK * (1 + int(rnd, 8)) + int(rnd, 1024) - 512);
  if (r < 0.88) return 1 + int(rnd, 20_000);
  return 65_536 * (1 + int(rnd, 2)) + int(rnd, 3) * 512;
}

/** Random bytes, some of them zero. */
function randomBytes(rnd: Rnd, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = rnd() < 0.05 ? 0 : 1 + int(rnd, 255);
  return b;
}

/** A random file: segments of data, holes, written zeros and zeros with a few non-zero bytes. */
function randomFixture(rnd: Rnd, minSegments: number, maxSegments: number, maxBytes: number, kinds: readonly Kind[]): Fixture {
  const count = minSegments + int(rnd, maxSegments - minSegments + 1);
  const chunks: Buffer[] = [];
  const pieces: Piece[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const length = Math.min(segmentLength(rnd), maxBytes - offset);
    if (length <= 0) break;
    const kind = pick(rnd, kinds);
    let b: Buffer;
    if (kind === 'data') b = randomBytes(rnd, length);
    else {
      b = Buffer.alloc(length);
      if (kind === 'sprinkle') for (let k = 1 + int(rnd, 3); k > 0; k--) b[int(rnd, length)] = 1 + int(rnd, 255);
    }
    if (kind !== 'hole') pieces.push({ offset, data: b });
    chunks.push(b);
    offset += length;
  }
  return { bytes: Buffer.concat(chunks), pieces };
}

/** Data regions [start, end) of a fixture as SEEK_DATA sees them: 4 KiB blocks touched by a write. */
function dataRegions(f: Fixture, limit: number): [number, number][] {
  const blocks = Math.ceil(f.bytes.length / FS_BLOCK);
  const allocated = new Array<boolean>(blocks).fill(false);
  for (const p of f.pieces) {
    if (p.data.length === 0) continue;
    const first = Math.floor(p.offset / FS_BLOCK);
    const last = Math.floor((p.offset + p.data.length - 1) / FS_BLOCK);
    for (let b = first; b <= last; b++) allocated[b] = true;
  }
  const regions: [number, number][] = [];
  for (let b = 0; b < blocks; b++) {
    if (!allocated[b]) continue;
    const start = b * FS_BLOCK;
    while (b + 1 < blocks && allocated[b + 1]) b++;
    const end = Math.min((b + 1) * FS_BLOCK, f.bytes.length, limit);
    if (start < end) regions.push([start, end]);
  }
  return regions;
}

const isZero = (b: Buffer, start: number, end: number) => {
  for (let i = start; i < end; i++) if (b[i] !== 0) return false;
  return true;
};

interface Case {
  iteration: number;
  sourceSize: number;
  oldSize: number | null;
  overlay: boolean;
  noCheck: boolean;
  blockSize: number;
  seekBytes: number;
  maxBytes: number | undefined;
  errorRemainder: boolean;
  finalSize: number | undefined;
  checkFirstBlock: boolean;
  chunkBytes: number | undefined;
  useHoleMap: boolean;
}

interface Expected {
  error?: ('MORE_THAN_MAX' | 'FIRST_BLOCK_NOT_ZERO')[];
  bytes?: Buffer;
  total?: number;
  real?: number;
  nonzerodest?: number;
  bytesChecked?: number;
  bytesRead?: number;
  writtenMin?: number;
  writtenMax?: number;
}

function model(c: Case, src: Fixture, old: Buffer | null): Expected {
  const N = src.bytes.length;
  const B = c.blockSize;
  const errors: Expected['error'] = [];
  if (c.errorRemainder && c.maxBytes !== undefined && N > c.maxBytes) errors.push('MORE_THAN_MAX');
  const base = c.overlay && old ? old : Buffer.alloc(0);
  const L = base.length;
  if (c.checkFirstBlock && !isZero(base, c.seekBytes, Math.min(c.seekBytes + B, L))) errors.push('FIRST_BLOCK_NOT_ZERO');
  if (errors.length > 0) return { error: errors };

  const copied = Math.min(N, c.maxBytes ?? Infinity);
  const end = c.seekBytes + copied;
  const finalLength = c.finalSize ?? Math.max(end, L);
  const out = Buffer.alloc(Math.max(finalLength, end, L));
  base.copy(out, 0);

  const regions = c.useHoleMap ? dataRegions(src, copied) : copied > 0 ? ([[0, copied]] as [number, number][]) : [];
  // Every region boundary, hole or data, in order.
  const spans: { start: number; end: number; hole: boolean }[] = [];
  let pos = 0;
  for (const [s, e] of regions) {
    if (s > pos) spans.push({ start: pos, end: s, hole: true });
    spans.push({ start: s, end: e, hole: false });
    pos = e;
  }
  if (pos < copied) spans.push({ start: pos, end: copied, hole: true });

  let checked = 0;
  let mustWrite = 0;
  let mayWrite = 0;
  let overOld = 0;
  for (const span of spans) {
    for (let a = span.start; a < span.end; ) {
      const b = Math.min(span.end, (Math.floor(a / B) + 1) * B);
      const zero = span.hole || isZero(src.bytes, a, b);
      const d0 = c.seekBytes + a;
      const d1 = c.seekBytes + b;
      if (!zero) {
        src.bytes.copy(out, d0, a, b);
        mustWrite += b - a;
      } else {
        const oldEnd = Math.min(d1, L);
        if (oldEnd > d0 && !c.noCheck) {
          checked += oldEnd - d0;
          overOld += oldEnd - d0;
          out.fill(0, d0, oldEnd);
        }
        if (!span.hole && d0 >= L) mayWrite += b - a;
      }
      a = b;
    }
  }
  // v0.10's counters, block by block from offset 0 (sparsecopy.c's loop of read(blocksize)).
  let real = 0;
  let nonzerodest = 0;
  for (let a = 0; a < copied; a += B) {
    const b = Math.min(copied, a + B);
    const d0 = c.seekBytes + a;
    if (!isZero(src.bytes, a, b)) real += b - a;
    else if (!c.noCheck && d0 < L && !isZero(base, d0, Math.min(d0 + B, L))) {
      real += b - a;
      nonzerodest += b - a;
    }
    // The check of a short last zero block reads the old bytes under the rest of the block too.
    if (b === copied && b - a < B && isZero(src.bytes, a, b) && !c.noCheck) checked += Math.max(0, Math.min(d0 + B, L) - Math.max(c.seekBytes + b, d0));
  }
  return {
    bytes: out.subarray(0, finalLength),
    total: copied,
    real,
    nonzerodest,
    bytesChecked: checked,
    bytesRead: regions.reduce((n, [s, e]) => n + (e - s), 0),
    writtenMin: mustWrite,
    writtenMax: mustWrite + mayWrite + overOld,
  };
}

function randomCase(rnd: Rnd, iteration: number, sourceSize: number, oldSize: number | null): Case {
  const blockSize = pick(rnd, [512, 4096, 65_536]);
  const r = rnd();
  const seekBytes = r < 0.45 ? 0 : r < 0.75 ? int(rnd, 40_000) : 512 * int(rnd, 120);
  const maxBytes = rnd() < 0.5 ? undefined : rnd() < 0.5 ? int(rnd, sourceSize + 4096) : 512 * int(rnd, Math.ceil(sourceSize / 512) + 4);
  const overlay = oldSize !== null && rnd() < 0.75;
  return {
    iteration,
    sourceSize,
    oldSize,
    overlay,
    noCheck: rnd() < 0.3,
    blockSize,
    seekBytes,
    maxBytes,
    errorRemainder: maxBytes !== undefined && rnd() < 0.3,
    finalSize: rnd() < 0.15 ? int(rnd, seekBytes + sourceSize + (oldSize ?? 0) + 10_000) : undefined,
    checkFirstBlock: rnd() < 0.15,
    chunkBytes: rnd() < 0.5 ? undefined : pick(rnd, [4096, 8192, 12_288]),
    useHoleMap: rnd() >= 0.15,
  };
}

function firstDifference(a: Buffer, b: Buffer): string {
  if (a.length !== b.length) return `length ${a.length} != expected ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `byte ${i}: ${a[i]} != expected ${b[i]}`;
  return 'equal';
}

describe('sparseCopy matches the model on random inputs', () => {
  let dir: string;
  beforeAll(() => {
    dir = makeTempDir('sc-prop-');
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`${ITERATIONS} random cases (seed ${SEED.toString(16)})`, async () => {
    const rnd = prng(SEED);
    const kinds = { ok: 0, overlay: 0, noCheck: 0, nonzerodest: 0, refused: 0 };
    const posts = vi.spyOn(WriterThread.prototype, 'post');
    for (let iteration = 0; iteration < ITERATIONS; iteration++) {
      const src = randomFixture(rnd, 0, 8, 400 * 1024, ['data', 'hole', 'hole', 'zero', 'sprinkle']);
      const old = rnd() < 0.8 ? randomFixture(rnd, 2, 6, 300 * 1024, ['data', 'data', 'hole', 'zero', 'sprinkle']) : null;
      const c = randomCase(rnd, iteration, src.bytes.length, old ? old.bytes.length : null);
      // Every other case writes through a writer thread that is already running (a copy this
      // small would otherwise finish before a new one starts, writing on the main thread).
      const writerThread = iteration % 2 === 1;
      if (writerThread) await prestartWriterThread();
      const label = JSON.stringify({ ...c, writerThread });

      const srcPath = path.join(dir, 'src');
      const dstPath = path.join(dir, 'dst');
      fs.rmSync(dstPath, { force: true });
      writeSparseFile(srcPath, src.bytes.length, src.pieces);
      if (old) writeSparseFile(dstPath, old.bytes.length, old.pieces);

      const expected = model(c, src, old ? old.bytes : null);
      const options: SparseCopyOptions = {
        source: srcPath,
        destination: dstPath,
        overlay: c.overlay,
        zeroPolicy: c.noCheck ? 'skip' : 'compare',
        blockSize: c.blockSize,
        seekBytes: c.seekBytes,
        maxBytes: c.maxBytes,
        errorRemainder: c.errorRemainder,
        finalSize: c.finalSize,
        checkFirstBlock: c.checkFirstBlock,
        chunkBytes: c.chunkBytes,
        useHoleMap: c.useHoleMap,
        writerThread,
      };

      if (expected.error) {
        const err = await sparseCopy(options).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err, label).toBeInstanceOf(ToolError);
        expect(expected.error, label).toContain((err as ToolError).code);
        if (old) expect(fs.readFileSync(dstPath).equals(old.bytes), label).toBe(true);
        else expect(fs.existsSync(dstPath), label).toBe(false);
        expect(tempLeftovers(dir), label).toEqual([]);
        kinds.refused++;
        continue;
      }

      const s = await sparseCopy(options);
      const got = fs.readFileSync(dstPath);
      expect(firstDifference(got, expected.bytes!), label).toBe('equal');
      expect(s.total, label).toBe(expected.total);
      expect(s.real + s.sparse, label).toBe(s.total);
      expect(s.real, label).toBe(expected.real);
      expect(s.nonzerodest, label).toBe(expected.nonzerodest);
      expect(s.bytesChecked, label).toBe(expected.bytesChecked);
      expect(s.bytesRead, label).toBe(expected.bytesRead);
      expect(s.bytesWritten, label).toBeGreaterThanOrEqual(expected.writtenMin!);
      expect(s.bytesWritten, label).toBeLessThanOrEqual(expected.writtenMax!);
      expect(s.zeroBlocksWritten, label).toBeLessThanOrEqual(s.sparse);
      expect(s.bytesSkipped, label).toBe(s.sparse);
      expect(tempLeftovers(dir), label).toEqual([]);
      kinds.ok++;
      if (c.overlay && old) kinds.overlay++;
      if (c.overlay && c.noCheck) kinds.noCheck++;
      if (s.nonzerodest > 0) kinds.nonzerodest++;
    }
    // The generator must actually reach the interesting cases.
    expect(kinds.ok).toBeGreaterThan(80);
    expect(kinds.overlay).toBeGreaterThan(30);
    expect(kinds.noCheck).toBeGreaterThan(5);
    expect(kinds.nonzerodest).toBeGreaterThan(20);
    expect(kinds.refused).toBeGreaterThan(3);
    expect(posts.mock.calls.length).toBeGreaterThan(50); // the writer thread really wrote
    posts.mockRestore();
  });
});
