/**
 * The write plan and the leftover check on damaged GPTs (seeded mutants of sfdisk's own table):
 * the plan never throws, wipes only the 8 signature bytes of a header an independent validity
 * check accepts, and changes no byte outside the table's sectors and those wipes; check never
 * throws on a dos disk over such leftovers. A few dozen cases through real processes check the
 * exit codes and that only the asked image changes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PartitionTable } from '../src/partition/model.js';
import { applyWrites, bufferReader, checkTable } from '../src/partition/read.js';
import { planTableWrite } from '../src/partition/wipe-plan.js';
import { crc32, newImageIn, sfdiskWrite, useTempDir } from './helpers.js';
import { measured, mutants, runHostile } from './hostile.js';
import { GPT_HEADER_FIELD } from './table-edits.js';

let dir = '';
useTempDir('ptable-write-fuzz-', (d) => (dir = d));

const SECTORS = 8192; // 4 MiB
let gptImage: Buffer | null = null;
/** sfdisk's GPT of two partitions on a 4 MiB image. */
function goodGpt(): Buffer {
  if (gptImage) return gptImage;
  const file = newImageIn(dir, 'good.img', SECTORS * 512);
  sfdiskWrite(file, 'label: gpt\n,1M,L\n,1M,S\n');
  gptImage = fs.readFileSync(file);
  fs.rmSync(file);
  return gptImage;
}

const dosTable: PartitionTable = { label: 'dos', id: '0x0a0b0c0d', sectorSize: 512, diskSectors: SECTORS, partitions: [{ number: 1, start: 2048, size: 4096, type: '83' }] };

/** An independent reading of "a GPT header blkid accepts" at `lba`. */
function acceptedHeader(image: Buffer, lba: number): boolean {
  const o = lba * 512;
  if (image.subarray(o, o + 8).toString('latin1') !== 'EFI PART') return false;
  const size = image.readUInt32LE(o + GPT_HEADER_FIELD.headerSize);
  if (size < 92 || size > 512) return false;
  const header = Buffer.from(image.subarray(o, o + size));
  header.writeUInt32LE(0, GPT_HEADER_FIELD.headerCrc);
  if (crc32(header) !== image.readUInt32LE(o + GPT_HEADER_FIELD.headerCrc)) return false;
  if (image.readBigUInt64LE(o + GPT_HEADER_FIELD.myLba) !== BigInt(lba)) return false;
  const entries = image.readBigUInt64LE(o + GPT_HEADER_FIELD.entriesLba);
  const bytes = image.readUInt32LE(o + GPT_HEADER_FIELD.entryCount) * image.readUInt32LE(o + GPT_HEADER_FIELD.entrySize);
  if (bytes === 0 || bytes > 16 << 20 || entries * 512n + BigInt(bytes) > BigInt(image.length)) return false;
  const at = Number(entries) * 512;
  return crc32(image.subarray(at, at + bytes)) === image.readUInt32LE(o + GPT_HEADER_FIELD.entriesCrc);
}

/** Header sectors and the start of the entry arrays: where damage changes the verdict. */
const REGIONS = [
  { from: 512, to: 1024 },
  { from: (SECTORS - 1) * 512, to: SECTORS * 512 },
  { from: 1024, to: 1024 + 512 },
];

describe('planTableWrite on damaged GPTs (in-process, seeded)', () => {
  it.each(REGIONS.map((r, i) => [i, r] as const))('region %i: wipes exactly the accepted headers, touches nothing else', (i, region) => {
    const good = goodGpt();
    let slowest = 0;
    for (const m of mutants(good, 1400 + i, 700, region)) {
      const run = measured(() => planTableWrite(bufferReader(m.bytes, 512), dosTable, { findSignatures: () => [] }));
      expect(run.error, m.description).toBeUndefined();
      slowest = Math.max(slowest, run.ms);
      const plan = run.value!;
      const expected = [1, SECTORS - 1].filter((lba) => acceptedHeader(m.bytes, lba)).map((lba) => lba * 512);
      expect(plan.wipes.map((w) => w.offset), m.description).toEqual(expected);
      expect(plan.wipes.every((w) => w.length === 8)).toBe(true);
      const after = Buffer.from(m.bytes);
      applyWrites(after, 512, plan.writes);
      // Put back what the plan may change (sector 0 past the boot code, the wiped signatures):
      // the rest must be the mutant's bytes.
      const restored = Buffer.from(after);
      m.bytes.copy(restored, 440, 440, 512);
      for (const o of expected) m.bytes.copy(restored, o, o, o + 8);
      expect(restored.equals(m.bytes), m.description).toBe(true);
      // The boot code of sector 0 stays (auto).
      expect(after.subarray(0, 440).equals(m.bytes.subarray(0, 440))).toBe(true);
    }
    expect(slowest).toBeLessThan(500);
  });

  it('check on a dos disk over damaged GPT leftovers never throws and reports leftover-gpt exactly for the accepted headers', () => {
    const good = goodGpt();
    const dosOver = Buffer.from(good);
    // A dos MBR over the GPT, the headers left: what ptable wrote before the fix.
    applyWrites(dosOver, 512, planTableWrite(bufferReader(Buffer.alloc(SECTORS * 512), 512), dosTable, { wipe: 'never', findSignatures: () => [] }).writes.filter((w) => w.lba === 0));
    let n = 0;
    for (const region of REGIONS.slice(0, 2)) {
      for (const m of mutants(dosOver, 1500 + n++, 400, region)) {
        const run = measured(() => checkTable(bufferReader(m.bytes, 512), 512, SECTORS));
        expect(run.error, m.description).toBeUndefined();
        const leftovers = run.value!.problems.filter((p) => p.code === 'leftover-gpt' && p.severity === 'error').map((p) => p.lba);
        expect(leftovers, m.description).toEqual([1, SECTORS - 1].filter((lba) => acceptedHeader(m.bytes, lba)));
      }
    }
  });
});

describe('ptable write dos over damaged GPTs (processes)', () => {
  it('exit 0 and only the image changes, for 24 mutants', () => {
    const good = goodGpt();
    const sibling = path.join(dir, 'sibling.img');
    fs.writeFileSync(sibling, good);
    let i = 0;
    const cases = [...mutants(good, 1600, 12, REGIONS[0]), ...mutants(good, 1601, 12, REGIONS[1])];
    for (const m of cases) {
      const file = path.join(dir, `m${i++}.img`);
      fs.writeFileSync(file, m.bytes);
      runHostile('ptable', ['write', file], { input: 'label: dos\n,,L\n', codes: [0], what: m.description });
      const after = fs.readFileSync(file);
      for (const lba of [1, SECTORS - 1]) {
        const o = lba * 512;
        expect(after.subarray(o, o + 8).toString('latin1') === 'EFI PART', m.description).toBe(!acceptedHeader(m.bytes, lba) && m.bytes.subarray(o, o + 8).toString('latin1') === 'EFI PART');
      }
      fs.rmSync(file);
    }
    expect(fs.readFileSync(sibling).equals(good)).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(['sibling.img']);
  });
});
