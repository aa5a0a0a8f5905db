/**
 * ext2, ext3, ext4, ext4dev and jbd as libblkid tells them apart: one magic (0xEF53 at 0x438), then
 * the superblock's feature flags decide which one prober accepts it.
 */
import {
  EXT2_INCOMPAT_SUPPORTED,
  EXT2_RO_COMPAT_SUPPORTED,
  EXT3_INCOMPAT_SUPPORTED,
  EXT3_RO_COMPAT_SUPPORTED,
  EXT_COMPAT_HAS_JOURNAL as COMPAT_HAS_JOURNAL,
  EXT_FLAGS_TEST_FILESYS as FLAGS_TEST_FILESYS,
  EXT_INCOMPAT_JOURNAL_DEV as INCOMPAT_JOURNAL_DEV,
} from '../../format/ext-features.js';
import { type Prober, magic } from './types.js';
import type { AreaView } from './view.js';

const SUPERBLOCK_OFFSET = 0x400;
/** ext2_super_block fields (little-endian). */
const SB = { featureCompat: 0x5c, featureIncompat: 0x60, featureRoCompat: 0x64, flags: 0x160 } as const;
const EXT_MAGICS = [magic([0x53, 0xef], 0x38, 1)];

interface Features {
  compat: number;
  incompat: number;
  roCompat: number;
  flags: number;
}

function features(view: AreaView): Features | null {
  const sb = view.read(SUPERBLOCK_OFFSET, 0x200);
  if (!sb) return null;
  return { compat: sb.readUInt32LE(SB.featureCompat), incompat: sb.readUInt32LE(SB.featureIncompat), roCompat: sb.readUInt32LE(SB.featureRoCompat), flags: sb.readUInt32LE(SB.flags) };
}

function extProber(type: string, usage: Prober['usage'], accepts: (f: Features) => boolean): Prober {
  return {
    type,
    usage,
    magics: EXT_MAGICS,
    check(view) {
      const f = features(view);
      return f !== null && accepts(f);
    },
  };
}

const unsupportedBy = (f: Features, roCompat: number, incompat: number): boolean => (f.roCompat & ~roCompat) !== 0 || (f.incompat & ~incompat) !== 0;

const ext4dev = extProber('ext4dev', 'filesystem', (f) => !(f.incompat & INCOMPAT_JOURNAL_DEV) && (f.flags & FLAGS_TEST_FILESYS) !== 0);
const ext4 = extProber('ext4', 'filesystem', (f) => !(f.incompat & INCOMPAT_JOURNAL_DEV) && unsupportedBy(f, EXT3_RO_COMPAT_SUPPORTED, EXT3_INCOMPAT_SUPPORTED) && !(f.flags & FLAGS_TEST_FILESYS));
const ext3 = extProber('ext3', 'filesystem', (f) => (f.compat & COMPAT_HAS_JOURNAL) !== 0 && !unsupportedBy(f, EXT3_RO_COMPAT_SUPPORTED, EXT3_INCOMPAT_SUPPORTED));
const ext2 = extProber('ext2', 'filesystem', (f) => !(f.compat & COMPAT_HAS_JOURNAL) && !unsupportedBy(f, EXT2_RO_COMPAT_SUPPORTED, EXT2_INCOMPAT_SUPPORTED));
const jbd = extProber('jbd', 'other', (f) => (f.incompat & INCOMPAT_JOURNAL_DEV) !== 0);

/** In libblkid's order. */
export const EXT_PROBERS: readonly Prober[] = [ext4dev, ext4, ext3, ext2, jbd];
