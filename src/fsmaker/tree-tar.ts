/**
 * A tar archive as a FileTree: the entries' metadata in one forward pass, then the files' bytes in
 * another (each pass decompresses the archive again: nothing of it is kept but the nodes).
 *
 * What is read: USTAR, old GNU (long names 'L' and links 'K', base-256 numbers, sparse 'S' with
 * its extension blocks, atime/ctime) and pax ('x' for the next entry, 'g' for all that follow:
 * path, linkpath, size, uid, gid, mtime/atime/ctime with fractions, SCHILY.xattr.NAME raw,
 * LIBARCHIVE.xattr.NAME base64, GNU.sparse 0.0, 0.1 and 1.0) - what GNU tar, bsdtar, mmdebstrap
 * (GNU tar --format=pax --xattrs underneath), docker export and Python's tarfile write. Owners are
 * the numeric ids (the names are not looked up: the build machine's users are not the tree's).
 *
 * As tar x does: a later entry for a path replaces the earlier one (a directory entry only updates
 * the directory's metadata, keeping its children); parents an archive leaves out (docker export)
 * are made 0755 root:root with the archive's newest mtime (reproducible, and no 1970 directories
 * in a 2024 tree). Refused, with the archive, the offset of the header (in the decompressed
 * stream) and the problem: bad checksums, numbers and records, sizes past the end, truncation,
 * unknown typeflags ('V' volume labels are skipped), '..' components, NUL or non-UTF-8 in names,
 * a hard link to a path not (yet) in the archive, a docker-save or OCI image layout.
 */
import fs from 'node:fs';
import { ToolError } from '../errors.js';
import {
  TAR_BLOCK,
  TarError,
  type PaxRecord,
  parseGnuSparseExtension,
  parsePaxRecords,
  parseTarHeaderFields,
  tarPadding,
} from '../format/tar.js';
import type { DataRange, FileChunk, FileTree, TreeNode, TreeNodeType } from './tree.js';
import { type ArchiveCompression, ForwardReader, checkDecoderInstalled, decodedPieces } from './tree-stream.js';
import { readWholeFiles } from './tree-view.js';

/** Bounds: an archive is input, and none of these is needed by any real tree. */
export const TAR_LIMITS = {
  /** A pax extended header's body. */
  paxBytes: 1 << 20,
  /** A path or link target, in bytes. */
  nameBytes: 4096,
  /** One extended attribute's value (the kernel's own limit). */
  xattrBytes: 64 << 10,
  /** Data ranges of one sparse file. */
  sparseEntries: 1 << 18,
  /** Nodes of a tree: a Debian tree has 30 000, a big desktop one 500 000. */
  nodes: 4_000_000,
} as const;

type EntryKind = TreeNodeType | 'hardlink';

/** One member of the archive, with its extended headers applied. */
export interface TarEntry {
  headerOffset: number;
  path: string;
  kind: EntryKind;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  atime?: number;
  ctime?: number;
  /** Symlinks: the target as stored; hard links: the normalised path of the other name. */
  link?: string;
  rdev?: { major: number; minor: number };
  xattrs?: Map<string, Buffer>;
  /** Regular files: the apparent size. */
  size: number;
  /** Sparse files: where the data is; the stored bytes are these ranges one after the other. */
  dataRanges?: DataRange[];
  /** Where the stored bytes start in the decompressed stream, and how many there are. */
  dataOffset: number;
  storedBytes: number;
}

const TYPES: Record<string, EntryKind> = {
  '0': 'file',
  '7': 'file', // contiguous: a regular file everywhere but on a few 1980s systems
  S: 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  D: 'dir', // GNU incremental dump directory: its data (a listing) is skipped
  '6': 'fifo',
};

/** What extended headers say about the next entry (pax 'x', 'g', GNU 'L'/'K'). */
interface Overrides {
  records: PaxRecord[];
  longName?: Buffer;
  longLink?: Buffer;
}

const fail = (name: string, offset: number, problem: string): never => {
  throw new ToolError('ROOTFS_UNKNOWN', `${name}: tar header at byte ${offset}: ${problem}`);
};

