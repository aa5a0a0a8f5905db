/**
 * What one libblkid prober is, as findSignatures runs it. A prober is one entry of libblkid's
 * `idinfos` tables (superblocks chain, then partitions chain): an optional magic table, tried in
 * order at `kbOffset * 1024 + sbOffset`, then a final check that may still say "not this".
 */
import type { AreaView } from './view.js';

export type SignatureUsage = 'partition-table' | 'filesystem' | 'raid' | 'crypto' | 'other';

/** One signature found: blkid's TYPE (or PTTYPE) and the magic bytes blkid_do_wipe zeroes. */
export interface Signature {
  /** blkid's TYPE or PTTYPE name: 'gpt', 'dos', 'PMBR', 'ext4', 'swap', 'vfat', 'xfs', ... */
  type: string;
  usage: SignatureUsage;
  /** Bytes from the area's start. */
  offset: number;
  /** Bytes of magic to zero, as blkid_do_wipe zeroes them. */
  length: number;
}

export interface Magic {
  bytes: Buffer;
  /** Where the magic is: kbOffset KiB plus sbOffset bytes from the area's start (libblkid's kboff/sboff). */
  kbOffset?: number;
  sbOffset: number;
}

/** The magic a prober matched, where it matched. */
export interface MatchedMagic {
  magic: Magic;
  offset: number;
}

/** Where the magic to wipe is, when a prober's check sets it itself (libblkid's blkid_probe_set_magic). */
export interface MagicPlace {
  offset: number;
  length: number;
}

export interface Prober {
  type: string;
  usage: SignatureUsage;
  /** libblkid's minsz: smaller areas are not probed. */
  minBytes?: number;
  /** Tried in order; the first present one is passed to `check`. None: `check` always runs. */
  magics?: readonly Magic[];
  /**
   * The final check: false (not this), true (this, at the matched magic), or the place of the
   * magic when the prober has no magic table (GPT, MD RAID, LUKS) or reports another one.
   */
  check?: (view: AreaView, matched: MatchedMagic | undefined) => boolean | MagicPlace;
}

export const magic = (text: string | number[], sbOffset: number, kbOffset = 0): Magic => ({
  bytes: typeof text === 'string' ? Buffer.from(text, 'latin1') : Buffer.from(text),
  sbOffset,
  kbOffset,
});
