/**
 * The VMDK writers in-process (src/format/vmdk-writer.ts, vmdk-descriptor-text.ts and the sinks in
 * src/codec/vmdk-*-sink.ts), on seeded random disks: data, zero grains, holes, grains cut across
 * extents, region (32 MiB) boundaries and partial last grains. Every streamOptimized image goes
 * through the independent structural check (test/vmdk-structure.ts), which also rebuilds the disk
 * from the grains: it must equal the source. The layout of monolithicSparse is held against the
 * header qemu-img itself writes; flat extents against qemu's names; and the checker is shown to
 * catch what it is there to catch.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { VmdkStreamSink } from '../src/codec/vmdk-stream-sink.js';
import { VmdkMonolithicSink } from '../src/codec/vmdk-monolithic-sink.js';
import type { Extent } from '../src/extent/extent.js';
import { contentId, geometryFor, vmdkDescriptorText } from '../src/format/vmdk-descriptor-text.js';
import { decodeSparseHeader } from '../src/format/vmdk-header.js';
import { FLAT_SPLIT_BYTES, flatExtents, sparseLayout } from '../src/format/vmdk-writer.js';
import { patternBytes, prng, useTempDir } from './helpers.js';
import { qemu } from './qemu-img.js';
import { checkStreamOptimized } from './vmdk-structure.js';

let dir = '';
useTempDir('sc-vmdk-writer-', (d) => (dir = d));

const KiB = 1024;
const MiB = 1 << 20;
const GRAIN = 64 * KiB;

/** A random disk as extents in order (data, zero runs inside data, holes), and its bytes. */
function randomDisk(seed: number, maxBytes: number): { extents: Extent[]; bytes: Buffer } {
  const random = prng(seed);
  const size = 1 + Math.floor(random() * maxBytes);
  const bytes = Buffer.alloc(size);
  const extents: Extent[] = [];
  for (let at = 0; at < size; ) {
    const length = Math.min(size - at, 1 + Math.floor(random() * (random() < 0.3 ? 3 * GRAIN : 9000)));
    const kind = random();
    if (kind < 0.35) {
      extents.push({ offset: at, length }); // a hole
    } else {
      const data = kind < 0.5 ? Buffer.alloc(length) : patternBytes(length, seed * 131 + at);
      if (kind > 0.9) data.fill(0, 0, Math.floor(length / 2)); // zeros inside data
      data.copy(bytes, at);
      extents.push({ offset: at, length, data });
    }
    at += length;
  }
  return { extents, bytes };
}

async function writeStream(file: string, extents: Extent[], capacityBytes: number | undefined, options: { position?: number | null } = {}): Promise<VmdkStreamSink> {
  const fd = fs.openSync(file, 'w+');
  try {
    const sink = new VmdkStreamSink({ fd, name: file, position: options.position === undefined ? 0 : options.position, adapterType: 'lsilogic', ...(capacityBytes === undefined ? {} : { capacityBytes }) });
    for (const e of extents) await sink.write({ ...e });
    await sink.close();
    return sink;
  } finally {
    fs.closeSync(fd);
  }
}

const sectorsOf = (bytes: number): number => Math.ceil(bytes / 512);