/**
 * The entries of an archive, in order. The consumer may read an entry's stored bytes from `reader`
 * (no further than `storedBytes`) before asking for the next one; what it leaves is skipped.
 */
export async function* tarEntries(reader: ForwardReader, name: string): AsyncGenerator<TarEntry> {
  let global: PaxRecord[] = [];
  let pending: Overrides = { records: [] };
  let members = 0;
  for (;;) {
    const headerOffset = reader.position;
    const block = await reader.read(TAR_BLOCK);
    if (block.length === 0) fail(name, headerOffset, 'the archive ends without its end-of-archive blocks (truncated?)');
    if (block.length < TAR_BLOCK) fail(name, headerOffset, `cut short: ${block.length} of ${TAR_BLOCK} bytes`);
    if (isZeroBlock(block)) {
      // What follows the end is read too, and must be zeros (a record's padding): a compressed
      // stream's own check (gzip's CRC, xz's) comes at its very end, and entries after a lone
      // zero block (or a second archive appended) would otherwise be dropped without a word.
      for await (const view of reader.views(Number.MAX_SAFE_INTEGER)) {
        const at = view.findIndex((b) => b !== 0);
        if (at >= 0) fail(name, headerOffset, `data after the end-of-archive block, at byte ${reader.position - view.length + at}`);
      }
      return;
    }
    const fields = readingTar(name, () => parseTarHeaderFields(block, headerOffset), members === 0 ? 'not a tar archive: ' : '');
    if (++members > 4 * TAR_LIMITS.nodes) fail(name, headerOffset, `more than ${4 * TAR_LIMITS.nodes} members`);
    const type = fields.type;
    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      const limit = type === 'x' || type === 'g' ? TAR_LIMITS.paxBytes : TAR_LIMITS.nameBytes + TAR_BLOCK;
      if (fields.size > limit) fail(name, headerOffset, `extended header ('${type}') of ${fields.size} bytes, more than ${limit}`);
      const body = await reader.read(fields.size);
      if (body.length < fields.size) fail(name, headerOffset, `extended header ('${type}') cut short: the archive ends at byte ${reader.position}`);
      await skipExactly(reader, tarPadding(fields.size), name, headerOffset);
      if (type === 'x') pending.records.push(...readingTar(name, () => parsePaxRecords(body, headerOffset + TAR_BLOCK)));
      else if (type === 'g') global = mergeRecords(global, readingTar(name, () => parsePaxRecords(body, headerOffset + TAR_BLOCK)));
      else if (type === 'L') pending.longName = Buffer.from(trimNul(body));
      else pending.longLink = Buffer.from(trimNul(body));
      // Several extended headers in a row add up: bounded together, not each.
      if (recordBytes(pending.records) + recordBytes(global) > TAR_LIMITS.paxBytes) fail(name, headerOffset, `extended headers of more than ${TAR_LIMITS.paxBytes} bytes in all`);
      continue;
    }
    if (type === 'V') {
      await skipExactly(reader, fields.size + tarPadding(fields.size), name, headerOffset);
      pending = { records: [] };
      continue;
    }
    const kind = TYPES[type];
    if (!kind) fail(name, headerOffset, `unknown typeflag ${JSON.stringify(type)}${type === 'M' ? ' (a multi-volume archive)' : ''}`);
    const records = [...global, ...pending.records];
    const entry = await makeEntry(reader, name, headerOffset, fields, kind!, records, pending);
    pending = { records: [] };
    const end = entry.end;
    yield entry.entry;
    if (reader.position > end) throw new Error(`tar entry consumer read past the entry (${reader.position} > ${end})`);
    await skipExactly(reader, end - reader.position, name, headerOffset);
  }
}

