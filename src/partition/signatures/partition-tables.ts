/**
 * The partition-table probers wipefs uses, as libblkid 2.38 runs them for wipefs (type only, GPT
 * forced: a GPT header counts without a protective MBR): dos, gpt (primary, then backup once the
 * primary's magic is hidden) and PMBR (a protective MBR whose GPT headers are both gone).
 */
import { crc32 } from '../../codec/crc32.js';
import { isFatBootSector } from './fat.js';
import { isNtfsBootSector } from './ntfs.js';
import { type Prober, magic } from './types.js';
import type { AreaView } from './view.js';

const MBR_MAGIC_OFFSET = 510;
const MBR_ENTRIES_OFFSET = 446;
const MBR_GPT_TYPE = 0xee;
const AIX_MAGIC = Buffer.from([0xc9, 0xc2, 0xd4, 0xc1]);

/** libblkid reads "sectors" of 512 bytes for the MBR, whatever the logical sector size. */
const mbrSector = (view: AreaView): Buffer | null => view.read(0, 512);

const hasMbrMagic = (mbr: Buffer): boolean => mbr[MBR_MAGIC_OFFSET] === 0x55 && mbr[MBR_MAGIC_OFFSET + 1] === 0xaa;

function mbrEntries(mbr: Buffer): { bootIndicator: number; type: number }[] {
  return [0, 1, 2, 3].map((i) => ({ bootIndicator: mbr[MBR_ENTRIES_OFFSET + i * 16]!, type: mbr[MBR_ENTRIES_OFFSET + i * 16 + 4]! }));
}

/** libblkid's probe_dos_pt (its 55 AA already matched). */
function isDosTable(view: AreaView): boolean {
  const mbr = mbrSector(view);
  if (!mbr) return false;
  if (mbr.subarray(0, 4).equals(AIX_MAGIC)) return false;
  const entries = mbrEntries(mbr);
  if (entries.some((e) => e.bootIndicator !== 0 && e.bootIndicator !== 0x80)) return false;
  if (entries.some((e) => e.type === MBR_GPT_TYPE)) return false; // a protective MBR: GPT's or PMBR's
  // A FAT or NTFS boot sector carries 55 AA too.
  return !isFatBootSector(view) && !isNtfsBootSector(view);
}

const dos: Prober = {
  type: 'dos',
  usage: 'partition-table',
  magics: [magic([0x55, 0xaa], MBR_MAGIC_OFFSET)],
  check: isDosTable,
};

/** GPT header fields (little-endian), UEFI 2.x 5.3.2. */
const GPT_HEADER = { signature: 0, revision: 8, headerSize: 12, headerCrc32: 16, myLba: 24, alternateLba: 32, firstUsableLba: 40, lastUsableLba: 48, diskGuid: 56, entriesLba: 72, entryCount: 80, entrySize: 84, entriesCrc32: 88 } as const;
const GPT_HEADER_BYTES = 92;
const GPT_ENTRY_BYTES = 128;
const GPT_SIGNATURE = Buffer.from('EFI PART', 'latin1');
/** ptable's own limit (src/partition/gpt.ts); libblkid's is 4 GiB. Larger arrays are not read. */
const MAX_ENTRY_ARRAY_BYTES = 16 * 1024 * 1024;
/** Entries are listed in pieces of this size (a whole number of entries). */
const ENTRIES_PIECE_BYTES = 64 * 1024;

/** libblkid's get_gpt_header: every test it makes, in its order; the header's sector when valid. */
function validGptHeader(view: AreaView, lba: number): Buffer | null {
  const ssz = view.sectorSize;
  const lastLba = view.lastLba;
  if (lba < 0 || lba > lastLba) return null;
  const h = view.sector(lba);
  if (!h) return null;
  if (!h.subarray(0, 8).equals(GPT_SIGNATURE)) return null;
  const headerSize = h.readUInt32LE(GPT_HEADER.headerSize);
  if (headerSize > ssz || headerSize < GPT_HEADER_BYTES) return null;
  const withoutCrc = Buffer.from(h.subarray(0, headerSize));
  withoutCrc.fill(0, GPT_HEADER.headerCrc32, GPT_HEADER.headerCrc32 + 4);
  if (crc32(withoutCrc) !== h.readUInt32LE(GPT_HEADER.headerCrc32)) return null;
  const big = (field: number): bigint => h.readBigUInt64LE(field);
  if (big(GPT_HEADER.myLba) !== BigInt(lba)) return null;
  const first = big(GPT_HEADER.firstUsableLba);
  const last = big(GPT_HEADER.lastUsableLba);
  const lastLbaBig = BigInt(lastLba);
  if (last < first || first > lastLbaBig || last > lastLbaBig) return null;
  if (first < BigInt(lba) && BigInt(lba) < last) return null;
  const entrySize = h.readUInt32LE(GPT_HEADER.entrySize);
  const arrayBytes = h.readUInt32LE(GPT_HEADER.entryCount) * entrySize;
  if (arrayBytes === 0 || arrayBytes >= 0xffffffff || entrySize !== GPT_ENTRY_BYTES) return null;
  if (arrayBytes > MAX_ENTRY_ARRAY_BYTES) return null;
  const entriesOffset = Number(big(GPT_HEADER.entriesLba)) * ssz;
  if (!Number.isSafeInteger(entriesOffset) || entriesOffset + arrayBytes > view.areaBytes) return null;
  return view.crc32Of(entriesOffset, arrayBytes) === h.readUInt32LE(GPT_HEADER.entriesCrc32) ? h : null;
}

