/**
 * The OVF 1.0 envelope of a one-disk appliance, and its manifest (pure). The elements are the ones
 * VMware's own templates (open-vmdk templates/template-hw13.ovf) and VirtualBox's export carry:
 * References, DiskSection, NetworkSection, and a VirtualSystem with its OperatingSystemSection
 * and VirtualHardwareSection (CPUs, memory, a disk controller, the disk on it, a network adapter).
 */

import { VMDK_ADAPTER_TYPES, type VmdkAdapterType } from './vmdk-descriptor-text.js';

export const VMDK_STREAM_OPTIMIZED_FORMAT = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized';

/** The VMDK's ddb.adapterType, which the OVF's disk controller must match. */
type AdapterType = VmdkAdapterType;

export interface OvfOptions {
  /** The virtual system's id and name: the OVA's base name. */
  name: string;
  /** The disk member's name in the archive (References/File ovf:href). */
  diskFile: string;
  /** Bytes of the disk member (the VMDK file). */
  diskFileBytes: number;
  /** The virtual disk's size in bytes. */
  capacityBytes: number;
  /** Bytes of the disk that hold data (the VMDK's grains, uncompressed). */
  populatedBytes: number;
  cpus: number;
  memoryMiB: number;
  /** vmx-NN */
  hardwareVersion: number;
  adapterType: AdapterType;
  /** What the disk boots under, when known (fsmaker): a vmw:Config firmware entry. */
  firmware?: 'bios' | 'efi';
}

export const OVF_DEFAULTS = { cpus: 1, memoryMiB: 1024, hardwareVersion: 11, adapterType: 'lsilogic' as AdapterType } as const;

/**
 * CIM operating system 101, "Linux 64-Bit": what the disks these tools build are (x86_64 Linux,
 * GRUB for BIOS and UEFI). VirtualBox maps it to Linux 2.6+ x86_64 (ovfreader's CIMOSType table),
 * VMware to otherLinux64Guest (given as vmw:osType); "1 Other" says nothing of the kind.
 */
const OS_CIM_ID = 101;
const OS_VMWARE_TYPE = 'otherLinux64Guest';

const NETWORK = 'VM Network';

/** Escapes text for an XML attribute or element. */
export function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** The controller an adapter type sits on: IDE (ResourceType 5) or a SCSI HBA of that kind (6). */
function controllerItem(adapter: AdapterType, instanceId: number): string {
  if (adapter === 'ide') {
    return item(instanceId, [['Address', '0'], ['Description', 'IDE Controller'], ['ElementName', 'IDE 0'], ['ResourceType', '5']]);
  }
  return item(instanceId, [['Address', '0'], ['Description', 'SCSI Controller'], ['ElementName', 'SCSI Controller 0'], ['ResourceSubType', adapter], ['ResourceType', '6']]);
}

/** rasd elements in the order the CIM schema sorts them (alphabetical), as VMware writes them. */
function item(instanceId: number, fields: [string, string][], attributes = ''): string {
  const sorted = [...fields, ['InstanceID', String(instanceId)] as [string, string]].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const lines = sorted.map(([k, v]) => `        <rasd:${k}>${xmlEscape(v)}</rasd:${k}>`);
  return [`      <Item${attributes}>`, ...lines, '      </Item>'].join('\n');
}

function checkOptions(o: OvfOptions): void {
  for (const [what, value, min] of [
    ['disk file size', o.diskFileBytes, 0],
    ['capacity', o.capacityBytes, 0],
    ['populated size', o.populatedBytes, 0],
    ['CPU count', o.cpus, 1],
    ['memory', o.memoryMiB, 1],
    ['hardware version', o.hardwareVersion, 4],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`OVF ${what} must be a whole number of at least ${min}, not ${value}`);
  }
  if (!VMDK_ADAPTER_TYPES.includes(o.adapterType)) throw new RangeError(`OVF adapter type ${o.adapterType} is not one of ${VMDK_ADAPTER_TYPES.join(', ')}`);
}

