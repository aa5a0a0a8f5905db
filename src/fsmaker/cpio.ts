/**
 * cpio "newc" (SVR4 without CRC, magic 070701) archive writer, as the Linux initramfs unpacker
 * and GNU `cpio -H newc` read it. Pure and deterministic: entries are written in the order
 * given, inode numbers count up from 1, uid/gid default to 0, one mtime for every entry (0 by
 * default), device numbers of the containing filesystem are 0, and the archive ends with the
 * `TRAILER!!!` entry padded to `blockSize` bytes (512 by default, like GNU cpio).
 *
 * Layout of one member: a 110-byte ASCII header ("070701" + 13 fields of 8 upper-case hex
 * digits: ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
 * rdevminor, namesize (with the NUL), check = 0), the NUL-terminated name padded so that
 * header + name is a multiple of 4, then the data padded to a multiple of 4.
 */

export const CPIO_NEWC_MAGIC = '070701';
export const CPIO_HEADER_SIZE = 110;
export const CPIO_TRAILER = 'TRAILER!!!';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

interface EntryBase {
  /** Path inside the archive: "init", "dev/console" ("/" and "./" prefixes are removed; "." is the root). */
  path: string;
  /** Owner (default 0). */
  uid?: number;
  /** Group (default 0). */
  gid?: number;
}

export interface CpioDirectory extends EntryBase {
  type: 'dir';
  /** Permission bits (default 0o755). */
  mode?: number;
}
export interface CpioFile extends EntryBase {
  type: 'file';
  data: Buffer;
  /** Permission bits (default 0o644). */
  mode?: number;
}
export interface CpioSymlink extends EntryBase {
  type: 'symlink';
  target: string;
}
export interface CpioDevice extends EntryBase {
  type: 'char' | 'block';
  major: number;
  minor: number;
  /** Permission bits (default 0o600). */
  mode?: number;
}
export type CpioEntry = CpioDirectory | CpioFile | CpioSymlink | CpioDevice;

export interface CpioOptions {
  /** mtime (seconds since the epoch) of every entry; default 0. */
  mtime?: number;
  /** Pad the archive with zeros to a multiple of this many bytes (default 512; 0 or 1 = no padding). */
  blockSize?: number;
}

/** The archive name of `p`: no leading "/" or "./", no trailing "/", "." for the root. */
export function normalizeCpioPath(p: string): string {
  let s = p;
  for (;;) {
    if (s.startsWith('/')) s = s.slice(1);
    else if (s.startsWith('./')) s = s.slice(2);
    else break;
  }
  while (s.endsWith('/')) s = s.slice(0, -1);
  if (s === '') s = '.';
  if (s.includes('\0')) throw new Error(`cpio: path contains NUL: ${JSON.stringify(p)}`);
  if (s.split('/').some((c) => c === '' || c === '..' || (c === '.' && s !== '.'))) {
    throw new Error(`cpio: invalid path ${JSON.stringify(p)}`);
  }
  return s;
}

function u32(value: number, field: string): string {
  if (!Number.isSafeInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`cpio: ${field} ${value} does not fit 32 bits`);
  }
  return value.toString(16).toUpperCase().padStart(8, '0');
}

/** The header fields the writer sets; the rest (device numbers, check) are always zero. */
type HeaderFields = Omit<CpioHeader, 'devmajor' | 'devminor' | 'check' | 'dataOffset'>;

const pad4 = (n: number): number => (4 - (n % 4)) % 4;

/** Header + NUL-terminated, padded name of one member. */
function headerAndName(h: HeaderFields): Buffer {
  const name = Buffer.from(h.name + '\0', 'utf8');
  const text =
    CPIO_NEWC_MAGIC +
    u32(h.ino, 'inode') +
    u32(h.mode, 'mode') +
    u32(h.uid, 'uid') +
    u32(h.gid, 'gid') +
    u32(h.nlink, 'nlink') +
    u32(h.mtime, 'mtime') +
    u32(h.filesize, 'file size') +
    u32(0, 'devmajor') +
    u32(0, 'devminor') +
    u32(h.rdevmajor, 'rdevmajor') +
    u32(h.rdevminor, 'rdevminor') +
    u32(name.length, 'name size') +
    u32(0, 'check');
  const out = Buffer.alloc(CPIO_HEADER_SIZE + name.length + pad4(CPIO_HEADER_SIZE + name.length));
  out.write(text, 0, 'latin1');
  name.copy(out, CPIO_HEADER_SIZE);
  return out;
}

function perm(mode: number | undefined, dflt: number): number {
  const m = mode ?? dflt;
  if (!Number.isInteger(m) || m < 0) throw new RangeError(`cpio: invalid mode ${m}`);
  return m & 0o7777;
}

/**
 * The archive as a sequence of chunks (headers, file data as given, padding), so large files
 * are never copied: write them out one by one or pipe them into a compressor.
 */
