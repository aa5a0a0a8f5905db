/**
 * copyExtents with extents out of offset order (fsmaker writes the rootfs before the boot pieces):
 * a file takes them and ends at the furthest byte, not the last one delivered; anything that needs
 * the bytes in order (digests, gzip) is refused before a byte is written.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Extent } from '../src/extent/extent.js';
import { copyExtents } from '../src/sparsecopy/copy.js';
import { patternBytes, tempLeftovers, useTempDir } from './helpers.js';

let dir = '';
useTempDir('sc-extents-', (d) => (dir = d));

const tail = patternBytes(300_000, 5);
const head = patternBytes(70_000, 6);
const LENGTH = 1_000_000;
// [700000, 1000000) data, then [0, 70000) data, [70000, 700000) a hole: the whole range once.
async function* outOfOrder(): AsyncGenerator<Extent> {
  yield { offset: 700_000, length: tail.length, data: tail };
  yield { offset: 0, length: head.length, data: head };
  yield { offset: 70_000, length: 630_000 };
}

describe('copyExtents, extents in any order', () => {
  it('writes them into a file, whose length is the furthest byte', async () => {
    const out = path.join(dir, 'any.img');
    const s = await copyExtents({ name: 'test', length: LENGTH, extents: outOfOrder(), anyOrder: true }, { destination: out });
    const expected = Buffer.alloc(LENGTH);
    head.copy(expected, 0);
    tail.copy(expected, 700_000);
    expect(fs.readFileSync(out).equals(expected)).toBe(true);
    expect(s.total).toBe(LENGTH);
    // v0.10's counters take whole 512-byte blocks: the blocks the data touches, up to one more
    // at each edge where the pieces meet out of order (a block is judged per ordered part there).
    const dataBlocks = (start: number, end: number) => Math.ceil(end / 512) * 512 - Math.floor(start / 512) * 512;
    expect(s.real).toBeGreaterThanOrEqual(head.length + tail.length);
    expect(s.real).toBeLessThanOrEqual(dataBlocks(0, head.length) + dataBlocks(700_000, LENGTH));
    expect(s.real + s.sparse).toBe(LENGTH);
  });

  it('refuses them when the bytes must come in order (digests, gzip), creating nothing', async () => {
    for (const [name, options] of [
      ['md5.img', { digests: ['md5' as const] }],
      ['out.img.gz', { gzipLevel: 6 }],
    ] as const) {
      const out = path.join(dir, name);
      await expect(copyExtents({ name: 'test', length: LENGTH, extents: outOfOrder(), anyOrder: true }, { destination: out, ...options })).rejects.toThrow(/out of order/);
      expect(fs.existsSync(out)).toBe(false);
    }
    expect(tempLeftovers(dir)).toEqual([]);
  });
});
