/**
 * USTAR members (pure): the 512-byte header of a regular file, its padding and the end of an
 * archive, as an OVA holds them; and a bounded walk over the headers of an archive, for OVA input
 * and the tests.
 *
 * Sizes of 8 GiB and more do not fit the 11 octal digits of USTAR's size field: they are written
 * in GNU's base-256 form (first byte 0x80, the number big-endian in the rest of the field), which
 * GNU tar writes for them in its default format (ova-compose's --tar-format gnu does the same),
 * and GNU tar, Python's tarfile (both checked in the tests) and libarchive read. A pax
 * 'size' record was the alternative; it adds an extended-header member before the disk, which a
 * reader that expects exactly ovf, mf, disks would see as an extra file.
 */

export const TAR_BLOCK = 512;
/** Two zero blocks end an archive. */
export const TAR_END_BYTES = 2 * TAR_BLOCK;

/** Field offsets and lengths of the POSIX ustar header. */
const FIELD = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  checksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

const USTAR_MAGIC = 'ustar\0';
const GNU_MAGIC = 'ustar ';
/** The largest size in 11 octal digits: 8 GiB - 1. */
const OCTAL_SIZE_MAX = 0o77777777777;

export interface TarMemberHeader {
  name: string;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
}

export class TarError extends Error {
  constructor(
    message: string,
    /** The byte of the archive where the problem is. */
    readonly offset: number,
  ) {
    super(message);
    this.name = 'TarError';
  }
}

/** Bytes of zeros after `size` bytes of data to end on a block. */
export const tarPadding = (size: number): number => (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;

/**
 * The header of a regular file as ova-compose writes its members (`--owner=0 --group=0
 * --mode=0644`): mode 0644, uid and gid 0, owner and group names "root".
 */
export function tarFileHeader(member: TarMemberHeader): Buffer {
  const header = Buffer.alloc(TAR_BLOCK);
  const { name, prefix } = splitName(member.name);
  putText(header, FIELD.name, name);
  putText(header, FIELD.prefix, prefix);
  putOctal(header, FIELD.mode, 0o644);
  putOctal(header, FIELD.uid, 0);
  putOctal(header, FIELD.gid, 0);
  putSize(header, member.size);
  putOctal(header, FIELD.mtime, member.mtime);
  header.write('0', FIELD.typeflag[0], 'latin1');
  header.write(USTAR_MAGIC, FIELD.magic[0], 'latin1');
  header.write('00', FIELD.version[0], 'latin1');
  putText(header, FIELD.uname, 'root');
  putText(header, FIELD.gname, 'root');
  putOctal(header, FIELD.devmajor, 0);
  putOctal(header, FIELD.devminor, 0);
  // The checksum is summed with its own field as eight spaces; written as 6 digits, NUL, space.
  header.fill(0x20, FIELD.checksum[0], FIELD.checksum[0] + FIELD.checksum[1]);
  const sum = headerChecksum(header);
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, FIELD.checksum[0], 'latin1');
  return header;
}

/** A member's modification time: SOURCE_DATE_EPOCH when set (reproducible builds), else now. */
export function memberMtime(env: NodeJS.ProcessEnv = process.env, now = Date.now()): number {
  const epoch = env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined && /^\d{1,11}$/.test(epoch)) return Number(epoch);
  return Math.floor(now / 1000);
}

/** USTAR keeps names up to 100 bytes, or 155 bytes of directories in `prefix` and 100 of the rest. */
function splitName(full: string): { name: string; prefix: string } {
  const bytes = Buffer.byteLength(full);
  // 99: the reader insists on a NUL in the name field, so the writer always leaves room for one.
  if (bytes <= 99) return { name: full, prefix: '' };
  for (let cut = full.lastIndexOf('/'); cut > 0; cut = full.lastIndexOf('/', cut - 1)) {
    const prefix = full.slice(0, cut);
    const name = full.slice(cut + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 99 && name.length > 0) return { name, prefix };
  }
  throw new RangeError(`tar member name too long for a ustar header (${bytes} bytes): ${full}`);
}

function putText(header: Buffer, [at, length]: readonly [number, number], text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > length) throw new RangeError(`tar header field of ${length} bytes cannot hold '${text}'`);
  bytes.copy(header, at);
}

/** An octal number in length - 1 digits and a NUL, as GNU tar writes them. */
function putOctal(header: Buffer, [at, length]: readonly [number, number], value: number): void {
  const digits = value.toString(8);
  if (digits.length > length - 1) throw new RangeError(`${value} does not fit in a ${length}-byte octal tar field`);
  header.write(`${digits.padStart(length - 1, '0')}\0`, at, 'latin1');
}

