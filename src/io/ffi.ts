/**
 * The few system calls Node does not expose, reached through ffi-rs: lseek(SEEK_DATA/SEEK_HOLE)
 * and the block-device ioctls. Loaded lazily; when ffi-rs cannot load (another libc, a missing
 * prebuilt binary) every function reports "unsupported" and callers fall back to plain I/O.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import util from 'node:util';

type FfiModule = typeof import('ffi-rs');
interface Libc {
  lseek(fd: number, offset: number, whence: number): { value: number; errno: number };
  ioctlBuffer(fd: number, request: number, arg: Buffer): { value: number; errno: number };
  ioctlInt(fd: number, request: number, arg: number): { value: number; errno: number };
  addressOf(buf: Buffer): number;
  pipe2(fds: Buffer, flags: number): { value: number; errno: number };
  fcntlInt(fd: number, command: number, arg: number): { value: number; errno: number };
  fallocate(fd: number, mode: number, offset: number, length: number): { value: number; errno: number };
  copyFileRange(inFd: number, inOffset: Buffer, outFd: number, outOffset: Buffer, length: number): { value: number; errno: number };
  llistxattr(path: string, list: Buffer, size: number): { value: number; errno: number };
  lgetxattr(path: string, name: string, value: Buffer, size: number): { value: number; errno: number };
}

const SEEK_SET = 0;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;
const EINVAL = 22;
const ENOTTY = 25;
const EOPNOTSUPP = 95;

// <linux/fs.h> request numbers on x86-64 / arm64 (_IOR/_IO encodings).
const BLKGETSIZE64 = 0x80081272;
const BLKSSZGET = 0x1268;
const BLKRRPART = 0x125f;
const BLKDISCARD = 0x1277;
const BLKZEROOUT = 0x127f;

let libc: Libc | null | undefined;

/**
 * ffi-rs picks its glibc or musl binary by calling process.report.getReport(), which gathers a
 * whole diagnostic report: 4-5 ms of every run. The one field it reads is answered here from the
 * C library's dynamic loader on disk, for the duration of the require only.
 */
function requireFfi(): FfiModule {
  const report = process.report;
  const original = report.getReport;
  const glibc = ['/lib64/ld-linux-x86-64.so.2', '/lib/ld-linux-aarch64.so.1'].some((loader) => fs.existsSync(loader));
  if (glibc) report.getReport = () => ({ header: { glibcVersionRuntime: 'present' } }) as never;
  try {
    return createRequire(import.meta.url)('ffi-rs') as FfiModule;
  } finally {
    report.getReport = original;
  }
}

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    const ffi = requireFfi();
    ffi.open({ library: 'libc', path: 'libc.so.6' });
    const { DataType } = ffi;
    const call = (funcName: string, paramsType: import('ffi-rs').FieldType[], paramsValue: unknown[]) => {
      const r = ffi.load({ library: 'libc', funcName, retType: ['lseek', 'copy_file_range', 'llistxattr', 'lgetxattr'].includes(funcName) ? DataType.I64 : DataType.I32, paramsType, paramsValue, errno: true }) as unknown as {
        value: number;
        errnoCode: number;
      };
      return { value: r.value, errno: r.value < 0 ? r.errnoCode : 0 };
    };
    libc = {
      lseek: (fd, offset, whence) => call('lseek', [DataType.I32, DataType.I64, DataType.I32], [fd, offset, whence]),
      // U8Array arguments are passed as a pointer into the Buffer's own memory, so the kernel's
      // output lands in it.
      ioctlBuffer: (fd, request, arg) => call('ioctl', [DataType.I32, DataType.U64, DataType.U8Array], [fd, request, arg]),
      ioctlInt: (fd, request, arg) => call('ioctl', [DataType.I32, DataType.U64, DataType.I64], [fd, request, arg]),
      pipe2: (fds, flags) => call('pipe2', [DataType.U8Array, DataType.I32], [fds, flags]),
      fcntlInt: (fd, command, arg) => call('fcntl', [DataType.I32, DataType.I32, DataType.I32], [fd, command, arg]),
      fallocate: (fd, mode, offset, length) => call('fallocate', [DataType.I32, DataType.I32, DataType.I64, DataType.I64], [fd, mode, offset, length]),
      // The offsets are passed by pointer (into the Buffers), so the kernel leaves the files' positions alone.
      copyFileRange: (inFd, inOffset, outFd, outOffset, length) =>
        call('copy_file_range', [DataType.I32, DataType.U8Array, DataType.I32, DataType.U8Array, DataType.U64, DataType.I32], [inFd, inOffset, outFd, outOffset, length, 0]),
      llistxattr: (path, list, size) => call('llistxattr', [DataType.String, DataType.U8Array, DataType.U64], [path, list, size]),
      lgetxattr: (path, name, value, size) => call('lgetxattr', [DataType.String, DataType.String, DataType.U8Array, DataType.U64], [path, name, value, size]),
      // memmove(p, p, 0) copies nothing and returns p: the address of the Buffer's memory.
      addressOf: (buf) =>
        ffi.load({ library: 'libc', funcName: 'memmove', retType: DataType.U64, paramsType: [DataType.U8Array, DataType.U8Array, DataType.U64], paramsValue: [buf, buf, 0] }) as number,
    };
  } catch {
    libc = null;
  }
  return libc;
}

