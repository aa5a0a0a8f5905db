/**
 * The disk fsmaker assembles (pure): where each partition of a layout (layout-model.ts) and GRUB's
 * core.img go, as a partition table for src/partition to serialize.
 *
 * Partitions are placed in the layout's order from 1 MiB, each rounded up to 1 MiB; a partition of
 * size 'rest' takes what the disk has left after all the others. v0.05's command line is the
 * layout `v005Layout` builds: the rootfs is partition 1 (a rootfs whose /etc/fstab says /dev/sda1 keeps
 * working), the spare space is partition 2, and the boot partition is 3 but placed first.
 *  - mbr: boot (FAT, active) at 1 MiB, root, spare; core.img in the gap after the MBR.
 *  - gpt: protective MBR; ESP at 1 MiB, a 1 MiB BIOS boot partition for core.img, root, spare;
 *    the ESP is partition 3 and the BIOS boot partition 4, so root stays 1 and spare 2.
 * Everything is 1 MiB aligned and the image a multiple of 4096 bytes.
 */
import { createHash } from 'node:crypto';
import { ToolError } from '../errors.js';
import { gptEntriesSectors } from '../partition/align.js';
import { formatDiskId } from '../partition/mbr.js';
import type { Partition, PartitionTable } from '../partition/model.js';
import { type LayoutSpec, type PartitionSpec, isBiosBootPartition, isEspPartition, numberOf, typeOf } from './layout-model.js';

const SECTOR = 512;
const MiB = 1024 * 1024;
const ALIGN_SECTORS = MiB / SECTOR;
const GPT_TABLE_LENGTH = 128;
const MBR_MAX_SECTORS = 2 ** 32;

export const TYPES = {
  mbrFat32: 'c',
  mbrFat16: 'e',
  mbrLinux: '83',
  gptEsp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  gptBiosBoot: '21686148-6449-6E6F-744E-656564454649',
  gptLinux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
} as const;

export interface LayoutRequest {
  label: 'mbr' | 'gpt';
  /** Bytes of the root filesystem image. */
  rootBytes: number;
  /** Bytes of the boot (FAT) partition. */
  bootBytes: number;
  /** Total image size; the space left after boot and root becomes the spare partition. */
  totalBytes?: number;
  /** Sectors core.img needs (for the MBR gap check). */
  coreSectors: number;
  /** Seed for the disk signature/GUIDs and the FAT serial; random when absent. */
  seed?: string;
}

export interface Region {
  /** Partition number. */
  number: number;
  startLba: number;
  sectors: number;
}

export interface PlacedPartition extends Region {
  /** Index in the layout's list. */
  index: number;
  spec: PartitionSpec;
}