function putSize(header: Buffer, size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad tar member size ${size}`);
  if (size <= OCTAL_SIZE_MAX) return putOctal(header, FIELD.size, size);
  const [at, length] = FIELD.size;
  header.fill(0, at, at + length);
  header[at] = 0x80; // base-256, positive
  let rest = BigInt(size);
  for (let i = at + length - 1; i > at && rest > 0n; i--) {
    header[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
}

/** The unsigned sum of the header's bytes with the checksum field counted as spaces. */
function headerChecksum(header: Buffer): number {
  let sum = 0;
  const [at, length] = FIELD.checksum;
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= at && i < at + length ? 0x20 : header[i]!;
  return sum;
}

/** What the walk found of one member. */
export interface TarMember {
  name: string;
  size: number;
  /** '0' (or NUL) a regular file, '5' a directory... */
  type: string;
  /** Where the header is. */
  headerOffset: number;
  /** Where the member's bytes begin. */
  dataOffset: number;
}

export interface TarWalkLimits {
  /** More members than this is an error (an OVA holds a handful). */
  maxMembers?: number;
}

const DEFAULT_MAX_MEMBERS = 10_000;
/** pax extended ('x') and global ('g') headers, GNU long names ('L'): headers about the next member. */
const EXTENDED_TYPES = ['x', 'g', 'L'];
/** A pax extended header larger than this is refused (they hold a few records). */
const MAX_PAX_BYTES = 64 << 10;

/** What a header block says: the end, an extended header whose body is wanted next, or a member. */
export type TarStep = { kind: 'end' } | { kind: 'extended'; type: string; bodyOffset: number; size: number } | { kind: 'member'; member: TarMember };

/**
 * A walk over an archive's headers, fed one header block at a time (and the bodies of extended
 * headers), so that a file and a stream follow the same rules: `archiveLength` (null: unknown, a
 * pipe) bounds every size field; pax extended headers ('x') give the next member's path and size;
 * global ones ('g') are skipped and GNU long names ('L') followed. `offset` is where the next
 * header is: past the previous member and its padding.
 */
export class TarWalker {
  offset = 0;
  private members = 0;
  private pending: { path?: string; size?: number } = {};
  private readonly maxMembers: number;

  constructor(
    private readonly archiveLength: number | null,
    limits: TarWalkLimits = {},
  ) {
    this.maxMembers = limits.maxMembers ?? DEFAULT_MAX_MEMBERS;
  }

  /** The block read at `offset` (fewer bytes: the data ended there). */
  header(block: Buffer): TarStep {
    const offset = this.offset;
    if (block.length === 0 && offset > 0) throw new TarError(`tar archive ends at byte ${offset} without its end blocks`, offset);
    if (block.length < TAR_BLOCK) throw new TarError(`tar header at byte ${offset} is cut short: ${block.length} of ${TAR_BLOCK} bytes`, offset);
    if (block.every((b) => b === 0)) return { kind: 'end' };
    // A name that fills its field unterminated is refused unless a long name ('L', pax path) replaces it.
    const header = parseTarHeader(block, offset, this.pending.path !== undefined);
    const dataOffset = offset + TAR_BLOCK;
    const extended = EXTENDED_TYPES.includes(header.type);
    const size = extended ? header.size : (this.pending.size ?? header.size);
    if (this.archiveLength !== null && dataOffset + size > this.archiveLength) {
      throw new TarError(`tar member '${this.pending.path ?? header.name}' at byte ${offset} says ${size} bytes, past the end of the archive (${this.archiveLength} bytes)`, offset);
    }
    if (++this.members > this.maxMembers) throw new TarError(`tar archive has more than ${this.maxMembers} members (at byte ${offset})`, offset);
    this.offset = dataOffset + size + tarPadding(size);
    if (extended) {
      if (size > MAX_PAX_BYTES) throw new TarError(`tar extended header at byte ${offset} of ${size} bytes is too large (at most ${MAX_PAX_BYTES})`, offset);
      return { kind: 'extended', type: header.type, bodyOffset: dataOffset, size };
    }
    const member = { name: this.pending.path ?? header.name, size, type: header.type, headerOffset: offset, dataOffset };
    this.pending = {};
    return { kind: 'member', member };
  }

  /** The body of the extended header `step` announced (fewer bytes: the data ended). */
  extendedBody(step: Extract<TarStep, { kind: 'extended' }>, body: Buffer): void {
    if (body.length < step.size) throw new TarError(`tar extended header at byte ${step.bodyOffset - TAR_BLOCK} is cut short`, step.bodyOffset);
    if (step.type === 'L') this.pending.path = body.toString('utf8').replace(/\0+$/, '');
    else if (step.type === 'x') this.pending = { ...this.pending, ...parsePax(body, step.bodyOffset) };
  }
}

/**
 * The members of an archive, walking its headers only: `read(offset, length)` returns the bytes
 * there (fewer at the end of the data). Ends at the first zero block. See TarWalker.
 */
export function* walkTar(read: (offset: number, length: number) => Buffer, archiveLength: number | null, limits: TarWalkLimits = {}): Generator<TarMember> {
  const walker = new TarWalker(archiveLength, limits);
  for (;;) {
    const step = walker.header(read(walker.offset, TAR_BLOCK));
    if (step.kind === 'end') return;
    if (step.kind === 'extended') walker.extendedBody(step, read(step.bodyOffset, step.size));
    else yield step.member;
  }
}

/** One header, checked: its checksum, a NUL-terminated name, numbers that are numbers. */
export function parseTarHeader(block: Buffer, offset: number, nameReplaced = false): { name: string; size: number; type: string } {
  const stored = parseOctal(block, FIELD.checksum, offset, 'checksum');
  const sum = headerChecksum(block);
  if (stored !== sum) throw new TarError(`tar header at byte ${offset}: checksum mismatch: expected ${sum}, found ${stored}`, offset + FIELD.checksum[0]);
  const magic = block.toString('latin1', FIELD.magic[0], FIELD.magic[0] + FIELD.magic[1]);
  const type = String.fromCharCode(block[FIELD.typeflag[0]]!);
  // An extended header's own name (GNU tar cuts it to 100 bytes) means nothing: not checked.
  const name = nameReplaced || EXTENDED_TYPES.includes(type) ? '' : nulTerminated(block, FIELD.name, offset, 'name');
  const prefix = magic === USTAR_MAGIC ? nulTerminatedOrFull(block, FIELD.prefix) : '';
  const size = parseNumber(block, FIELD.size, offset, 'size');
  if (magic !== USTAR_MAGIC && magic !== GNU_MAGIC && !(magic === '\0\0\0\0\0\0')) {
    throw new TarError(`tar header at byte ${offset}: unknown magic ${JSON.stringify(magic)}`, offset + FIELD.magic[0]);
  }
  return { name: prefix ? `${prefix}/${name}` : name, size, type: type === '\0' ? '0' : type };
}

function nulTerminated(block: Buffer, [at, length]: readonly [number, number], offset: number, what: string): string {
  const end = block.indexOf(0, at);
  if (end < 0 || end >= at + length) throw new TarError(`tar header at byte ${offset}: ${what} field has no NUL terminator`, offset + at);
  return block.toString('utf8', at, end);
}

function nulTerminatedOrFull(block: Buffer, [at, length]: readonly [number, number]): string {
  const end = block.indexOf(0, at);
  return block.toString('utf8', at, end < 0 || end > at + length ? at + length : end);
}

/** An octal field (spaces or NULs around the digits), or a GNU base-256 one. */
function parseNumber(block: Buffer, field: readonly [number, number], offset: number, what: string): number {
  const [at, length] = field;
  const first = block[at]!;
  if (first === 0x80) {
    let value = 0n;
    for (let i = at + 1; i < at + length; i++) value = (value << 8n) | BigInt(block[i]!);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarError(`tar header at byte ${offset}: ${what} ${value} is too large`, offset + at);
    return Number(value);
  }
  if (first === 0xff) throw new TarError(`tar header at byte ${offset}: negative ${what}`, offset + at);
  return parseOctal(block, field, offset, what);
}

function parseOctal(block: Buffer, [at, length]: readonly [number, number], offset: number, what: string): number {
  const text = block.toString('latin1', at, at + length).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]{1,12}$/.test(text)) throw new TarError(`tar header at byte ${offset}: ${what} field is not an octal number: ${JSON.stringify(text)}`, offset + at);
  return parseInt(text, 8);
}

/** "LEN key=value\n" records; only path and size matter here. */
function parsePax(body: Buffer, offset: number): { path?: string; size?: number } {
  const out: { path?: string; size?: number } = {};
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const space = body.indexOf(0x20, at);
    const length = space < 0 ? NaN : Number(body.toString('latin1', at, space));
    if (!Number.isInteger(length) || length <= space - at || at + length > body.length || body[at + length - 1] !== 0x0a) {
      throw new TarError(`tar extended header at byte ${offset + at}: bad record`, offset + at);
    }
    const record = body.toString('utf8', space + 1, at + length - 1);
    const eq = record.indexOf('=');
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') out.path = value;
    if (key === 'size') {
      if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) throw new TarError(`tar extended header at byte ${offset + at}: bad size '${value}'`, offset + at);
      out.size = Number(value);
    }
    at += length;
  }
  return out;
}

/*
 * Reading whole archives (a root filesystem's tarball): every field of a header, pax records as
 * they are, and the old GNU sparse map. Each function refuses what is not what it says, with the
 * offset of the header, so that a reader can turn any corruption into one line.
 */

/** The old GNU header's fields past the ustar ones ('ustar  \0' magic). */
const GNU_FIELD = {
  atime: [345, 12],
  ctime: [357, 12],
  sparse: [386, 4 * 24],
  isExtended: [482, 1],
  realSize: [483, 12],
} as const satisfies Record<string, readonly [number, number]>;
/** An old GNU sparse extension block: 21 (offset, numbytes) pairs, then its own isextended byte. */
const GNU_EXTENSION_ENTRIES = 21;
const GNU_EXTENSION_ISEXTENDED = 504;

export type TarFormat = 'ustar' | 'gnu' | 'v7';

/** Every field of one header, checked; names as bytes (the caller decides their encoding). */
export interface TarHeaderFields {
  format: TarFormat;
  /** The name field (with the ustar prefix joined by '/'): NUL-terminated, or the whole field. */
  name: Buffer;
  linkname: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** The typeflag as a character; NUL is '0'. */
  type: string;
  devmajor: number;
  devminor: number;
  /** Old GNU: access and change times (0: not kept). */
  atime?: number;
  ctime?: number;
  /** Old GNU sparse ('S'): the map's first entries, whether extension blocks follow, the file's size. */
  sparse?: { map: { offset: number; length: number }[]; extended: boolean; realSize: number };
}

/** The whole of one header (see TarHeaderFields); a TarError naming `offset` when it is not one. */
export function parseTarHeaderFields(block: Buffer, offset: number): TarHeaderFields {
  if (block.length < TAR_BLOCK) throw new TarError(`tar header at byte ${offset} is cut short: ${block.length} of ${TAR_BLOCK} bytes`, offset);
  const stored = parseOctal(block, FIELD.checksum, offset, 'checksum');
  // Some old writers summed signed bytes: both sums are what tar itself accepts.
  if (stored !== headerChecksum(block) && stored !== signedHeaderChecksum(block)) {
    throw new TarError(`tar header at byte ${offset}: checksum mismatch: expected ${headerChecksum(block)}, found ${stored}`, offset + FIELD.checksum[0]);
  }
  const magic = block.toString('latin1', FIELD.magic[0], FIELD.magic[0] + FIELD.magic[1]);
  const version = block.toString('latin1', FIELD.version[0], FIELD.version[0] + FIELD.version[1]);
  const format: TarFormat = magic === USTAR_MAGIC ? 'ustar' : magic === GNU_MAGIC && version === ' \0' ? 'gnu' : 'v7';
  if (format === 'v7' && block.subarray(FIELD.magic[0], FIELD.magic[0] + FIELD.magic[1]).some((b) => b !== 0)) {
    throw new TarError(`tar header at byte ${offset}: unknown magic ${JSON.stringify(magic)}`, offset + FIELD.magic[0]);
  }
  const type = block[FIELD.typeflag[0]] === 0 ? '0' : String.fromCharCode(block[FIELD.typeflag[0]]!);
  const number = (field: readonly [number, number], what: string, signed = false): number => parseTarNumber(block, field, offset, what, signed);
  const device = (field: readonly [number, number], what: string): number => (isBlankField(block, field) ? 0 : number(field, what));
  let name = fieldBytes(block, FIELD.name);
  if (format === 'ustar') {
    const prefix = fieldBytes(block, FIELD.prefix);
    if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  }
  const fields: TarHeaderFields = {
    format,
    name,
    linkname: fieldBytes(block, FIELD.linkname),
    mode: number(FIELD.mode, 'mode'),
    uid: number(FIELD.uid, 'uid'),
    gid: number(FIELD.gid, 'gid'),
    size: number(FIELD.size, 'size'),
    mtime: number(FIELD.mtime, 'mtime', true),
    type,
    devmajor: format === 'v7' ? 0 : device(FIELD.devmajor, 'devmajor'),
    devminor: format === 'v7' ? 0 : device(FIELD.devminor, 'devminor'),
  };
  if (format === 'gnu') {
    if (!isBlankField(block, GNU_FIELD.atime)) fields.atime = number(GNU_FIELD.atime, 'atime', true);
    if (!isBlankField(block, GNU_FIELD.ctime)) fields.ctime = number(GNU_FIELD.ctime, 'ctime', true);
    if (type === 'S') {
      fields.sparse = {
        map: parseSparseEntries(block, GNU_FIELD.sparse[0], 4, offset),
        extended: block[GNU_FIELD.isExtended[0]] !== 0,
        realSize: number(GNU_FIELD.realSize, 'realsize'),
      };
    }
  }
  return fields;
}

/** An old GNU sparse extension block: its entries and whether another block follows. */
export function parseGnuSparseExtension(block: Buffer, offset: number): { map: { offset: number; length: number }[]; extended: boolean } {
  if (block.length < TAR_BLOCK) throw new TarError(`tar sparse extension at byte ${offset} is cut short`, offset);
  return { map: parseSparseEntries(block, 0, GNU_EXTENSION_ENTRIES, offset), extended: block[GNU_EXTENSION_ISEXTENDED] !== 0 };
}

function parseSparseEntries(block: Buffer, at: number, count: number, offset: number): { offset: number; length: number }[] {
  const map: { offset: number; length: number }[] = [];
  for (let i = 0; i < count; i++) {
    const o: readonly [number, number] = [at + i * 24, 12];
    const n: readonly [number, number] = [at + i * 24 + 12, 12];
    if (isBlankField(block, o)) break; // the map ends at the first empty entry
    map.push({ offset: parseTarNumber(block, o, offset, 'sparse offset'), length: parseTarNumber(block, n, offset, 'sparse length') });
  }
  return map;
}

export interface PaxRecord {
  key: string;
  /** Raw bytes: xattr values are binary. */
  value: Buffer;
}

/**
 * The records of a pax extended header body, in order (GNU.sparse.offset/numbytes repeat):
 * "LEN key=value\n", LEN counting the whole record. Trailing NULs (padding some writers leave) end it.
 */
export function parsePaxRecords(body: Buffer, offset: number): PaxRecord[] {
  const records: PaxRecord[] = [];
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const space = body.indexOf(0x20, at);
    const digits = space < 0 ? '' : body.toString('latin1', at, space);
    const length = /^[1-9]\d{0,7}$/.test(digits) ? Number(digits) : NaN;
    if (!Number.isInteger(length) || length <= space - at + 1 || at + length > body.length || body[at + length - 1] !== 0x0a) {
      throw new TarError(`tar extended header at byte ${offset + at}: bad record`, offset + at);
    }
    const eq = body.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= at + length - 1 || eq === space + 1) throw new TarError(`tar extended header at byte ${offset + at}: record without a key`, offset + at);
    records.push({ key: body.toString('utf8', space + 1, eq), value: body.subarray(eq + 1, at + length - 1) });
    at += length;
  }
  return records;
}

/** A field of bytes up to its first NUL, or the whole field (a 100-byte name has none). */
function fieldBytes(block: Buffer, [at, length]: readonly [number, number]): Buffer {
  const end = block.indexOf(0, at);
  return Buffer.from(block.subarray(at, end < 0 || end > at + length ? at + length : end));
}

function isBlankField(block: Buffer, [at, length]: readonly [number, number]): boolean {
  for (let i = at; i < at + length; i++) if (block[i] !== 0 && block[i] !== 0x20) return false;
  return true;
}

/** Octal, or GNU base-256 (0x80 positive; 0xff a negative two's-complement number where `signed`). */
function parseTarNumber(block: Buffer, field: readonly [number, number], offset: number, what: string, signed = false): number {
  const [at, length] = field;
  const first = block[at]!;
  if (first === 0x80 || first === 0xff) {
    if (first === 0xff && !signed) throw new TarError(`tar header at byte ${offset}: negative ${what}`, offset + at);
    let value = BigInt(first & 0x7f);
    for (let i = at + 1; i < at + length; i++) value = (value << 8n) | BigInt(block[i]!);
    if (first === 0xff) value -= 1n << BigInt(8 * length - 1);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new TarError(`tar header at byte ${offset}: ${what} ${value} is too large`, offset + at);
    }
    return Number(value);
  }
  const text = block.toString('latin1', at, at + length).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '' && what !== 'checksum' && what !== 'size') return 0;
  if (!/^[0-7]{1,12}$/.test(text)) throw new TarError(`tar header at byte ${offset}: ${what} field is not an octal number: ${JSON.stringify(text)}`, offset + at);
  return parseInt(text, 8);
}

function signedHeaderChecksum(header: Buffer): number {
  let sum = 0;
  const [at, length] = FIELD.checksum;
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= at && i < at + length ? 0x20 : (header[i]! << 24) >> 24;
  return sum;
}
