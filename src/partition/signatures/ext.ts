/**
 * ext2, ext3, ext4, ext4dev and jbd as libblkid tells them apart: one magic (0xEF53 at 0x438), then
 * the superblock's feature flags decide which one prober accepts it.
 */
import { type Prober, magic } from './types.js';
import type { AreaView } from './view.js';

const SUPERBLOCK_OFFSET = 0x400;
/** ext2_super_block fields (little-endian). */
const SB = { featureCompat: 0x5c, featureIncompat: 0x60, featureRoCompat: 0x64, flags: 0x160 } as const;
const EXT_MAGICS = [magic([0x53, 0xef], 0x38, 1)];

const COMPAT_HAS_JOURNAL = 0x0004;
const INCOMPAT_FILETYPE = 0x0002;
const INCOMPAT_RECOVER = 0x0004;
const INCOMPAT_JOURNAL_DEV = 0x0008;
const INCOMPAT_META_BG = 0x0010;
const RO_COMPAT_SPARSE_SUPER = 0x0001;
const RO_COMPAT_LARGE_FILE = 0x0002;
const RO_COMPAT_BTREE_DIR = 0x0004;
const FLAGS_TEST_FILESYS = 0x0004;

/** What ext2 and ext3 understand: anything else makes the filesystem ext4. */
const EXT2_RO_COMPAT_SUPPORTED = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | RO_COMPAT_BTREE_DIR;
const EXT2_INCOMPAT_SUPPORTED = INCOMPAT_FILETYPE | INCOMPAT_META_BG;
const EXT3_RO_COMPAT_SUPPORTED = EXT2_RO_COMPAT_SUPPORTED;
const EXT3_INCOMPAT_SUPPORTED = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG;

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