/** The .ovf descriptor's text. */
export function ovfEnvelope(o: OvfOptions): string {
  checkOptions(o);
  const name = xmlEscape(o.name);
  const controllerId = 3;
  const hardware = [
    item(1, [['AllocationUnits', 'hertz * 10^6'], ['Description', 'Number of Virtual CPUs'], ['ElementName', `${o.cpus} virtual CPU(s)`], ['ResourceType', '3'], ['VirtualQuantity', String(o.cpus)]]),
    item(2, [['AllocationUnits', 'byte * 2^20'], ['Description', 'Memory Size'], ['ElementName', `${o.memoryMiB}MB of memory`], ['ResourceType', '4'], ['VirtualQuantity', String(o.memoryMiB)]]),
    controllerItem(o.adapterType, controllerId),
    item(4, [['AddressOnParent', '0'], ['ElementName', 'Hard Disk 1'], ['HostResource', 'ovf:/disk/vmdisk1'], ['Parent', String(controllerId)], ['ResourceType', '17']]),
    item(5, [['AddressOnParent', '7'], ['AutomaticAllocation', 'true'], ['Connection', NETWORK], ['Description', `E1000 ethernet adapter on "${NETWORK}"`], ['ElementName', 'Network adapter 1'], ['ResourceSubType', 'E1000'], ['ResourceType', '10']]),
  ];
  const firmware = o.firmware ? [`      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="${o.firmware}"/>`] : [];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
    '  <References>',
    `    <File ovf:href="${xmlEscape(o.diskFile)}" ovf:id="file1" ovf:size="${o.diskFileBytes}"/>`,
    '  </References>',
    '  <DiskSection>',
    '    <Info>Virtual disk information</Info>',
    `    <Disk ovf:capacity="${o.capacityBytes}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="${VMDK_STREAM_OPTIMIZED_FORMAT}" ovf:populatedSize="${o.populatedBytes}"/>`,
    '  </DiskSection>',
    '  <NetworkSection>',
    '    <Info>The list of logical networks</Info>',
    `    <Network ovf:name="${NETWORK}">`,
    `      <Description>The ${NETWORK} network</Description>`,
    '    </Network>',
    '  </NetworkSection>',
    `  <VirtualSystem ovf:id="${name}">`,
    '    <Info>A virtual machine</Info>',
    `    <Name>${name}</Name>`,
    `    <OperatingSystemSection ovf:id="${OS_CIM_ID}" vmw:osType="${OS_VMWARE_TYPE}">`,
    '      <Info>The kind of installed guest operating system</Info>',
    '    </OperatingSystemSection>',
    '    <VirtualHardwareSection>',
    '      <Info>Virtual hardware requirements</Info>',
    '      <System>',
    '        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>',
    '        <vssd:InstanceID>0</vssd:InstanceID>',
    `        <vssd:VirtualSystemIdentifier>${name}</vssd:VirtualSystemIdentifier>`,
    `        <vssd:VirtualSystemType>vmx-${String(o.hardwareVersion).padStart(2, '0')}</vssd:VirtualSystemType>`,
    '      </System>',
    ...hardware,
    ...firmware,
    '    </VirtualHardwareSection>',
    '  </VirtualSystem>',
    '</Envelope>',
    '',
  ].join('\n');
}

/** The .mf manifest: `SHA256(name)= hex` lines, the syntax ESXi accepts (no space before '(', one after '='). */
export function ovfManifest(files: readonly { name: string; sha256: string }[]): string {
  return files.map((f) => `SHA256(${f.name})= ${f.sha256}\n`).join('');
}

/** The members' names for an OVA called `base` (its name without .ova). */
export function ovaMemberNames(base: string): { ovf: string; manifest: string; disk: string } {
  return { ovf: `${base}.ovf`, manifest: `${base}.mf`, disk: `${base}-disk1.vmdk` };
}

