/**
 * The ext2/3/4 superblock's feature bits (kernel Documentation/filesystems/ext4/super.rst) and
 * the sets ext2 and ext3 understand, by which libblkid tells the three apart: fsmaker's
 * filesystem detection and the wipe signatures read them the same way.
 */

export const EXT_COMPAT_HAS_JOURNAL = 0x0004;
export const EXT_INCOMPAT_FILETYPE = 0x0002;
export const EXT_INCOMPAT_RECOVER = 0x0004;
export const EXT_INCOMPAT_JOURNAL_DEV = 0x0008;
export const EXT_INCOMPAT_META_BG = 0x0010;
export const EXT_INCOMPAT_64BIT = 0x0080;
export const EXT_RO_COMPAT_SPARSE_SUPER = 0x0001;
export const EXT_RO_COMPAT_LARGE_FILE = 0x0002;
export const EXT_RO_COMPAT_BTREE_DIR = 0x0004;
/** s_flags: a filesystem made for testing (ext4dev). */
export const EXT_FLAGS_TEST_FILESYS = 0x0004;

/** What ext2 understands: anything else makes the filesystem ext3 or ext4. */
export const EXT2_RO_COMPAT_SUPPORTED = EXT_RO_COMPAT_SPARSE_SUPER | EXT_RO_COMPAT_LARGE_FILE | EXT_RO_COMPAT_BTREE_DIR;
export const EXT2_INCOMPAT_SUPPORTED = EXT_INCOMPAT_FILETYPE | EXT_INCOMPAT_META_BG;
/** What ext3 understands: anything else makes the filesystem ext4. */
export const EXT3_RO_COMPAT_SUPPORTED = EXT2_RO_COMPAT_SUPPORTED;
export const EXT3_INCOMPAT_SUPPORTED = EXT_INCOMPAT_FILETYPE | EXT_INCOMPAT_RECOVER | EXT_INCOMPAT_META_BG;