export function ffiAvailable(): boolean {
  return loadLibc() !== null;
}

/**
 * Where the next data or hole starts at or after `offset`, following qemu's find_allocation()
 * contract for lseek:
 *   SEEK_DATA returns d >= offset      -> data starts at d (offset..d is a hole)
 *   SEEK_DATA fails with ENXIO         -> no data from offset to the end (trailing hole)
 *   SEEK_HOLE returns h >= offset      -> data runs to h (there is always a virtual hole at EOF)
 *   EINVAL / EOPNOTSUPP / no FFI       -> unknown: the caller treats the whole range as data
 * "Unsupported" is not a failure: the caller falls back to reading and scanning.
 */
export type SeekResult = { kind: 'offset'; offset: number } | { kind: 'end' } | { kind: 'unsupported' };

function seekTo(fd: number, offset: number, whence: number): SeekResult {
  const lib = loadLibc();
  if (!lib) return { kind: 'unsupported' };
  const r = lib.lseek(fd, offset, whence);
  if (r.value >= 0) return { kind: 'offset', offset: r.value };
  if (r.errno === ENXIO) return { kind: 'end' };
  if (r.errno === EINVAL || r.errno === EOPNOTSUPP) return { kind: 'unsupported' };
  // Named as Node names system errors (code, "CODE: reason"), so callers describe it like a read's.
  const code = errnoName(r.errno);
  throw Object.assign(new Error(`${code}: lseek failed (errno ${r.errno})`), { errno: r.errno, code });
}

/** Sets `fd`'s file position (lseek SEEK_SET); false where that fails or FFI is missing. */
export function seekSet(fd: number, offset: number): boolean {
  const lib = loadLibc();
  return lib !== null && lib.lseek(fd, offset, SEEK_SET).value === offset;
}

export const seekData = (fd: number, offset: number): SeekResult => seekTo(fd, offset, SEEK_DATA);
export const seekHole = (fd: number, offset: number): SeekResult => seekTo(fd, offset, SEEK_HOLE);

/** Address of a Buffer's first byte, or null without FFI. */
export function bufferAddress(buf: Buffer): number | null {
  const lib = loadLibc();
  return lib ? lib.addressOf(buf) : null;
}

/** Size in bytes of an open block device (BLKGETSIZE64), or null when it cannot be asked. */
export function blockDeviceSize(fd: number): number | null {
  const lib = loadLibc();
  if (!lib) return null;
  const out = Buffer.alloc(8);
  if (lib.ioctlBuffer(fd, BLKGETSIZE64, out).value < 0) return null;
  const size = out.readBigUInt64LE(0);
  return size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : null;
}

/** Logical sector size of an open block device (BLKSSZGET), or null. */
export function blockSectorSize(fd: number): number | null {
  const lib = loadLibc();
  if (!lib) return null;
  const out = Buffer.alloc(4);
  if (lib.ioctlBuffer(fd, BLKSSZGET, out).value < 0) return null;
  return out.readUInt32LE(0);
}

export type IoctlOutcome = { ok: true } | { ok: false; errno: number; unsupported: boolean };