export function* cpioChunks(entries: readonly CpioEntry[], options: CpioOptions = {}): Generator<Buffer> {
  const mtime = options.mtime ?? 0;
  const blockSize = options.blockSize ?? 512;
  if (!Number.isSafeInteger(blockSize) || blockSize < 0) throw new RangeError(`cpio: invalid block size ${blockSize}`);
  u32(mtime, 'mtime');

  const names = entries.map((e) => normalizeCpioPath(e.path));
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw new Error(`cpio: duplicate path ${JSON.stringify(n)}`);
    seen.add(n);
  }
  // Directory link count: "." and its entry in the parent, plus each subdirectory's "..".
  const subdirs = new Map<string, number>();
  entries.forEach((e, i) => {
    const n = names[i]!;
    if (e.type !== 'dir' || n === '.') return;
    const slash = n.lastIndexOf('/');
    const parent = slash < 0 ? '.' : n.slice(0, slash);
    subdirs.set(parent, (subdirs.get(parent) ?? 0) + 1);
  });

  let offset = 0;
  const emit = function* (b: Buffer): Generator<Buffer> {
    offset += b.length;
    yield b;
  };
  const padding = (n: number): Buffer => Buffer.alloc(pad4(n));

  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const name = names[i]!;
    const base = { ino: i + 1, uid: e.uid ?? 0, gid: e.gid ?? 0, mtime, rdevmajor: 0, rdevminor: 0, name };
    switch (e.type) {
      case 'dir':
        yield* emit(headerAndName({ ...base, mode: S_IFDIR | perm(e.mode, 0o755), nlink: 2 + (subdirs.get(name) ?? 0), filesize: 0 }));
        break;
      case 'file': {
        yield* emit(headerAndName({ ...base, mode: S_IFREG | perm(e.mode, 0o644), nlink: 1, filesize: e.data.length }));
        if (e.data.length > 0) yield* emit(e.data);
        const p = padding(e.data.length);
        if (p.length > 0) yield* emit(p);
        break;
      }
      case 'symlink': {
        const target = Buffer.from(e.target, 'utf8');
        if (target.length === 0) throw new Error(`cpio: empty symlink target for ${JSON.stringify(name)}`);
        yield* emit(headerAndName({ ...base, mode: S_IFLNK | 0o777, nlink: 1, filesize: target.length }));
        yield* emit(Buffer.concat([target, padding(target.length)]));
        break;
      }
      case 'char':
      case 'block':
        yield* emit(
          headerAndName({
            ...base,
            mode: (e.type === 'char' ? S_IFCHR : S_IFBLK) | perm(e.mode, 0o600),
            nlink: 1,
            filesize: 0,
            rdevmajor: e.major,
            rdevminor: e.minor,
          }),
        );
        break;
      default: {
        const never: never = e;
        throw new Error(`cpio: unknown entry type ${JSON.stringify((never as { type: unknown }).type)}`);
      }
    }
  }
  yield* emit(headerAndName({ ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, filesize: 0, rdevmajor: 0, rdevminor: 0, name: CPIO_TRAILER }));
  if (blockSize > 1 && offset % blockSize !== 0) yield* emit(Buffer.alloc(blockSize - (offset % blockSize)));
}

/** The whole archive in one Buffer (see cpioChunks for the streaming form). */
export function cpioArchive(entries: readonly CpioEntry[], options: CpioOptions = {}): Buffer {
  return Buffer.concat([...cpioChunks(entries, options)]);
}

/** One parsed member header (for tests and inspection). */
export interface CpioHeader {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  filesize: number;
  devmajor: number;
  devminor: number;
  rdevmajor: number;
  rdevminor: number;
  check: number;
  name: string;
  /** Offset of the member's data in the archive. */
  dataOffset: number;
}

/** Parses a newc archive's headers up to and including the trailer. */
export function parseCpioNewc(archive: Buffer): CpioHeader[] {
  const out: CpioHeader[] = [];
  let off = 0;
  for (;;) {
    if (off + CPIO_HEADER_SIZE > archive.length) throw new Error(`cpio: truncated header at ${off}`);
    const text = archive.toString('latin1', off, off + CPIO_HEADER_SIZE);
    if (!text.startsWith(CPIO_NEWC_MAGIC)) throw new Error(`cpio: bad magic at ${off}`);
    const f = (k: number): number => {
      const s = text.slice(6 + 8 * k, 14 + 8 * k);
      if (!/^[0-9a-fA-F]{8}$/.test(s)) throw new Error(`cpio: bad header field at ${off}`);
      return parseInt(s, 16);
    };
    const namesize = f(11);
    const nameEnd = off + CPIO_HEADER_SIZE + namesize;
    if (namesize < 1 || nameEnd > archive.length) throw new Error(`cpio: bad name size at ${off}`);
    const name = archive.toString('utf8', off + CPIO_HEADER_SIZE, nameEnd - 1);
    const dataOffset = nameEnd + pad4(CPIO_HEADER_SIZE + namesize);
    const filesize = f(6);
    out.push({
      ino: f(0), mode: f(1), uid: f(2), gid: f(3), nlink: f(4), mtime: f(5), filesize,
      devmajor: f(7), devminor: f(8), rdevmajor: f(9), rdevminor: f(10), check: f(12), name, dataOffset,
    });
    if (name === CPIO_TRAILER) return out;
    off = dataOffset + filesize + pad4(filesize);
  }
}