async function makeEntry(
  reader: ForwardReader,
  name: string,
  headerOffset: number,
  fields: ReturnType<typeof parseTarHeaderFields>,
  kind: EntryKind,
  records: PaxRecord[],
  overrides: Overrides,
): Promise<{ entry: TarEntry; end: number }> {
  const pax = new Map<string, Buffer>();
  for (const r of records) pax.set(r.key, r.value);
  const text = (key: string): string | undefined => pax.get(key)?.toString('utf8');
  const integer = (key: string): number | undefined => {
    const v = text(key);
    if (v === undefined) return undefined;
    if (!/^\d{1,16}$/.test(v) || !Number.isSafeInteger(Number(v))) fail(name, headerOffset, `pax ${key} '${v.slice(0, 40)}' is not a number`);
    return Number(v);
  };
  const time = (key: string): number | undefined => {
    const v = text(key);
    if (v === undefined) return undefined;
    if (!/^-?\d{1,15}(\.\d{1,9}\d*)?$/.test(v)) fail(name, headerOffset, `pax ${key} '${v.slice(0, 40)}' is not a time`);
    return Number(v);
  };

  const sparseName = pax.get('GNU.sparse.name');
  const rawPath = sparseName ?? pax.get('path') ?? overrides.longName ?? fields.name;
  const path = normalisePath(name, headerOffset, rawPath);
  const size = integer('size') ?? fields.size;
  const entry: TarEntry = {
    headerOffset,
    path,
    kind,
    mode: fields.mode & 0o7777,
    uid: integer('uid') ?? fields.uid,
    gid: integer('gid') ?? fields.gid,
    mtime: time('mtime') ?? fields.mtime,
    size: 0,
    dataOffset: headerOffset + TAR_BLOCK,
    storedBytes: size,
  };
  const atime = time('atime') ?? (fields.atime || undefined);
  const ctime = time('ctime') ?? (fields.ctime || undefined);
  if (atime !== undefined) entry.atime = atime;
  if (ctime !== undefined) entry.ctime = ctime;
  const xattrs = xattrsOf(name, headerOffset, records);
  if (xattrs.size > 0) entry.xattrs = xattrs;

  if (kind === 'symlink' || kind === 'hardlink') {
    const raw = pax.get('linkpath') ?? overrides.longLink ?? fields.linkname;
    if (raw.length === 0) fail(name, headerOffset, `${kind === 'symlink' ? 'symbolic' : 'hard'} link '${path}' has no target`);
    if (raw.length > TAR_LIMITS.nameBytes) fail(name, headerOffset, `link target of '${path}' is longer than ${TAR_LIMITS.nameBytes} bytes`);
    entry.link = kind === 'hardlink' ? normalisePath(name, headerOffset, raw) : utf8(name, headerOffset, raw, 'link target');
    if (kind === 'symlink' && entry.link.includes('\0')) fail(name, headerOffset, `link target of '${path}' holds a NUL byte`);
  }
  if (kind === 'char' || kind === 'block') entry.rdev = { major: fields.devmajor, minor: fields.devminor };

  let end = headerOffset + TAR_BLOCK + size + tarPadding(size);
  if (kind === 'file') {
    entry.size = size;
    if (fields.sparse) {
      // Old GNU sparse: the map's extension blocks sit between the header and the data.
      const map = [...fields.sparse.map];
      let extended = fields.sparse.extended;
      while (extended) {
        const at = reader.position;
        const block = await reader.read(TAR_BLOCK);
        const ext = readingTar(name, () => parseGnuSparseExtension(block, at));
        map.push(...ext.map);
        if (map.length > TAR_LIMITS.sparseEntries) fail(name, headerOffset, `sparse map of '${path}' has more than ${TAR_LIMITS.sparseEntries} entries`);
        extended = ext.extended;
      }
      entry.dataOffset = reader.position;
      end = reader.position + size + tarPadding(size);
      setSparse(entry, name, map, fields.sparse.realSize, size);
    } else if (pax.has('GNU.sparse.major') || pax.has('GNU.sparse.map') || pax.has('GNU.sparse.numblocks')) {
      const realSize = integer('GNU.sparse.realsize') ?? integer('GNU.sparse.size');
      if (realSize === undefined) fail(name, headerOffset, `sparse file '${path}' without GNU.sparse.realsize`);
      let map: DataRange[];
      if (text('GNU.sparse.major') === '1') {
        if (text('GNU.sparse.minor') !== '0') fail(name, headerOffset, `GNU sparse format 1.${text('GNU.sparse.minor')} is not known`);
        const read = await readSparseMap10(reader, name, headerOffset, path, size);
        map = read.map;
        entry.dataOffset = reader.position;
        entry.storedBytes = size - read.bytes;
      } else if (pax.has('GNU.sparse.map')) {
        map = sparseMap01(name, headerOffset, path, text('GNU.sparse.map')!);
      } else {
        map = sparseMap00(name, headerOffset, path, records);
      }
      setSparse(entry, name, map, realSize!, entry.storedBytes);
    }
  } else if (kind !== 'hardlink' && kind !== 'dir' && size > 0 && fields.type !== 'D') {
    // Only regular files (and GNU's dump directories, and pax hard links) carry data.
    fail(name, headerOffset, `a ${kind} entry ('${path}') with ${size} bytes of data`);
  }
  return { entry, end };
}

