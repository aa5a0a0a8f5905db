/**
 * fsmaker's disk layout (v0.05's numbering, 1 MiB alignment) checked by sfdisk and sgdisk, and the
 * composite extent source the disk is streamed from.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concatPieces } from '../src/extent/concat.js';
import type { Extent } from '../src/extent/extent.js';
import { TYPES, planDisk } from '../src/fsmaker/layout.js';
import { serializeTable } from '../src/partition/read.js';
import { makeTempDir } from './helpers.js';

const MiB = 1024 * 1024;
let dir: string;
beforeAll(() => {
  dir = makeTempDir('fsm-layout-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function writeImage(name: string, layout: ReturnType<typeof planDisk>): string {
  const file = path.join(dir, name);
  const fd = fs.openSync(file, 'w');
  for (const w of serializeTable(layout.table)) fs.writeSync(fd, w.data, 0, w.data.length, w.lba * 512);
  fs.ftruncateSync(fd, layout.totalBytes);
  fs.closeSync(fd);
  return file;
}

interface SfdiskJson {
  partitiontable: { label: string; partitions: { node: string; start: number; size: number; type: string; bootable?: boolean }[] };
}
const sfdiskJson = (file: string): SfdiskJson => JSON.parse(spawnSync('sfdisk', ['-J', file], { encoding: 'utf8' }).stdout) as SfdiskJson;

describe('planDisk', () => {
  for (const label of ['mbr', 'gpt'] as const) {
    for (const withSpare of [false, true]) {
      it(`${label}${withSpare ? ' with a spare partition' : ''}: root is partition 1, boot comes first, tools accept it`, () => {
        const layout = planDisk({ label, rootBytes: 300 * MiB + 123, bootBytes: 64 * MiB, totalBytes: withSpare ? 1024 * MiB + 512 : undefined, coreSectors: 305, seed: 'test' });
        const file = writeImage(`${label}-${withSpare}.img`, layout);
        expect(spawnSync('sfdisk', ['-V', file]).status).toBe(0);
        if (label === 'gpt') expect(spawnSync('sgdisk', ['-v', file]).stdout.toString()).toMatch(/No problems found/);
        expect(layout.totalBytes % 4096).toBe(0);
        const parts = sfdiskJson(file).partitiontable.partitions;
        const byNumber = (n: number) => parts.find((p) => p.node.endsWith(`${n}`))!;
        expect(byNumber(1).start).toBe(layout.root.startLba);
        expect(byNumber(1).size * 512).toBeGreaterThanOrEqual(300 * MiB + 123);
        expect(byNumber(3).start).toBe(2048); // the boot partition is physically first
        expect(Math.min(...parts.map((p) => p.start))).toBe(2048);
        for (const p of parts) expect(p.start % 2048).toBe(0);
        expect(Boolean(parts.find((p) => p.node.endsWith('2')))).toBe(withSpare);
        if (label === 'mbr') {
          expect(byNumber(3).bootable).toBe(true);
          expect(byNumber(3).type).toBe(TYPES.mbrFat32);
          expect(layout.coreLba).toBe(1);
        } else {
          expect(byNumber(3).type).toBe(TYPES.gptEsp);
          expect(byNumber(4).type).toBe(TYPES.gptBiosBoot);
          expect(layout.coreLba).toBe(byNumber(4).start);
        }
        if (withSpare) expect(layout.totalBytes).toBe(1024 * MiB);
      });
    }
  }

  it('is reproducible with a seed and different without one', () => {
    const a = planDisk({ label: 'gpt', rootBytes: 10 * MiB, bootBytes: 40 * MiB, coreSectors: 300, seed: 's' });
    const b = planDisk({ label: 'gpt', rootBytes: 10 * MiB, bootBytes: 40 * MiB, coreSectors: 300, seed: 's' });
    const c = planDisk({ label: 'gpt', rootBytes: 10 * MiB, bootBytes: 40 * MiB, coreSectors: 300 });
    expect(a).toEqual(b);
    expect(c.table.id).not.toBe(a.table.id);
    expect(c.fatSerial).not.toBe(a.fatSerial);
  });

  it('refuses a rootfs larger than --size allows, and a core.img too large for its place', () => {
    expect(() => planDisk({ label: 'mbr', rootBytes: 900 * MiB, bootBytes: 64 * MiB, totalBytes: 512 * MiB, coreSectors: 300 })).toThrow(/--size allows/);
    expect(() => planDisk({ label: 'mbr', rootBytes: MiB, bootBytes: 64 * MiB, coreSectors: 3000 })).toThrow(/core.img needs 3000 sectors/);
    expect(() => planDisk({ label: 'gpt', rootBytes: MiB, bootBytes: 64 * MiB, coreSectors: 2049 })).toThrow(/BIOS boot partition holds 2048/);
  });
});

describe('concatPieces', () => {
  const collect = async (it: AsyncIterable<Extent>) => {
    const out: Extent[] = [];
    for await (const e of it) out.push(e);
    return out;
  };

  it('places pieces at their offsets with holes between and after', async () => {
    const inner: Extent[] = [
      { offset: 0, length: 2, data: Buffer.from('ab') },
      { offset: 2, length: 5 },
      { offset: 7, length: 1, data: Buffer.from('c') },
    ];
    const out = await collect(
      concatPieces(
        [
          { name: 'second', offset: 100, length: 10, source: inner },
          { name: 'first', offset: 0, length: 4, source: Buffer.from('MBR!') },
        ],
        200,
      ),
    );
    expect(out.map((e) => [e.offset, e.length, e.data?.toString() ?? null])).toEqual([
      [0, 4, 'MBR!'],
      [4, 96, null],
      [100, 2, 'ab'],
      [102, 5, null],
      [107, 1, 'c'],
      [108, 2, null],
      [110, 90, null],
    ]);
    // Contiguous and covering everything.
    let pos = 0;
    for (const e of out) {
      expect(e.offset).toBe(pos);
      pos += e.length;
    }
    expect(pos).toBe(200);
  });

  it('refuses overlapping pieces and a piece that produces more than its length', async () => {
    await expect(collect(concatPieces([{ name: 'a', offset: 0, length: 10, source: Buffer.alloc(10) }, { name: 'b', offset: 5, length: 10, source: Buffer.alloc(1) }], 100))).rejects.toThrow(/overlaps/);
    await expect(collect(concatPieces([{ name: 'a', offset: 0, length: 4, source: Buffer.alloc(10) }], 100))).rejects.toThrow(/outside its 4 bytes/);
  });
});
