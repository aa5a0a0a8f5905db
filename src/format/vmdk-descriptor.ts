/**
 * The VMDK descriptor (text; VMware's Virtual Disk Format 5.0 technote, "The Descriptor File"):
 * its header keys, its extent lines and its disk database, as a model the readers and the writers
 * share. Pure: text in, values out; every problem a DescriptorError naming its line.
 *
 * Limits, so that a hostile descriptor costs an error and not memory: the text is at most
 * MAX_DESCRIPTOR_BYTES (VirtualBox's cap on a descriptor, 20480 sectors), at most MAX_EXTENTS
 * extent lines (a 2 GiB split of an 8 TiB disk), extent sizes within what a number holds exactly.
 */
import { SECTOR } from './vmdk-header.js';

export type ExtentAccess = 'RW' | 'RDONLY' | 'NOACCESS';
export type ExtentType = 'FLAT' | 'SPARSE' | 'ZERO' | 'VMFS' | 'VMFSSPARSE' | 'SESPARSE' | 'VMFSRDM' | 'VMFSRAW';

const ACCESS: readonly ExtentAccess[] = ['RW', 'RDONLY', 'NOACCESS'];
const TYPES: readonly ExtentType[] = ['FLAT', 'SPARSE', 'ZERO', 'VMFS', 'VMFSSPARSE', 'SESPARSE', 'VMFSRDM', 'VMFSRAW'];

/** One extent line: `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`. */
export interface DescriptorExtent {
  access: ExtentAccess;
  /** Sectors of the virtual disk this extent holds. */
  sectors: number;
  type: ExtentType;
  /** The file, as written (relative to the descriptor's directory); null for ZERO. */
  file: string | null;
  /** FLAT: the sector of the file where the extent's data starts. */
  offsetSectors: number;
  /** 1-based line of the descriptor, for messages. */
  line: number;
}

export interface VmdkDescriptor {
  version: number | null;
  cid: string | null;
  /** null when absent; 'ffffffff' for a disk with no parent. */
  parentCid: string | null;
  createType: string | null;
  parentFileNameHint: string | null;
  extents: DescriptorExtent[];
  /** `ddb.*` keys, as written (lower-cased key), values unquoted. */
  ddb: Map<string, string>;
}

export const MAX_DESCRIPTOR_BYTES = 20480 * SECTOR;
export const MAX_EXTENTS = 4096;
/** qemu's limit on an extent's file name. */
const MAX_FILE_NAME = 511;
const MAX_SAFE_SECTORS = Math.floor(Number.MAX_SAFE_INTEGER / SECTOR);

export const NO_PARENT_CID = 'ffffffff';

export class DescriptorError extends Error {
  constructor(
    message: string,
    /** 1-based line, 0 for the descriptor as a whole. */
    readonly line: number,
  ) {
    super(message);
    this.name = 'DescriptorError';
  }
}

const unquote = (v: string): string => (v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v);

function sectorCount(text: string, what: string, line: number): number {
  if (!/^\d{1,20}$/.test(text)) throw new DescriptorError(`${what} "${text.slice(0, 40)}" is not a sector count`, line);
  const n = Number(text);
  if (n > MAX_SAFE_SECTORS) throw new DescriptorError(`${what} ${text} sectors is beyond any disk`, line);
  return n;
}

const EXTENT_LINE = /^(\S+)\s+(\S+)\s+(\S+)(?:\s+"([^"]*)"(?:\s+(\S+))?)?\s*$/;