/** The errno's symbolic name ("EIO"), or "errno N" for one Node does not know. */
export function errnoName(errno: number): string {
  return Object.entries(os.constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
}

function outcome(r: { value: number; errno: number }): IoctlOutcome {
  if (r.value >= 0) return { ok: true };
  return { ok: false, errno: r.errno, unsupported: r.errno === ENOTTY || r.errno === EOPNOTSUPP || r.errno === EINVAL };
}

/** Ask the kernel to re-read the partition table of an open whole-disk device. */
export function rereadPartitionTable(fd: number): IoctlOutcome {
  const lib = loadLibc();
  if (!lib) return { ok: false, errno: ENOTTY, unsupported: true };
  return outcome(lib.ioctlInt(fd, BLKRRPART, 0));
}

function rangeIoctl(fd: number, request: number, offset: number, length: number): IoctlOutcome {
  const lib = loadLibc();
  if (!lib) return { ok: false, errno: ENOTTY, unsupported: true };
  const range = Buffer.alloc(16);
  range.writeBigUInt64LE(BigInt(offset), 0);
  range.writeBigUInt64LE(BigInt(length), 8);
  return outcome(lib.ioctlBuffer(fd, request, range));
}

/** Make a byte range of a block device read as zeros (BLKZEROOUT). */
export const zeroOutRange = (fd: number, offset: number, length: number): IoctlOutcome =>
  rangeIoctl(fd, BLKZEROOUT, offset, length);

const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;

/**
 * Make a byte range of a block device read as zeros by unmapping it, where the device guarantees
 * zeros after an unmap (fallocate PUNCH_HOLE: the kernel's write-zeroes without fallback). Nothing
 * is written and a thin device (a loop device over a sparse file, dm-thin, a deallocating SSD)
 * gives the space back; "unsupported" where the device would have to write the zeros itself.
 */
export function punchRange(fd: number, offset: number, length: number): IoctlOutcome {
  const lib = loadLibc();
  if (!lib) return { ok: false, errno: ENOTTY, unsupported: true };
  return outcome(lib.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length));
}

/** Discard a byte range of a block device (BLKDISCARD); contents afterwards are device-defined. */
export const discardRange = (fd: number, offset: number, length: number): IoctlOutcome =>
  rangeIoctl(fd, BLKDISCARD, offset, length);

const O_CLOEXEC = 0o2000000;
const F_SETPIPE_SZ = 1031;
/** What an unprivileged process may ask for (/proc/sys/fs/pipe-max-size's default). */
export const PIPE_BYTES = 1 << 20;

/**
 * A pipe of our own (pipe2 with O_CLOEXEC): Node makes pipes only inside its stream objects,
 * whose reads allocate a Buffer each. A raw pair lets a child process write into one end while a
 * thread of ours reads the other into buffers it reuses. Null without FFI.
 */
export function createPipe(): { readFd: number; writeFd: number; enlarged: boolean } | null {
  const lib = loadLibc();
  if (!lib) return null;
  const fds = Buffer.alloc(8);
  if (lib.pipe2(fds, O_CLOEXEC).value < 0) return null;
  const readFd = fds.readInt32LE(0);
  return { readFd, writeFd: fds.readInt32LE(4), enlarged: enlargePipe(readFd) };
}

/**
 * Gives a pipe PIPE_BYTES of buffer instead of 64 KiB (F_SETPIPE_SZ; silently kept as it is where
 * that is refused, or `fd` is no pipe). A writer that produces small pieces (xz writes 8 KiB at a
 * time) then runs on while a batching reader sleeps, instead of waking it once per piece.
 */
export function enlargePipe(fd: number): boolean {
  const lib = loadLibc();
  return lib !== null && lib.fcntlInt(fd, F_SETPIPE_SZ, PIPE_BYTES).value >= 0;
}

/**
 * Ends the process at once with `code`, like _exit(2): no exit handlers, and above all no joining
 * of libuv's pool threads, which process.exit() does (libuv's library destructor) and which waits
 * forever for a thread blocked in read(2) on an idle pipe or in open(2) on a FIFO. Callers run
 * their cleanups and write their messages first (stderr writes are synchronous on Linux).
 * Without FFI, process.exit() is the best there is.
 */
