/**
 * The qcow2 writer in-process (src/format/qcow2-writer.ts, src/codec/qcow2-sink.ts), on seeded
 * random disks: data, zeros, holes and compressible runs in every small cluster size, with and
 * without compression. Each image is read back by our own qcow2 reader and must equal the disk,
 * and its refcounts are recounted here from the L1/L2 tables the way qemu-img check counts them
 * (every cluster's refcount equals its references, COPIED iff the refcount is 1, nothing leaked,
 * nothing past the end). Also the pure encodings against the reader's parsers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Qcow2Sink } from '../src/codec/qcow2-sink.js';
import { Qcow2Image, readVirtual } from '../src/format/qcow2-image.js';
import { parseQcow2Header } from '../src/format/qcow2-header.js';
import { clusterRuns, qcow2Geometry } from '../src/format/qcow2-map.js';
import { encodeHeaderCluster, l1EntriesFor, refcountMetadataFor, setCompressedEntry, writeGeometry } from '../src/format/qcow2-writer.js';
import type { Extent } from '../src/extent/extent.js';
import { prng, useTempDir } from './helpers.js';

let dir = '';
useTempDir('sc-qcow2-writer-', (d) => (dir = d));

const roundUp = (n: number, unit: number): number => Math.ceil(n / unit) * unit;

function hostFile(file: string): { name: string; size: number; readAt(offset: number, length: number): Buffer; close(): void } {
  const fd = fs.openSync(file, 'r');
  const size = fs.fstatSync(fd).size;
  return {
    name: file,
    size,
    readAt(offset, length) {
      const b = Buffer.alloc(length);
      fs.readSync(fd, b, 0, length, offset);
      return b;
    },
    close: () => fs.closeSync(fd),
  };
}

/** A random disk as extents in order, and its bytes. */
function randomDisk(random: () => number, size: number, clusterSize: number): { extents: Extent[]; bytes: Buffer } {
  const bytes = Buffer.alloc(size);
  const extents: Extent[] = [];
  for (let offset = 0; offset < size; ) {
    const unit = random() < 0.5 ? 512 : clusterSize;
    const length = Math.min(size - offset, 1 + Math.floor(random() * 3 * unit));
    const kind = random();
    if (kind < 0.3) {
      extents.push({ offset, length }); // a hole
    } else {
      const data = Buffer.alloc(length);
      if (kind < 0.5) data.fill(0); // data that is all zeros
      else if (kind < 0.75) data.fill(Math.floor(random() * 256)); // compressible
      else for (let i = 0; i < length; i++) data[i] = Math.floor(random() * 256);
      data.copy(bytes, offset);
      extents.push({ offset, length, data });
    }
    offset += length;
  }
  return { extents, bytes };
}

/**
 * qemu-img check's recount: references of every host cluster from the header, the refcount
 * table and blocks, the L1 table, the L2 tables and data (a compressed cluster counts once in each
 * host cluster it touches), compared with the stored refcounts; COPIED set iff the refcount is 1.
 */
function recount(file: string): { errors: string[]; clusters: number } {
  const image = fs.readFileSync(file);
  const clusterBits = image.readUInt32BE(20);
  const cs = 2 ** clusterBits;
  const errors: string[] = [];
  if (image.length % cs !== 0) errors.push(`file length ${image.length} is not a whole number of clusters`);
  const clusters = Math.ceil(image.length / cs);
  const refs = new Array<number>(clusters).fill(0);
  const reference = (offset: number, bytes: number, what: string): void => {
    if (offset + bytes > image.length) errors.push(`${what} at ${offset} past the end`);
    for (let c = Math.floor(offset / cs); c <= Math.floor((offset + bytes - 1) / cs); c++) refs[c] = (refs[c] ?? 0) + 1;
  };
  const u64 = (at: number): bigint => image.readBigUInt64BE(at);
  const offsetOf = (entry: bigint): number => Number(entry & 0x00fffffffffffe00n);
  const copied = (entry: bigint): boolean => (entry >> 63n) === 1n;
  reference(0, cs, 'header');
  const tableOffset = Number(u64(48));
  const tableClusters = image.readUInt32BE(56);
  reference(tableOffset, tableClusters * cs, 'refcount table');
  const blocks: number[] = [];
  for (let i = 0; i < (tableClusters * cs) / 8; i++) {
    const block = Number(u64(tableOffset + i * 8));
    if (block === 0) continue;
    blocks.push(block);
    reference(block, cs, 'refcount block');
  }
  const l1Size = image.readUInt32BE(36);
  const l1Offset = Number(u64(40));
  if (l1Size > 0) reference(l1Offset, l1Size * 8, 'L1 table');
  const copiedChecks: { entry: bigint; offset: number; what: string }[] = [];
  const x = 62 - (clusterBits - 8);
  for (let i = 0; i < l1Size; i++) {
    const l1 = u64(l1Offset + i * 8);
    const l2 = offsetOf(l1);
    if (l2 === 0) continue;
    reference(l2, cs, 'L2 table');
    copiedChecks.push({ entry: l1, offset: l2, what: `L1 entry ${i}` });
    for (let j = 0; j < cs / 8; j++) {
      const entry = u64(l2 + j * 8);
      if (entry === 0n) continue;
      if ((entry >> 62n) & 1n) {
        if (copied(entry)) errors.push(`compressed L2 entry ${j} of ${l2} has COPIED`);
        const descriptor = entry & ((1n << 62n) - 1n);
        const host = Number(descriptor & ((1n << BigInt(x)) - 1n));
        const sectors = Number(descriptor >> BigInt(x)) + 1;
        reference(host, sectors * 512 - (host % 512), `compressed cluster (L2 ${l2} entry ${j})`);
      } else {
        const host = offsetOf(entry);
        if (host % cs !== 0) errors.push(`data cluster ${host} not aligned`);
        reference(host, cs, `data cluster (L2 ${l2} entry ${j})`);
        copiedChecks.push({ entry, offset: host, what: `L2 ${l2} entry ${j}` });
      }
    }
  }
  const perBlock = cs / 2;
  const refcountOf = (c: number): number => {
    const block = blocks[Math.floor(c / perBlock)];
    return block === undefined ? 0 : image.readUInt16BE(block + (c % perBlock) * 2);
  };
  for (let c = 0; c < clusters; c++) {
    if (refcountOf(c) !== refs[c]) errors.push(`cluster ${c}: refcount ${refcountOf(c)}, references ${refs[c]}`);
  }
  for (const { entry, offset, what } of copiedChecks) {
    if (copied(entry) !== (refcountOf(Math.floor(offset / cs)) === 1)) errors.push(`${what}: COPIED ${copied(entry)} with refcount ${refcountOf(Math.floor(offset / cs))}`);
  }
  return { errors, clusters };
}

