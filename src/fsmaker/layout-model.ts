/**
 * The layout of a disk fsmaker builds (pure): the table, the partitions in disk order with their
 * contents and roles, the bootloader and the kernel command line. fsmaker v0.05's command line is
 * one such layout (v005Layout in layout.ts); a --layout YAML file is another (layout-file.ts).
 *
 * `checkLayout` finds every problem a layout has, each with the path of the field to blame
 * (['partitions', 2, 'size']), so that the YAML reader can name the file's line; nothing here
 * reads a file.
 */

export type LabelName = 'mbr' | 'gpt';
export type Bootloader = 'bios' | 'uefi' | 'both' | 'none';

export type PartitionContents =
  /** An ext4 filesystem built from a directory or an archive. */
  | { kind: 'ext4'; from: string; label?: string }
  /** A FAT filesystem fsmaker writes, with the files of a directory or an archive (optional). */
  | { kind: 'fat'; from?: string; label?: string }
  /** An existing filesystem image (file or block device), copied as it is. */
  | { kind: 'image'; path: string }
  /** A swap signature (mkswap's v1 header). */
  | { kind: 'swap'; label?: string; uuid?: string }
  /** The system's mkfs.TYPE on a sparse temporary file (v0.05's -t for the spare partition). */
  | { kind: 'mkfs'; fs: string }
  | { kind: 'empty' };

export type ContentsKind = PartitionContents['kind'];

export interface PartitionSpec {
  /** Partition number in the table (default: its place in the list, from 1). */
  number?: number;
  /** Bytes (rounded up to 1 MiB), or 'rest': what the disk has left (at most one). Absent: what the contents need. */
  size?: number | 'rest';
  /** With size 'rest': leave the partition out when less than 1 MiB is left (v0.05's spare). */
  ifRoom?: boolean;
  /** A type name (PARTITION_TYPES), a GPT type GUID or an MBR type in hex. Absent: from the contents. */
  type?: string;
  /** GPT partition name. */
  name?: string;
  /** GPT partition GUID (absent: derived from the seed). */
  uuid?: string;
  /** MBR active flag. */
  bootable?: boolean;
  /** GPT attribute bit 2 (legacy BIOS bootable). */
  legacyBiosBootable?: boolean;
  contents: PartitionContents;
  /** '/' (the root filesystem) or '/boot' (kernel, initrd and grub.cfg go there). */
  mount?: '/' | '/boot';
  /** The EFI system partition (GRUB's EFI image goes there). Default: type esp. */
  esp?: boolean;
}

export interface LayoutSpec {
  label: LabelName;
  /** Disk size in bytes (rounded down to 4096); absent: as small as the partitions allow. */
  size?: number;
  partitions: PartitionSpec[];
  bootloader: Bootloader;
  /** Kernel and initrd paths; absent: from the root filesystem, else the default. */
  kernel?: string;
  initrd?: string;
  /** Seed for the disk signature/GUIDs, partition GUIDs and FAT serials. */
  seed?: string;
  cmdline: {
    /** Replaces root=PARTUUID=... (for example /dev/nfs). */
    root?: string;
    append?: string;
    /** console=ttyS0,115200 on the command line and GRUB's serial terminal (default true). */
    serial?: boolean;
  };
  /** GRUB menu timeout in seconds. */
  timeout?: number;
  /** Where and how the disk is written. */
  output?: { path?: string; format?: string; pad?: number };
}

