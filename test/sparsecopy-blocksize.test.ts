/**
 * -b is the zero-detection granularity and the unit of bare sizes, never a buffer size: any -b
 * that parses works in bounded memory (-b 4G, 8G, 1T, 4P; -b 1G and 2G from a pipe), and a block
 * larger than a read chunk still means what it says: a block holding any data is written whole, an
 * all-zero block is a hole.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Extent } from '../src/extent/extent.js';
import { WholeBlocks } from '../src/extent/whole-blocks.js';
import { SPARSECOPY, allocatedBytes, parseSummary, patternBytes, prng, useTempDir, writeSparseFile } from './helpers.js';
import { runHostile } from './hostile.js';

const KiB = 1024;
const MiB = 1 << 20;
let dir = '';
useTempDir('sc-bs-', (d) => (dir = d));
let n = 0;
const fresh = (name: string): string => path.join(dir, `${name}-${++n}`);

describe('WholeBlocks: zero detection for blocks larger than the pieces they arrive in', () => {
  type Run = Extent & { sourceHole?: boolean };
  /** Runs of random lengths: data, zeros found in data, holes of the source; covering [0, total). */
  function randomRuns(seed: number): { runs: Run[]; bytes: Buffer } {
    const random = prng(seed);
    const runs: Run[] = [];
    let offset = 0;
    const count = 1 + Math.floor(random() * 12);
    for (let i = 0; i < count; i++) {
      const length = 1 + Math.floor(random() * 5000);
      const kind = random();
      if (kind < 0.4) runs.push({ offset, length, data: patternBytes(length, seed * 100 + i) });
      else runs.push({ offset, length, sourceHole: kind > 0.8 });
      offset += length;
    }
    const bytes = Buffer.alloc(offset);
    for (const r of runs) r.data?.copy(bytes, r.offset);
    return { runs, bytes };
  }

  it('2000 random run lists: the same bytes; the part of a block in one data region is all data or all hole', () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const { runs, bytes } = randomRuns(seed);
      const blockSize = [512, 1000, 4096, 7777][seed % 4]!;
      const joiner = new WholeBlocks(blockSize);
      const out = [...runs.flatMap((r) => (r.sourceHole ? joiner.sourceHole(r) : joiner.push(r))), ...joiner.flush()];
      let at = 0;
      const isData = new Uint8Array(bytes.length);
      for (const e of out) {
        expect(e.offset, `seed ${seed}: contiguous`).toBe(at);
        if (e.data) {
          expect(e.data.equals(bytes.subarray(e.offset, e.offset + e.length)), `seed ${seed}: bytes at ${e.offset}`).toBe(true);
          isData.fill(1, e.offset, e.offset + e.length);
        } else {
          expect(bytes.subarray(e.offset, e.offset + e.length).every((b) => b === 0), `seed ${seed}: a hole over data at ${e.offset}`).toBe(true);
        }
        at += e.length;
      }
      expect(at).toBe(bytes.length);
      // Data regions: maximal runs between holes of the source, which stay holes.
      const regions: [number, number][] = [];
      for (const r of runs) {
        if (r.sourceHole) {
          expect(isData.subarray(r.offset, r.offset + r.length).every((b) => b === 0), `seed ${seed}: source hole at ${r.offset}`).toBe(true);
          continue;
        }
        const last = regions.at(-1);
        if (last && last[1] === r.offset) last[1] += r.length;
        else regions.push([r.offset, r.offset + r.length]);
      }
      for (const [start, end] of regions) {
        for (let a = start; a < end; ) {
          const b = Math.min(end, (Math.floor(a / blockSize) + 1) * blockSize);
          const hasData = runs.some((r) => r.data && r.offset < b && r.offset + r.length > a);
          expect(isData.subarray(a, b).every((x) => x === (hasData ? 1 : 0)), `seed ${seed}: block piece ${a}..${b} (data: ${hasData})`).toBe(true);
          a = b;
        }
      }
    }
  });
});