describe('streamOptimized, in-process', () => {
  it('seeded random disks (up to 200 KiB, some grains cut across extents, partial last grains) pass the structural check and read back as the source', async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const { extents, bytes } = randomDisk(seed, 200 * KiB);
      const file = path.join(dir, `r${seed}.vmdk`);
      const known = seed % 3 !== 0; // every third: capacity unknown, the header rewritten at close
      const sink = await writeStream(file, extents, known ? bytes.length : undefined);
      const s = checkStreamOptimized(file, { withDisk: true, fileName: `r${seed}.vmdk` });
      expect(s.capacitySectors, `seed ${seed}`).toBe(sectorsOf(bytes.length));
      expect(s.disk!.subarray(0, bytes.length).equals(bytes), `seed ${seed}`).toBe(true);
      expect(s.disk!.subarray(bytes.length).every((b) => b === 0)).toBe(true);
      // All-zero grains are omitted: exactly the grains holding a non-zero byte are there.
      let nonZeroGrains = 0;
      for (let g = 0; g * GRAIN < bytes.length; g++) if (bytes.subarray(g * GRAIN, (g + 1) * GRAIN).some((b) => b !== 0)) nonZeroGrains++;
      expect(s.grains.size, `seed ${seed}`).toBe(nonZeroGrains);
      expect(sink.populatedBytes).toBe(nonZeroGrains * GRAIN);
      expect(sink.fileBytes).toBe(fs.statSync(file).size);
      fs.rmSync(file);
    }
  });

  it('grains either side of a 32 MiB region boundary get a GT each, regions without data none (GDE 0)', async () => {
    const region = 32 * MiB;
    const size = 5 * region + 777;
    const a = patternBytes(3 * GRAIN, 5);
    const b = patternBytes(5000, 6);
    const extents: Extent[] = [
      { offset: 0, length: region - GRAIN },
      { offset: region - GRAIN, length: 3 * GRAIN, data: a }, // crosses the first boundary
      { offset: region + 2 * GRAIN, length: 4 * region - 2 * GRAIN - 5000 + 777 },
      { offset: size - 5000, length: 5000, data: b }, // crosses into region 5 and ends in its partial last grain
    ];
    const file = path.join(dir, 'regions.vmdk');
    await writeStream(file, extents, size);
    const s = checkStreamOptimized(file, { withDisk: true });
    expect(s.gdEntries.length).toBe(6); // the 777 bytes past 5 regions make a sixth
    expect(s.gdEntries.map((e) => e !== 0)).toEqual([true, true, false, false, true, true]);
    expect(s.grainTables).toBe(4);
    expect(s.disk!.subarray(region - GRAIN, region + 2 * GRAIN).equals(a)).toBe(true);
    expect(s.disk!.subarray(size - 5000, size).equals(b)).toBe(true);
  });

  it('to a pipe-like sequential descriptor, the bytes are those of the file', async () => {
    const { extents } = randomDisk(77, 300 * KiB);
    const length = extents[extents.length - 1]!.offset + extents[extents.length - 1]!.length;
    const env = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = '1700000000';
    try {
      const file = path.join(dir, 'same.vmdk');
      await writeStream(file, extents, length);
      const sequential = path.join(dir, 'seq', 'same.vmdk');
      fs.mkdirSync(path.dirname(sequential));
      await writeStream(sequential, extents, length, { position: null });
      expect(fs.readFileSync(sequential).equals(fs.readFileSync(file))).toBe(true);
    } finally {
      if (env === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = env;
    }
  });

  it('a stream of unknown length is refused on sequential output (its header comes first), with a ToolError naming it', () => {
    expect(() => new VmdkStreamSink({ fd: 1, name: 'stdout', position: null, adapterType: 'ide' })).toThrow(/stdout: a streamOptimized VMDK states its size in its first sector/);
  });

  it('the checker catches a grain out of order, a broken zlib stream, a wrong GTE, a footer that differs and a missing EOS', async () => {
    const data = patternBytes(3 * GRAIN, 9);
    const file = path.join(dir, 'good.vmdk');
    await writeStream(file, [{ offset: 0, length: data.length, data }], data.length);
    const good = fs.readFileSync(file);
    expect(() => checkStreamOptimized(good)).not.toThrow();
    const s = checkStreamOptimized(good);
    const [first, second] = [...s.grains.values()];
    const edits: [string, (b: Buffer) => void, RegExp][] = [
      ['grain LBAs swapped', (b) => b.writeBigUInt64LE(256n, first! * 512), /not ascending/],
      ['zlib byte broken', (b) => (b[second! * 512 + 12 + 1] ^= 0xff), /does not inflate/],
      ['GTE off by one', (b) => { const gt = s.gdEntries[0]! * 512; b.writeUInt32LE(b.readUInt32LE(gt) + 1, gt); }, /GTE for LBA 0/],
      ['footer capacity', (b) => b.writeUInt32LE(b.readUInt32LE(b.length - 1024 + 12) + 1, b.length - 1024 + 12), /footer differs/],
      ['no EOS', (b) => b.writeUInt32LE(9, b.length - 512 + 12), /unknown marker type 9/],
    ];
    for (const [what, edit, error] of edits) {
      const bad = Buffer.from(good);
      edit(bad);
      expect(() => checkStreamOptimized(bad), what).toThrow(error);
    }
  });

  it('memory stays bounded for a 1 TiB virtual disk with data at each end (GD of 32768 entries)', async () => {
    const size = 2 ** 40;
    const data = patternBytes(2 * MiB, 3);
    const file = path.join(dir, 'tib.vmdk');
    const before = process.memoryUsage().rss;
    await writeStream(file, [{ offset: 0, length: data.length, data }, { offset: data.length, length: size - 2 * data.length }, { offset: size - data.length, length: data.length, data }], size);
    expect(process.memoryUsage().rss - before).toBeLessThan(100e6);
    const s = checkStreamOptimized(file);
    expect(s.gdEntries.length).toBe(32768);
    expect(s.grains.size).toBe(64);
  });
});

