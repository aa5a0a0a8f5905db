/**
 * GRUB 2 (i386-pc) BIOS boot setup done on buffers: the sector-0 boot code (boot.img) and the
 * first-sector blocklist of core.img (diskboot.img), patched the way `grub-bios-setup
 * --no-rs-codes` patches them (see shared/notes/boot-recipe.md for the field list). Pure
 * functions: no I/O, the caller writes sector 0 and core.img at `coreLba` itself.
 *
 * Field offsets come from the public GRUB 2.06 headers (boot.h / offsets.h); no GRUB code here.
 */

export const SECTOR_SIZE = 512;

/** boot.img: start of the area kept from the existing sector 0 (BIOS parameter block). */
const BOOT_BPB_START = 0x03;
/** boot.img: end (exclusive) of the BPB area. */
const BOOT_BPB_END = 0x5a;
/** boot.img: u64 LE, LBA of core.img's first sector (GRUB_BOOT_MACHINE_KERNEL_SECTOR). */
const BOOT_KERNEL_SECTOR = 0x5c;
/** boot.img: boot drive byte (GRUB_BOOT_MACHINE_BOOT_DRIVE); 0xFF = use DL from the BIOS. */
const BOOT_DRIVE = 0x64;
/** boot.img: the 2-byte short jump skipped by NOPs unless --allow-floppy (GRUB_BOOT_MACHINE_DRIVE_CHECK). */
const BOOT_DRIVE_CHECK = 0x66;
/** boot.img: start of the area kept from the disk: disk signature, 2 bytes, partition table. */
const BOOT_PART_START = 0x1b8;
/** boot.img: end (exclusive) of the partition-table area (the 55 AA signature follows). */
const BOOT_PART_END = 0x1fe;

/** diskboot.img: first (highest) blocklist entry, 12 bytes: u64 start, u16 count, u16 segment. */
const BLOCKLIST_ENTRY = 0x1f4;
const BLOCKLIST_ENTRY_SIZE = 12;
/** Segment core.img's second sector onwards is loaded to (0x8200). */
export const CORE_LOAD_SEGMENT = 0x0820;

/**
 * GRUB's own ceiling for an embedded core.img: it is loaded from 0x8200 (link address 0x9000
 * after the first sector's code) and must stay below 0x78000, i.e. (0x78000 - 0x9000) / 512.
 */
export const GRUB_MAX_CORE_SECTORS = 888;

function checkLba(coreLba: number, what: string): void {
  if (!Number.isSafeInteger(coreLba) || coreLba < 1) {
    throw new RangeError(`${what}: core LBA must be a positive safe integer, got ${coreLba}`);
  }
}

/** Number of 512-byte sectors core.img occupies on disk (the last one partly filled). */
export function coreImageSectors(coreImg: Buffer): number {
  return Math.ceil(coreImg.length / SECTOR_SIZE);
}

/**
 * The new sector 0: boot.img's code with the disk's BPB area (0x003-0x059) and partition-table
 * area (0x1B8-0x1FD) kept, core.img's LBA at 0x05C, boot drive 0xFF (the BIOS's DL) and the
 * hard-disk drive-number check enabled (0x066-0x067 = 90 90, grub-bios-setup's default without
 * --allow-floppy), 55 AA.
 */
export function patchBootSector(bootImg: Buffer, existingSector0: Buffer, coreLba: number): Buffer {
  const problem = bootImageProblem(bootImg);
  if (problem) throw new RangeError(`patchBootSector: ${problem}`);
  if (existingSector0.length < SECTOR_SIZE) {
    throw new RangeError(`patchBootSector: existing sector 0 must be at least ${SECTOR_SIZE} bytes, got ${existingSector0.length}`);
  }
  checkLba(coreLba, 'patchBootSector');
  const out = Buffer.from(bootImg);
  existingSector0.copy(out, BOOT_BPB_START, BOOT_BPB_START, BOOT_BPB_END);
  out.writeBigUInt64LE(BigInt(coreLba), BOOT_KERNEL_SECTOR);
  out[BOOT_DRIVE] = 0xff;
  out[BOOT_DRIVE_CHECK] = 0x90;
  out[BOOT_DRIVE_CHECK + 1] = 0x90;
  existingSector0.copy(out, BOOT_PART_START, BOOT_PART_START, BOOT_PART_END);
  out[0x1fe] = 0x55;
  out[0x1ff] = 0xaa;
  return out;
}

