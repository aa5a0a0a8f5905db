/** btrfs (superblock at 64 KiB) and f2fs (at 1 KiB): the magic, and a superblock that can be read whole. */
import { type Prober, magic } from './types.js';

/** libblkid's struct btrfs_super_block, as far as it reads it. */
const BTRFS_SB_OFFSET = 64 * 1024;
const BTRFS_SB_BYTES = 0x22b;

const btrfs: Prober = {
  type: 'btrfs',
  usage: 'filesystem',
  minBytes: 1024 * 1024,
  magics: [magic('_BHRfS_M', 0x40, BTRFS_SB_OFFSET / 1024)],
  check: (view) => view.read(BTRFS_SB_OFFSET, BTRFS_SB_BYTES) !== null,
};

const F2FS_SB_OFFSET = 0x400;
/** struct f2fs_super_block up to its volume name (0x47c bytes). */
const F2FS_SB_BYTES = 0x47c;

const f2fs: Prober = {
  type: 'f2fs',
  usage: 'filesystem',
  magics: [magic([0x10, 0x20, 0xf5, 0xf2], 0, F2FS_SB_OFFSET / 1024)],
  check: (view) => view.read(F2FS_SB_OFFSET, F2FS_SB_BYTES) !== null,
};

export const BTRFS_PROBERS: readonly Prober[] = [btrfs];
export const F2FS_PROBERS: readonly Prober[] = [f2fs];
