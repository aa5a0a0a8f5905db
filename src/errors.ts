/**
 * One error type for every user-facing failure. The `code` is stable (callers and tests branch on
 * it, never on the message); the exit code comes from the command's table, so sparsecopy keeps
 * v0.10's numbers and new failure classes get new numbers of their own.
 */
export const SPARSECOPY_EXIT_CODES = {
  USAGE: 1, // bad option, bad size
  SOURCE_OPEN: 2, // cannot open the source
  DEST_OPEN: 3, // cannot open or create the destination
  SEEK: 4, // seek failed, or --seek past the end of a device
  MEMORY: 5, // kept for compatibility: allocation failure
  DEST_CHECK_READ: 6, // reading the destination to check for zeros failed
  DEST_CHECK_SEEK: 7, // kept for compatibility: repositioning after a check read failed
  SPARSE_SKIP: 8, // kept for compatibility: skipping a zero block failed
  WRITE: 9, // writing the destination failed
  TRUNCATE: 10, // setting the destination's final length failed
  FIRST_BLOCK_NOT_ZERO: 11, // --check found data in the destination's first block
  MORE_THAN_MAX: 12, // -e: the source holds more than --max
  SAME_FILE: 13, // source and destination are the same file or device, or overlap in one (loop devices, partitions)
  DEST_IN_USE: 14, // destination device is mounted or held open exclusively, or the file backs a loop device (use --force)
  DOES_NOT_FIT: 15, // the source does not fit in the destination device (or in a qcow2 of its --cluster-size)
  SOURCE_READ: 16, // reading the source failed
  DIGEST_MISMATCH: 17, // --verify-md5/--verify-sha256 did not match
  CORRUPT_INPUT: 18, // compressed input is truncated, fails its CRC or length, or has trailing garbage; corrupt qcow2 metadata or a looping backing chain; corrupt VMDK metadata, descriptor or extents
  NO_PARTITION: 19, // --from-partition/--to-partition: no table, no such partition, or (--to-partition) one that overlaps
  UNSUPPORTED_FORMAT: 28, // an input or output format sparsecopy recognises and does not read or write (yet); --raw copies bytes as they are
  MISSING_TOOL: 29, // a format needs a program that is not installed (xz, lbzip2): the message names its Debian package
  BACKING_MISMATCH: 30, // --backing BASE's virtual size is not the source's
  INTERRUPTED: 130, // SIGINT/SIGTERM: temporary output removed
} as const;

/** ptable's exit codes (its own command, its own table). */
export const PTABLE_EXIT_CODES = {
  USAGE: 1,
  DISK_OPEN: 2, // cannot open the disk or image
  NO_TABLE: 3, // no MBR or GPT found
  CHECK_FAILED: 4, // `ptable check` found errors
  DISK_IO: 5, // reading, writing or extending the disk failed, or the disk is too small
  SCRIPT: 6, // the sfdisk script is invalid
  PARTITION_MISSING: 7, // no such partition number
  REFUSED: 8, // relocate/grow refused: the change would overlap, or the table on the disk is damaged; nothing written
  BACKUP_FILE: 9, // a table backup file cannot be written or read, is damaged, or does not fit the disk; nothing written
} as const;

/**
 * fsmaker's own failures (its output is written by sparsecopy's sinks, whose failures keep
 * sparsecopy's codes: 3 cannot create the output, 14 device in use, 15 does not fit...).
 */
export const FSMAKER_EXIT_CODES = {
  ROOTFS_OPEN: 20, // cannot open the root filesystem image
  ROOTFS_UNKNOWN: 21, // not a filesystem fsmaker recognises, or a corrupt superblock
  ROOTFS_TOO_LARGE: 22, // the rootfs (and boot partition) do not fit in --size
  KERNEL_MISSING: 23, // kernel or initrd not found
  GRUB_MISSING: 24, // GRUB's i386-pc or x86_64-efi files missing (names the Debian package), or a boot.img/core.img that is not GRUB's
  CORE_TOO_LARGE: 25, // core.img does not fit the MBR gap or the BIOS boot partition
  SPARE_MKFS: 26, // formatting the spare partition failed
  BOOT_FILE_UNUSABLE: 27, // the kernel is not a bzImage GRUB boots, the initrd not an initramfs Linux unpacks, or the default modules are damaged
  ROOTFS_TREE: 31, // (not 28: fsmaker passes on sparsecopy's 28-30) a file tree ext4 cannot hold as given (a name over 255 bytes, xattrs over a block, a hard link to a directory...)
  LAYOUT_INVALID: 33, // a --layout file that cannot be read or has problems (each named FILE:LINE)
  KERNEL_MODULES_MISSING: 34, // no initrd goes with the kernel and no modules of its release exist to generate one (or its disk/NFS drivers are missing)
} as const;

export type ErrorCode = keyof typeof SPARSECOPY_EXIT_CODES | keyof typeof PTABLE_EXIT_CODES | keyof typeof FSMAKER_EXIT_CODES;

const ALL_EXIT_CODES: Record<string, number> = { ...FSMAKER_EXIT_CODES, ...PTABLE_EXIT_CODES, ...SPARSECOPY_EXIT_CODES };

export class ToolError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ToolError';
    this.code = code;
    this.exitCode = options?.exitCode ?? ALL_EXIT_CODES[code] ?? 1;
  }
}

/** The OS's short reason ("No such file or directory") from a Node system error, else its message. */
export function describeSystemError(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { code?: string; message?: string; syscall?: string };
    if (e.code && typeof e.message === 'string') {
      // Node formats "ENOENT: no such file or directory, open '/x'": keep the reason only.
      const m = /^[A-Z0-9]+: ([^,]+)/.exec(e.message);
      if (m?.[1]) return m[1];
    }
    if (typeof e.message === 'string') return e.message;
  }
  return String(err);
}

export function systemErrorCode(err: unknown): string | undefined {
  return err && typeof err === 'object' ? (err as { code?: string }).code : undefined;
}
