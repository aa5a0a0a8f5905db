/**
 * The disk fsmaker assembles (pure): where the boot filesystem, the rootfs, the spare partition
 * and GRUB's core.img go, as a partition table for src/partition to serialize.
 *
 * As fsmaker v0.05: the rootfs is partition 1 (a rootfs whose /etc/fstab says /dev/sda1 keeps
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

export interface DiskLayout {
  table: PartitionTable;
  totalBytes: number;
  boot: Region;
  root: Region;
  spare: Region | null;
  /** LBA where core.img goes: 1 (the MBR gap) or the BIOS boot partition's start. */
  coreLba: number;
  /** Sectors available for core.img there. */
  coreRoomSectors: number;
  /** FAT volume serial derived from the seed. */
  fatSerial: number;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const sectorsFor = (bytes: number): number => alignUp(Math.ceil(bytes / SECTOR), ALIGN_SECTORS);

/** Deterministic bytes for `purpose` from the seed (or random without one). */
function derive(seed: string | undefined, purpose: string, length: number): Buffer {
  const material = seed === undefined ? createHash('sha256').update(`${Math.random()}${process.hrtime.bigint()}${purpose}`).digest() : createHash('sha256').update(`${seed}\0${purpose}`).digest();
  return material.subarray(0, length);
}

/** A version-4 GUID string (upper case) from 16 derived bytes. */
function guidFrom(bytes: Buffer): string {
  const b = Buffer.from(bytes);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex').toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function planDisk(request: LayoutRequest): DiskLayout {
  const { label, seed } = request;
  const bootSectors = sectorsFor(request.bootBytes);
  const rootSectors = sectorsFor(request.rootBytes);
  const firstLba = ALIGN_SECTORS;
  let next = firstLba;
  const boot = { startLba: next, sectors: bootSectors };
  next += bootSectors;
  let biosBoot: { startLba: number; sectors: number } | null = null;
  if (label === 'gpt') {
    biosBoot = { startLba: next, sectors: ALIGN_SECTORS };
    next += ALIGN_SECTORS;
  }
  const root = { startLba: next, sectors: rootSectors };
  next += rootSectors;
  const tailSectors = label === 'gpt' ? 1 + gptEntriesSectors(GPT_TABLE_LENGTH, SECTOR) : 0;
  const minimumSectors = alignUp(next + tailSectors, ALIGN_SECTORS);
  const requestedSectors = request.totalBytes === undefined ? minimumSectors : Math.floor(request.totalBytes / 4096) * (4096 / SECTOR);
  if (requestedSectors < minimumSectors) {
    throw new ToolError('USAGE', `the rootfs (${request.rootBytes} bytes) and the boot partition (${request.bootBytes} bytes) need ${minimumSectors * SECTOR} bytes; --size allows ${requestedSectors * SECTOR}`);
  }
  const diskSectors = requestedSectors;
  // MBR fields are 32-bit sector numbers: every partition must end within the first 2 TiB.
  if (label === 'mbr' && diskSectors > MBR_MAX_SECTORS) {
    throw new ToolError('USAGE', `an MBR disk ends by 2 TiB (2^32 sectors of 512 bytes); this one would be ${diskSectors * SECTOR} bytes: use --label gpt`);
  }
  // Spare space: from the end of root to the last usable LBA (aligned down), when at least 1 MiB.
  const lastUsable = diskSectors - 1 - tailSectors;
  const spareEnd = Math.floor((lastUsable + 1) / ALIGN_SECTORS) * ALIGN_SECTORS;
  const spare = spareEnd - next >= ALIGN_SECTORS ? { startLba: next, sectors: spareEnd - next } : null;

  const partitions: Partition[] = [];
  const fatType = request.bootBytes >= 33 * MiB ? TYPES.mbrFat32 : TYPES.mbrFat16;
  if (label === 'mbr') {
    partitions.push({ number: 1, start: root.startLba, size: root.sectors, type: TYPES.mbrLinux, bootable: false });
    if (spare) partitions.push({ number: 2, start: spare.startLba, size: spare.sectors, type: TYPES.mbrLinux, bootable: false });
    partitions.push({ number: 3, start: boot.startLba, size: boot.sectors, type: fatType, bootable: true });
  } else {
    const guid = (purpose: string) => guidFrom(derive(seed, purpose, 16));
    partitions.push({ number: 1, start: root.startLba, size: root.sectors, type: TYPES.gptLinux, uuid: guid('root'), name: 'root', attributes: 0n });
    if (spare) partitions.push({ number: 2, start: spare.startLba, size: spare.sectors, type: TYPES.gptLinux, uuid: guid('spare'), name: 'spare', attributes: 0n });
    partitions.push({ number: 3, start: boot.startLba, size: boot.sectors, type: TYPES.gptEsp, uuid: guid('esp'), name: 'boot', attributes: 0n });
    partitions.push({ number: 4, start: biosBoot!.startLba, size: biosBoot!.sectors, type: TYPES.gptBiosBoot, uuid: guid('bios-boot'), name: 'bios', attributes: 0n });
  }
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
  const coreLba = label === 'mbr' ? 1 : biosBoot!.startLba;
  const coreRoomSectors = label === 'mbr' ? boot.startLba - 1 : biosBoot!.sectors;
  if (request.coreSectors > coreRoomSectors) {
    throw new ToolError('USAGE', `core.img needs ${request.coreSectors} sectors; the ${label === 'mbr' ? 'gap after the MBR' : 'BIOS boot partition'} holds ${coreRoomSectors}`);
  }
  return {
    table,
    totalBytes: diskSectors * SECTOR,
    boot: { number: 3, ...boot },
    root: { number: 1, ...root },
    spare: spare ? { number: 2, ...spare } : null,
    coreLba,
    coreRoomSectors,
    fatSerial: derive(seed, 'fat-serial', 4).readUInt32LE(0) || 1,
  };
}