function setSparse(entry: TarEntry, name: string, map: DataRange[], realSize: number, storedBytes: number): void {
  const ranges: DataRange[] = [];
  let stored = 0;
  for (const r of map) {
    if (r.length === 0) continue; // GNU ends a map that ends in a hole with an empty entry at the end
    const last = ranges[ranges.length - 1];
    if (last && r.offset < last.offset + last.length) fail(name, entry.headerOffset, `sparse map of '${entry.path}' is not in ascending order`);
    if (r.offset + r.length > realSize) fail(name, entry.headerOffset, `sparse map of '${entry.path}' runs past its size ${realSize}`);
    if (last && r.offset === last.offset + last.length) last.length += r.length;
    else ranges.push({ ...r });
    stored += r.length;
  }
  if (stored !== storedBytes) fail(name, entry.headerOffset, `sparse map of '${entry.path}' holds ${stored} bytes, its data ${storedBytes}`);
  entry.size = realSize;
  entry.storedBytes = storedBytes;
  if (!(ranges.length === 1 && ranges[0]!.offset === 0 && ranges[0]!.length === realSize)) entry.dataRanges = ranges;
}

function sparseMap00(name: string, offset: number, path: string, records: PaxRecord[]): DataRange[] {
  const map: DataRange[] = [];
  let at: number | null = null;
  for (const r of records) {
    if (r.key !== 'GNU.sparse.offset' && r.key !== 'GNU.sparse.numbytes') continue;
    const value = decimal(name, offset, r.value.toString('latin1'), r.key);
    if (r.key === 'GNU.sparse.offset') at = value;
    else {
      if (at === null) fail(name, offset, `sparse map of '${path}': GNU.sparse.numbytes without its offset`);
      map.push({ offset: at!, length: value });
      at = null;
      if (map.length > TAR_LIMITS.sparseEntries) fail(name, offset, `sparse map of '${path}' has more than ${TAR_LIMITS.sparseEntries} entries`);
    }
  }
  return map;
}

function sparseMap01(name: string, offset: number, path: string, text: string): DataRange[] {
  const numbers = text === '' ? [] : text.split(',');
  if (numbers.length % 2 !== 0) fail(name, offset, `sparse map of '${path}' has an odd count of numbers`);
  if (numbers.length / 2 > TAR_LIMITS.sparseEntries) fail(name, offset, `sparse map of '${path}' has more than ${TAR_LIMITS.sparseEntries} entries`);
  const map: DataRange[] = [];
  for (let i = 0; i < numbers.length; i += 2) map.push({ offset: decimal(name, offset, numbers[i]!, 'GNU.sparse.map'), length: decimal(name, offset, numbers[i + 1]!, 'GNU.sparse.map') });
  return map;
}

