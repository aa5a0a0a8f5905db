/**
 * The area as a prober sees it: bounded reads through the caller's `read`, with the ranges of the
 * signatures already found hidden (read as zeros), which is how wipefs makes libblkid look past a
 * signature for the next one (blkid_probe_hide_range, then step back and probe again).
 */

/** No prober needs a larger read in one piece (the biggest is a 64 KiB swap page; GPT entries are read in pieces). */
export const MAX_READ_BYTES = 1024 * 1024;
/**
 * All the reads of one findSignatures call together: a fixed set of small places per prober,
 * plus at most two GPT entry arrays (16 MiB each at most, ptable's own limit).
 */
export const MAX_TOTAL_READ_BYTES = 48 * 1024 * 1024;

import type { Magic, MatchedMagic } from './types.js';

export class AreaView {
  private readonly hidden: { offset: number; length: number }[] = [];
  private bytesRead = 0;

  constructor(
    private readonly readArea: (offset: number, length: number) => Buffer,
    readonly areaBytes: number,
    readonly sectorSize: number,
  ) {}

  /** libblkid's "tiny" device (a floppy): RAID is not probed there. */
  get tiny(): boolean {
    return this.areaBytes <= 1440 * 1024;
  }

  get lastLba(): number {
    return Math.floor(this.areaBytes / this.sectorSize) - 1;
  }

  /** `length` bytes at `offset`, or null when they are not all inside the area (libblkid: no buffer). */
  read(offset: number, length: number): Buffer | null {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) return null;
    if (offset + length > this.areaBytes) return null;
    if (length > MAX_READ_BYTES) throw new Error(`signature probe read of ${length} bytes at ${offset}: more than ${MAX_READ_BYTES}`);
    this.bytesRead += length;
    if (this.bytesRead > MAX_TOTAL_READ_BYTES) throw new Error(`signature probes read more than ${MAX_TOTAL_READ_BYTES} bytes`);
    const got = this.readArea(offset, length);
    if (got.length < length) return null;
    let data = got.length === length ? got : got.subarray(0, length);
    let copied = false;
    for (const h of this.hidden) {
      const from = Math.max(h.offset, offset);
      const to = Math.min(h.offset + h.length, offset + length);
      if (from >= to) continue;
      // The caller's buffer may be its own cache: hide in a copy.
      if (!copied) (data = Buffer.from(data)), (copied = true);
      data.fill(0, from - offset, to - offset);
    }
    return data;
  }

  /** The sector at `lba` (of the area's logical sector size). */
  sector(lba: number, count = 1): Buffer | null {
    return this.read(lba * this.sectorSize, count * this.sectorSize);
  }

  /**
   * The first of `magics` present, where (libblkid's blkid_probe_get_idmag: it reads the KiB block
   * holding the magic, so a magic whose block passes the area's end is absent).
   */
  matchMagic(magics: readonly Magic[]): MatchedMagic | null {
    for (const magic of magics) {
      const blockOffset = ((magic.kbOffset ?? 0) + Math.floor(magic.sbOffset / 1024)) * 1024;
      const block = this.read(blockOffset, 1024);
      const at = magic.sbOffset % 1024;
      if (block && block.subarray(at, at + magic.bytes.length).equals(magic.bytes)) return { magic, offset: blockOffset + at };
    }
    return null;
  }

  hide(offset: number, length: number): void {
    this.hidden.push({ offset, length });
  }
}
