/** btrfs (superblock at 64 KiB), f2fs and erofs (at 1 KiB): the magic, and a superblock that can be read whole. */
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

const EROFS_SB_OFFSET = 0x400;
/** struct erofs_super_block. */
const EROFS_SB_BYTES = 128;

const erofs: Prober = {
  type: 'erofs',
  usage: 'filesystem',
  magics: [magic([0xe2, 0xe1, 0xf5, 0xe0], 0, EROFS_SB_OFFSET / 1024)],
  check: (view) => view.read(EROFS_SB_OFFSET, EROFS_SB_BYTES) !== null,
};

export const BTRFS_PROBERS: readonly Prober[] = [btrfs];
export const F2FS_PROBERS: readonly Prober[] = [f2fs];
export const EROFS_PROBERS: readonly Prober[] = [erofs];