export interface DiskLayout {
  table: PartitionTable;
  totalBytes: number;
  /** The disk's size before --pad rounded it up (where a 'rest' partition ends). */
  unpaddedBytes: number;
  /** Every partition of the layout, in disk order (a 'rest' one left out for want of room is absent). */
  parts: PlacedPartition[];
  /** The partition holding /boot (kernel, initrd, grub.cfg); null without a bootloader. */
  boot: Region | null;
  /** The root partition; null for a disk whose root is elsewhere (root: /dev/nfs). */
  root: Region | null;
  /** The EFI system partition; null when none. */
  esp: Region | null;
  /** v0.05's spare partition (number 2, the rest): null when none. */
  spare: Region | null;
  /** LBA where core.img goes: 1 (the MBR gap) or the BIOS boot partition's start. */
  coreLba: number;
  /** Sectors available for core.img there. */
  coreRoomSectors: number;
  /** FAT volume serial of the /boot partition (GRUB's early config searches for it), from the seed. */
  fatSerial: number;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const sectorsFor = (bytes: number): number => alignUp(Math.ceil(bytes / SECTOR), ALIGN_SECTORS);

/** Deterministic bytes for `purpose` from the seed (or random without one). */
export function derive(seed: string | undefined, purpose: string, length: number): Buffer {
  const material = seed === undefined ? createHash('sha256').update(`${Math.random()}${process.hrtime.bigint()}${purpose}`).digest() : createHash('sha256').update(`${seed}\0${purpose}`).digest();
  return material.subarray(0, length);
}

/** A version-4 GUID string (upper case) from 16 derived bytes. */
export function guidFrom(bytes: Buffer): string {
  const b = Buffer.from(bytes);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex').toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export const seededGuid = (seed: string | undefined, purpose: string): string => guidFrom(derive(seed, purpose, 16));
/** The serial of a FAT partition: /boot's as v0.05 derived it, the others' by number. */
export const fatSerialOf = (seed: string | undefined, number: number, isBoot: boolean): number => derive(seed, isBoot ? 'fat-serial' : `fat-serial-${number}`, 4).readUInt32LE(0) || 1;

/** A partition's name in messages: "partition 3 (boot)". */
export const partitionName = (p: PartitionSpec, index: number): string => `partition ${numberOf(p, index)}${p.name ? ` (${p.name})` : ''}`;

export interface PlanInput {
  /** Bytes each partition's contents need (an image's size, a filesystem's planned size); undefined: none of their own. */
  contentBytes: (index: number) => number | undefined;
  /** Sectors core.img needs (0: not known yet). */
  coreSectors: number;
  /** Round the disk up to a multiple of this many bytes (--pad); the backup GPT goes at the new end. */
  padBytes?: number;
}

/**
 * Places a checked layout (checkLayout found nothing). Refuses a partition smaller than its
 * contents (ROOTFS_TOO_LARGE, naming it and what it needs), a disk smaller than its partitions and
 * a core.img with no room (CORE_TOO_LARGE).
 */
export function planLayout(spec: LayoutSpec, input: PlanInput): DiskLayout {
  const { label, seed } = spec;
  const firstLba = ALIGN_SECTORS;
  const tailSectors = label === 'gpt' ? 1 + gptEntriesSectors(GPT_TABLE_LENGTH, SECTOR) : 0;
  const fixedSectors = spec.partitions.map((p, i): number | null => {
    const needs = input.contentBytes(i);
    if (p.size === 'rest') return null;
    if (p.size === undefined) return sectorsFor(needs ?? (isBiosBootPartition(p, label) ? MiB : 0));
    if (needs !== undefined && needs > p.size) throw new ToolError('ROOTFS_TOO_LARGE', `${partitionName(p, i)}: its contents need ${needs} bytes; its size is ${p.size}`);
    return sectorsFor(p.size);
  });
  const fixedSum = fixedSectors.reduce<number>((sum, s) => sum + (s ?? 0), 0);
  const minimumSectors = alignUp(firstLba + fixedSum + tailSectors, ALIGN_SECTORS);
  const requestedSectors = spec.size === undefined ? minimumSectors : Math.floor(spec.size / 4096) * (4096 / SECTOR);
  if (requestedSectors < minimumSectors) {
    throw new ToolError('ROOTFS_TOO_LARGE', `the partitions (${spec.partitions.flatMap((p, i) => (fixedSectors[i] === null ? [] : [`${partitionName(p, i)}: ${fixedSectors[i]! * SECTOR}`])).join(', ')} bytes) need a disk of ${minimumSectors * SECTOR} bytes; the disk's --size allows ${requestedSectors * SECTOR}`);
  }
  const pad = input.padBytes ?? 0;
  const diskSectors = pad > 0 ? alignUp(requestedSectors * SECTOR, pad) / SECTOR : requestedSectors;
  if (!Number.isSafeInteger(diskSectors)) throw new ToolError('USAGE', `bad pad size ${pad}: the disk would be ${diskSectors * SECTOR} bytes`);
  // MBR fields are 32-bit sector numbers: every partition must end within the first 2 TiB.
  if (label === 'mbr' && diskSectors > MBR_MAX_SECTORS) {
    throw new ToolError('USAGE', `an MBR disk ends by 2 TiB (2^32 sectors of 512 bytes); this one would be ${diskSectors * SECTOR} bytes: use --label gpt`);
  }
  // The rest: up to the last usable LBA, aligned down (as before --pad: padding stays unpartitioned).
  const lastUsable = diskSectors - 1 - tailSectors;
  const restEnd = Math.floor((requestedSectors - tailSectors) / ALIGN_SECTORS) * ALIGN_SECTORS;
  const restSectors = restEnd - firstLba - fixedSum;

  const parts: PlacedPartition[] = [];
  let next = firstLba;
  spec.partitions.forEach((p, i) => {
    let sectors = fixedSectors[i] ?? restSectors;
    if (fixedSectors[i] === null) {
      const needs = input.contentBytes(i);
      if (sectors < ALIGN_SECTORS || (needs !== undefined && needs > sectors * SECTOR)) {
        if (p.ifRoom && needs === undefined) return;
        throw new ToolError('ROOTFS_TOO_LARGE', `${partitionName(p, i)}: the rest of the disk is ${Math.max(0, sectors) * SECTOR} bytes; it needs ${Math.max(needs ?? 0, MiB)}${spec.size === undefined ? ' (give the disk a size)' : ''}`);
      }
      sectors = Math.max(sectors, 0);
    }
    parts.push({ index: i, number: numberOf(p, i), startLba: next, sectors, spec: p });
    next += sectors;
  });

  const region = (pick: (p: PlacedPartition) => boolean): Region | null => {
    const found = parts.find(pick);
    return found ? { number: found.number, startLba: found.startLba, sectors: found.sectors } : null;
  };
  const partitions: Partition[] = parts.map((placed): Partition => {
    const p = placed.spec;
    const type = typeOf(p, label)!;
    if (label === 'mbr') return { number: placed.number, start: placed.startLba, size: placed.sectors, type, bootable: p.bootable ?? false };
    return {
      number: placed.number,
      start: placed.startLba,
      size: placed.sectors,
      type,
      uuid: (p.uuid ?? seededGuid(seed, `partition-${placed.number}`)).toUpperCase(),
      name: p.name ?? '',
      attributes: p.legacyBiosBootable ? 1n << 2n : 0n,
    };
  });
  partitions.sort((a, b) => a.number - b.number);
  const signature = derive(seed, 'disk-signature', 4).readUInt32LE(0) || 1;
  const table: PartitionTable =
    label === 'mbr'
      ? { label: 'dos', id: formatDiskId(signature), sectorSize: SECTOR, diskSectors, partitions }
      : {
          label: 'gpt',
          id: guidFrom(derive(seed, 'disk-guid', 16)),
          sectorSize: SECTOR,
          diskSectors,
          firstLba: firstLba,
          lastLba: lastUsable,
          tableLength: GPT_TABLE_LENGTH,
          entriesLba: 2,
          partitions,
        };
  const biosBoot = region((p) => isBiosBootPartition(p.spec, label));
  const coreLba = biosBoot ? biosBoot.startLba : 1;
  const coreRoomSectors = biosBoot ? biosBoot.sectors : (parts[0]?.startLba ?? firstLba) - 1;
  if (input.coreSectors > coreRoomSectors) {
    throw new ToolError('CORE_TOO_LARGE', `core.img needs ${input.coreSectors} sectors; the ${biosBoot ? 'BIOS boot partition' : 'gap after the MBR'} holds ${coreRoomSectors}`);
  }
  const boot = region((p) => p.spec.mount === '/boot');
  return {
    table,
    totalBytes: diskSectors * SECTOR,
    unpaddedBytes: requestedSectors * SECTOR,
    parts,
    boot,
    root: region((p) => p.spec.mount === '/'),
    esp: region((p) => isEspPartition(p.spec, label)),
    spare: region((p) => p.spec.ifRoom === true),
    coreLba,
    coreRoomSectors,
    fatSerial: fatSerialOf(seed, boot?.number ?? 0, true),
  };
}

export interface V005Options {
  label: 'mbr' | 'gpt';
  /** The root partition's contents: the rootfs image, or a tree to build ext4 from. */
  root: PartitionSpec['contents'];
  /** The root partition's size (absent: its contents'). */
  rootBytes?: number;
  bootBytes: number;
  totalBytes?: number;
  /** The spare partition's mkfs type, or 'none'. */
  spareType?: string;
  bootDir?: string;
  firmware: 'bios' | 'uefi' | 'both';
  seed: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  timeoutSeconds?: number;
}

/**
 * fsmaker v0.05's disk as a layout: the rootfs is partition 1 (an /etc/fstab that says /dev/sda1
 * keeps working), the spare space partition 2, the boot FAT partition 3 but placed first; GPT
 * adds a BIOS boot partition 4 after it. GUIDs keep the purposes they were derived for.
 */
export function v005Layout(o: V005Options): LayoutSpec {
  const gpt = o.label === 'gpt';
  const guid = (purpose: string): string | undefined => (gpt ? seededGuid(o.seed, purpose) : undefined);
  const boot: PartitionSpec = {
    number: 3,
    size: o.bootBytes,
    type: gpt ? 'esp' : o.bootBytes >= 33 * MiB ? TYPES.mbrFat32 : TYPES.mbrFat16,
    ...(gpt ? { name: 'boot', uuid: guid('esp') } : { bootable: true }),
    contents: { kind: 'fat', ...(o.bootDir !== undefined ? { from: o.bootDir } : {}) },
    mount: '/boot',
    esp: true,
  };
  const partitions: PartitionSpec[] = [boot];
  if (gpt) partitions.push({ number: 4, size: MiB, type: 'bios-boot', name: 'bios', uuid: guid('bios-boot'), contents: { kind: 'empty' } });
  partitions.push({ number: 1, ...(o.rootBytes !== undefined ? { size: o.rootBytes } : {}), type: 'linux', ...(gpt ? { name: 'root', uuid: guid('root') } : {}), contents: o.root, mount: '/' });
  if (o.totalBytes !== undefined) {
    const spareType = o.spareType ?? 'ext3';
    partitions.push({ number: 2, size: 'rest', ifRoom: true, type: 'linux', ...(gpt ? { name: 'spare', uuid: guid('spare') } : {}), contents: spareType === 'none' ? { kind: 'empty' } : { kind: 'mkfs', fs: spareType } });
  }
  return {
    label: o.label,
    ...(o.totalBytes !== undefined ? { size: o.totalBytes } : {}),
    partitions,
    bootloader: o.firmware,
    ...(o.kernel !== undefined ? { kernel: o.kernel } : {}),
    ...(o.initrd !== undefined ? { initrd: o.initrd } : {}),
    seed: o.seed,
    cmdline: { ...(o.append !== undefined ? { append: o.append } : {}) },
    ...(o.timeoutSeconds !== undefined ? { timeout: o.timeoutSeconds } : {}),
  };
}

/** v0.05's disk for a rootfs image of `rootBytes` (the layout tests' entry point). */
export function planDisk(request: LayoutRequest): DiskLayout {
  const spec = v005Layout({ label: request.label, root: { kind: 'image', path: 'rootfs' }, bootBytes: request.bootBytes, totalBytes: request.totalBytes, spareType: 'none', firmware: 'both', seed: request.seed ?? derive(undefined, 'seed', 16).toString('hex') });
  return planLayout(spec, { contentBytes: (i) => (spec.partitions[i]!.mount === '/' ? request.rootBytes : undefined), coreSectors: request.coreSectors });
}
