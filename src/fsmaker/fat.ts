/**
 * A pure FAT16/FAT32 writer: plans a whole filesystem from a list of files and yields it as a
 * stream of extents (boot sectors, FATs, directories, file data read on demand, holes for the free
 * space). Nothing is written anywhere and no file is ever held whole in memory: file contents come
 * from FatFile.read in pieces of at most 1 MiB while the extents are consumed.
 *
 * Field layouts follow Microsoft's "FAT32 File System Specification" (BPB, FSInfo, cluster-count
 * rules, directory and long-name entries). Everything is laid out contiguously, in a fixed order,
 * so the same inputs always give the same bytes.
 */
import { ToolError } from '../errors.js';
import type { Extent } from '../extent/extent.js';

export interface FatFile {
  /** Path inside the filesystem, '/'-separated, e.g. 'EFI/BOOT/BOOTX64.EFI'. */
  path: string;
  size: number;
  /** Returns exactly `length` bytes of the content starting at `offset`. */
  read: (offset: number, length: number) => Buffer;
}

export interface FatOptions {
  sizeBytes: number;
  volumeLabel: string;
  serial: number;
  /** BPB hidden sectors: the partition's start LBA. */
  hiddenSectors: number;
  files: FatFile[];
  /** Extra (possibly empty) directories to create; parents of files are created anyway. */
  directories?: string[];
  /** Timestamp of every entry; default SOURCE_DATE_EPOCH, else 1980-01-01 00:00:00 UTC. */
  timestamp?: Date;
  sectorsPerCluster?: number;
  fatType?: 'auto' | 'fat16' | 'fat32';
}

export interface FatLayout {
  type: 'fat16' | 'fat32';
  clusterBytes: number;
  totalClusters: number;
  /** Extents relative to the start of the filesystem, strictly increasing, covering [0, sizeBytes). */
  extents(): Iterable<Extent>;
}

const SECTOR = 512;
const DIR_ENTRY = 32;
const READ_CHUNK = 1024 * 1024;
const MIN_CLUSTERS_FAT16 = 4085;
const MIN_CLUSTERS_FAT32 = 65525;
// FAT32 entries are 28 bits and the top values are reserved (bad cluster, end of chain).
const MAX_CLUSTERS_FAT32 = 0x0ffffff5 - 2;
const MEDIA = 0xf8;
const ATTR_DIRECTORY = 0x10;
const ATTR_VOLUME_ID = 0x08;
const ATTR_LONG_NAME = 0x0f;
const NT_LOWER_BASE = 0x08;
const NT_LOWER_EXT = 0x10;
// Characters a short (8.3) name may hold besides A-Z and 0-9.
const SHORT_SPECIALS = "!#$%&'()-@^_`{}~";
const LONG_FORBIDDEN = '"*/:<>?\\|';

const fail = (message: string): never => {
  throw new ToolError('USAGE', `FAT: ${message}`);
};

interface Geometry {
  type: 'fat16' | 'fat32';
  sectorsPerCluster: number;
  reservedSectors: number;
  rootEntries: number; // FAT16 only; 0 on FAT32
  rootDirSectors: number;
  fatSectors: number;
  totalSectors: number;
  clusters: number;
  dataStartSector: number;
}

function geometry(type: 'fat16' | 'fat32', sectorsPerCluster: number, totalSectors: number, rootEntries: number): Geometry | null {
  let reservedSectors = type === 'fat32' ? 32 : 1;
  const rootDirSectors = type === 'fat16' ? (rootEntries * DIR_ENTRY) / SECTOR : 0;
  const entryBytes = type === 'fat32' ? 4 : 2;
  const afterRoot = totalSectors - reservedSectors - rootDirSectors;
  if (afterRoot <= 0) return null;
  // Size the FATs for every cluster the space could hold without them: a little slack at most.
  const upperClusters = Math.floor(afterRoot / sectorsPerCluster);
  const fatSectors = Math.ceil(((upperClusters + 2) * entryBytes) / SECTOR);
  // FAT32: pad the reserved area so clusters start on a cluster boundary (as mkfs.fat does), which
  // keeps them aligned on disk too when the partition itself is aligned.
  if (type === 'fat32') reservedSectors += (sectorsPerCluster - ((reservedSectors + 2 * fatSectors) % sectorsPerCluster)) % sectorsPerCluster;
  const dataStartSector = reservedSectors + 2 * fatSectors + rootDirSectors;
  const clusters = Math.floor((totalSectors - dataStartSector) / sectorsPerCluster);
  if (clusters <= 0) return null;
  return { type, sectorsPerCluster, reservedSectors, rootEntries: type === 'fat16' ? rootEntries : 0, rootDirSectors, fatSectors, totalSectors, clusters, dataStartSector };
}

