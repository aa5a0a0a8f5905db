/**
 * Volume-manager members: Linux MD RAID (superblock 0.90 and 1.0 near the end, 1.1 at 0, 1.2 at
 * 4 KiB), LVM2 physical volumes and bcache devices, as libblkid finds them.
 */
import { partitionSpans } from './partition-tables.js';
import { type Prober, magic } from './types.js';
import type { AreaView } from './view.js';

const MD_SB_MAGIC = 0xa92b4efc;
const MD_RESERVED_BYTES = 0x10000;
/** mdp0_super_block: magic, major, minor, patch, ..., size (KiB) at 32; 1.x: magic, major, ..., super_offset (sectors) at 144. */
const MDP0 = { magic: 0, size: 32, bytes: 64 } as const;
const MDP1 = { magic: 0, majorVersion: 4, superOffset: 144, bytes: 256 } as const;

/** 0.90: the superblock 64 KiB before the end (rounded down to 64 KiB), unless a partition table's partition holds the array. */
function probeMd090(view: AreaView): number | null {
  if (view.areaBytes < MD_RESERVED_BYTES) return null;
  const offset = Math.floor(view.areaBytes / MD_RESERVED_BYTES) * MD_RESERVED_BYTES - MD_RESERVED_BYTES;
  const sb = view.read(offset, MDP0.bytes);
  if (!sb) return null;
  let sizeKiB: number;
  if (sb.readUInt32LE(MDP0.magic) === MD_SB_MAGIC) sizeKiB = sb.readUInt32LE(MDP0.size);
  else if (sb.readUInt32BE(MDP0.magic) === MD_SB_MAGIC) sizeKiB = sb.readUInt32BE(MDP0.size);
  else return null;
  const size = sizeKiB * 1024;
  if (view.areaBytes < size + MD_RESERVED_BYTES || offset < size) return null;
  // A 0.90 superblock at the end of the last partition is also at the end of the disk: libblkid
  // gives it to the partition when a partition table covers it.
  const first = Math.floor((offset - size) / 512);
  const end = Math.floor((offset + MD_RESERVED_BYTES) / 512);
  const spans = partitionSpans(view);
  if (spans.some((s) => s.start + s.size > Math.floor(view.areaBytes / 512))) return offset;
  if (spans.some((s) => first >= s.start && end <= s.start + s.size)) return null;
  return offset;
}

function probeMd1(view: AreaView, offset: number): boolean {
  const sb = view.read(offset, MDP1.bytes);
  if (!sb) return false;
  return sb.readUInt32LE(MDP1.magic) === MD_SB_MAGIC && sb.readUInt32LE(MDP1.majorVersion) === 1 && sb.readBigUInt64LE(MDP1.superOffset) === BigInt(Math.floor(offset / 512));
}

const linuxRaid: Prober = {
  type: 'linux_raid_member',
  usage: 'raid',
  check(view) {
    if (view.areaBytes > MD_RESERVED_BYTES) {
      const at090 = probeMd090(view);
      if (at090 !== null) return { offset: at090, length: 4 };
      const at10 = Math.floor(view.areaBytes / 0x1000) * 0x1000 - 0x2000;
      if (probeMd1(view, at10)) return { offset: at10, length: 4 };
    }
    for (const at of [0, 0x1000]) if (probeMd1(view, at)) return { offset: at, length: 4 };
    return false;
  },
};

/** LVM2's label header: "LABELONE", its own sector number, CRC (not checked: wipefs accepts bad ones), ... */
const LVM2_LABEL = { id: 0, sector: 8, bytes: 64 } as const;
const LVM2_MAGICS = [magic('LVM2 001', 0x218), magic('LVM2 001', 0x018), magic('LVM2 001', 0x018, 1), magic('LVM2 001', 0x218, 1)];

const lvm2: Prober = {
  type: 'LVM2_member',
  usage: 'raid',
  magics: LVM2_MAGICS,
  check(view, matched) {
    const kb = matched!.magic.kbOffset ?? 0;
    const buf = view.read(kb * 1024, 512 + LVM2_LABEL.bytes);
    if (!buf) return false;
    let sector = kb * 2;
    let label: Buffer;
    if (buf.toString('latin1', 0, 8) === 'LABELONE') label = buf;
    else if (buf.toString('latin1', 512, 520) === 'LABELONE') (label = buf.subarray(512)), sector++;
    else return false;
    return label.readBigUInt64LE(LVM2_LABEL.sector) === BigInt(sector);
  },
};

const BCACHE_MAGIC = [0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d, 0x81];
/** bcache_super_block at 4 KiB: csum, offset (its own sector), version, magic at 24. */
const BCACHE_SB_OFFSET = 0x1000;

const bcache: Prober = {
  type: 'bcache',
  usage: 'other',
  minBytes: 8192,
  magics: [magic(BCACHE_MAGIC, 24, BCACHE_SB_OFFSET / 1024)],
  check(view) {
    const sb = view.read(BCACHE_SB_OFFSET, 56);
    return sb !== null && sb.readBigUInt64LE(8) === BigInt(BCACHE_SB_OFFSET / 512);
  },
};

export const LINUX_RAID_PROBERS: readonly Prober[] = [linuxRaid];
export const BCACHE_PROBERS: readonly Prober[] = [bcache];
export const LVM2_PROBERS: readonly Prober[] = [lvm2];
