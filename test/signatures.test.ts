/**
 * findSignatures' contract apart from any one format: bounded reads whatever the area's size, the
 * caller's buffers left alone, arguments checked, and the wipefs loop's rules (each hit's magic
 * hidden before the same prober is asked again; an offset listed once).
 */
import { describe, expect, it } from 'vitest';
import { findSignatures, SIGNATURE_TYPES } from '../src/partition/signatures.js';
import { MAX_TOTAL_READ_BYTES } from '../src/partition/signatures/view.js';
import { crc32 } from './helpers.js';

const MiB = 1024 * 1024;
const TiB = 1024 * 1024 * MiB;

/** A GPT of `sectorSize` on an image of `bytes` built by hand: header at `lba`, entries after it (or before it for the backup). */
function gptHeader(image: Buffer, sectorSize: number, lba: number, lastLba: number, entryCount: number, entriesLba: number): void {
  const h = Buffer.alloc(92);
  h.write('EFI PART', 0, 'latin1');
  h.writeUInt32LE(0x10000, 8);
  h.writeUInt32LE(92, 12);
  h.writeBigUInt64LE(BigInt(lba), 24);
  h.writeBigUInt64LE(BigInt(lba === 1 ? lastLba : 1), 32);
  h.writeBigUInt64LE(34n, 40);
  h.writeBigUInt64LE(BigInt(lastLba - 33), 48);
  h.writeBigUInt64LE(BigInt(entriesLba), 72);
  h.writeUInt32LE(entryCount, 80);
  h.writeUInt32LE(128, 84);
  const entriesOffset = entriesLba * sectorSize;
  h.writeUInt32LE(crc32(image.subarray(entriesOffset, entriesOffset + entryCount * 128)), 88);
  h.writeUInt32LE(crc32(h), 16);
  h.copy(image, lba * sectorSize);
}

describe('findSignatures reads a fixed set of small places', () => {
  it('on a 1 TiB area of zeros: under 8 MiB in all, in the first 5 MiB and the last 1 MiB only', () => {
    const reads: { offset: number; length: number }[] = [];
    const found = findSignatures((offset, length) => (reads.push({ offset, length }), Buffer.alloc(length)), TiB);
    expect(found).toEqual([]);
    expect(reads.length).toBeGreaterThan(10);
    expect(reads.reduce((n, r) => n + r.length, 0)).toBeLessThan(8 * MiB);
    expect(reads.filter((r) => !(r.offset + r.length <= 5 * MiB || r.offset >= TiB - MiB))).toEqual([]);
  });

  it('a GPT whose header claims a 16 MiB entry array is read in 64 KiB pieces, once per header', () => {
    const bytes = 64 * MiB;
    const image = Buffer.alloc(bytes);
    const entryCount = (16 * MiB) / 128;
    gptHeader(image, 512, 1, bytes / 512 - 1, entryCount, 2);
    image.writeUInt16LE(0xaa55, 510);
    image[446 + 4] = 0xee;
    const reads: number[] = [];
    const found = findSignatures((o, l) => (reads.push(l), image.subarray(o, o + l)), bytes);
    expect(found.map((s) => [s.type, s.offset])).toEqual([
      ['gpt', 512],
      ['PMBR', 510],
    ]);
    expect(Math.max(...reads)).toBeLessThanOrEqual(64 * 1024);
    // The array once per valid header found, and the small places.
    expect(reads.reduce((n, l) => n + l, 0)).toBeLessThan(3 * 16 * MiB);
  });

  it('an entry array larger than 16 MiB is not read: that header does not count', () => {
    const bytes = 64 * MiB;
    const image = Buffer.alloc(bytes);
    gptHeader(image, 512, 1, bytes / 512 - 1, (16 * MiB) / 128 + 1, 2);
    const reads: number[] = [];
    expect(findSignatures((o, l) => (reads.push(l), image.subarray(o, o + l)), bytes)).toEqual([]);
    expect(reads.reduce((n, l) => n + l, 0)).toBeLessThan(MiB);
  });
});