async function writeImage(file: string, extents: Extent[], size: number, clusterBits: number, compress: boolean): Promise<void> {
  const fd = fs.openSync(file, 'w');
  try {
    const sink = new Qcow2Sink({ fd, name: file, clusterBits, compress, virtualSize: () => size });
    for (const e of extents) await sink.write({ ...e });
    await sink.close();
  } finally {
    fs.closeSync(fd);
  }
}

describe('qcow2 images written in-process read back equal and recount clean', () => {
  it('seeded random disks, cluster sizes 512 B to 64 KiB, with and without compression', async () => {
    const random = prng(20261201);
    const file = path.join(dir, 'random.qcow2');
    let compressedSeen = 0;
    let l2TablesSeen = 0;
    for (let n = 0; n < 240; n++) {
      const clusterBits = [9, 10, 11, 12, 16][n % 5]!;
      const cs = 2 ** clusterBits;
      const l2Span = (cs / 8) * cs;
      const size = 1 + Math.floor(random() * Math.min(3 * l2Span, 4 << 20));
      const compress = random() < 0.5;
      const { extents, bytes } = randomDisk(random, size, cs);
      await writeImage(file, extents, size, clusterBits, compress);

      const { errors } = recount(file);
      expect(errors, `case ${n}: ${clusterBits} bits, ${size} bytes, compress ${compress}`).toEqual([]);
      const host = hostFile(file);
      try {
        const image = new Qcow2Image(host, Qcow2Image.readHeader(host));
        expect(image.virtualSize).toBe(roundUp(size, 512));
        const back = readVirtual(image, 0, image.virtualSize);
        expect(back.subarray(0, size).equals(bytes), `case ${n}: content`).toBe(true);
        expect(back.subarray(size).every((b) => b === 0)).toBe(true);
        for (const run of image.runs(0, image.virtualSize)) {
          if (run.kind === 'compressed') compressedSeen++;
        }
        l2TablesSeen += image.header.l1Size;
      } finally {
        host.close();
      }
    }
    // The cases exercised what they are meant to: compressed clusters and several L2 tables.
    expect(compressedSeen).toBeGreaterThan(100);
    expect(l2TablesSeen).toBeGreaterThan(240);
  });

  it('an empty disk and a disk of one hole: valid images with no data clusters', async () => {
    for (const size of [0, 3 << 20]) {
      const file = path.join(dir, `empty-${size}.qcow2`);
      await writeImage(file, size ? [{ offset: 0, length: size }] : [], size, 16, false);
      expect(recount(file).errors).toEqual([]);
      const host = hostFile(file);
      const image = new Qcow2Image(host, Qcow2Image.readHeader(host));
      expect([...image.runs(0, size)].every((r) => r.kind === 'zero')).toBe(true);
      expect(host.size).toBe(3 * 65536 + (size ? 65536 : 0)); // header, refcount block, refcount table (and the L1 table)
      host.close();
    }
  });
});