describe("WholeBlocks: v0.10's counters whatever pieces the blocks arrive in", () => {
  /**
   * A source of random data, zero runs and holes, cut into pieces of random lengths (as a gzip
   * stream or a pipe cuts it), with random hole units and seeks. v0.10's counters, block by block
   * from offset 0 with holes read as zeros, must come out of what the joiner hands out: data counts
   * as real but for its `zeroBlockBytes`, zeros as sparse but for `inDataBlock`.
   */
  function randomSource(random: () => number, seed: number): { bytes: Buffer; holes: [number, number][] } {
    const parts: Buffer[] = [];
    const holes: [number, number][] = [];
    let offset = 0;
    for (let i = 1 + Math.floor(random() * 10); i > 0; i--) {
      const length = 1 + Math.floor(random() * (random() < 0.3 ? 20_000 : 3000));
      const kind = random();
      if (kind < 0.35) parts.push(patternBytes(length, seed * 31 + i));
      else {
        if (kind > 0.75) holes.push([offset, offset + length]);
        parts.push(Buffer.alloc(length));
      }
      offset += length;
    }
    return { bytes: Buffer.concat(parts), holes };
  }

  it("3000 seeded sources: the same bytes, and v0.10's real and sparse, at -b 1B to 9000B", () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const random = prng(seed);
      const { bytes, holes } = randomSource(random, seed);
      const blockSize = [1, 512, 1000, 4096, 9000][seed % 5]!;
      const holeUnit = random() < 0.5 ? 4096 : 0;
      const shift = random() < 0.5 ? 0 : Math.floor(random() * 5000);
      const joiner = new WholeBlocks(blockSize);
      const out: Extent[] = [];
      let releases = 0;
      let released = 0;
      // Pieces of the source: holes whole, data regions cut at random lengths.
      for (let at = 0; at < bytes.length; ) {
        const hole = holes.find(([start]) => start === at);
        if (hole) {
          out.push(...joiner.sourceHole({ offset: at, length: hole[1] - at }));
          at = hole[1];
          continue;
        }
        const nextHole = holes.find(([start]) => start > at)?.[0] ?? bytes.length;
        const end = Math.min(nextHole, at + 1 + Math.floor(random() * 6000));
        releases++;
        out.push(...joiner.data({ offset: at, length: end - at, data: bytes.subarray(at, end), release: () => released++ }, { holeUnit, destinationShift: shift }));
        at = end;
      }
      out.push(...joiner.flush());
      const label = `seed ${seed}, -b ${blockSize}B, unit ${holeUnit}, shift ${shift}`;
      let at = 0;
      let real = 0;
      for (const e of out) {
        expect(e.offset, `${label}: contiguous`).toBe(at);
        if (e.data) {
          expect(e.data.equals(bytes.subarray(e.offset, e.offset + e.length)), `${label}: bytes at ${e.offset}`).toBe(true);
          real += e.length - (e.zeroBlockBytes ?? 0);
          e.release?.();
        } else {
          expect(bytes.subarray(e.offset, e.offset + e.length).every((b) => b === 0), `${label}: a hole over data at ${e.offset}`).toBe(true);
          if (e.inDataBlock) real += e.length;
          // Zero blocks are handed out whole (the sink judges the destination under each), unless
          // the destination is known zero (a hole unit): nothing is judged there.
          else if (holeUnit === 0) expect(e.offset % blockSize === 0 && ((e.offset + e.length) % blockSize === 0 || e.offset + e.length === bytes.length), `${label}: ${e.offset}+${e.length}`).toBe(true);
        }
        at += e.length;
      }
      expect(at, label).toBe(bytes.length);
      let v010Real = 0;
      for (let a = 0; a < bytes.length; a += blockSize) {
        const b = Math.min(bytes.length, a + blockSize);
        if (!bytes.subarray(a, b).every((x) => x === 0)) v010Real += b - a;
      }
      expect(real, label).toBe(v010Real);
      expect(released, `${label}: each piece released once`).toBe(releases);
    }
  });
});

describe('sparsecopy -b above the read chunk (2 MiB)', () => {
  it('-b 4M: the 4 MiB block holding one byte is written whole, the all-zero block after it is a hole', () => {
    // Allocated zeros (read and scanned), not holes of the source: those stay holes at any -b.
    const bytes = Buffer.alloc(8 * MiB);
    bytes[MiB] = 1;
    const src = fresh('src');
    fs.writeFileSync(src, bytes);
    const dst = fresh('dst');
    const r = spawnSync(process.execPath, [SPARSECOPY, '-b', '4M', src, dst], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(parseSummary(r.stderr)).toEqual({ total: 8 * MiB, real: 4 * MiB, sparse: 4 * MiB, nonzerodest: 0 });
    expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
    expect(allocatedBytes(dst)).toBeGreaterThanOrEqual(4 * MiB);
    expect(allocatedBytes(dst)).toBeLessThan(5 * MiB);
  });

  for (const size of ['4G', '8G', '1T', '4P']) {
    it(`-b ${size}: copies (one block: written whole), bounded memory, also -c and as the unit of -f`, () => {
      const content = Buffer.alloc(3 * MiB);
      patternBytes(5000, 3).copy(content, 100 * KiB);
      const src = fresh('src');
      fs.writeFileSync(src, content); // allocated: one data region of 3 MiB
      const dst = fresh('dst');
      const r = runHostile('sparsecopy', ['-c', '-b', size, src, dst], { codes: [0] });
      expect(parseSummary(r.stderr).real).toBe(3 * MiB);
      expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
      // As a unit: -f 1 is one block. 4 PiB is past what ext4 files can be: refused before
      // anything is written (15), not a crash.
      const sized = fresh('dst');
      const bytes = Number(BigInt(size.slice(0, -1)) << BigInt({ G: 30, T: 40, P: 50 }[size.at(-1) as 'G' | 'T' | 'P']));
      const f = runHostile('sparsecopy', ['-q', '-b', size, '-f', '1', '/dev/null', sized], { codes: [0, 15] });
      if (f.status === 0) expect(fs.statSync(sized).size).toBe(bytes);
      else expect(f.stderr).toContain(`a file of ${bytes} bytes is larger than its filesystem allows`);
      expect(size === '4P' ? f.status === 15 && !fs.existsSync(sized) : f.status === 0).toBe(true);
    });
  }

  for (const size of ['1G', '2G']) {
    it(`-b ${size} from a pipe: 300 MiB through, bounded memory`, () => {
      const dst = fresh('dst');
      const r = runHostile('sparsecopy', ['-b', size, '-', dst], { codes: [0], input: Buffer.alloc(300 * MiB, 7), maxRssBytes: 200e6 });
      expect(parseSummary(r.stderr).total).toBe(300 * MiB);
      expect(fs.statSync(dst).size).toBe(300 * MiB);
      fs.rmSync(dst);
    });
  }

  it('-b 1G overlaying a file: zeros compared in bounded memory, the result exact', () => {
    const old = patternBytes(6 * MiB, 4);
    const dst = fresh('dst');
    fs.writeFileSync(dst, old);
    const src = fresh('src');
    writeSparseFile(src, 6 * MiB, [{ offset: 5 * MiB, data: Buffer.from('tail') }]);
    runHostile('sparsecopy', ['-q', '-o', '-b', '1G', src, dst], { codes: [0], maxRssBytes: 200e6 });
    expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
  });
});