const fat16Ok = (g: Geometry | null): boolean => g !== null && g.clusters >= MIN_CLUSTERS_FAT16 && g.clusters < MIN_CLUSTERS_FAT32;
const fat32Ok = (g: Geometry | null): boolean => g !== null && g.clusters >= MIN_CLUSTERS_FAT32 && g.clusters <= MAX_CLUSTERS_FAT32;

/** Microsoft's default FAT32 cluster sizes by volume size. */
function defaultFat32Spc(sizeBytes: number): number {
  const MiB = 1024 * 1024;
  if (sizeBytes <= 260 * MiB) return 1;
  if (sizeBytes <= 8192 * MiB) return 8;
  if (sizeBytes <= 16384 * MiB) return 16;
  if (sizeBytes <= 32768 * MiB) return 32;
  return 64;
}

function chooseGeometry(options: FatOptions, totalSectors: number, rootEntries: number): Geometry {
  const want = options.fatType ?? 'auto';
  const size = options.sizeBytes;
  const spcGiven = options.sectorsPerCluster;
  if (spcGiven !== undefined) {
    if (!Number.isInteger(spcGiven) || spcGiven < 1 || spcGiven > 128 || (spcGiven & (spcGiven - 1)) !== 0) {
      fail(`sectorsPerCluster must be a power of two from 1 to 128, not ${spcGiven}`);
    }
    const g32 = geometry('fat32', spcGiven, totalSectors, 0);
    const g16 = geometry('fat16', spcGiven, totalSectors, rootEntries);
    if (want !== 'fat16' && g32 && fat32Ok(g32)) return g32;
    if (want !== 'fat32' && g16 && fat16Ok(g16)) return g16;
    return fail(
      `${size} bytes with ${spcGiven * SECTOR}-byte clusters gives ${want === 'fat16' ? g16?.clusters ?? 0 : g32?.clusters ?? 0} clusters, ` +
        `outside the ${want === 'auto' ? 'FAT16 or FAT32' : want.toUpperCase()} range (FAT16: ${MIN_CLUSTERS_FAT16}..${MIN_CLUSTERS_FAT32 - 1}, FAT32: >= ${MIN_CLUSTERS_FAT32}); choose another size or cluster size`,
    );
  }
  if (want !== 'fat16') {
    // Largest cluster not above Microsoft's default that still keeps FAT32's minimum cluster count.
    for (let spc = defaultFat32Spc(size); spc >= 1; spc /= 2) {
      const g = geometry('fat32', spc, totalSectors, 0);
      if (g && fat32Ok(g)) return g;
      if (g !== null && g.clusters > MAX_CLUSTERS_FAT32) break;
    }
    for (let spc = defaultFat32Spc(size) * 2; spc <= 128; spc *= 2) {
      const g = geometry('fat32', spc, totalSectors, 0);
      if (g && fat32Ok(g)) return g;
    }
    if (want === 'fat32') {
      const g = geometry('fat32', 1, totalSectors, 0);
      return fail(`${size} bytes is too small for FAT32: ${g?.clusters ?? 0} clusters of 512 bytes, FAT32 needs at least ${MIN_CLUSTERS_FAT32} (about 33 MiB); use FAT16`);
    }
  }
  // FAT16: the smallest cluster that keeps the count under FAT16's maximum.
  for (let spc = 1; spc <= 64; spc *= 2) {
    const g = geometry('fat16', spc, totalSectors, rootEntries);
    if (g === null) break;
    if (g.clusters < MIN_CLUSTERS_FAT32) {
      if (fat16Ok(g)) return g;
      break;
    }
  }
  const g = geometry('fat16', 1, totalSectors, rootEntries);
  if (g === null || g.clusters < MIN_CLUSTERS_FAT16) {
    return fail(
      `${size} bytes is too small for FAT16: ${g?.clusters ?? 0} clusters of 512 bytes, FAT16 needs at least ${MIN_CLUSTERS_FAT16} (about 2.1 MiB); make the filesystem larger`,
    );
  }
  return fail(`${size} bytes is too large for FAT16 even with 32 KiB clusters; use FAT32`);
}