const isValidGptHeader = (view: AreaView, lba: number): boolean => validGptHeader(view, lba) !== null;

/** A protective MBR: 55 AA and an entry of type EE. */
function hasProtectiveMbr(view: AreaView): boolean {
  const mbr = mbrSector(view);
  return mbr !== null && hasMbrMagic(mbr) && mbrEntries(mbr).some((e) => e.type === MBR_GPT_TYPE);
}

const gpt: Prober = {
  type: 'gpt',
  usage: 'partition-table',
  check(view) {
    if (view.lastLba < 1) return false;
    for (const lba of [1, view.lastLba]) {
      if (isValidGptHeader(view, lba)) return { offset: lba * view.sectorSize, length: GPT_SIGNATURE.length };
    }
    return false;
  },
};

/** A protective MBR left without a GPT (wipefs lists it after both GPT headers). */
const pmbr: Prober = {
  type: 'PMBR',
  usage: 'partition-table',
  magics: [magic([0x55, 0xaa], MBR_MAGIC_OFFSET)],
  check(view) {
    if (view.lastLba < 1 || !hasProtectiveMbr(view)) return false;
    return !isValidGptHeader(view, 1) && !isValidGptHeader(view, view.lastLba);
  },
};

/** libblkid's partitions chain, in its order, without the labels ptable does not know. */
export const PARTITION_TABLE_PROBERS: readonly Prober[] = [dos, gpt, pmbr];

/** A partition in 512-byte sectors, as libblkid's partition list gives it. */
export interface PartitionSpan {
  start: number;
  size: number;
}

/** GPT entry fields. */
const GPT_ENTRY = { typeGuid: 0, firstLba: 32, lastLba: 40 } as const;

function gptSpans(view: AreaView, header: Buffer): PartitionSpan[] {
  const first = header.readBigUInt64LE(GPT_HEADER.firstUsableLba);
  const last = header.readBigUInt64LE(GPT_HEADER.lastUsableLba);
  const ssf = BigInt(view.sectorSize / 512);
  const arrayOffset = Number(header.readBigUInt64LE(GPT_HEADER.entriesLba)) * view.sectorSize;
  const arrayBytes = header.readUInt32LE(GPT_HEADER.entryCount) * GPT_ENTRY_BYTES;
  const spans: PartitionSpan[] = [];
  // The header was validated: the array is inside the area and at most 16 MiB.
  for (let done = 0; done < arrayBytes; done += ENTRIES_PIECE_BYTES) {
    const piece = view.read(arrayOffset + done, Math.min(ENTRIES_PIECE_BYTES, arrayBytes - done));
    if (!piece) break;
    for (let at = 0; at + GPT_ENTRY_BYTES <= piece.length; at += GPT_ENTRY_BYTES) {
      const e = piece.subarray(at, at + GPT_ENTRY_BYTES);
      if (e.subarray(GPT_ENTRY.typeGuid, GPT_ENTRY.typeGuid + 16).every((b) => b === 0)) continue;
      const start = e.readBigUInt64LE(GPT_ENTRY.firstLba);
      const size = e.readBigUInt64LE(GPT_ENTRY.lastLba) - start + 1n;
      if (start < first || start + size - 1n > last) continue;
      spans.push({ start: Number(start * ssf), size: Number(size * ssf) });
    }
  }
  return spans;
}

/**
 * The partitions libblkid's default partition probe lists on a fresh probe of the area, nothing
 * hidden (dos primaries, or GPT entries with a protective MBR), for the one prober that asks: MD
 * RAID 0.90 gives way to a partition that holds it. Logical partitions lie inside their extended
 * one, which is listed.
 */
export function partitionSpans(view: AreaView): PartitionSpan[] {
  return view.unhidden().once('partition-spans', () => listPartitions(view.unhidden()));
}

function listPartitions(view: AreaView): PartitionSpan[] {
  const mbr = mbrSector(view);
  if (!mbr || !hasMbrMagic(mbr)) return [];
  if (isDosTable(view)) {
    const ssf = view.sectorSize / 512;
    return [0, 1, 2, 3]
      .map((i) => ({ start: mbr.readUInt32LE(MBR_ENTRIES_OFFSET + i * 16 + 8) * ssf, size: mbr.readUInt32LE(MBR_ENTRIES_OFFSET + i * 16 + 12) * ssf }))
      .filter((p) => p.size > 0);
  }
  if (!hasProtectiveMbr(view) || view.lastLba < 1) return [];
  const header = validGptHeader(view, 1) ?? validGptHeader(view, view.lastLba);
  return header ? gptSpans(view, header) : [];
}
