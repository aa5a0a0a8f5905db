/**
 * Byte and field edits of partition tables, for hostile-input tests: MBR/EBR entry fields, GPT
 * header and entry fields with every CRC repaired afterwards (so that a reader gets past the CRC
 * rungs and the deeper validation is what the edit reaches). In memory (Buffer images) and on
 * files. Independent of the code under test: offsets are the on-disk layout, CRCs from helpers.ts.
 */
import fs from 'node:fs';
import { crc32 } from './helpers.js';

/** MBR/EBR layout: the 4 entries at 446, 16 bytes each. */
export const MBR_ENTRIES_OFFSET = 446;
export const MBR_ENTRY_BYTES = 16;
/** Offsets inside one MBR entry. */
export const MBR_FIELD = { boot: 0, type: 4, lbaStart: 8, sectors: 12 } as const;

/** GPT header and entry field offsets (UEFI spec), and the header's CRC coverage. */
export const GPT_HEADER_FIELD = {
  headerSize: 12,
  headerCrc: 16,
  myLba: 24,
  alternateLba: 32,
  firstUsable: 40,
  lastUsable: 48,
  entriesLba: 72,
  entryCount: 80,
  entrySize: 84,
  entriesCrc: 88,
} as const;
export const GPT_ENTRY_FIELD = { type: 0, unique: 16, firstLba: 32, lastLba: 40, attributes: 48, name: 56 } as const;

export interface MbrEntryEdit {
  boot?: number;
  type?: number;
  lbaStart?: number;
  sectors?: number;
}

/** Byte offset of entry `index` (0-3) of the MBR or EBR at `sectorLba`. */
export const mbrEntryOffset = (sectorLba: number, index: number, sectorSize = 512): number =>
  sectorLba * sectorSize + MBR_ENTRIES_OFFSET + index * MBR_ENTRY_BYTES;

/** Sets fields of one MBR/EBR entry in an in-memory image. */
export function editMbrEntry(image: Buffer, sectorLba: number, index: number, edit: MbrEntryEdit, sectorSize = 512): void {
  const o = mbrEntryOffset(sectorLba, index, sectorSize);
  if (edit.boot !== undefined) image[o + MBR_FIELD.boot] = edit.boot;
  if (edit.type !== undefined) image[o + MBR_FIELD.type] = edit.type;
  if (edit.lbaStart !== undefined) image.writeUInt32LE(edit.lbaStart >>> 0, o + MBR_FIELD.lbaStart);
  if (edit.sectors !== undefined) image.writeUInt32LE(edit.sectors >>> 0, o + MBR_FIELD.sectors);
}

/** Reads one MBR/EBR entry of an in-memory image. */
export function readMbrEntry(image: Buffer, sectorLba: number, index: number, sectorSize = 512): Required<MbrEntryEdit> {
  const o = mbrEntryOffset(sectorLba, index, sectorSize);
  return {
    boot: image[o + MBR_FIELD.boot]!,
    type: image[o + MBR_FIELD.type]!,
    lbaStart: image.readUInt32LE(o + MBR_FIELD.lbaStart),
    sectors: image.readUInt32LE(o + MBR_FIELD.sectors),
  };
}

/** The LBAs of the EBRs of a dos image, following its links from the first extended entry. */
export function ebrChain(image: Buffer, sectorSize = 512): number[] {
  const isExtended = (t: number): boolean => t === 0x05 || t === 0x0f || t === 0x85;
  let ext = -1;
  for (let i = 0; i < 4; i++) if (isExtended(readMbrEntry(image, 0, i, sectorSize).type)) ext = readMbrEntry(image, 0, i, sectorSize).lbaStart;
  const chain: number[] = [];
  for (let ebr = ext; ebr > 0 && !chain.includes(ebr) && (ebr + 1) * sectorSize <= image.length; ) {
    chain.push(ebr);
    const link = [0, 1, 2, 3].map((i) => readMbrEntry(image, ebr, i, sectorSize)).find((e) => isExtended(e.type) && e.sectors > 0);
    ebr = link ? ext + link.lbaStart : -1;
  }
  return chain;
}