/** Why `bootImg` is not GRUB's i386-pc boot.img, or null: read from a GRUB directory the user may name. */
export function bootImageProblem(bootImg: Buffer): string | null {
  if (bootImg.length !== SECTOR_SIZE) return `boot.img must be ${SECTOR_SIZE} bytes, got ${bootImg.length}`;
  if (bootImg[0x1fe] !== 0x55 || bootImg[0x1ff] !== 0xaa) return 'boot.img does not end in the 55 AA boot signature';
  return null;
}

/** Why `coreImg` is not an i386-pc core.img this module can patch, or null: grub-mkimage made it from the user's GRUB directory. */
export function coreImageProblem(coreImg: Buffer): string | null {
  if (coreImageSectors(coreImg) < 2) return `core.img of ${coreImg.length} bytes is too small (needs at least 2 sectors)`;
  if (coreImg.readUInt16LE(BLOCKLIST_ENTRY + 10) !== CORE_LOAD_SEGMENT) return 'not an i386-pc core.img (no diskboot blocklist with segment 0x0820 at 0x1FE)';
  return null;
}

/**
 * core.img with its first sector's blocklist describing where the rest lies on disk: one entry
 * {start = coreLba + 1, count = sectors - 1, segment 0x0820}, the next entry (terminator)
 * zeroed. Throws when core.img needs more than `maxSectors` sectors (the MBR gap or the BIOS
 * boot partition it must fit; GRUB's 888-sector load limit applies in any case), when the
 * remainder would not fit one blocklist entry, or when it is not an i386-pc core.img.
 */
export function patchCoreImage(coreImg: Buffer, coreLba: number, maxSectors: number = GRUB_MAX_CORE_SECTORS): Buffer {
  checkLba(coreLba, 'patchCoreImage');
  if (!Number.isSafeInteger(maxSectors) || maxSectors < 1) {
    throw new RangeError(`patchCoreImage: maxSectors must be a positive integer, got ${maxSectors}`);
  }
  const problem = coreImageProblem(coreImg);
  if (problem) throw new RangeError(`patchCoreImage: ${problem}`);
  const sectors = coreImageSectors(coreImg);
  if (sectors > maxSectors) {
    throw new RangeError(`patchCoreImage: core.img needs ${sectors} sectors but only ${maxSectors} are available`);
  }
  if (sectors > GRUB_MAX_CORE_SECTORS) {
    throw new RangeError(`patchCoreImage: core.img needs ${sectors} sectors, more than GRUB's limit of ${GRUB_MAX_CORE_SECTORS}`);
  }
  const count = sectors - 1;
  if (count > 0xffff) {
    throw new RangeError(`patchCoreImage: ${count} sectors do not fit one blocklist entry`);
  }
  if (!Number.isSafeInteger(coreLba + count)) {
    throw new RangeError('patchCoreImage: core LBA too large');
  }
  const out = Buffer.from(coreImg);
  out.fill(0, BLOCKLIST_ENTRY - BLOCKLIST_ENTRY_SIZE, BLOCKLIST_ENTRY);
  out.writeBigUInt64LE(BigInt(coreLba + 1), BLOCKLIST_ENTRY);
  out.writeUInt16LE(count, BLOCKLIST_ENTRY + 8);
  out.writeUInt16LE(CORE_LOAD_SEGMENT, BLOCKLIST_ENTRY + 10);
  return out;
}
