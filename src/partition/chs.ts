/**
 * Cylinder/head/sector addresses in MBR entries, exactly as sfdisk (libfdisk) writes them.
 *
 * The geometry is the fictitious 255 heads x 63 sectors per track that libfdisk assumes when the
 * device reports none (always, for image files and modern disks), counted in logical sectors
 * whatever their size. An address is 3 bytes:
 *
 *   byte 0  head (0..254)
 *   byte 1  bits 0-5: sector (1..63); bits 6-7: bits 8-9 of the cylinder
 *   byte 2  bits 0-7 of the cylinder (0..1023 in all)
 *
 * Beyond cylinder 1023 the address cannot be expressed; sfdisk then writes the last addressable
 * sector, cylinder 1023 head 254 sector 63, i.e. the bytes FE FF FF. (The protective MBR of a GPT
 * is different: it always carries the constant end FF FF FF, see PROTECTIVE_CHS_END.)
 */

export const CHS_HEADS = 255;
export const CHS_SECTORS_PER_TRACK = 63;
export const CHS_MAX_CYLINDER = 1023;

/** CHS start of the protective MBR's 0xEE entry (LBA 1: cylinder 0, head 0, sector 2). */
export const PROTECTIVE_CHS_START: readonly number[] = [0x00, 0x02, 0x00];
/** CHS end of the protective MBR's 0xEE entry: libfdisk writes FF FF FF whatever the disk size. */
export const PROTECTIVE_CHS_END: readonly number[] = [0xff, 0xff, 0xff];

export interface Chs {
  cylinder: number;
  head: number;
  /** 1-based, as on disk. */
  sector: number;
}

/** The CHS address sfdisk writes for `lba`, clamped to (1023, 254, 63) past cylinder 1023. */
export function lbaToChs(lba: number, heads = CHS_HEADS, sectorsPerTrack = CHS_SECTORS_PER_TRACK): Chs {
  const perCylinder = heads * sectorsPerTrack;
  let l = lba;
  if (Math.floor(l / perCylinder) > CHS_MAX_CYLINDER) l = perCylinder * (CHS_MAX_CYLINDER + 1) - 1;
  const sector = (l % sectorsPerTrack) + 1;
  const track = Math.floor(l / sectorsPerTrack);
  return { cylinder: Math.floor(track / heads), head: track % heads, sector };
}

/** Packs a CHS address into its 3 on-disk bytes. */
export function packChs(chs: Chs): [number, number, number] {
  return [chs.head & 0xff, (chs.sector & 0x3f) | ((chs.cylinder >> 2) & 0xc0), chs.cylinder & 0xff];
}

/** Writes the CHS bytes for `lba` at `offset` of `target`. */
export function writeChs(target: Buffer, offset: number, lba: number): void {
  const [h, s, c] = packChs(lbaToChs(lba));
  target[offset] = h;
  target[offset + 1] = s;
  target[offset + 2] = c;
}

/** Unpacks the 3 CHS bytes at `offset` of `source`. */
export function readChs(source: Uint8Array, offset: number): Chs {
  const h = source[offset] ?? 0;
  const s = source[offset + 1] ?? 0;
  const c = source[offset + 2] ?? 0;
  return { head: h, sector: s & 0x3f, cylinder: c | ((s & 0xc0) << 2) };
}

/** The LBA a CHS address designates in the 255 x 63 geometry (sector 0 is invalid: -1). */
export function chsToLba(chs: Chs, heads = CHS_HEADS, sectorsPerTrack = CHS_SECTORS_PER_TRACK): number {
  if (chs.sector === 0) return -1;
  return (chs.cylinder * heads + chs.head) * sectorsPerTrack + chs.sector - 1;
}
