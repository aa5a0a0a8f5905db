/**
 * Is this a kernel GRUB can boot, an initrd Linux can unpack? (pure: the first bytes and the size)
 *
 * Kernel: the x86 boot protocol header (the kernel's Documentation/arch/x86/boot.rst) with the
 * checks GRUB 2.06's `linux` command makes before loading it (grub-core/loader/i386/linux.c):
 * boot_flag 0xAA55, at most 64 setup sectors, "HdrS" and protocol 2.03 or later, LOADED_HIGH (a
 * bzImage, not a zImage), and a file long enough for the setup code and the protected-mode code
 * the header announces (a truncated kernel fails to decompress at boot, long after GRUB).
 *
 * Initrd: what the kernel's populate_rootfs accepts (init/initramfs.c, lib/decompress.c): a newc
 * cpio archive ("070701", or "070702" with checksums) or a stream compressed with gzip, bzip2,
 * lzma, xz, lzo, lz4 (the legacy format) or zstd, after any zero padding. An odc cpio ("070707")
 * and the lz4 frame format are refused by name: Linux rejects both ("incorrect cpio method used",
 * "invalid magic") and would boot without its initramfs.
 */

/** How many leading bytes the checks look at. */
export const BOOT_FILE_HEAD_BYTES = 4096;

/** FAT's largest file (the boot partition is FAT). */
const FAT_MAX_FILE = 0xffffffff;

const SETUP_SECTS = 0x1f1;
const SYSSIZE = 0x1f4;
const BOOT_FLAG = 0x1fe;
const HEADER = 0x202;
const VERSION = 0x206;
const LOADFLAGS = 0x211;
const LOADED_HIGH = 0x01;
const GRUB_MAX_SETUP_SECTS = 64;
const HEADER_END = 0x212;

const fatLimit = (size: number): string | null => (size > FAT_MAX_FILE ? `is ${size} bytes: a FAT boot partition holds files of at most 4 GiB - 1` : null);

/** Why the file whose first bytes are `head` (and whose size is `size`) is not a bootable kernel, or null. */
export function kernelProblem(head: Buffer, size: number): string | null {
  if (size === 0) return 'is empty';
  if (size < HEADER_END || head.length < HEADER_END) return `is ${size} bytes: too short to hold the x86 boot header (${HEADER_END} bytes)`;
  if (head.toString('latin1', HEADER, HEADER + 4) !== 'HdrS') return `is not a bzImage: no "HdrS" at byte ${HEADER} (0x202)`;
  const version = head.readUInt16LE(VERSION);
  const versionText = `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
  if (version < 0x0203) return `uses boot protocol ${versionText}: GRUB's linux command needs 2.03 or later`;
  if (head.readUInt16LE(BOOT_FLAG) !== 0xaa55) return `is not a bzImage: no boot flag 0xAA55 at byte ${BOOT_FLAG} (0x1fe)`;
  const setupSects = head[SETUP_SECTS]! || 4; // 0 means 4 (boot.rst)
  if (setupSects > GRUB_MAX_SETUP_SECTS) return `has ${setupSects} setup sectors (byte ${SETUP_SECTS}): GRUB loads at most ${GRUB_MAX_SETUP_SECTS}`;
  if (!(head[LOADFLAGS]! & LOADED_HIGH)) return 'is a zImage (LOADED_HIGH is clear at byte 0x211): GRUB boots only a bzImage';
  const setupBytes = (setupSects + 1) * 512;
  // syssize (16-byte paragraphs) is 32 bits from protocol 2.04 on.
  const announced = setupBytes + (version >= 0x0204 ? head.readUInt32LE(SYSSIZE) : head.readUInt16LE(SYSSIZE)) * 16;
  if (size < announced) return `is truncated: its header announces ${announced} bytes, the file holds ${size}`;
  return fatLimit(size);
}

interface Magic {
  name: string;
  bytes: number[];
}

/** The formats Linux unpacks an initramfs from (lib/decompress.c's table, full magics). */
const ACCEPTED: Magic[] = [
  { name: 'newc cpio', bytes: [...Buffer.from('070701')] },
  { name: 'newc cpio with checksums', bytes: [...Buffer.from('070702')] },
  { name: 'gzip', bytes: [0x1f, 0x8b] },
  { name: 'gzip (old)', bytes: [0x1f, 0x9e] },
  { name: 'bzip2', bytes: [0x42, 0x5a, 0x68] },
  { name: 'lzma', bytes: [0x5d, 0x00, 0x00] },
  { name: 'xz', bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { name: 'lzo', bytes: [0x89, 0x4c, 0x5a, 0x4f] },
  { name: 'lz4 (legacy)', bytes: [0x02, 0x21, 0x4c, 0x18] },
  { name: 'zstd', bytes: [0x28, 0xb5, 0x2f, 0xfd] },
];

const REFUSED: Array<Magic & { why: string }> = [
  { name: 'odc', bytes: [...Buffer.from('070707')], why: 'is an odc cpio archive (070707): Linux unpacks only newc (070701/070702): rebuild it with cpio -H newc' },
  { name: 'lz4 frame', bytes: [0x04, 0x22, 0x4d, 0x18], why: 'is in the lz4 frame format: Linux unpacks only the legacy lz4 format (lz4 -l)' },
];

const startsWith = (b: Buffer, at: number, magic: number[]): boolean => magic.every((m, i) => b[at + i] === m);

/** The format of an initrd whose first bytes are `head`, or why Linux would not unpack it. */
export function initrdFormat(head: Buffer, size: number): { format: string } | { problem: string } {
  if (size === 0) return { problem: 'is empty' };
  // populate_rootfs skips zero padding before (and between) archives.
  let at = 0;
  while (at < head.length && head[at] === 0) at++;
  if (at === head.length) return { problem: size <= head.length ? 'holds only zero bytes' : `starts with more than ${head.length} zero bytes` };
  for (const r of REFUSED) if (startsWith(head, at, r.bytes)) return { problem: r.why };
  const found = ACCEPTED.find((m) => startsWith(head, at, m.bytes));
  if (!found) {
    const first = head.subarray(at, at + 8).toString('hex').replace(/(..)/g, '$1 ').trim();
    return { problem: `is neither a cpio archive (newc) nor compressed in a format Linux unpacks (gzip, bzip2, lzma, xz, lzo, legacy lz4, zstd): it starts with ${first}${at > 0 ? ` after ${at} zero bytes` : ''}` };
  }
  const limit = fatLimit(size);
  return limit ? { problem: limit } : { format: found.name };
}

const KERNEL_VERSION_PTR = 0x20e;

/**
 * The release a bzImage announces (`uname -r`), from the kernel_version string the setup header
 * points at (boot.rst: a NUL-terminated string at kernel_version + 0x200, protocol 2.00 and later;
 * "6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP ..."), or null when the header
 * has none or it is not text that starts with a release.
 */
export function bzImageRelease(head: Buffer): string | null {
  if (head.length < HEADER_END || head.toString('latin1', HEADER, HEADER + 4) !== 'HdrS') return null;
  const pointer = head.readUInt16LE(KERNEL_VERSION_PTR);
  if (pointer === 0) return null;
  const start = pointer + 0x200;
  if (start >= head.length) return null;
  const end = head.indexOf(0, start);
  if (end < 0) return null;
  const text = head.toString('latin1', start, end);
  // A real kernel's string: the release, a space, then who built it.
  const m = /^([0-9][0-9A-Za-z._+~-]*) [\x20-\x7e]*$/.exec(text);
  return m ? m[1]! : null;
}
