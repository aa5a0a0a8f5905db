/**
 * Android sparse images: what img2simg writes (RAW chunks, FILL chunks for uniform blocks)
 * reads back as simg2img expands it; hand-built images with CRC32 chunks, an image checksum, a
 * longer header and every kind of damage end in a SparseImageError with the offset, never a crash.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { crc32 } from '../src/codec/crc32.js';
import type { Extent } from '../src/extent/extent.js';
import { CHUNK_CRC32, CHUNK_DONT_CARE, CHUNK_FILL, CHUNK_RAW, SIMG_MAGIC, SparseImageError, sparseImageExtents } from '../src/format/android-sparse.js';
import { mutants } from './hostile.js';
import { patternBytes, useTempDir, writeSparseFile } from './helpers.js';

let dir = '';
useTempDir('simg-', (d) => (dir = d));

/** The input as extents of at most `piece` bytes (chunks split across extents on purpose). */
async function* bytesAsExtents(b: Buffer, piece = 4099): AsyncGenerator<Extent> {
  for (let o = 0; o < b.length; o += piece) yield { offset: o, length: Math.min(piece, b.length - o), data: b.subarray(o, o + piece) };
}

async function expand(b: Buffer, piece?: number): Promise<{ out: Buffer; holes: number }> {
  const parts: Buffer[] = [];
  let expected = 0;
  let holes = 0;
  for await (const e of sparseImageExtents(bytesAsExtents(b, piece))) {
    expect(e.offset).toBe(expected);
    expected += e.length;
    if (!e.data) holes += e.length;
    parts.push(e.data ? Buffer.from(e.data) : Buffer.alloc(e.length));
    e.release?.();
  }
  return { out: Buffer.concat(parts), holes };
}

/** A raw image with data, zero blocks, a repeated-word block and a hole. */
function rawImage(): { file: string; bytes: Buffer } {
  const file = path.join(dir, 'raw.img');
  const words = Buffer.alloc(8192);
  for (let i = 0; i < words.length; i += 4) words.writeUInt32LE(0xdeadbeef, i);
  writeSparseFile(file, 4 << 20, [
    { offset: 0, data: patternBytes(10_000) },
    { offset: 65536, data: words },
    { offset: 1 << 20, data: patternBytes(300_000, 2) },
    { offset: (4 << 20) - 4096, data: patternBytes(4096, 3) },
  ]);
  return { file, bytes: fs.readFileSync(file) };
}

describe('Android sparse images from img2simg', () => {
  it.each([['4096-byte blocks', []], ['1024-byte blocks', ['1024']]])('%s expand as simg2img does', async (_what, blockSize) => {
    const { file, bytes } = rawImage();
    const simg = path.join(dir, `out${blockSize.join('')}.simg`);
    execFileSync('img2simg', [file, simg, ...blockSize]);
    const { out, holes } = await expand(fs.readFileSync(simg));
    const oracle = path.join(dir, 'oracle.img');
    execFileSync('simg2img', [simg, oracle]);
    expect(out.equals(fs.readFileSync(oracle))).toBe(true);
    expect(out.equals(bytes)).toBe(true);
    expect(holes).toBeGreaterThan(3 << 20); // zero blocks and holes are not data
  });
});

/** Builds an image chunk by chunk. */
function simg(blockBytes: number, chunks: { type: number; blocks: number; data?: Buffer }[], options: { checksum?: number; headerBytes?: number; totalBlocks?: number } = {}): Buffer {
  const headerBytes = options.headerBytes ?? 28;
  const head = Buffer.alloc(headerBytes);
  head.writeUInt32LE(SIMG_MAGIC, 0);
  head.writeUInt16LE(1, 4);
  head.writeUInt16LE(headerBytes, 8);
  head.writeUInt16LE(12, 10);
  head.writeUInt32LE(blockBytes, 12);
  head.writeUInt32LE(options.totalBlocks ?? chunks.filter((c) => c.type !== CHUNK_CRC32).reduce((n, c) => n + c.blocks, 0), 16);
  head.writeUInt32LE(chunks.length, 20);
  head.writeUInt32LE((options.checksum ?? 0) >>> 0, 24);
  const parts = [head];
  for (const c of chunks) {
    const h = Buffer.alloc(12);
    h.writeUInt16LE(c.type, 0);
    h.writeUInt32LE(c.blocks, 4);
    h.writeUInt32LE(12 + (c.data?.length ?? 0), 8);
    parts.push(h, c.data ?? Buffer.alloc(0));
  }
  return Buffer.concat(parts);
}

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};