/** GNU sparse 1.0: the map opens the data, decimal numbers one a line (count, then offset/size pairs), padded to a block. */
async function readSparseMap10(reader: ForwardReader, name: string, offset: number, path: string, size: number): Promise<{ map: DataRange[]; bytes: number }> {
  const numbers: number[] = [];
  let want = 1;
  let carry = '';
  let bytes = 0;
  while (numbers.length < want) {
    if (bytes + TAR_BLOCK > size) fail(name, offset, `sparse map of '${path}' runs past its data`);
    const block = await reader.read(TAR_BLOCK);
    if (block.length < TAR_BLOCK) fail(name, offset, `sparse map of '${path}' cut short: the archive ends at byte ${reader.position}`);
    bytes += TAR_BLOCK;
    const lines = (carry + block.toString('latin1')).split('\n');
    carry = lines.pop()!;
    for (const line of lines) {
      if (numbers.length >= want) break;
      numbers.push(decimal(name, offset, line, 'sparse map'));
      if (numbers.length === 1) {
        if (numbers[0]! > TAR_LIMITS.sparseEntries) fail(name, offset, `sparse map of '${path}' has more than ${TAR_LIMITS.sparseEntries} entries`);
        want = 1 + 2 * numbers[0]!;
      }
    }
    if (numbers.length < want && carry.length > 20) fail(name, offset, `sparse map of '${path}' holds a number of more than 20 digits`);
  }
  const map: DataRange[] = [];
  for (let i = 1; i < numbers.length; i += 2) map.push({ offset: numbers[i]!, length: numbers[i + 1]! });
  return { map, bytes };
}

function decimal(name: string, offset: number, text: string, what: string): number {
  if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) fail(name, offset, `${what}: '${text.slice(0, 40)}' is not a number`);
  return Number(text);
}

/** SCHILY.xattr.NAME (raw value, GNU tar and bsdtar) and LIBARCHIVE.xattr.NAME (URL-encoded name, base64 value). */
function xattrsOf(name: string, offset: number, records: PaxRecord[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const r of records) {
    let key: string;
    let value: Buffer;
    if (r.key.startsWith('SCHILY.xattr.')) {
      key = r.key.slice('SCHILY.xattr.'.length);
      value = Buffer.from(r.value);
    } else if (r.key.startsWith('LIBARCHIVE.xattr.')) {
      try {
        key = decodeURIComponent(r.key.slice('LIBARCHIVE.xattr.'.length));
      } catch {
        fail(name, offset, `pax ${r.key.slice(0, 80)}: bad %-encoding`);
      }
      value = Buffer.from(r.value.toString('latin1'), 'base64');
    } else continue;
    if (key! === '' || key!.includes('\0')) fail(name, offset, `extended attribute with an empty or NUL name`);
    if (value.length > TAR_LIMITS.xattrBytes) fail(name, offset, `extended attribute ${key!} of ${value.length} bytes, more than ${TAR_LIMITS.xattrBytes}`);
    out.set(key!, value);
  }
  return out;
}

const recordBytes = (records: PaxRecord[]): number => records.reduce((sum, r) => sum + r.key.length + r.value.length, 0);

function mergeRecords(into: PaxRecord[], more: PaxRecord[]): PaxRecord[] {
  const keys = new Set(more.map((r) => r.key));
  return [...into.filter((r) => !keys.has(r.key)), ...more];
}

/** tar's own rules: './' and '/' prefixes stripped, '//' and '.' collapsed; '..', NUL, non-UTF-8 refused. */
export function normalisePath(name: string, offset: number, raw: Buffer): string {
  if (raw.length > TAR_LIMITS.nameBytes) fail(name, offset, `a path longer than ${TAR_LIMITS.nameBytes} bytes`);
  const text = utf8(name, offset, raw, 'path');
  if (text.includes('\0')) fail(name, offset, `path ${JSON.stringify(text)} holds a NUL byte`);
  const parts = text.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) fail(name, offset, `path '${text}' has a '..' component`);
  return parts.join('/');
}

function utf8(name: string, offset: number, raw: Buffer, what: string): string {
  const text = raw.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(raw)) fail(name, offset, `${what} ${JSON.stringify(raw.toString('latin1'))} is not UTF-8`);
  return text;
}

