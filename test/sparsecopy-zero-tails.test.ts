/**
 * Zeros after the last data, and zeros that run on past the end of a read chunk, stay holes where
 * they can: the destination's allocation is cp --sparse=always's, from a file and from a pipe,
 * whatever the summary counts. (Zero blocks that share a filesystem block with data are still
 * written with it: that costs no space.)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SPARSECOPY, allocatedBytes, parseSummary, patternBytes, useTempDir, writeSparseFile } from './helpers.js';

let dir = '';
useTempDir('sc-tails-', (d) => (dir = d));
let n = 0;
const fresh = (name: string): string => path.join(dir, `${name}-${++n}`);
const KiB = 1024;
const MiB = 1 << 20;
const FS_BLOCK = 4096;

/** Runs a shell pipeline (with $SRC, $DST, $SPARSECOPY set); fails the test on a non-zero exit. */
function sh(script: string, env: Record<string, string>): string {
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, SPARSECOPY, ...env } });
  expect(r.status, `${script}: ${r.stderr}`).toBe(0);
  return r.stderr;
}

/** The allocation of a file that holds exactly its non-zero filesystem blocks (a fresh file; no metadata blocks for so few extents). */
function minimalAllocation(bytes: Buffer, shift = 0): number {
  const blocks = new Set<number>();
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) blocks.add(Math.floor((i + shift) / FS_BLOCK));
  return blocks.size * FS_BLOCK;
}

interface Source {
  name: string;
  size: number;
  pieces: { offset: number; data: Buffer }[];
}

const SOURCES: Source[] = [
  { name: '4096 data + 409 zeros (a 4505-byte file)', size: 4505, pieces: [{ offset: 0, data: patternBytes(4096, 1) }] },
  { name: '4000 data + 5000 zeros', size: 9000, pieces: [{ offset: 0, data: patternBytes(4000, 2) }] },
  { name: 'data, then a 1 MiB hole to the end', size: 4096 + MiB, pieces: [{ offset: 0, data: patternBytes(4096, 3) }] },
  { name: 'a byte, then 100 zeros', size: 101, pieces: [{ offset: 0, data: patternBytes(1, 4) }] },
  { name: 'data ending mid-block, zeros to the end', size: 3 * FS_BLOCK + 100, pieces: [{ offset: 0, data: patternBytes(FS_BLOCK + 7, 5) }] },
];

describe('zero tails match cp --sparse=always', () => {
  for (const source of SOURCES) {
    for (const [how, ours, theirs] of [
      ['file', '"$SPARSECOPY" -q "$SRC" "$DST"', 'cp --sparse=always "$SRC" "$DST"'],
      ['pipe', 'cat "$SRC" | "$SPARSECOPY" -q - "$DST"', 'cat "$SRC" | cp --sparse=always /dev/stdin "$DST"'],
    ] as const) {
      it(`${source.name}, from a ${how}`, () => {
        const src = fresh('src');
        writeSparseFile(src, source.size, source.pieces);
        const bytes = fs.readFileSync(src);
        const mine = fresh('ours');
        const cps = fresh('cp');
        sh(ours, { SRC: src, DST: mine });
        sh(theirs, { SRC: src, DST: cps });
        expect(fs.readFileSync(mine).equals(bytes), how).toBe(true);
        expect(fs.readFileSync(cps).equals(bytes), how).toBe(true);
        expect(allocatedBytes(mine), `${how}: allocated like cp's`).toBe(allocatedBytes(cps));
        expect(allocatedBytes(mine), `${how}: only the blocks with data`).toBe(minimalAllocation(bytes));
      });
    }
  }

  it('the summary still counts as v0.10: the tail is sparse', () => {
    const src = fresh('src');
    writeSparseFile(src, 4505, [{ offset: 0, data: patternBytes(4096, 1) }]);
    const r = spawnSync(process.execPath, [SPARSECOPY, src, fresh('dst')], { encoding: 'utf8' });
    expect(parseSummary(r.stderr)).toEqual({ total: 4505, real: 4096, sparse: 409, nonzerodest: 0 });
  });
});

describe('zeros at the end of a read chunk that go on into the next one', () => {
  // With --seek 1000B the destination's 4 KiB blocks do not line up with the 2 MiB read chunks:
  // the zeros before a chunk's end share no block with the data before them past the first one,
  // and must not be written with it (they would allocate a block the data never touches).
  for (const [how, script] of [
    ['file', '"$SPARSECOPY" -q -s 1000B "$SRC" "$DST"'],
    ['pipe', 'cat "$SRC" | "$SPARSECOPY" -q -s 1000B - "$DST"'],
  ] as const) {
    it(`from a ${how}: the destination holds only the blocks with data`, () => {
      const src = fresh('src');
      // A file is read in chunks ending at multiples of 2 MiB, a pipe after the 64 KiB first read
      // that looks for a gzip header: allocated zeros (read and scanned, not holes of the source)
      // from 3000 bytes before each of those ends to 16 KiB after it; data around them.
      const size = 2 * MiB + 256 * KiB;
      const bytes = patternBytes(size, 6);
      for (const chunkEnd of [2 * MiB, 2 * MiB + 64 * KiB]) bytes.fill(0, chunkEnd - 3000, chunkEnd + 16 * KiB);
      fs.writeFileSync(src, bytes);
      const dst = fresh('dst');
      sh(script, { SRC: src, DST: dst });
      const got = fs.readFileSync(dst);
      expect(got.subarray(0, 1000).every((b) => b === 0)).toBe(true);
      expect(got.subarray(1000).equals(bytes)).toBe(true);
      expect(allocatedBytes(dst)).toBe(minimalAllocation(bytes, 1000));
    });
  }
});