export function exitNow(code: number): never {
  try {
    const ffi = requireFfi();
    if (loadLibc()) ffi.load({ library: 'libc', funcName: '_exit', retType: ffi.DataType.Void, paramsType: [ffi.DataType.I32], paramsValue: [code] });
  } catch {
    /* no FFI: fall through */
  }
  process.exit(code);
}

/**
 * copy_file_range(2) of up to `length` bytes from `inFd` at `inOffset` to `outFd` at `outOffset`,
 * in the kernel (no copy through our buffers; a reflink where the filesystem shares extents).
 * The bytes copied (0 at the end of the input), or null where it cannot be used (no FFI, an old
 * kernel, files on two filesystems, a pipe): the caller copies with read and write. Other errors
 * (EIO, ENOSPC) are thrown as Node names them.
 */
export function copyFileRange(inFd: number, inOffset: number, outFd: number, outOffset: number, length: number): number | null {
  const lib = loadLibc();
  if (!lib) return null;
  const inAt = Buffer.alloc(8);
  const outAt = Buffer.alloc(8);
  inAt.writeBigInt64LE(BigInt(inOffset));
  outAt.writeBigInt64LE(BigInt(outOffset));
  const r = lib.copyFileRange(inFd, inAt, outFd, outAt, length);
  if (r.value >= 0) return r.value;
  if ([EINVAL, EXDEV, ENOSYS, EOPNOTSUPP, EBADF].includes(r.errno)) return null;
  const code = errnoName(r.errno);
  // Node's own text for the errno ("no space left on device"), as its fs errors carry it.
  const reason = util.getSystemErrorMap().get(-r.errno)?.[1] ?? `errno ${r.errno}`;
  throw Object.assign(new Error(`${code}: ${reason}, copy_file_range`), { errno: r.errno, code });
}

const EXDEV = 18;
const ERANGE = 34;
const ENODATA = 61;
/** The kernel's limit on one extended attribute's value (XATTR_SIZE_MAX). */
const XATTR_VALUE_MAX = 64 << 10;
/** ...and on the list of a file's names (XATTR_LIST_MAX). */
const XATTR_LIST_MAX = 64 << 10;

/**
 * The extended attributes of `path` itself (a symlink's own, not its target's: llistxattr and
 * lgetxattr), by full name, raw values. Empty where the filesystem keeps none (EOPNOTSUPP) or
 * without FFI (null then, so the caller can say so). Other failures are thrown as Node names them.
 */
export function readXattrs(path: string): Map<string, Buffer> | null {
  const lib = loadLibc();
  if (!lib) return null;
  const fail = (errno: number, what: string): never => {
    const code = errnoName(errno);
    const reason = util.getSystemErrorMap().get(-errno)?.[1] ?? `errno ${errno}`;
    throw Object.assign(new Error(`${code}: ${reason}, ${what} '${path}'`), { errno, code, path });
  };
  const out = new Map<string, Buffer>();
  // The list can grow between the size query and the read: ERANGE, asked again at the limit.
  let list = Buffer.alloc(4096);
  let r = lib.llistxattr(path, list, list.length);
  if (r.value < 0 && r.errno === ERANGE) {
    list = Buffer.alloc(XATTR_LIST_MAX);
    r = lib.llistxattr(path, list, list.length);
  }
  if (r.value < 0) {
    if (r.errno === EOPNOTSUPP) return out;
    fail(r.errno, 'llistxattr');
  }
  const names = list.toString('utf8', 0, r.value).split('\0').filter((n) => n !== '');
  for (const name of names) {
    let value = Buffer.alloc(1024);
    let g = lib.lgetxattr(path, name, value, value.length);
    if (g.value < 0 && g.errno === ERANGE) {
      value = Buffer.alloc(XATTR_VALUE_MAX);
      g = lib.lgetxattr(path, name, value, value.length);
    }
    if (g.value < 0) {
      if (g.errno === ENODATA) continue; // removed since the list was read
      fail(g.errno, 'lgetxattr');
    }
    out.set(name, Buffer.from(value.subarray(0, g.value)));
  }
  return out;
}
const ENOSYS = 38;
const EBADF = 9;

export const ERRNO = { EBUSY: 16, EINVAL, ENXIO, ENOTTY, EOPNOTSUPP } as const;
