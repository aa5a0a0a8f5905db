/** ISO 9660 (and High Sierra) and squashfs (4, and 3 or older), as libblkid finds them. */
import { type Prober, magic } from './types.js';
import type { AreaView } from './view.js';

const ISO_DESCRIPTORS_OFFSET = 0x8000;
const ISO_SECTOR_BYTES = 0x800;
const ISO_MAX_DESCRIPTORS = 16;
/** libblkid reads sizeof(struct iso_volume_descriptor) for each descriptor. */
const ISO_DESCRIPTOR_BYTES = 847;
const ISO_VD_PRIMARY = 1;
const ISO_VD_END = 0xff;

/** A primary volume descriptor among the first 16, before a terminator or the area's end. */
function hasPrimaryDescriptor(view: AreaView): boolean {
  for (let i = 0; i < ISO_MAX_DESCRIPTORS; i++) {
    const d = view.read(ISO_DESCRIPTORS_OFFSET + i * ISO_SECTOR_BYTES, ISO_DESCRIPTOR_BYTES);
    if (!d || d[0] === ISO_VD_END) return false;
    if (d[0] === ISO_VD_PRIMARY) return true;
  }
  return false;
}

/** High Sierra's descriptor (struct high_sierra_volume_descriptor) must merely be readable. */
const HIGH_SIERRA_DESCRIPTOR_BYTES = 80;

const iso9660: Prober = {
  type: 'iso9660',
  usage: 'filesystem',
  magics: [magic('CD001', 1, 32), magic('CDROM', 9, 32)],
  check(view, matched) {
    if (matched!.magic.bytes.toString('latin1') === 'CDROM') return view.read(ISO_DESCRIPTORS_OFFSET, HIGH_SIERRA_DESCRIPTOR_BYTES) !== null;
    return hasPrimaryDescriptor(view);
  },
};

/** sqsh_super_block: s_major at 28 (the superblock libblkid reads is 32 bytes). */
const SQUASHFS_MAJOR_OFFSET = 28;

const squashfs: Prober = {
  type: 'squashfs',
  usage: 'filesystem',
  magics: [magic('hsqs', 0)],
  check(view) {
    const sb = view.read(0, 32);
    return sb !== null && sb.readUInt16LE(SQUASHFS_MAJOR_OFFSET) >= 4;
  },
};

const squashfs3: Prober = {
  type: 'squashfs3',
  usage: 'filesystem',
  magics: [magic('sqsh', 0), magic('hsqs', 0)],
  check(view, matched) {
    const sb = view.read(0, 32);
    if (!sb) return false;
    const bigEndian = matched!.magic.bytes.toString('latin1') === 'sqsh';
    return (bigEndian ? sb.readUInt16BE(SQUASHFS_MAJOR_OFFSET) : sb.readUInt16LE(SQUASHFS_MAJOR_OFFSET)) <= 3;
  },
};

export const ISO9660_PROBERS: readonly Prober[] = [iso9660];
export const SQUASHFS_PROBERS: readonly Prober[] = [squashfs, squashfs3];
