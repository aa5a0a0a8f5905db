/**
 * The area as a prober sees it: bounded reads through the caller's `read`, with the ranges of the
 * signatures already found hidden (read as zeros), which is how wipefs makes libblkid look past a
 * signature for the next one (blkid_probe_hide_range, then step back and probe again).
 */
import { crc32 } from '../../codec/crc32.js';
import type { Magic, MatchedMagic } from './types.js';

/** No prober needs a larger read in one piece (the biggest is a 64 KiB swap page; GPT entries are read in pieces). */
export const MAX_READ_BYTES = 1024 * 1024;
/** Large ranges (GPT entry arrays, at most 16 MiB) are checksummed in pieces of this size. */
const CRC_PIECE_BYTES = 64 * 1024;
/**
 * All the reads of one findSignatures call together. GPT entry arrays (16 MiB at most) are the
 * only large ranges: each header's array is read once per state of the hidden ranges over it
 * (crc32Of is memoised; the partition chain hides at most three magics), plus once for the
 * partition list the MD RAID prober asks for: at most 9 arrays, and the small places. Past this,
 * reads count as unreadable (a safety net the fuzz tests never reach).
 */
export const MAX_TOTAL_READ_BYTES = 160 * 1024 * 1024;

interface Shared {
  bytesRead: number;
  crcs: Map<string, number | null>;
  memo: Map<string, unknown>;
}

export class AreaView {
  private readonly hidden: { offset: number; length: number }[] = [];

  constructor(
    private readonly readArea: (offset: number, length: number) => Buffer,
    readonly areaBytes: number,
    readonly sectorSize: number,
    private readonly shared: Shared = { bytesRead: 0, crcs: new Map(), memo: new Map() },
  ) {}

  /** The area as a fresh libblkid probe sees it (blkid_clone_probe): nothing hidden; same read budget. */
  unhidden(): AreaView {
    return new AreaView(this.readArea, this.areaBytes, this.sectorSize, this.shared);
  }

  /** `compute()` once per findSignatures call: for what only the unhidden view asks. */
  once<T>(key: string, compute: () => T): T {
    if (!this.shared.memo.has(key)) this.shared.memo.set(key, compute());
    return this.shared.memo.get(key) as T;
  }

  /**
   * The CRC-32 of `length` bytes at `offset` as this view sees them, read in pieces, or null when
   * they are not all inside the area. The same bytes under the same hidden ranges are read once.
   */
  crc32Of(offset: number, length: number): number | null {
    const over = this.hidden.filter((h) => h.offset < offset + length && offset < h.offset + h.length);
    const key = `${offset}+${length}:${over.map((h) => `${h.offset}+${h.length}`).join(',')}`;
    const known = this.shared.crcs.get(key);
    if (known !== undefined) return known;
    let crc: number | null = 0;
    for (let done = 0; done < length && crc !== null; done += CRC_PIECE_BYTES) {
      const piece = this.read(offset + done, Math.min(CRC_PIECE_BYTES, length - done));
      crc = piece ? crc32(piece, crc) : null;
    }
    this.shared.crcs.set(key, crc);
    return crc;
  }

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
    if (length > MAX_READ_BYTES) throw new Error(`signatures bug: a probe read of ${length} bytes at ${offset}: more than ${MAX_READ_BYTES}`);
    if (this.shared.bytesRead + length > MAX_TOTAL_READ_BYTES) return null;
    this.shared.bytesRead += length;
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
  sector(lba: number): Buffer | null {
    return this.read(lba * this.sectorSize, this.sectorSize);
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