// ---------------------------------------------------------------------------------------------
// names

interface Node {
  longName: string; // as given
  shortName: Buffer; // 11 bytes, space padded
  ntCase: number;
  lfn: boolean; // needs long-name entries
  dir: boolean;
  children: Node[]; // dirs only
  file?: FatFile;
  firstCluster: number;
  clusterCount: number;
}

const isShortChar = (c: string): boolean => (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || SHORT_SPECIALS.includes(c);

/** 'upper' | 'lower' | 'mixed' | 'none' (no letters) for the case used by a name part. */
function letterCase(s: string): 'upper' | 'lower' | 'mixed' | 'none' {
  const hasUpper = /[A-Z]/.test(s);
  const hasLower = /[a-z]/.test(s);
  if (hasUpper && hasLower) return 'mixed';
  if (hasUpper) return 'upper';
  if (hasLower) return 'lower';
  return 'none';
}

/** The name as a plain 8.3 name (with NT case bits), or null if it needs a long name. */
function exactShortName(name: string): { short: string; ntCase: number } | null {
  if (name === '.' || name === '..' || name.startsWith('.')) return null;
  const dot = name.indexOf('.');
  if (dot !== name.lastIndexOf('.')) return null;
  const base = dot < 0 ? name : name.slice(0, dot);
  const ext = dot < 0 ? '' : name.slice(dot + 1);
  if (base.length < 1 || base.length > 8 || ext.length > 3 || (dot >= 0 && ext.length === 0)) return null;
  const upper = (base + ext).toUpperCase();
  if (![...upper].every(isShortChar)) return null;
  const baseCase = letterCase(base);
  const extCase = letterCase(ext);
  if (baseCase === 'mixed' || extCase === 'mixed') return null;
  const ntCase = (baseCase === 'lower' ? NT_LOWER_BASE : 0) | (extCase === 'lower' ? NT_LOWER_EXT : 0);
  return { short: base.toUpperCase().padEnd(8, ' ') + ext.toUpperCase().padEnd(3, ' '), ntCase };
}

/** A unique 8.3 alias for a long name (basis name plus a ~N tail), as Windows derives it. */
function aliasFor(name: string, taken: Set<string>): string {
  const clean = (s: string): string =>
    [...s.toUpperCase().replace(/ /g, '')].map((c) => (isShortChar(c) ? c : c === '.' ? '' : '_')).join('');
  const stripped = name.replace(/^\.+/, '');
  const dot = stripped.lastIndexOf('.');
  let base = clean(dot < 0 ? stripped : stripped.slice(0, dot));
  const ext = clean(dot < 0 ? '' : stripped.slice(dot + 1)).slice(0, 3);
  if (base.length === 0) base = '_';
  for (let n = 1; n < 1000000; n++) {
    const tail = `~${n}`;
    const candidate = base.slice(0, 8 - tail.length) + tail;
    const short = candidate.padEnd(8, ' ') + ext.padEnd(3, ' ');
    if (!taken.has(short)) return short;
  }
  return fail(`cannot derive a unique short name for '${name}'`);
}

function validateLongName(name: string, where: string): void {
  if (name.length === 0 || name === '.' || name === '..') fail(`invalid path component '${name}' in '${where}'`);
  if (name.length > 255) fail(`name longer than 255 characters in '${where}'`);
  for (const c of name) {
    if (c.charCodeAt(0) < 0x20 || LONG_FORBIDDEN.includes(c)) fail(`character ${JSON.stringify(c)} is not allowed in FAT names ('${where}')`);
  }
  if (/[ .]$/.test(name)) fail(`FAT names cannot end with a space or a dot ('${where}')`);
}

function shortNameChecksum(short: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + short[i]!) & 0xff;
  return sum;
}

function newNode(name: string, dir: boolean): Node {
  return { longName: name, shortName: Buffer.alloc(0), ntCase: 0, lfn: false, dir, children: [], firstCluster: 0, clusterCount: 0 };
}