describe('hand-built sparse images', () => {
  const raw = patternBytes(8192);
  const expected = Buffer.concat([raw, Buffer.alloc(4096), Buffer.alloc(8192, 0), Buffer.from(Array.from({ length: 1024 }, () => [1, 2, 3, 4]).flat())]);
  const crcAll = crc32(expected);
  const chunks = [
    { type: CHUNK_RAW, blocks: 2, data: raw },
    { type: CHUNK_DONT_CARE, blocks: 1 },
    { type: CHUNK_CRC32, blocks: 0, data: u32(crc32(Buffer.concat([raw, Buffer.alloc(4096)]))) },
    { type: CHUNK_FILL, blocks: 2, data: u32(0) },
    { type: CHUNK_FILL, blocks: 1, data: Buffer.from([1, 2, 3, 4]) },
  ];

  it('CRC32 chunks and the image checksum are verified; a longer file header is skipped', async () => {
    const ok = await expand(simg(4096, chunks, { checksum: crcAll, headerBytes: 32 }), 1000);
    expect(ok.out.equals(expected)).toBe(true);
    await expect(expand(simg(4096, chunks, { checksum: crcAll ^ 1 }))).rejects.toThrow(/image checksum/);
    const badCrc = chunks.map((c) => (c.type === CHUNK_CRC32 ? { ...c, data: u32(12345) } : c));
    await expect(expand(simg(4096, badCrc))).rejects.toThrow(/CRC32/);
  });

  it.each([
    ['a chunk past total_blks', () => simg(4096, chunks, { totalBlocks: 3 }), /past total_blks/],
    ['chunks short of total_blks', () => simg(4096, chunks, { totalBlocks: 9 }), /cover 6 blocks/],
    ['a RAW chunk with the wrong size', () => simg(4096, [{ type: CHUNK_RAW, blocks: 3, data: raw }]), /RAW.*expected/],
    ['a FILL chunk with 8 bytes', () => simg(4096, [{ type: CHUNK_FILL, blocks: 1, data: Buffer.alloc(8) }]), /FILL.*expected/],
    ['an unknown chunk type', () => simg(4096, [{ type: 0xcac9, blocks: 1 }]), /unknown chunk type 0xcac9/],
    ['a block size not a multiple of 4', () => simg(4094, [{ type: CHUNK_DONT_CARE, blocks: 1 }]), /block size/],
    ['a truncated image', () => simg(4096, chunks).subarray(0, 5000), /ends|truncated/],
    ['trailing data', () => Buffer.concat([simg(4096, chunks), Buffer.from('junk')]), /trailing data/],
  ])('%s is refused', async (_what, make, message) => {
    await expect(expand(make())).rejects.toThrow(message);
  });

  it('trailing zero padding is accepted', async () => {
    expect((await expand(Buffer.concat([simg(4096, chunks), Buffer.alloc(100)]))).out.equals(expected)).toBe(true);
  });

  it('survives 3000 seeded corruptions: a SparseImageError with an offset, or a disk of the declared size', async () => {
    const good = simg(4096, chunks, { checksum: crcAll });
    let failures = 0;
    for (const m of mutants(good, 2024, 3000, { from: 0, to: 200 })) {
      const started = performance.now();
      try {
        let length = 0;
        for await (const e of sparseImageExtents(bytesAsExtents(m.bytes))) {
          expect(e.offset, m.description).toBe(length);
          length += e.length;
          e.release?.();
        }
        expect(length % 4, m.description).toBe(0);
      } catch (err) {
        if (!(err instanceof SparseImageError)) throw new Error(`${m.description}: ${String(err)}`);
        expect(err.inputOffset, m.description).toBeGreaterThanOrEqual(0);
        failures++;
      }
      expect(performance.now() - started, m.description).toBeLessThan(2000);
      expect(process.memoryUsage().arrayBuffers, m.description).toBeLessThan(1 << 30);
    }
    expect(failures).toBeGreaterThan(1000);
  });
});
