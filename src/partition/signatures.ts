/**
 * The on-disk signatures of an area (a whole disk or one partition) as `wipefs -n` lists them and
 * `wipefs -a` erases them: libblkid 2.38's probers, run in wipefs's loop (each hit's magic hidden,
 * the same prober asked again, superblocks before partition tables). Pure: the caller reads.
 *
 * Bounded: every prober reads a fixed set of small places (superblocks, the first sectors, the
 * last LBA), never the whole area; GPT entry arrays are read in 64 KiB pieces, at most 16 MiB.
 */
import { EXT_PROBERS } from './signatures/ext.js';
import { PARTITION_TABLE_PROBERS } from './signatures/partition-tables.js';
import { runChain } from './signatures/probe.js';
import { SWAP_PROBERS } from './signatures/swap.js';
import type { Prober, Signature } from './signatures/types.js';
import { AreaView } from './signatures/view.js';
import { XFS_PROBERS } from './signatures/xfs.js';

export type { Signature, SignatureUsage } from './signatures/types.js';

/** libblkid's superblocks chain, in its order, limited to the types ptable knows. */
const SUPERBLOCK_PROBERS: readonly Prober[] = [...SWAP_PROBERS, ...XFS_PROBERS, ...EXT_PROBERS];

/** The types findSignatures knows, superblocks first (libblkid's order). */
export const SIGNATURE_TYPES: readonly string[] = [...SUPERBLOCK_PROBERS, ...PARTITION_TABLE_PROBERS].map((p) => p.type);

export interface FindSignaturesOptions {
  /** The logical sector size (GPT's LBA size): 512 unless the device says otherwise. */
  sectorSize?: number;
}

/**
 * The signatures of the area `[0, areaBytes)`, in the order `wipefs -n` lists them; zeroing each
 * `length` bytes at `offset` is what `wipefs -a` (blkid_do_wipe) does. `read(offset, length)`
 * returns those bytes of the area (a short Buffer for bytes past the end).
 */
export function findSignatures(read: (offset: number, length: number) => Buffer, areaBytes: number, options: FindSignaturesOptions = {}): Signature[] {
  const sectorSize = options.sectorSize ?? 512;
  if (!Number.isSafeInteger(areaBytes) || areaBytes < 0) throw new RangeError(`findSignatures: area of ${areaBytes} bytes`);
  if (!Number.isInteger(sectorSize) || sectorSize < 512 || (sectorSize & (sectorSize - 1)) !== 0) throw new RangeError(`findSignatures: sector size ${sectorSize}`);
  const view = new AreaView(read, areaBytes, sectorSize);
  const found: Signature[] = [];
  runChain(view, 'superblocks', SUPERBLOCK_PROBERS, found);
  runChain(view, 'partitions', PARTITION_TABLE_PROBERS, found);
  return found;
}