const trimNul = (b: Buffer): Buffer => {
  const end = b.indexOf(0);
  return end < 0 ? b : b.subarray(0, end);
};

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

async function skipExactly(reader: ForwardReader, n: number, name: string, headerOffset: number): Promise<void> {
  if (n <= 0) return;
  const skipped = await reader.skip(n);
  if (skipped < n) fail(name, headerOffset, `the entry's data is cut short: the archive ends at byte ${reader.position}, ${n - skipped} bytes early`);
}

function readingTar<T>(name: string, body: () => T, lead = ''): T {
  try {
    return body();
  } catch (err) {
    if (err instanceof TarError) throw new ToolError('ROOTFS_UNKNOWN', `${name}: ${lead}${err.message}`);
    throw err;
  }
}

/** Where a file node's bytes are in the archive. */
interface Stored {
  headerOffset: number;
  dataOffset: number;
  storedBytes: number;
}

/** The nodes, as tar x would leave them (see the module's comment). */
class TarTreeBuilder {
  private readonly slots: (TreeNode | null)[] = [];
  private readonly index = new Map<string, number>();
  private readonly implicit = new Set<TreeNode>();
  private readonly linkTargets = new Set<string>();
  readonly stored = new Map<TreeNode, Stored>();
  private newestMtime = 0;
  private count = 0;

  constructor(private readonly name: string) {
    this.append({ path: '', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0 }, -1);
    this.implicit.add(this.slots[0]!);
  }

  add(e: TarEntry): void {
    this.newestMtime = Math.max(this.newestMtime, Math.floor(e.mtime));
    const existing = this.index.get(e.path);
    const old = existing === undefined ? null : this.slots[existing]!;
    if (e.path === '' && e.kind !== 'dir') fail(this.name, e.headerOffset, `the root is a ${e.kind}, not a directory`);
    if (old?.type === 'dir' && e.kind === 'dir') {
      // The later entry's metadata, all of it (times or xattrs it does not have are gone too).
      delete old.atime;
      delete old.ctime;
      delete old.xattrs;
      Object.assign(old, metadataOf(e));
      this.implicit.delete(old);
      return;
    }
    this.parentsOf(e);
    const node = this.nodeOf(e);
    if (old) {
      if (old.type === 'dir' && this.hasChildren(e.path)) fail(this.name, e.headerOffset, `'${e.path}' replaces a directory that has entries with a ${node.type}`);
      if (this.linkTargets.has(e.path)) fail(this.name, e.headerOffset, `'${e.path}' replaces a file that earlier hard links name`);
      this.slots[existing!] = null;
      this.stored.delete(old);
      this.index.delete(e.path);
      this.count--;
    }
    this.append(node, e.headerOffset);
    if (node.type === 'file' && !node.linkTo && e.storedBytes > 0) this.stored.set(node, { headerOffset: e.headerOffset, dataOffset: e.dataOffset, storedBytes: e.storedBytes });
  }

  private nodeOf(e: TarEntry): TreeNode {
    if (e.kind !== 'hardlink') {
      const node: TreeNode = { path: e.path, type: e.kind, ...metadataOf(e), size: e.size };
      if (e.dataRanges) node.dataRanges = e.dataRanges;
      if (e.kind === 'symlink') node.target = e.link!;
      if (e.rdev) node.rdev = e.rdev;
      return node;
    }
    const at = this.index.get(e.link!);
    if (at === undefined) fail(this.name, e.headerOffset, `hard link '${e.path}' names '${e.link}', which is not in the archive before it`);
    const target = this.slots[at!]!;
    if (target.type === 'dir') fail(this.name, e.headerOffset, `hard link '${e.path}' names the directory '${e.link}'`);
    if (e.link === e.path) fail(this.name, e.headerOffset, `hard link '${e.path}' names itself`);
    const linkTo = target.linkTo ?? target.path;
    this.linkTargets.add(linkTo);
    const { dataRanges: _ranges, ...rest } = target;
    return { ...rest, path: e.path, linkTo };
  }