interface GptHeaderView {
  lba: number;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
}

function headerAt(image: Buffer, lba: number, sectorSize: number): GptHeaderView | null {
  const o = lba * sectorSize;
  if (o + 92 > image.length || image.subarray(o, o + 8).toString('latin1') !== 'EFI PART') return null;
  return {
    lba,
    entriesLba: Number(image.readBigUInt64LE(o + GPT_HEADER_FIELD.entriesLba)),
    entryCount: image.readUInt32LE(o + GPT_HEADER_FIELD.entryCount),
    entrySize: image.readUInt32LE(o + GPT_HEADER_FIELD.entrySize),
  };
}

/** The primary header (LBA 1) and the backup it points to, where they carry the signature. */
export function gptHeaders(image: Buffer, sectorSize: number): GptHeaderView[] {
  const primary = headerAt(image, 1, sectorSize);
  const alternate = primary ? Number(image.readBigUInt64LE(sectorSize + GPT_HEADER_FIELD.alternateLba)) : image.length / sectorSize - 1;
  const backup = Number.isSafeInteger(alternate) && alternate > 1 ? headerAt(image, alternate, sectorSize) : null;
  return [primary, backup].filter((h): h is GptHeaderView => h !== null);
}

/**
 * Recomputes the entry-array CRC and then the header CRC of every GPT header found (where the
 * geometry fits the image; an absurd one is left as it is, which is what the edit wanted).
 */
export function repairGptCrcs(image: Buffer, sectorSize: number): void {
  for (const h of gptHeaders(image, sectorSize)) {
    const o = h.lba * sectorSize;
    const arrayBytes = h.entryCount * h.entrySize;
    const arrayAt = h.entriesLba * sectorSize;
    if (arrayBytes > 0 && arrayBytes <= 16 << 20 && Number.isSafeInteger(arrayAt) && arrayAt + arrayBytes <= image.length) {
      image.writeUInt32LE(crc32(image.subarray(arrayAt, arrayAt + arrayBytes)), o + GPT_HEADER_FIELD.entriesCrc);
    }
    const headerSize = image.readUInt32LE(o + GPT_HEADER_FIELD.headerSize);
    if (headerSize >= 92 && headerSize <= sectorSize) {
      image.writeUInt32LE(0, o + GPT_HEADER_FIELD.headerCrc);
      image.writeUInt32LE(crc32(image.subarray(o, o + headerSize)), o + GPT_HEADER_FIELD.headerCrc);
    }
  }
}

/** Edits GPT entry `index` (0-based) in every entry array, then repairs the CRCs. */
export function editGptEntry(image: Buffer, sectorSize: number, index: number, edit: (entry: Buffer) => void): void {
  for (const h of gptHeaders(image, sectorSize)) {
    const o = h.entriesLba * sectorSize + index * h.entrySize;
    edit(image.subarray(o, o + h.entrySize));
  }
  repairGptCrcs(image, sectorSize);
}

/** Edits the primary or backup GPT header sector, then repairs the CRCs. */
export function editGptHeader(image: Buffer, sectorSize: number, which: 'primary' | 'backup', edit: (header: Buffer) => void): void {
  const h = gptHeaders(image, sectorSize)[which === 'primary' ? 0 : 1];
  if (!h) throw new Error(`no ${which} GPT header`);
  edit(image.subarray(h.lba * sectorSize, (h.lba + 1) * sectorSize));
  repairGptCrcs(image, sectorSize);
}

/** Applies an in-memory edit to a file: reads it whole, edits, writes back the changed bytes. */
export function editFile(file: string, edit: (image: Buffer) => void): void {
  const image = fs.readFileSync(file);
  const before = Buffer.from(image);
  edit(image);
  const fd = fs.openSync(file, 'r+');
  try {
    // Only the sectors that changed: a sparse image stays sparse.
    for (let o = 0; o < image.length; o += 512) {
      if (!image.subarray(o, o + 512).equals(before.subarray(o, o + 512))) fs.writeSync(fd, image, o, Math.min(512, image.length - o), o);
    }
  } finally {
    fs.closeSync(fd);
  }
}
