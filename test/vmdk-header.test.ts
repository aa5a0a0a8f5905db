/**
 * The VMDK sparse extent header and stream markers (src/format/vmdk-header.ts): decoded from
 * qemu-img's own files, round-tripped, and every validity check refusing with its offset.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FIELD,
  FLAG_COMPRESSED,
  FLAG_MARKERS,
  MARKER_FOOTER,
  VmdkError,
  decodeMarker,
  decodeSparseHeader,
  encodeGrainMarker,
  encodeMetadataMarker,
  encodeSparseHeader,
} from '../src/format/vmdk-header.js';
import { makeTempDir } from './helpers.js';

const dir = makeTempDir('vmdk-header-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const haveQemuImg = spawnSync('qemu-img', ['--version']).status === 0;
if (!haveQemuImg) console.warn('skipping qemu-img header cases: qemu-img not installed');

function qemuVmdk(subformat: string): Buffer {
  const file = path.join(dir, `${subformat}.vmdk`);
  const r = spawnSync('qemu-img', ['create', '-q', '-f', 'vmdk', '-o', `subformat=${subformat}`, file, '100M']);
  expect(r.status, String(r.stderr)).toBe(0);
  return fs.readFileSync(file).subarray(0, 512);
}

describe.skipIf(!haveQemuImg)("qemu-img's headers", () => {
  it('monolithicSparse: 100 MiB, 128-sector grains, GD in place, uncompressed', () => {
    const h = decodeSparseHeader(qemuVmdk('monolithicSparse'));
    expect(h.capacity * 512).toBe(100 << 20);
    expect(h.grainSize).toBe(128);
    expect(h.numGTEsPerGT).toBe(512);
    expect(h.gdOffset).toBeGreaterThan(0);
    expect(h.flags & FLAG_COMPRESSED).toBe(0);
  });
  it('streamOptimized: version 3, compressed with markers', () => {
    const h = decodeSparseHeader(qemuVmdk('streamOptimized'));
    expect(h.version).toBe(3);
    expect(h.flags & (FLAG_COMPRESSED | FLAG_MARKERS)).toBe(FLAG_COMPRESSED | FLAG_MARKERS);
    expect(h.compressAlgorithm).toBe(1);
  });
});

const good = {
  version: 3,
  flags: 0x30001,
  capacity: 4194304,
  grainSize: 128,
  descriptorOffset: 1,
  descriptorSize: 20,
  numGTEsPerGT: 512,
  rgdOffset: 0,
  gdOffset: null,
  overHead: 128,
  uncleanShutdown: false,
  compressAlgorithm: 1,
};

describe('round trips and refusals', () => {
  it('a header encodes and decodes to itself, GD_AT_END included', () => {
    expect(decodeSparseHeader(encodeSparseHeader(good))).toEqual(good);
    expect(decodeSparseHeader(encodeSparseHeader({ ...good, gdOffset: 4242 })).gdOffset).toBe(4242);
  });
  const refusals: [string, (b: Buffer) => void, number][] = [
    ['magic', (b) => b.write('KDMW', 0, 'latin1'), 0],
    ['version', (b) => b.writeUInt32LE(4, FIELD.version), FIELD.version],
    ['unknown incompatible flag', (b) => b.writeUInt32LE(0x70001, FIELD.flags), FIELD.flags],
    ['grain size not a power of two', (b) => b.writeBigUInt64LE(96n, FIELD.grainSize), FIELD.grainSize],
    ['grain size 0', (b) => b.writeBigUInt64LE(0n, FIELD.grainSize), FIELD.grainSize],
    ['GT size', (b) => b.writeUInt32LE(1000, FIELD.numGTEsPerGT), FIELD.numGTEsPerGT],
    ['newline test', (b) => (b[FIELD.newlineChars + 2] = 0x0a), FIELD.newlineChars],
    ['capacity beyond 2^53 bytes', (b) => b.writeBigUInt64LE(1n << 60n, FIELD.capacity), FIELD.capacity],
    ['descriptor too large', (b) => b.writeBigUInt64LE(1n << 20n, FIELD.descriptorSize), FIELD.descriptorSize],
    ['compression algorithm', (b) => b.writeUInt16LE(7, FIELD.compressAlgorithm), FIELD.compressAlgorithm],
  ];
  for (const [what, damage, at] of refusals) {
    it(`refuses: ${what}, at byte ${at} of the header`, () => {
      const b = encodeSparseHeader(good);
      damage(b);
      let caught: unknown;
      try {
        decodeSparseHeader(b, 1000);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(VmdkError);
      expect((caught as VmdkError).at).toBe(1000 + at);
    });
  }
  it('markers: a grain and a footer marker decode to what was encoded', () => {
    const grain = Buffer.concat([encodeGrainMarker(256, 777), Buffer.alloc(4)]);
    expect(decodeMarker(grain, 0)).toEqual({ kind: 'grain', lba: 256, size: 777 });
    expect(decodeMarker(encodeMetadataMarker(MARKER_FOOTER, 1), 0)).toEqual({ kind: 'metadata', type: MARKER_FOOTER, numSectors: 1 });
  });
});