  private parentsOf(e: TarEntry): void {
    let at = e.path.indexOf('/');
    while (at >= 0) {
      const parent = e.path.slice(0, at);
      const i = this.index.get(parent);
      if (i === undefined) {
        const dir: TreeNode = { path: parent, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0 };
        this.implicit.add(dir);
        this.append(dir, e.headerOffset);
      } else if (this.slots[i]!.type !== 'dir') {
        fail(this.name, e.headerOffset, `'${e.path}': its parent '${parent}' is a ${this.slots[i]!.type}, not a directory`);
      }
      at = e.path.indexOf('/', at + 1);
    }
  }

  private hasChildren(path: string): boolean {
    const prefix = `${path}/`;
    for (const p of this.index.keys()) if (p.startsWith(prefix)) return true;
    return false;
  }

  private append(node: TreeNode, headerOffset: number): void {
    if (++this.count > TAR_LIMITS.nodes) fail(this.name, headerOffset, `more than ${TAR_LIMITS.nodes} files`);
    this.index.set(node.path, this.slots.length);
    this.slots.push(node);
  }

  /** The nodes in order; parents the archive left out get its newest mtime. */
  finish(): TreeNode[] {
    for (const dir of this.implicit) dir.mtime = this.newestMtime;
    const nodes = this.slots.filter((n): n is TreeNode => n !== null);
    refuseImageLayout(this.name, this.index);
    return nodes;
  }
}

function metadataOf(e: TarEntry): Pick<TreeNode, 'mode' | 'uid' | 'gid' | 'mtime' | 'atime' | 'ctime' | 'xattrs'> {
  const m: Pick<TreeNode, 'mode' | 'uid' | 'gid' | 'mtime' | 'atime' | 'ctime' | 'xattrs'> = { mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime };
  if (e.atime !== undefined) m.atime = e.atime;
  if (e.ctime !== undefined) m.ctime = e.ctime;
  if (e.xattrs) m.xattrs = e.xattrs;
  return m;
}

/** docker save and OCI image layouts hold layers, not a root filesystem. */
function refuseImageLayout(name: string, paths: Map<string, number>): void {
  const has = (p: string): boolean => paths.has(p);
  if (has('manifest.json') && (has('oci-layout') || has('blobs') || [...paths.keys()].some((p) => /^[0-9a-f]{64}(\/layer\.tar|\.json)$/.test(p)))) {
    throw new ToolError('ROOTFS_UNKNOWN', `${name}: a container image (docker save / OCI image layout: manifest.json${has('oci-layout') ? ', oci-layout' : ''}), not a root filesystem; use 'docker export' of a container for one`);
  }
}

/** An open archive file: its descriptor, and what it was when the tree was read. */
interface ArchiveFile {
  fd: number;
  size: number;
  mtimeNs: bigint;
}