describe('limits', () => {
  it('a stream growing past what its clusters can map (qemu’s L1 limit) fails as it passes it (exit 15), before writing more', async () => {
    const file = path.join(dir, 'limit.qcow2');
    const fd = fs.openSync(file, 'w');
    try {
      const sink = new Qcow2Sink({ fd, name: file, clusterBits: 9, compress: false, virtualSize: () => 0 });
      const limit = (2 ** 25 / 8) * (512 / 8) * 512; // 32 MiB of L1 entries, each mapping an L2 table of 64 clusters
      await sink.write({ offset: 0, length: 512, data: Buffer.alloc(512, 1) });
      await sink.write({ offset: 512, length: limit - 512 }); // up to the limit: fine
      const passing = sink.write({ offset: limit, length: 512, data: Buffer.alloc(512, 2) });
      await expect(passing).rejects.toMatchObject({ code: 'DOES_NOT_FIT', message: expect.stringMatching(/larger than a qcow2 with 512-byte clusters can map \(137438953472 bytes/) });
      await sink.abort();
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('the pure encodings', () => {
  it('the header cluster parses with the reader, every cluster size (512 B: the feature table fills it exactly)', () => {
    for (let bits = 9; bits <= 21; bits++) {
      const g = writeGeometry(bits);
      const l1Entries = l1EntriesFor(g, 12345 * 512);
      const cluster = encodeHeaderCluster(g, { virtualSize: 12345 * 512, l1Entries, l1Offset: 3 * g.clusterSize, refcountTableOffset: g.clusterSize, refcountTableClusters: 1 });
      expect(cluster.length).toBe(g.clusterSize);
      const header = parseQcow2Header(cluster, 1 << 30);
      expect(header).toMatchObject({ version: 3, clusterBits: bits, virtualSize: 12345 * 512, l1Size: l1Entries, l1TableOffset: 3 * g.clusterSize, compression: 'deflate', backingFile: null });
      expect(cluster.readUInt32BE(100)).toBe(112); // header_length
      expect(cluster.readUInt32BE(96)).toBe(4); // refcount_order: 16-bit refcounts
    }
  });

  it('with a backing file: its name and format parse back, every cluster size (512 B: without the optional feature table)', () => {
    for (let bits = 9; bits <= 21; bits++) {
      const g = writeGeometry(bits);
      for (const [name, format] of [['base.raw', 'raw'], [`../${'d/'.repeat(60)}base.qcow2`, 'qcow2']] as const) {
        const cluster = encodeHeaderCluster(g, { virtualSize: 1 << 20, l1Entries: l1EntriesFor(g, 1 << 20), l1Offset: 3 * g.clusterSize, refcountTableOffset: g.clusterSize, refcountTableClusters: 1, backing: { name, format } });
        expect(cluster.length).toBe(g.clusterSize);
        const header = parseQcow2Header(cluster, 1 << 30);
        expect(header).toMatchObject({ backingFile: name, backingFormat: format, virtualSize: 1 << 20 });
        // The feature name table is there whenever it fits beside the rest.
        expect(cluster.includes(Buffer.from('extended L2 entries'))).toBe(bits > 9);
      }
    }
    expect(() => encodeHeaderCluster(writeGeometry(9), { virtualSize: 512, l1Entries: 1, l1Offset: 0, refcountTableOffset: 0, refcountTableClusters: 1, backing: { name: 'x'.repeat(400), format: 'raw' } })).toThrow(RangeError);
  });

  it('compressed descriptors decode with the reader to the bytes they cover, at any offset', () => {
    const random = prng(7);
    for (let n = 0; n < 2000; n++) {
      const bits = 9 + (n % 13);
      const g = writeGeometry(bits);
      const host = Math.floor(random() * 2 ** 40);
      const bytes = 1 + Math.floor(random() * (g.clusterSize - 1));
      const table = Buffer.alloc(g.clusterSize);
      setCompressedEntry(g, table, 3, host, bytes);
      const header = parseQcow2Header(encodeHeaderCluster(g, { virtualSize: g.l2Span, l1Entries: 1, l1Offset: g.clusterSize, refcountTableOffset: g.clusterSize, refcountTableClusters: 1 }), 2 ** 50);
      const [run] = [...clusterRuns(qcow2Geometry(header, 2 ** 50), table, 3, 3 * g.clusterSize, 0)];
      expect(run).toMatchObject({ kind: 'compressed', host });
      // The reader reads to the end of the last sector: at least the bytes, less than a sector more.
      const read = (run as { bytes: number }).bytes;
      expect(read).toBeGreaterThanOrEqual(bytes);
      expect(read - bytes).toBeLessThan(512);
      expect(table.readUInt32BE(24) >>> 31).toBe(0); // never COPIED
    }
  });

  it('refcount metadata counts itself: the least that covers every cluster, blocks and table included', () => {
    for (const bits of [9, 12, 16]) {
      const g = writeGeometry(bits);
      for (const others of [0, 1, g.refcountsPerBlock - 2, g.refcountsPerBlock - 1, g.refcountsPerBlock, 5 * g.refcountsPerBlock + 3, 1_000_000]) {
        const { blocks, tableClusters } = refcountMetadataFor(g, others);
        const total = others + blocks + tableClusters;
        expect(blocks * g.refcountsPerBlock).toBeGreaterThanOrEqual(total);
        expect((blocks - 1) * g.refcountsPerBlock).toBeLessThan(total);
        expect(tableClusters * g.tableEntriesPerCluster).toBeGreaterThanOrEqual(blocks);
      }
    }
  });
});
