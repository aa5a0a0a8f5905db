/** The window and pad transforms against a byte-level model, on random extent streams. */
import { describe, expect, it } from 'vitest';
import type { Extent } from '../src/extent/extent.js';
import { padExtents, windowExtents } from '../src/extent/window.js';
import { patternBytes, prng } from './helpers.js';

/** A random extent stream over `size` bytes (data and holes), with release counting. */
function randomSource(seed: number, size: number): { extents: Extent[]; bytes: Buffer; released: () => number } {
  const random = prng(seed);
  const bytes = Buffer.alloc(size);
  const extents: Extent[] = [];
  let released = 0;
  for (let o = 0; o < size; ) {
    const length = Math.min(size - o, 1 + Math.floor(random() * 300));
    if (random() < 0.5) {
      const data = patternBytes(length, seed + o);
      data.copy(bytes, o);
      extents.push({ offset: o, length, data, release: () => released++ });
    } else extents.push({ offset: o, length });
    o += length;
  }
  return { extents, bytes, released: () => released };
}

async function collect(source: AsyncIterable<Extent>): Promise<{ bytes: Buffer; extents: Extent[] }> {
  const extents: Extent[] = [];
  for await (const e of source) extents.push(e);
  const size = extents.reduce((n, e) => Math.max(n, e.offset + e.length), 0);
  const bytes = Buffer.alloc(size);
  let expected = 0;
  for (const e of extents) {
    expect(e.offset).toBe(expected); // contiguous, in order
    expected = e.offset + e.length;
    if (e.data) {
      expect(e.data.length).toBe(e.length);
      e.data.copy(bytes, e.offset);
    }
    e.release?.();
  }
  return { bytes, extents };
}

async function* from(extents: Extent[]): AsyncGenerator<Extent> {
  yield* extents;
}

describe('windowExtents', () => {
  it('equals slicing the bytes, for random windows, and releases every data extent once', async () => {
    const random = prng(99);
    for (let round = 0; round < 300; round++) {
      const size = Math.floor(random() * 5000);
      const { extents, bytes, released } = randomSource(round + 1, size);
      const start = Math.floor(random() * (size + 10));
      const end = random() < 0.2 ? null : start + Math.floor(random() * (size + 10));
      let beyond = 0;
      const out = await collect(windowExtents(from(extents), { start, end, onBeyondEnd: () => beyond++ }));
      const want = bytes.subarray(Math.min(start, size), end === null ? size : Math.min(end, size));
      expect(out.bytes.equals(want)).toBe(true);
      expect(beyond).toBe(end !== null && size > end ? 1 : 0);
      const dataBefore = extents.filter((e) => e.data && e.offset + e.length <= (end ?? Infinity)).length;
      const straddling = extents.filter((e) => e.data && end !== null && e.offset < end && e.offset + e.length > end).length;
      expect(released()).toBe(dataBefore + straddling);
    }
  });
});

describe('padExtents', () => {
  it.each([
    [0, 4096, 0],
    [1, 4096, 4095],
    [4096, 4096, 0],
    [4097, 512, 511],
    [1000, 1, 0],
    [1000, 0, 0],
  ])('%i bytes padded to a multiple of %i adds %i zeros', async (size, multiple, added) => {
    const { extents, bytes } = randomSource(3, size);
    let reported = -1;
    const out = await collect(padExtents(from(extents), multiple, (n) => (reported = n)));
    expect(reported).toBe(added);
    expect(out.bytes.equals(Buffer.concat([bytes, Buffer.alloc(added)]))).toBe(true);
  });
});