function buildTree(files: FatFile[], directories: string[]): Node {
  const root = newNode('', true);
  const split = (p: string): string[] => p.split('/').filter((s) => s.length > 0);
  const ensureDir = (parts: string[], where: string): Node => {
    let node = root;
    for (const part of parts) {
      validateLongName(part, where);
      const key = part.toUpperCase();
      let child = node.children.find((c) => c.longName.toUpperCase() === key);
      if (!child) {
        child = newNode(part, true);
        node.children.push(child);
      } else if (!child.dir) {
        fail(`'${where}': '${part}' is a file, not a directory`);
      }
      node = child;
    }
    return node;
  };
  for (const d of directories) ensureDir(split(d), d);
  for (const f of files) {
    const parts = split(f.path);
    const name = parts.pop();
    if (name === undefined) return fail(`empty file path '${f.path}'`);
    if (!Number.isSafeInteger(f.size) || f.size < 0 || f.size > 0xffffffff) fail(`'${f.path}': size ${f.size} is not a valid FAT file size (0..4 GiB - 1)`);
    validateLongName(name, f.path);
    const parent = ensureDir(parts, f.path);
    if (parent.children.some((c) => c.longName.toUpperCase() === name.toUpperCase())) fail(`'${f.path}' is given twice (FAT names are case-insensitive)`);
    const node = newNode(name, false);
    node.file = f;
    parent.children.push(node);
  }
  assignShortNames(root);
  return root;
}

function assignShortNames(dir: Node): void {
  const taken = new Set<string>();
  // Names that are valid 8.3 names keep them; aliases are derived afterwards so they never clash.
  const pending: Node[] = [];
  for (const child of dir.children) {
    const exact = exactShortName(child.longName);
    if (exact && !taken.has(exact.short)) {
      child.shortName = Buffer.from(exact.short, 'latin1');
      child.ntCase = exact.ntCase;
      taken.add(exact.short);
    } else {
      pending.push(child);
    }
  }
  for (const child of pending) {
    const short = aliasFor(child.longName, taken);
    taken.add(short);
    child.shortName = Buffer.from(short, 'latin1');
    child.lfn = true;
  }
  for (const child of dir.children) if (child.dir) assignShortNames(child);
}

const lfnEntryCount = (n: Node): number => (n.lfn ? Math.ceil(n.longName.length / 13) : 0);
const entriesOf = (n: Node): number => n.children.reduce((sum, c) => sum + 1 + lfnEntryCount(c), 0);

// ---------------------------------------------------------------------------------------------
// time

function defaultTimestamp(): Date {
  const sde = process.env['SOURCE_DATE_EPOCH'];
  if (sde !== undefined && /^\d+$/.test(sde.trim())) return new Date(Number(sde.trim()) * 1000);
  return new Date(Date.UTC(1980, 0, 1));
}

/** FAT date, time and 10 ms units, in UTC so the result does not depend on the machine. */
function fatTime(t: Date): { date: number; time: number; tenth: number } {
  let ms = t.getTime();
  if (!Number.isFinite(ms)) fail('invalid timestamp');
  const min = Date.UTC(1980, 0, 1);
  const max = Date.UTC(2107, 11, 31, 23, 59, 59);
  ms = Math.min(Math.max(ms, min), max);
  const d = new Date(ms);
  const date = ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate();
  const time = (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1);
  const tenth = (d.getUTCSeconds() & 1) * 100 + Math.floor(d.getUTCMilliseconds() / 10);
  return { date, time, tenth };
}

// ---------------------------------------------------------------------------------------------
// planning

function labelBytes(label: string): Buffer {
  const upper = label.toUpperCase();
  if (upper.length > 11) fail(`volume label '${label}' is longer than 11 characters`);
  for (const c of upper) {
    if (!(isShortChar(c) || c === ' ')) fail(`volume label '${label}' may hold only A-Z, 0-9, spaces and ${SHORT_SPECIALS}`);
  }
  return Buffer.from(upper.padEnd(11, ' '), 'latin1');
}

