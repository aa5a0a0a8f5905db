/**
 * The partition-table probers wipefs uses, as libblkid 2.38 runs them for wipefs (type only, GPT
 * forced: a GPT header counts without a protective MBR): dos, gpt (primary, then backup once the
 * primary's magic is hidden) and PMBR (a protective MBR whose GPT headers are both gone).
 */
import { crc32 } from '../../codec/crc32.js';
import { isFatBootSector, isNtfsBootSector } from './fat.js';
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

const dos: Prober = {
  type: 'dos',
  usage: 'partition-table',
  magics: [magic([0x55, 0xaa], MBR_MAGIC_OFFSET)],
  check(view) {
    const mbr = mbrSector(view);
    if (!mbr) return false;
    if (mbr.subarray(0, 4).equals(AIX_MAGIC)) return false;
    const entries = mbrEntries(mbr);
    if (entries.some((e) => e.bootIndicator !== 0 && e.bootIndicator !== 0x80)) return false;
    if (entries.some((e) => e.type === MBR_GPT_TYPE)) return false; // a protective MBR: GPT's or PMBR's
    // A FAT or NTFS boot sector carries 55 AA too.
    if (isFatBootSector(view) || isNtfsBootSector(view)) return false;
    return true;
  },
};

/** GPT header fields (little-endian), UEFI 2.x 5.3.2. */
const GPT_HEADER = { signature: 0, revision: 8, headerSize: 12, headerCrc32: 16, myLba: 24, alternateLba: 32, firstUsableLba: 40, lastUsableLba: 48, diskGuid: 56, entriesLba: 72, entryCount: 80, entrySize: 84, entriesCrc32: 88 } as const;
const GPT_HEADER_BYTES = 92;
const GPT_ENTRY_BYTES = 128;
const GPT_SIGNATURE = Buffer.from('EFI PART', 'latin1');
/** ptable's own limit (src/partition/gpt.ts); libblkid's is 4 GiB. Larger arrays are not read. */
const MAX_ENTRY_ARRAY_BYTES = 16 * 1024 * 1024;
const ENTRY_READ_PIECE = 64 * 1024;

/** libblkid's get_gpt_header: every test it makes, in its order. */
export function isValidGptHeader(view: AreaView, lba: number): boolean {
  const ssz = view.sectorSize;
  const lastLba = view.lastLba;
  if (lba < 0 || lba > lastLba) return false;
  const h = view.sector(lba);
  if (!h) return false;
  if (!h.subarray(0, 8).equals(GPT_SIGNATURE)) return false;
  const headerSize = h.readUInt32LE(GPT_HEADER.headerSize);
  if (headerSize > ssz || headerSize < GPT_HEADER_BYTES) return false;
  const withoutCrc = Buffer.from(h.subarray(0, headerSize));
  withoutCrc.fill(0, GPT_HEADER.headerCrc32, GPT_HEADER.headerCrc32 + 4);
  if (crc32(withoutCrc) !== h.readUInt32LE(GPT_HEADER.headerCrc32)) return false;
  const big = (field: number): bigint => h.readBigUInt64LE(field);
  if (big(GPT_HEADER.myLba) !== BigInt(lba)) return false;
  const first = big(GPT_HEADER.firstUsableLba);
  const last = big(GPT_HEADER.lastUsableLba);
  const lastLbaBig = BigInt(lastLba);
  if (last < first || first > lastLbaBig || last > lastLbaBig) return false;
  if (first < BigInt(lba) && BigInt(lba) < last) return false;
  const entrySize = h.readUInt32LE(GPT_HEADER.entrySize);
  const arrayBytes = h.readUInt32LE(GPT_HEADER.entryCount) * entrySize;
  if (arrayBytes === 0 || arrayBytes >= 0xffffffff || entrySize !== GPT_ENTRY_BYTES) return false;
  if (arrayBytes > MAX_ENTRY_ARRAY_BYTES) return false;
  const entriesOffset = Number(big(GPT_HEADER.entriesLba)) * ssz;
  if (!Number.isSafeInteger(entriesOffset) || entriesOffset + arrayBytes > view.areaBytes) return false;
  let crc = 0;
  for (let done = 0; done < arrayBytes; done += ENTRY_READ_PIECE) {
    const piece = view.read(entriesOffset + done, Math.min(ENTRY_READ_PIECE, arrayBytes - done));
    if (!piece) return false;
    crc = crc32(piece, crc);
  }
  return crc === h.readUInt32LE(GPT_HEADER.entriesCrc32);
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
    if (view.lastLba < 1) return false;
    const mbr = mbrSector(view);
    if (!mbr || !hasMbrMagic(mbr)) return false;
    if (!mbrEntries(mbr).some((e) => e.type === MBR_GPT_TYPE)) return false;
    return !isValidGptHeader(view, 1) && !isValidGptHeader(view, view.lastLba);
  },
};

/** libblkid's partitions chain, in its order, without the labels ptable does not know. */
export const PARTITION_TABLE_PROBERS: readonly Prober[] = [dos, gpt, pmbr];
