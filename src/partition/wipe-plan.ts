/**
 * The sectors a table write puts on a disk: the new table's sectors plus the wipes of what the
 * disk carried before, as sfdisk 2.38.1 does them (found by experiment, byte by byte). Pure: the
 * disk comes in as a reader, sector writes come out; src/io/table-writer.ts writes them, and
 * fsmaker streams the same writes as pieces of its disk.
 *
 * sfdisk's rules (--wipe, default auto):
 * - auto or always, and the disk had a GPT while the new label is dos: "EFI PART" (8 bytes) is
 *   zeroed in each GPT header blkid accepts (signature, header CRC, my LBA, entries CRC): the
 *   primary at LBA 1 and the backup at the last LBA. The entry arrays stay, and so does a backup
 *   stranded before the end by a grown image (blkid does not look there). A dos table under a new
 *   GPT needs no wipe: the protective MBR replaces sector 0, and its EBRs are not signatures.
 *   Unlike sfdisk, a GPT whose protective MBR was zeroed counts too (libfdisk then sees no label
 *   and wipes nothing, leaving a dos table over two GPT headers).
 * - always: also the boot code of sector 0 (bytes 0..439) and every signature findSignatures
 *   finds on the whole disk (filesystems, RAID, swap...), each magic zeroed as blkid_do_wipe does.
 * - never: nothing but the table.
 * - auto notes (as sfdisk warns) a filesystem, RAID or swap signature on the whole disk it keeps.
 * - A medium larger than the table's disk (fsmaker's disk on a larger device): a valid GPT header
 *   at the medium's last LBA is old whatever the new label, and goes too (auto and always).
 * --wipe-partitions: always zeroes the signatures found in each new partition; auto (in script
 *   mode, as sfdisk) only notes them ("Partition #1 contains a swap signature."); never, nothing.
 */
import { GPT_SIGNATURE } from './gpt.js';
import { leftoverGptHeaders } from './gpt-leftovers.js';
import { MBR_BOOT_CODE_BYTES, mergeMbrSector } from './mbr.js';
import type { PartitionTable, SectorReader, SectorWrite } from './model.js';
import { serializeTable } from './read.js';
import { type Signature, findSignatures } from './signatures.js';

export type WipeMode = 'auto' | 'always' | 'never';

export const WIPE_MODES: readonly WipeMode[] = ['auto', 'always', 'never'];

/** What finds filesystem, RAID, swap and table signatures in an area (signatures.ts findSignatures). */
export type SignatureFinder = typeof findSignatures;

export interface WipeOptions {
  /** sfdisk --wipe; default auto. */
  wipe?: WipeMode;
  /** sfdisk --wipe-partitions; default auto. */
  wipePartitions?: WipeMode;
  /** What finds the signatures for always and --wipe-partitions; default signatures.ts's. */
  findSignatures?: SignatureFinder;
  /**
   * The medium's size in sectors when it is larger than the table's disk (fsmaker's disk on a
   * larger device): a GPT header at its last LBA is then old, whatever the new label.
   */
  mediumSectors?: number;
}

/** One range of bytes zeroed, and why (for -n and for the notes). */
export interface ByteWipe {
  /** Byte offset on the disk. */
  offset: number;
  length: number;
  type: string;
  /** 'old-label': the table replaced; 'disk': --wipe always; 'partition': --wipe-partitions. */
  reason: 'old-label' | 'boot-code' | 'disk' | 'partition';
  partition?: number;
}

export interface TableWritePlan {
  /** Every sector to write, wipes first, in the order to write them. */
  writes: SectorWrite[];
  wipes: ByteWipe[];
  /** What sfdisk says without doing it, even with -q (a signature left in a new partition). */
  notes: string[];
  /** sfdisk's collision warnings (a whole-disk filesystem kept), which -q silences. */
  collisions: string[];
}

const EXTENDED_TYPES: ReadonlySet<string> = new Set(['5', 'f', '85']);

/** A byte reader over a sector reader, for findSignatures (area = `startLba` onward). */
function byteReader(read: SectorReader, sectorSize: number, startLba: number): (offset: number, length: number) => Buffer {
  return (offset, length) => {
    if (length <= 0) return Buffer.alloc(0);
    const first = Math.floor(offset / sectorSize);
    const last = Math.floor((offset + length - 1) / sectorSize);
    const data = read(startLba + first, last - first + 1);
    const at = offset - first * sectorSize;
    return data.subarray(at, at + length);
  };
}

function oldLabelWipes(read: SectorReader, sectorSize: number, mediumSectors: number, table: PartitionTable): ByteWipe[] {
  const replaced = (lba: number): boolean => table.label === 'dos' || lba >= table.diskSectors;
  return leftoverGptHeaders(read, sectorSize, mediumSectors).filter(replaced).map((lba) => ({ offset: lba * sectorSize, length: GPT_SIGNATURE.length, type: 'gpt', reason: 'old-label' }));
}