describe('findSignatures and the caller', () => {
  it('leaves the buffers read returns as they were (hidden magics are zeroed in copies)', () => {
    const bytes = 8 * MiB;
    const image = Buffer.alloc(bytes);
    gptHeader(image, 512, 1, bytes / 512 - 1, 128, 2);
    gptHeader(image, 512, bytes / 512 - 1, bytes / 512 - 1, 128, bytes / 512 - 33);
    image.writeUInt16LE(0xaa55, 510);
    image[446 + 4] = 0xee;
    const before = Buffer.from(image);
    const found = findSignatures((o, l) => image.subarray(o, o + l), bytes);
    expect(found.map((s) => [s.type, s.offset, s.length])).toEqual([
      ['gpt', 512, 8],
      ['gpt', bytes - 512, 8],
      ['PMBR', 510, 2],
    ]);
    expect(image.equals(before)).toBe(true);
  });

  it('refuses an area size or a sector size that cannot be', () => {
    const read = (_o: number, l: number): Buffer => Buffer.alloc(l);
    expect(() => findSignatures(read, -1)).toThrow(RangeError);
    expect(() => findSignatures(read, Number.NaN)).toThrow(RangeError);
    expect(() => findSignatures(read, 2 ** 53)).toThrow(RangeError);
    expect(() => findSignatures(read, MiB, { sectorSize: 1000 })).toThrow(RangeError);
    expect(() => findSignatures(read, MiB, { sectorSize: 256 })).toThrow(RangeError);
    expect(findSignatures(read, 0)).toEqual([]);
  });

  it('a read that comes back short counts as unreadable, never as data', () => {
    const image = Buffer.alloc(MiB);
    image.writeUInt16LE(0xaa55, 510);
    expect(findSignatures((o, l) => image.subarray(o, o + l), MiB).map((s) => s.type)).toEqual(['dos']);
    expect(findSignatures((o, l) => image.subarray(o, o + l - 1), MiB)).toEqual([]);
  });

  it('names only the types it knows, superblocks before partition tables', () => {
    expect(SIGNATURE_TYPES.slice(-3)).toEqual(['dos', 'gpt', 'PMBR']);
    expect(new Set(SIGNATURE_TYPES).size).toBe(SIGNATURE_TYPES.length);
    for (const t of ['ext4', 'xfs', 'btrfs', 'swap', 'vfat', 'exfat', 'ntfs', 'iso9660', 'LVM2_member', 'crypto_LUKS', 'linux_raid_member', 'squashfs', 'f2fs', 'bcache']) expect(SIGNATURE_TYPES).toContain(t);
  });
});

describe("the wipefs loop's rules", () => {
  it('a FAT boot sector is found three times (type string, jump byte, 55 AA), and is not a dos table', () => {
    const image = Buffer.alloc(4 * MiB);
    // FAT16 BPB: 512-byte sectors, 4 per cluster, 4 reserved, 2 FATs of 8 sectors, 512 root entries, 8192 sectors.
    image[0] = 0xeb;
    image.writeUInt16LE(512, 0x0b);
    image[0x0d] = 4;
    image.writeUInt16LE(4, 0x0e);
    image[0x10] = 2;
    image.writeUInt16LE(512, 0x11);
    image.writeUInt16LE(8192, 0x13);
    image[0x15] = 0xf8;
    image.writeUInt16LE(8, 0x16);
    image.write('FAT16   ', 0x36, 'latin1');
    image.writeUInt16LE(0xaa55, 510);
    const found = findSignatures((o, l) => image.subarray(o, o + l), image.length);
    expect(found.map((s) => [s.type, s.offset, s.length])).toEqual([
      ['vfat', 0x36, 8],
      ['vfat', 0, 1],
      ['vfat', 0x1fe, 2],
    ]);
    // Without its media byte it is no FAT: the same sector is a dos MBR.
    image[0x15] = 0;
    expect(findSignatures((o, l) => image.subarray(o, o + l), image.length).map((s) => [s.type, s.offset])).toEqual([['dos', 0x1fe]]);
  });
});

describe('the worst case for reads', () => {
  it('GPT headers with 16 MiB arrays, one failing its entries CRC, and MD superblocks that make the raid prober read them too: bounded, no exception', () => {
    const bytes = 128 * MiB;
    const image = Buffer.alloc(bytes);
    const lastLba = bytes / 512 - 1;
    const entryCount = (16 * MiB) / 128;
    gptHeader(image, 512, lastLba, lastLba, entryCount, 2);
    gptHeader(image, 512, 1, lastLba, entryCount, 2);
    image[2 * 512] = 1; // the primary's entries CRC no longer matches (the backup was computed before)
    gptHeader(image, 512, lastLba, lastLba, entryCount, 2);
    image.writeUInt16LE(0xaa55, 510);
    image[446 + 4] = 0xee;
    // MD superblocks 0.90 (64 KiB before the end) and 1.0 (8 KiB before it): the raid prober asks
    // whether a partition holds them, which reads the GPT arrays too.
    const md0 = Math.floor(bytes / 65536) * 65536 - 65536;
    image.writeUInt32LE(0xa92b4efc, md0);
    image.writeUInt32LE(90, md0 + 8);
    const md10 = bytes - 8192;
    image.writeUInt32LE(0xa92b4efc, md10);
    image.writeUInt32LE(1, md10 + 4);
    image.writeBigUInt64LE(BigInt(md10 / 512), md10 + 144);
    let total = 0;
    const found = findSignatures((o, l) => ((total += l), image.subarray(o, o + l)), bytes);
    expect(found.map((s) => s.type)).toEqual(['linux_raid_member', 'linux_raid_member', 'gpt', 'PMBR']);
    // The array once for both headers' CRCs (same bytes, same hidden ranges), once for the partition list.
    expect(total).toBeLessThan(2 * 16 * MiB + MiB);
    expect(total).toBeLessThanOrEqual(MAX_TOTAL_READ_BYTES);
  });
});