export function planFat(options: FatOptions): FatLayout {
  const { sizeBytes, serial, hiddenSectors } = options;
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) fail(`invalid size ${sizeBytes}`);
  if (!Number.isInteger(serial) || serial < 0 || serial > 0xffffffff) fail(`volume serial must be a 32-bit unsigned integer, not ${serial}`);
  if (!Number.isInteger(hiddenSectors) || hiddenSectors < 0 || hiddenSectors > 0xffffffff) fail(`hidden sectors must be a 32-bit unsigned integer, not ${hiddenSectors}`);
  const totalSectors = Math.floor(sizeBytes / SECTOR);
  if (totalSectors > 0xffffffff) fail(`${sizeBytes} bytes is larger than FAT's 2 TiB limit`);
  const label = labelBytes(options.volumeLabel);
  const hasLabel = options.volumeLabel.trim().length > 0;
  const stamp = fatTime(options.timestamp ?? defaultTimestamp());

  const root = buildTree(options.files, options.directories ?? []);
  const rootEntriesNeeded = entriesOf(root) + (hasLabel ? 1 : 0);
  const rootEntries = Math.max(512, Math.ceil(rootEntriesNeeded / 16) * 16);
  if (rootEntries > 0xffff) fail('too many entries in the root directory');
  const g = chooseGeometry(options, totalSectors, rootEntries);
  const fat32 = g.type === 'fat32';
  const clusterBytes = g.sectorsPerCluster * SECTOR;

  // Allocate clusters: FAT32 root, then every directory (pre-order), then every file, in order.
  let next = 2;
  const dirs: Node[] = [];
  const files: Node[] = [];
  const walk = (n: Node): void => {
    for (const c of n.children) {
      if (c.dir) {
        dirs.push(c);
        walk(c);
      } else files.push(c);
    }
  };
  walk(root);
  const allocate = (n: Node, bytes: number): void => {
    n.clusterCount = Math.ceil(bytes / clusterBytes);
    n.firstCluster = n.clusterCount > 0 ? next : 0;
    next += n.clusterCount;
  };
  if (fat32) allocate(root, Math.max(1, rootEntriesNeeded) * DIR_ENTRY);
  for (const d of dirs) allocate(d, (2 + entriesOf(d)) * DIR_ENTRY);
  for (const f of files) allocate(f, f.file!.size);
  const usedClusters = next - 2;
  if (usedClusters > g.clusters) {
    fail(`the files need ${usedClusters} clusters of ${clusterBytes} bytes but the filesystem has only ${g.clusters}; make it larger`);
  }
  const chains = [...(fat32 ? [root] : []), ...dirs, ...files].filter((n) => n.clusterCount > 0);

  const entry = (short: Buffer, attr: number, ntCase: number, cluster: number, size: number): Buffer => {
    const e = Buffer.alloc(DIR_ENTRY);
    short.copy(e, 0, 0, 11);
    e[11] = attr;
    e[12] = ntCase;
    e[13] = stamp.tenth;
    e.writeUInt16LE(stamp.time, 14);
    e.writeUInt16LE(stamp.date, 16);
    e.writeUInt16LE(stamp.date, 18);
    e.writeUInt16LE((cluster >>> 16) & 0xffff, 20);
    e.writeUInt16LE(stamp.time, 22);
    e.writeUInt16LE(stamp.date, 24);
    e.writeUInt16LE(cluster & 0xffff, 26);
    e.writeUInt32LE(size, 28);
    return e;
  };
  const lfnEntries = (n: Node): Buffer[] => {
    const units: number[] = [];
    for (let i = 0; i < n.longName.length; i++) units.push(n.longName.charCodeAt(i));
    const count = lfnEntryCount(n);
    if (units.length < count * 13) units.push(0);
    while (units.length < count * 13) units.push(0xffff);
    const sum = shortNameChecksum(n.shortName);
    const out: Buffer[] = [];
    for (let ord = count; ord >= 1; ord--) {
      const e = Buffer.alloc(DIR_ENTRY);
      e[0] = ord | (ord === count ? 0x40 : 0);
      e[11] = ATTR_LONG_NAME;
      e[13] = sum;
      const part = units.slice((ord - 1) * 13, ord * 13);
      const slots = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
      slots.forEach((off, i) => e.writeUInt16LE(part[i]!, off));
      out.push(e);
    }
    return out;
  };
  const dirBytes = (n: Node, parent: Node | null, capacityBytes: number): Buffer => {
    const parts: Buffer[] = [];
    if (parent === null) {
      if (hasLabel) parts.push(entry(label, ATTR_VOLUME_ID, 0, 0, 0));
    } else {
      parts.push(entry(Buffer.from('.          ', 'latin1'), ATTR_DIRECTORY, 0, n.firstCluster, 0));
      const up = parent === root ? 0 : parent.firstCluster;
      parts.push(entry(Buffer.from('..         ', 'latin1'), ATTR_DIRECTORY, 0, up, 0));
    }
    for (const c of n.children) {
      parts.push(...lfnEntries(c));
      parts.push(entry(c.shortName, c.dir ? ATTR_DIRECTORY : 0, c.ntCase, c.firstCluster, c.dir ? 0 : c.file!.size));
    }
    const out = Buffer.alloc(capacityBytes);
    Buffer.concat(parts).copy(out);
    return out;
  };
  const parents = new Map<Node, Node>();
  const mapParents = (n: Node): void => {
    for (const c of n.children) {
      parents.set(c, n);
      if (c.dir) mapParents(c);
    }
  };
  mapParents(root);

  const bootSector = (): Buffer => {
    const b = Buffer.alloc(SECTOR);
    b[0] = 0xeb;
    b[1] = fat32 ? 0x58 : 0x3c;
    b[2] = 0x90;
    b.write('MSWIN4.1', 3, 'latin1');
    b.writeUInt16LE(SECTOR, 11);
    b[13] = g.sectorsPerCluster;
    b.writeUInt16LE(g.reservedSectors, 14);
    b[16] = 2;
    b.writeUInt16LE(g.rootEntries, 17);
    b.writeUInt16LE(!fat32 && totalSectors < 0x10000 ? totalSectors : 0, 19);
    b[21] = MEDIA;
    b.writeUInt16LE(fat32 ? 0 : g.fatSectors, 22);
    b.writeUInt16LE(63, 24);
    b.writeUInt16LE(255, 26);
    b.writeUInt32LE(hiddenSectors, 28);
    b.writeUInt32LE(!fat32 && totalSectors < 0x10000 ? 0 : totalSectors, 32);
    let ext = 36;
    if (fat32) {
      b.writeUInt32LE(g.fatSectors, 36);
      b.writeUInt16LE(0, 40); // FAT mirroring on
      b.writeUInt16LE(0, 42); // version 0.0
      b.writeUInt32LE(2, 44); // root cluster
      b.writeUInt16LE(1, 48); // FSInfo sector
      b.writeUInt16LE(6, 50); // backup boot sector
      ext = 64;
    }
    b[ext] = 0x80;
    b[ext + 2] = 0x29;
    b.writeUInt32LE(serial, ext + 3);
    (hasLabel ? label : Buffer.from('NO NAME    ', 'latin1')).copy(b, ext + 7);
    b.write(fat32 ? 'FAT32   ' : 'FAT16   ', ext + 18, 'latin1');
    // Boot code: "int 18h" (no bootable OS here: let the BIOS try the next device), then halt.
    Buffer.from([0xcd, 0x18, 0xf4, 0xeb, 0xfd]).copy(b, ext + 26);
    b[510] = 0x55;
    b[511] = 0xaa;
    return b;
  };
  const fsInfo = (): Buffer => {
    const b = Buffer.alloc(SECTOR);
    b.writeUInt32LE(0x41615252, 0);
    b.writeUInt32LE(0x61417272, 484);
    b.writeUInt32LE(g.clusters - usedClusters, 488);
    b.writeUInt32LE(next <= g.clusters + 1 ? next : 0xffffffff, 492);
    b.writeUInt32LE(0xaa550000, 508);
    return b;
  };

  // FAT entries [from, to) of the (identical) FAT copies.
  const entryBytes = fat32 ? 4 : 2;
  const eoc = fat32 ? 0x0fffffff : 0xffff;
  const fatChunk = (from: number, to: number): Buffer => {
    const b = Buffer.alloc((to - from) * entryBytes);
    const put = (i: number, v: number): void => {
      if (fat32) b.writeUInt32LE(v, (i - from) * 4);
      else b.writeUInt16LE(v, (i - from) * 2);
    };
    let lo = 0;
    let hi = chains.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const c = chains[mid]!;
      if (c.firstCluster + c.clusterCount <= from) lo = mid + 1;
      else hi = mid;
    }
    let k = lo;
    for (let i = from; i < to; i++) {
      if (i === 0) put(0, fat32 ? 0x0fffff00 | MEDIA : 0xff00 | MEDIA);
      else if (i === 1) put(1, eoc); // clean, no errors
      else {
        while (k < chains.length && chains[k]!.firstCluster + chains[k]!.clusterCount <= i) k++;
        const c = chains[k];
        if (c === undefined || i < c.firstCluster) continue;
        put(i, i === c.firstCluster + c.clusterCount - 1 ? eoc : i + 1);
      }
    }
    return b;
  };

  function* raw(): Generator<Extent> {
    // Reserved area.
    const boot = bootSector();
    if (fat32) {
      const head = Buffer.alloc(8 * SECTOR);
      boot.copy(head, 0);
      fsInfo().copy(head, SECTOR);
      boot.copy(head, 6 * SECTOR);
      fsInfo().copy(head, 7 * SECTOR);
      yield { offset: 0, length: head.length, data: head };
    } else {
      yield { offset: 0, length: SECTOR, data: boot };
    }
    yield { offset: 0, length: g.reservedSectors * SECTOR }; // rest of the reserved area: a hole
    // The two FATs: the used entries as data, the free tail as a hole.
    const usedEntries = next; // entries 0..next-1
    const entriesPerChunk = READ_CHUNK / entryBytes;
    for (let copy = 0; copy < 2; copy++) {
      const base = (g.reservedSectors + copy * g.fatSectors) * SECTOR;
      for (let from = 0; from < usedEntries; from += entriesPerChunk) {
        const to = Math.min(usedEntries, from + entriesPerChunk);
        const data = fatChunk(from, to);
        yield { offset: base + from * entryBytes, length: data.length, data };
      }
      yield { offset: base, length: g.fatSectors * SECTOR };
    }
    // FAT16 fixed root directory.
    const rootStart = (g.reservedSectors + 2 * g.fatSectors) * SECTOR;
    if (!fat32) {
      const data = dirBytes(root, null, g.rootDirSectors * SECTOR);
      yield { offset: rootStart, length: data.length, data };
    }
    // Data area, cluster by cluster in allocation order.
    const dataStart = g.dataStartSector * SECTOR;
    const clusterOffset = (c: number): number => dataStart + (c - 2) * clusterBytes;
    for (const n of chains) {
      const at = clusterOffset(n.firstCluster);
      const span = n.clusterCount * clusterBytes;
      if (n.dir) {
        const data = dirBytes(n, n === root ? null : parents.get(n)!, span);
        yield { offset: at, length: span, data };
        continue;
      }
      const f = n.file!;
      for (let off = 0; off < f.size; off += READ_CHUNK) {
        const length = Math.min(READ_CHUNK, f.size - off);
        const data = f.read(off, length);
        if (!Buffer.isBuffer(data) || data.length !== length) {
          fail(`'${f.path}': read(${off}, ${length}) returned ${Buffer.isBuffer(data) ? data.length : 'no'} bytes`);
        }
        yield { offset: at + off, length, data };
      }
      yield { offset: at, length: span }; // slack after the file's end
    }
    yield { offset: 0, length: sizeBytes }; // free clusters and anything after the data area
  }

  /** Holes in raw() are "zeros up to offset+length" markers: merge them and trim overlaps. */
  function* extents(): Generator<Extent> {
    let pos = 0;
    let holeStart = -1;
    for (const e of raw()) {
      const end = e.offset + e.length;
      if (e.data === undefined) {
        if (end > pos) {
          if (holeStart < 0) holeStart = pos;
          pos = end;
        }
        continue;
      }
      if (e.offset < pos) throw new Error(`FAT planner bug: extent at ${e.offset} overlaps ${pos}`);
      if (holeStart >= 0 || e.offset > pos) {
        const start = holeStart >= 0 ? holeStart : pos;
        yield { offset: start, length: e.offset - start };
        holeStart = -1;
      }
      if (e.length > 0) yield e;
      pos = end;
    }
    if (holeStart >= 0) yield { offset: holeStart, length: pos - holeStart };
  }

  return { type: g.type, clusterBytes, totalClusters: g.clusters, extents };
}