/** Partition type names, for both labels where the label has one. */
export const PARTITION_TYPES: Record<string, { gpt?: string; mbr?: string }> = {
  linux: { gpt: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', mbr: '83' },
  'root-x86-64': { gpt: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709', mbr: '83' },
  home: { gpt: '933AC7E1-2EB4-4F13-B844-0E14E2AEF915', mbr: '83' },
  esp: { gpt: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', mbr: 'ef' },
  'bios-boot': { gpt: '21686148-6449-6E6F-744E-656564454649' },
  xbootldr: { gpt: 'BC13C2FF-59E6-4262-A352-B275FD6F7172', mbr: 'ea' },
  swap: { gpt: '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F', mbr: '82' },
  'linux-lvm': { gpt: 'E6D6D379-F507-44C2-A23C-238F2A3DF928', mbr: '8e' },
  'linux-raid': { gpt: 'A19D880F-05FC-4D3B-A006-743F0F84911E', mbr: 'fd' },
  fat32: { gpt: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', mbr: 'c' },
  fat16: { gpt: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7', mbr: 'e' },
};

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MBR_TYPE_RE = /^(?:0x)?[0-9a-f]{1,2}$/i;
/** Extended partitions: fsmaker writes primaries only, so a type that claims to hold logical ones would lie. */
const MBR_EXTENDED = new Set(['5', 'f', '85']);
export const MBR_MAX_PARTITIONS = 4;
export const GPT_MAX_PARTITIONS = 128;
/** mkswap's minimum: 10 pages. */
export const SWAP_MIN_BYTES = 40 * 1024;
const GPT_NAME_UNITS = 36;

export const isGuid = (text: string): boolean => GUID_RE.test(text);

/** The table's type for a name, a GUID or a hex code on this label; null when the label has none. */
export function resolveType(type: string, label: LabelName): string | null {
  const named = PARTITION_TYPES[type.toLowerCase()];
  if (named) return named[label] ?? null;
  if (label === 'gpt') return GUID_RE.test(type) ? type.toUpperCase() : null;
  if (!MBR_TYPE_RE.test(type)) return null;
  const code = Number.parseInt(type.replace(/^0x/i, ''), 16).toString(16);
  return code === '0' || MBR_EXTENDED.has(code) ? null : code;
}

/** The type a partition gets when it names none: from its contents and role. */
export function defaultTypeName(p: PartitionSpec): string {
  if (p.esp) return 'esp';
  switch (p.contents.kind) {
    case 'swap':
      return 'swap';
    case 'fat':
      return 'fat32';
    default:
      return 'linux';
  }
}

export const typeOf = (p: PartitionSpec, label: LabelName): string | null => resolveType(p.type ?? defaultTypeName(p), label);
export const isEspPartition = (p: PartitionSpec, label: LabelName): boolean => p.esp ?? typeOf(p, label) === PARTITION_TYPES.esp![label];
export const isBiosBootPartition = (p: PartitionSpec, label: LabelName): boolean => label === 'gpt' && typeOf(p, 'gpt') === PARTITION_TYPES['bios-boot']!.gpt;

/** Partition numbers: given, else the place in the list. */
export const numberOf = (p: PartitionSpec, index: number): number => p.number ?? index + 1;

export type FieldPath = (string | number)[];

export interface LayoutProblem {
  /** The field to blame, from the layout's top: ['partitions', 1, 'size']. */
  path: FieldPath;
  message: string;
}

const needsBios = (b: Bootloader): boolean => b === 'bios' || b === 'both';
const needsUefi = (b: Bootloader): boolean => b === 'uefi' || b === 'both';

/** Every problem of a layout (empty: the disk can be planned). */
export function checkLayout(layout: LayoutSpec): LayoutProblem[] {
  const problems: LayoutProblem[] = [];
  const problem = (path: FieldPath, message: string): void => void problems.push({ path, message });
  const { label, partitions } = layout;
  const max = label === 'mbr' ? MBR_MAX_PARTITIONS : GPT_MAX_PARTITIONS;
  if (partitions.length === 0) problem(['partitions'], 'a disk needs at least one partition');
  if (partitions.length > max) {
    problem(['partitions'], label === 'mbr' ? `an MBR holds ${MBR_MAX_PARTITIONS} primary partitions, this layout has ${partitions.length} (fsmaker writes no logical partitions: use label: gpt)` : `a GPT holds ${GPT_MAX_PARTITIONS} partitions, this layout has ${partitions.length}`);
  }
  const numbers = new Map<number, number>();
  let rest = -1;
  partitions.forEach((p, i) => {
    const at = (field?: string): FieldPath => (field === undefined ? ['partitions', i] : ['partitions', i, field]);
    const n = numberOf(p, i);
    if (!Number.isInteger(n) || n < 1 || n > max) problem(at('number'), `partition number ${n}: ${label === 'mbr' ? 'an MBR numbers its partitions 1 to 4' : 'a GPT numbers its partitions 1 to 128'}`);
    else if (numbers.has(n)) problem(at(p.number === undefined ? undefined : 'number'), `partition number ${n} is also partition ${numbers.get(n)! + 1}'s in the list`);
    else numbers.set(n, i);
    if (p.size === 'rest') {
      if (rest >= 0) problem(at('size'), `only one partition can take the rest of the disk (partition ${rest + 1} in the list does)`);
      else rest = i;
    } else if (p.size !== undefined && (!Number.isSafeInteger(p.size) || p.size <= 0)) problem(at('size'), `bad size ${p.size}: expected a positive number of bytes or rest`);
    const typeName = p.type ?? defaultTypeName(p);
    if (resolveType(typeName, label) === null) {
      problem(at(p.type === undefined ? undefined : 'type'), PARTITION_TYPES[typeName.toLowerCase()] ? `type ${typeName} has no ${label === 'mbr' ? 'MBR' : 'GPT'} equivalent` : `unknown partition type '${typeName}': expected ${label === 'gpt' ? 'a type GUID' : 'an MBR type in hex (83, 0xef...)'} or one of ${Object.keys(PARTITION_TYPES).join(', ')}`);
    }
    if (label === 'mbr') {
      if (p.uuid !== undefined) problem(at('uuid'), 'an MBR partition has no UUID (its PARTUUID is the disk signature and the number)');
      if (p.name !== undefined) problem(at('name'), 'an MBR partition has no name');
      if (p.legacyBiosBootable) problem(at('legacy-bios-bootable'), 'legacy-bios-bootable is a GPT attribute: on an MBR, use bootable');
    } else {
      if (p.uuid !== undefined && !GUID_RE.test(p.uuid)) problem(at('uuid'), `bad partition GUID '${p.uuid}': expected 8-4-4-4-12 hex digits`);
      if (p.name !== undefined && p.name.length > GPT_NAME_UNITS) problem(at('name'), `a GPT partition name holds ${GPT_NAME_UNITS} characters; this one has ${p.name.length}`);
      if (p.bootable) problem(at('bootable'), 'bootable is the MBR active flag: on a GPT, use legacy-bios-bootable');
    }
    const c = p.contents;
    if (c.kind === 'swap') {
      if (c.uuid !== undefined && !GUID_RE.test(c.uuid)) problem(['partitions', i, 'contents', 'uuid'], `bad swap UUID '${c.uuid}': expected 8-4-4-4-12 hex digits`);
      if (c.label !== undefined && Buffer.byteLength(c.label) > 16) problem(['partitions', i, 'contents', 'label'], `a swap label holds 16 bytes; '${c.label}' has ${Buffer.byteLength(c.label)}`);
      if (typeof p.size === 'number' && p.size < SWAP_MIN_BYTES) problem(at('size'), `a swap partition needs at least ${SWAP_MIN_BYTES} bytes (10 pages)`);
    }
    if (p.size === undefined && (c.kind === 'swap' || c.kind === 'empty' || c.kind === 'fat' || c.kind === 'mkfs') && !isBiosBootPartition(p, label)) {
      problem(at(), `partition ${n} needs a size: its contents (${c.kind}) have none of their own`);
    }
    if (c.kind === 'fat' && c.label !== undefined && (Buffer.byteLength(c.label) > 11 || !/^[\x20-\x7e]*$/.test(c.label))) problem(['partitions', i, 'contents', 'label'], `a FAT label holds 11 ASCII characters; '${c.label}' does not fit`);
    if (p.mount === '/' && c.kind !== 'ext4' && c.kind !== 'image') problem(at('mount'), `the root must be a filesystem (ext4 or image), not ${c.kind}`);
    if (p.mount === '/boot' && c.kind !== 'fat') problem(at('mount'), `/boot must be a fat partition fsmaker writes (the kernel, initrd and grub.cfg go there; GRUB reads it): ${c.kind === 'ext4' ? 'an ext4 /boot is not written yet' : `not ${c.kind}`}`);
    if (p.esp && c.kind !== 'fat') problem(at('esp'), `the EFI system partition must be fat, not ${c.kind}`);
  });
  const roots = partitions.flatMap((p, i) => (p.mount === '/' ? [i] : []));
  if (roots.length > 1) problem(['partitions', roots[1]!, 'mount'], `two roots: partitions ${roots.map((i) => i + 1).join(' and ')} in the list both say mount: /`);
  if (roots.length === 0 && layout.cmdline.root === undefined) problem(['partitions'], 'no partition says mount: / and the command line has no root: replacement (root: /dev/nfs...)');
  const boots = partitions.flatMap((p, i) => (p.mount === '/boot' ? [i] : []));
  if (boots.length > 1) problem(['partitions', boots[1]!, 'mount'], `two /boot partitions: ${boots.map((i) => i + 1).join(' and ')} in the list`);
  if (layout.bootloader !== 'none') {
    if (boots.length === 0) problem(['partitions'], `bootloader ${layout.bootloader} needs a partition with mount: /boot (a fat partition for the kernel, initrd and grub.cfg)`);
    if (needsUefi(layout.bootloader) && !partitions.some((p) => isEspPartition(p, label))) problem(['partitions'], `bootloader ${layout.bootloader} needs an EFI system partition (type: esp, or esp: true on a fat partition)`);
    if (needsBios(layout.bootloader) && label === 'gpt' && !partitions.some((p) => isBiosBootPartition(p, label))) {
      problem(['partitions'], `bootloader ${layout.bootloader} on a GPT needs a BIOS boot partition for GRUB's core.img (type: bios-boot, 1 MiB, contents: empty)`);
    }
  }
  partitions.forEach((p, i) => {
    if (isBiosBootPartition(p, label) && p.contents.kind !== 'empty') problem(['partitions', i, 'contents'], "a BIOS boot partition holds GRUB's core.img: its contents must be empty");
  });
  if (layout.size !== undefined && (!Number.isSafeInteger(layout.size) || layout.size <= 0)) problem(['size'], `bad disk size ${layout.size}`);
  return problems;
}