/** The first disk of an OVF's DiskSection, as OVA input needs it: the file it names, and its format. */
export interface OvfDisk {
  diskId: string;
  /** The References/File ovf:href its ovf:fileRef names: a member of the OVA. */
  href: string;
  /** The ovf:format URI, when given. */
  format: string | null;
}

export class OvfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OvfError';
  }
}

/** An .ovf larger than this is not read (VMware's and VirtualBox's are a few KiB). */
export const MAX_OVF_BYTES = 1 << 20;

const unescapeXml = (text: string): string =>
  text.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-f]+);/gi, (_, e: string) => {
    const named: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
    if (named[e.toLowerCase()]) return named[e.toLowerCase()]!;
    const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : '';
  });

/** The attributes of one start tag, by local name (the namespace prefix dropped: ovf:, or none). */
function attributesOf(tag: string): Map<string, string> {
  const out = new Map<string, string>();
  // Names are bounded, and start after white space: no backtracking over a hostile tag's words.
  for (const m of tag.matchAll(/\s(?:[\w.-]{1,64}:)?([\w.-]{1,64})\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) out.set(m[1]!, unescapeXml(m[2] ?? m[3] ?? ''));
  return out;
}

interface Tag {
  /** The local name (prefix dropped). */
  name: string;
  end: boolean;
  raw: string;
  /** Where the tag starts, and where its text ends. */
  from: number;
  to: number;
}

/**
 * The tags of an XML text in one linear scan: each '<' up to the next '>' (tags do not nest), so
 * no input, however hostile, costs more than a pass over it.
 */
function* tagsOf(text: string): Generator<Tag> {
  for (let at = text.indexOf('<'); at >= 0; at = text.indexOf('<', at)) {
    const close = text.indexOf('>', at);
    if (close < 0) return;
    const raw = text.slice(at, close + 1);
    const m = /^<(\/?)(?:[\w.-]+:)?([\w.-]+)/.exec(raw);
    if (m) yield { name: m[2]!, end: m[1] === '/', raw, from: at, to: close + 1 };
    at = close + 1;
  }
}

/** The start tags named `name` inside the first element named `parent`. */
function childTags(text: string, parent: string, name: string): string[] {
  const found: string[] = [];
  let inside = false;
  for (const tag of tagsOf(text)) {
    if (tag.name === parent) {
      if (tag.end) return found;
      inside = true;
    } else if (inside && !tag.end && tag.name === name) {
      found.push(tag.raw);
    }
  }
  return inside ? found : [];
}

const hasSection = (text: string, name: string): boolean => {
  for (const tag of tagsOf(text)) if (tag.name === name && !tag.end) return true;
  return false;
};

/**
 * The first disk of the DiskSection and the file its fileRef names. Not a validating XML parser:
 * the elements and attributes OVF 1.x and 2.x define, found by their local names, as every OVF
 * writer (VMware, VirtualBox, ova-compose, XO) lays them out.
 */
export function firstOvfDisk(ovf: string): OvfDisk {
  // Comments out (each ends at the first "-->" after it: linear too).
  const text = ovf.replace(/<!--[\s\S]*?(?:-->|$)/g, '');
  if (!hasSection(text, 'DiskSection')) throw new OvfError('no DiskSection');
  const disk = childTags(text, 'DiskSection', 'Disk')[0];
  if (!disk) throw new OvfError('the DiskSection holds no Disk');
  const attributes = attributesOf(disk);
  const fileRef = attributes.get('fileRef');
  if (!fileRef) throw new OvfError(`disk ${attributes.get('diskId') ?? '(no diskId)'} has no fileRef`);
  const file = childTags(text, 'References', 'File')
    .map(attributesOf)
    .find((a) => a.get('id') === fileRef);
  const href = file?.get('href');
  if (!href) throw new OvfError(`disk ${attributes.get('diskId') ?? ''} names file '${fileRef}', which References does not hold`);
  return { diskId: attributes.get('diskId') ?? '', href, format: attributes.get('format') ?? null };
}