function parseExtentLine(text: string, line: number): DescriptorExtent {
  const m = EXTENT_LINE.exec(text);
  if (!m) throw new DescriptorError(`extent line not of the form ACCESS SECTORS TYPE "FILE" [OFFSET]: ${text.slice(0, 80)}`, line);
  const access = m[1]!.toUpperCase() as ExtentAccess;
  const type = m[3]!.toUpperCase() as ExtentType;
  if (!ACCESS.includes(access)) throw new DescriptorError(`extent access ${m[1]} is not RW, RDONLY or NOACCESS`, line);
  if (!TYPES.includes(type)) throw new DescriptorError(`extent type ${m[3]!.slice(0, 20)} is not one of ${TYPES.join(', ')}`, line);
  const sectors = sectorCount(m[2]!, 'extent size', line);
  if (sectors === 0) throw new DescriptorError('extent of 0 sectors', line);
  const file = m[4] ?? null;
  if (type !== 'ZERO' && (file === null || file === '')) throw new DescriptorError(`${type} extent without a file name`, line);
  if (file !== null && file.length > MAX_FILE_NAME) throw new DescriptorError(`extent file name of ${file.length} characters (at most ${MAX_FILE_NAME})`, line);
  if (m[5] !== undefined && type !== 'FLAT') throw new DescriptorError(`an offset is given to a ${type} extent (only FLAT extents have one)`, line);
  // qemu requires FLAT's offset; VMware's own files always write it: a missing one means 0 here.
  const offsetSectors = m[5] === undefined ? 0 : sectorCount(m[5], 'extent offset', line);
  if (offsetSectors + sectors > MAX_SAFE_SECTORS) throw new DescriptorError(`extent ends past any disk (offset ${offsetSectors} + ${sectors} sectors)`, line);
  return { access, sectors, type, file: type === 'ZERO' ? null : file, offsetSectors, line };
}

/** A descriptor's text (a separate file, or the embedded one up to its first NUL). */
export function parseDescriptor(text: string): VmdkDescriptor {
  if (text.length > MAX_DESCRIPTOR_BYTES) throw new DescriptorError(`descriptor of ${text.length} bytes (at most ${MAX_DESCRIPTOR_BYTES})`, 0);
  const d: VmdkDescriptor = { version: null, cid: null, parentCid: null, createType: null, parentFileNameHint: null, extents: [], ddb: new Map() };
  let totalSectors = 0;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (/^(RW|RDONLY|NOACCESS)\s/i.test(line)) {
      if (d.extents.length >= MAX_EXTENTS) throw new DescriptorError(`more than ${MAX_EXTENTS} extents`, lineNo);
      const extent = parseExtentLine(line, lineNo);
      totalSectors += extent.sectors;
      if (totalSectors > MAX_SAFE_SECTORS) throw new DescriptorError(`extents add up to more than any disk (${totalSectors} sectors)`, lineNo);
      d.extents.push(extent);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new DescriptorError(`neither a key = value line nor an extent line: ${line.slice(0, 80)}`, lineNo);
    const key = line.slice(0, eq).trim().toLowerCase();
    const value = unquote(line.slice(eq + 1).trim());
    if (key.startsWith('ddb.')) d.ddb.set(key, value);
    else if (key === 'version') {
      if (!/^\d{1,3}$/.test(value)) throw new DescriptorError(`version "${value.slice(0, 20)}" is not a number`, lineNo);
      d.version = Number(value);
    } else if (key === 'cid') d.cid = value.toLowerCase();
    else if (key === 'parentcid') d.parentCid = value.toLowerCase();
    else if (key === 'createtype') d.createType = value;
    else if (key === 'parentfilenamehint') d.parentFileNameHint = value;
    // Other keys (encoding, isNativeSnapshot...) say nothing a reader needs.
  }
  return d;
}

/** The embedded descriptor's text: the descriptor area up to its first NUL. */
export function embeddedDescriptorText(area: Buffer): string {
  const nul = area.indexOf(0);
  return area.subarray(0, nul < 0 ? area.length : nul).toString('latin1');
}

/** True when the descriptor names a parent disk (a delta link of a snapshot chain). */
export const hasParent = (d: VmdkDescriptor): boolean => (d.parentCid !== null && d.parentCid !== NO_PARENT_CID) || (d.parentFileNameHint !== null && d.parentFileNameHint !== '');

/** An extent line as written in a descriptor. */
export function formatExtentLine(e: Omit<DescriptorExtent, 'line'>): string {
  const file = e.file === null ? '' : ` "${e.file}"`;
  const offset = e.type === 'FLAT' ? ` ${e.offsetSectors}` : '';
  return `${e.access} ${e.sectors} ${e.type}${file}${offset}`;
}