function signatureWipes(found: Signature[], base: number, reason: ByteWipe['reason'], partition?: number): ByteWipe[] {
  return found.map((s) => ({ offset: base + s.offset, length: s.length, type: s.type, reason, ...(partition === undefined ? {} : { partition }) }));
}

/**
 * Plans writing `table` over what `read` shows of the disk (`diskSectors` long, the size the
 * table is written for). Sector 0 keeps its boot code unless --wipe always zeroes it.
 */
export function planTableWrite(read: SectorReader, table: PartitionTable, options: WipeOptions = {}): TableWritePlan {
  const { sectorSize, diskSectors } = table;
  const wipe = options.wipe ?? 'auto';
  const wipePartitions = options.wipePartitions ?? 'auto';
  const finder = options.findSignatures ?? findSignatures;
  const wipes: ByteWipe[] = [];
  const notes: string[] = [];
  const collisions: string[] = [];
  const mediumSectors = Math.max(options.mediumSectors ?? diskSectors, diskSectors);
  if (wipe !== 'never') wipes.push(...oldLabelWipes(read, sectorSize, mediumSectors, table));
  if (wipe === 'always') {
    wipes.push({ offset: 0, length: MBR_BOOT_CODE_BYTES, type: 'boot code', reason: 'boot-code' });
    const found = finder(byteReader(read, sectorSize, 0), diskSectors * sectorSize, { sectorSize });
    wipes.push(...signatureWipes(found.filter((s) => !wipes.some((w) => w.offset === s.offset)), 0, 'disk'));
  } else if (wipe === 'auto') {
    // sfdisk's collision warning: a whole-disk filesystem (or RAID, swap) stays under the table.
    for (const s of finder(byteReader(read, sectorSize, 0), diskSectors * sectorSize, { sectorSize })) {
      if (s.usage !== 'partition-table') collisions.push(`The device contains '${s.type}' signature and it may remain on the device. It is recommended to wipe the device with wipefs(8) or --wipe always, in order to avoid possible collisions.`);
    }
  }
  if (wipePartitions !== 'never') {
    for (const p of table.partitions) {
      // An extended partition's first sector is its EBR, which the table writes anyway.
      if (p.size <= 0 || p.start >= diskSectors || (table.label === 'dos' && EXTENDED_TYPES.has(p.type))) continue;
      const area = Math.min(p.size, diskSectors - p.start) * sectorSize;
      const found = finder(byteReader(read, sectorSize, p.start), area, { sectorSize });
      if (wipePartitions === 'always') wipes.push(...signatureWipes(found, p.start * sectorSize, 'partition', p.number));
      else for (const s of found) notes.push(`Partition #${p.number} contains a ${s.type} signature.`);
    }
  }
  return { writes: sectorWrites(read, sectorSize, serializeTable(table), wipes), wipes, notes, collisions };
}

/**
 * The wipes as sector writes (each touched sector read, its bytes zeroed), then the table's
 * writes, whose sector 0 keeps the (possibly wiped) boot code. A wiped sector the table rewrites
 * whole is not written twice.
 */
function sectorWrites(read: SectorReader, sectorSize: number, tableWrites: SectorWrite[], wipes: ByteWipe[]): SectorWrite[] {
  const covered = new Set<number>();
  for (const w of tableWrites) for (let i = 0; i < w.data.length / sectorSize; i++) covered.add(w.lba + i);
  const wiped = new Map<number, Buffer>();
  for (const w of wipes) {
    for (let lba = Math.floor(w.offset / sectorSize); lba * sectorSize < w.offset + w.length; lba++) {
      let sector = wiped.get(lba);
      if (!sector) {
        sector = Buffer.from(read(lba, 1));
        wiped.set(lba, sector);
      }
      const from = Math.max(w.offset, lba * sectorSize) - lba * sectorSize;
      const to = Math.min(w.offset + w.length, (lba + 1) * sectorSize) - lba * sectorSize;
      sector.fill(0, from, to);
    }
  }
  const writes: SectorWrite[] = [];
  for (const [lba, data] of [...wiped].sort((a, b) => a[0] - b[0])) if (!covered.has(lba)) writes.push({ lba, data });
  for (const w of tableWrites) {
    if (w.lba !== 0) {
      writes.push(w);
      continue;
    }
    const existing = wiped.get(0) ?? read(0, 1);
    writes.push({ lba: 0, data: Buffer.concat([mergeMbrSector(existing, w.data.subarray(0, 512)), w.data.subarray(512)]) });
  }
  return writes;
}