describe('descriptor text', () => {
  it('has the keys VMware, qemu and VirtualBox read, unindented, with VMware geometry', () => {
    const text = vmdkDescriptorText({ createType: 'streamOptimized', cid: 0xabc, extents: [{ sectors: 2048, type: 'SPARSE', fileName: 'x.vmdk' }], capacitySectors: 2048, adapterType: 'ide', hwVersion: '4' });
    expect(text).toContain('CID=00000abc\nparentCID=ffffffff\ncreateType="streamOptimized"\n');
    expect(text).toContain('\nRW 2048 SPARSE "x.vmdk"\n');
    expect(text).toContain('ddb.adapterType = "ide"\nddb.geometry.cylinders = "3"\nddb.geometry.heads = "16"\nddb.geometry.sectors = "63"\n');
    expect(text).toContain('ddb.toolsVersion = "2147483647"\nddb.virtualHWVersion = "4"\n');
    expect(text.split('\n').some((l) => /^\s/.test(l))).toBe(false);
    expect(() => vmdkDescriptorText({ createType: 'monolithicFlat', cid: 1, extents: [{ sectors: 1, type: 'FLAT', fileName: 'a"b' }], capacitySectors: 1, adapterType: 'ide', hwVersion: '4' })).toThrow(/quote/);
  });

  it('geometry: 255 heads for SCSI, cylinders capped at 65535 as VMware caps them', () => {
    expect(geometryFor(2 ** 31, 'lsilogic')).toEqual({ cylinders: 65535, heads: 255, sectors: 63 });
    expect(geometryFor(255 * 63 * 10 + 1, 'buslogic')).toEqual({ cylinders: 11, heads: 255, sectors: 63 });
  });

  it('the CID is random, and fixed by SOURCE_DATE_EPOCH (reproducible builds), never ffffffff', () => {
    const a = contentId(100, { SOURCE_DATE_EPOCH: '1' });
    expect(contentId(100, { SOURCE_DATE_EPOCH: '1' })).toBe(a);
    expect(contentId(100, { SOURCE_DATE_EPOCH: '2' })).not.toBe(a);
    const randoms = new Set(Array.from({ length: 20 }, () => contentId(100, {})));
    expect(randoms.size).toBeGreaterThan(15);
  });
});

describe('monolithicSparse and flat layouts, held against qemu', () => {
  it.each([1 * MiB, 100 * MiB + 512, 3 * 1024 * MiB])('the tables of a %i-byte disk are where qemu-img create puts them', (size) => {
    const file = path.join(dir, `q${size}.vmdk`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'vmdk', file, `${size}`]);
    const q = decodeSparseHeader(fs.readFileSync(file).subarray(0, 512));
    const l = sparseLayout(sectorsOf(size));
    expect({ version: q.version, flags: q.flags, rgd: q.rgdOffset, gd: q.gdOffset, overHead: q.overHead, descriptor: [q.descriptorOffset, q.descriptorSize] }).toEqual({
      version: 1,
      flags: 3,
      rgd: l.rgdOffset,
      gd: l.gdOffset,
      overHead: l.grainOffset,
      descriptor: [1, 20],
    });
  });

  it('a monolithicSparse written in-process passes qemu-img check and compare', async () => {
    const { extents, bytes } = randomDisk(5, 3 * MiB);
    const file = path.join(dir, 'mono.vmdk');
    const raw = path.join(dir, 'mono.raw');
    fs.writeFileSync(raw, bytes);
    const fd = fs.openSync(file, 'w+');
    const sink = new VmdkMonolithicSink({ fd, name: file, capacityBytes: bytes.length, adapterType: 'ide' });
    for (const e of extents) await sink.write({ ...e });
    await sink.close();
    fs.closeSync(fd);
    expect(qemu('qemu-img', ['check', file]).status).toBe(0);
    const r = qemu('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', raw, file]);
    expect(r.out).toMatch(/Images are identical/);
  });

  it('flat extents are named and sized as qemu splits them: NAME-flat.EXT, or NAME-f001.EXT... of 0x80000000 bytes', () => {
    expect(flatExtents('disk.vmdk', 100, false)).toEqual([{ fileName: 'disk-flat.vmdk', offset: 0, bytes: 51200 }]);
    const split = flatExtents('a.b.vmdk', (2 * FLAT_SPLIT_BYTES + 1024) / 512, true);
    expect(split.map((e) => [e.fileName, e.offset, e.bytes])).toEqual([
      ['a.b-f001.vmdk', 0, FLAT_SPLIT_BYTES],
      ['a.b-f002.vmdk', FLAT_SPLIT_BYTES, FLAT_SPLIT_BYTES],
      ['a.b-f003.vmdk', 2 * FLAT_SPLIT_BYTES, 1024],
    ]);
    expect(flatExtents('noext', 1, true)[0]!.fileName).toBe('noext-f001');
  });
});
