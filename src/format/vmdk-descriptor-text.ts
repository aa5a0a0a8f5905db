/**
 * The text of a VMDK descriptor as this project writes it (embedded in a sparse extent, or the
 * descriptor file of a flat disk): the keys qemu, VMware's open-vmdk and VirtualBox write, unindented
 * (VirtualBox cannot parse indented descriptors), with the geometry VMware computes. Pure.
 */

export type VmdkAdapterType = 'ide' | 'buslogic' | 'lsilogic' | 'legacyESX';
export const VMDK_ADAPTER_TYPES: readonly VmdkAdapterType[] = ['ide', 'buslogic', 'lsilogic', 'legacyESX'];

export type VmdkCreateType = 'streamOptimized' | 'monolithicSparse' | 'monolithicFlat' | 'twoGbMaxExtentFlat';

export interface VmdkExtentLine {
  /** Sectors of the virtual disk this extent holds. */
  sectors: number;
  type: 'SPARSE' | 'FLAT';
  /** The extent file's name, relative to the descriptor's directory. */
  fileName: string;
}

export interface VmdkDescriptorFields {
  createType: VmdkCreateType;
  /** The content id: 32 bits, written as 8 hex digits. */
  cid: number;
  extents: readonly VmdkExtentLine[];
  /** Sectors of the whole disk: the geometry is computed from it. */
  capacitySectors: number;
  adapterType: VmdkAdapterType;
  /** ddb.virtualHWVersion: "4" as open-vmdk and qemu write by default ("used by ESX 3.x and older only"). */
  hwVersion: string;
}

/** "Unknown version" (2^31 - 1): vSphere then allows guest customization before the first boot (VMware KB 83068). */
export const TOOLS_VERSION_UNKNOWN = '2147483647';
/** VMware caps the cylinder count at 65535 (open-vmdk's makeDiskDescriptorFile). */
const MAX_CYLINDERS = 65535;
const SECTORS_PER_TRACK = 63;

/** Heads, sectors and cylinders as VMware lays them out: 16 heads for IDE, 255 for SCSI. */
export function geometryFor(capacitySectors: number, adapterType: VmdkAdapterType): { cylinders: number; heads: number; sectors: number } {
  const heads = adapterType === 'ide' ? 16 : 255;
  const cylinders = Math.min(MAX_CYLINDERS, Math.ceil(capacitySectors / (heads * SECTORS_PER_TRACK)));
  return { cylinders, heads, sectors: SECTORS_PER_TRACK };
}

const extentLine = (e: VmdkExtentLine): string => `RW ${e.sectors} ${e.type} "${e.fileName}"${e.type === 'FLAT' ? ' 0' : ''}`;

export function vmdkDescriptorText(d: VmdkDescriptorFields): string {
  for (const e of d.extents) {
    // A quote or a line break in the name would end the line early in every parser.
    if (/["\r\n]/.test(e.fileName)) throw new RangeError(`VMDK extent file name ${JSON.stringify(e.fileName)} holds a quote or a line break`);
  }
  const g = geometryFor(d.capacitySectors, d.adapterType);
  return [
    '# Disk DescriptorFile',
    'version=1',
    'encoding="UTF-8"',
    `CID=${(d.cid >>> 0).toString(16).padStart(8, '0')}`,
    'parentCID=ffffffff',
    `createType="${d.createType}"`,
    '',
    '# Extent description',
    ...d.extents.map(extentLine),
    '',
    '# The Disk Data Base',
    '#DDB',
    '',
    `ddb.adapterType = "${d.adapterType}"`,
    `ddb.geometry.cylinders = "${g.cylinders}"`,
    `ddb.geometry.heads = "${g.heads}"`,
    `ddb.geometry.sectors = "${g.sectors}"`,
    `ddb.toolsVersion = "${TOOLS_VERSION_UNKNOWN}"`,
    `ddb.virtualHWVersion = "${d.hwVersion}"`,
    '',
  ].join('\n');
}

/**
 * A content id: random, or, when SOURCE_DATE_EPOCH is set (a reproducible build), derived from it
 * and the disk's size so that the same build makes the same bytes. Never ffffffff ("no parent").
 */
export function contentId(capacitySectors: number, env: NodeJS.ProcessEnv = process.env): number {
  const epoch = env.SOURCE_DATE_EPOCH;
  let cid: number;
  if (epoch !== undefined && epoch !== '') {
    cid = fnv1a(`${epoch}:${capacitySectors}`);
  } else {
    cid = Math.floor(Math.random() * 0x1_0000_0000);
  }
  return cid === 0xffffffff ? 0xfffffffe : cid >>> 0;
}

/** FNV-1a, 32 bits: a stable hash, not a secret. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