/** Opens `path`'s stream as a tree: reads every header now, the files' bytes on demand. */
export async function openTarTree(name: string, fd: number, compression: ArchiveCompression): Promise<FileTree> {
  checkDecoderInstalled(name, compression);
  const stat = fs.fstatSync(fd, { bigint: true });
  const file: ArchiveFile = { fd, size: Number(stat.size), mtimeNs: stat.mtimeNs };
  const builder = new TarTreeBuilder(name);
  const reader = new ForwardReader(decodedPieces(name, fd, file.size, compression));
  try {
    for await (const entry of tarEntries(reader, name)) builder.add(entry);
  } finally {
    await reader.close();
  }
  const nodes = builder.finish();
  const stored = builder.stored;
  let closed = false;

  const unchanged = (): void => {
    if (closed) throw new Error(`${name}: the tree is closed`);
    const now = fs.fstatSync(fd, { bigint: true });
    if (Number(now.size) !== file.size || now.mtimeNs !== file.mtimeNs) throw new ToolError('ROOTFS_OPEN', `${name}: the archive changed since it was first read`);
  };
  const pass = (): ForwardReader => {
    unchanged();
    return new ForwardReader(decodedPieces(name, fd, file.size, compression));
  };

  /**
   * The stored bytes of `wanted` nodes of an uncompressed archive, read where the first pass found
   * them: kernel discovery reads a few files (kernel, initrd, fstab, modules), and a pass over the
   * whole archive for each of its questions cost more than the ext4 writer's own pass.
   */
  async function* storedBytesInPlace(wanted: readonly number[]): AsyncGenerator<FileChunk> {
    unchanged();
    for (const i of wanted) {
      const where = stored.get(nodes[i]!)!;
      yield* placed(i, nodes[i]!, bytesAt(fd, where.dataOffset, where.storedBytes), where.storedBytes, name);
    }
  }

  /** The stored bytes of `wanted` nodes (in node order), as the second pass finds them. */
  async function* storedBytesOf(wanted: readonly number[]): AsyncGenerator<FileChunk> {
    const reader = pass();
    try {
      let next = 0;
      // Walked to the end, not stopped after the last file wanted: see tarEntries on the end.
      for await (const entry of tarEntries(reader, name)) {
        if (next >= wanted.length) continue;
        const node = nodes[wanted[next]!]!;
        const where = stored.get(node)!;
        if (entry.headerOffset < where.headerOffset) continue;
        if (entry.headerOffset > where.headerOffset || entry.path !== node.path || entry.storedBytes !== where.storedBytes || entry.dataOffset !== where.dataOffset) {
          throw new ToolError('ROOTFS_OPEN', `${name}: '${node.path}' is not where the first pass found it (byte ${where.headerOffset}): the archive changed`);
        }
        yield* placed(wanted[next]!, node, reader.views(where.storedBytes), where.storedBytes, name);
        next++;
      }
      if (next < wanted.length) throw new ToolError('ROOTFS_OPEN', `${name}: '${nodes[wanted[next]!]!.path}' is missing on the second pass: the archive changed`);
    } finally {
      await reader.close();
    }
  }

  const withContents = nodes.flatMap((n, i) => (stored.has(n) ? [i] : []));
  return {
    name,
    nodes,
    contents: () => storedBytesOf(withContents),
    // A file whose bytes are all holes has no stored bytes: left out of the pass, read as zeros.
    readFiles: (paths, maxBytes) =>
      readWholeFiles(name, nodes, paths, maxBytes, (wanted) => (compression === 'none' ? storedBytesInPlace : storedBytesOf)(wanted.filter((i) => stored.has(nodes[i]!)))),
    close() {
      if (closed) return;
      closed = true;
      fs.closeSync(fd);
    },
  };
}

/** `length` bytes of the file from `offset`, in pieces of at most 4 MiB; short only at its end. */
async function* bytesAt(fd: number, offset: number, length: number): AsyncGenerator<Buffer> {
  for (let done = 0; done < length; ) {
    const piece = Buffer.allocUnsafe(Math.min(length - done, 4 * 1024 * 1024));
    const n = fs.readSync(fd, piece, 0, piece.length, offset + done);
    if (n === 0) return;
    yield piece.subarray(0, n);
    done += n;
  }
}

/** The stored bytes of one file as chunks at its offsets (its data ranges one after the other). */
async function* placed(index: number, node: TreeNode, views: AsyncGenerator<Buffer>, storedBytes: number, name: string): AsyncGenerator<FileChunk> {
  const ranges = node.dataRanges ?? [{ offset: 0, length: node.size }];
  let r = 0;
  let within = 0;
  let got = 0;
  for await (let view of views) {
    got += view.length;
    while (view.length > 0) {
      const range = ranges[r]!;
      const take = Math.min(view.length, range.length - within);
      yield { node: index, offset: range.offset + within, data: view.subarray(0, take) };
      view = view.subarray(take);
      within += take;
      if (within === range.length) {
        r++;
        within = 0;
      }
    }
  }
  if (got < storedBytes) throw new ToolError('ROOTFS_UNKNOWN', `${name}: '${node.path}' is cut short: ${got} of ${storedBytes} bytes`);
}
