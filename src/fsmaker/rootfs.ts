/**
 * The root filesystem fsmaker wraps: opened once, recognised, and (ext2/3/4) judged as Linux
 * would mount it. This is the boundary where the ext reader's ExtError becomes fsmaker's ToolError
 * 21 with the image's path: "the rootfs could not be read" is an error, never a reason to boot
 * something else.
 */
import { ToolError, describeSystemError } from '../errors.js';
import { type OpenedInput, openInput } from '../io/target.js';
import { ExtError, type ExtFs, type InodeKind, openExt } from './ext4.js';
import { type ByteReader, detectFilesystem } from './fs-detect.js';
import { readAt } from './read-range.js';
import type { RootView, TreeNodeType } from './tree.js';

export interface Rootfs {
  /** The path as given. */
  path: string;
  type: string;
  uuid?: string;
  label?: string;
  /** Bytes of the image or device. */
  size: number;
  read: ByteReader;
  /** The ext2/3/4 reader, already past Linux's mount-time checks; null for other types. */
  ext: ExtFs | null;
  close(): void;
}

/** Runs `body`, turning the ext reader's errors into ROOTFS_UNKNOWN (21) naming the rootfs. */
export function readingRootfs<T>(rootImage: string, body: () => T): T {
  try {
    return body();
  } catch (err) {
    if (err instanceof ExtError) throw new ToolError('ROOTFS_UNKNOWN', `${rootImage}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** Recognises the filesystem `read` serves; refuses what is not one, is corrupt, or Linux would not mount. */
export function recogniseRootfs(rootImage: string, read: ByteReader, size: number): Omit<Rootfs, 'close'> {
  const found = detectFilesystem(read);
  if (!found) throw new ToolError('ROOTFS_UNKNOWN', `${rootImage}: not a filesystem fsmaker knows (ext2/3/4, xfs, btrfs, squashfs, erofs, vfat)`);
  if (found.corrupt) throw new ToolError('ROOTFS_UNKNOWN', `${rootImage}: corrupt ${found.type} superblock: ${found.corrupt}`);
  const ext = found.type.startsWith('ext') ? readingRootfs(rootImage, () => openExt(read, { imageBytes: size })) : null;
  return { path: rootImage, type: found.type, uuid: found.uuid, label: found.label, size, read, ext };
}

/** Opens and recognises the rootfs image (a file or a block device). */
export function inspectRootfs(rootImage: string): Rootfs {
  let input: OpenedInput;
  try {
    input = openInput(rootImage);
  } catch (err) {
    throw new ToolError('ROOTFS_OPEN', `${rootImage}: cannot open the root filesystem: ${describeSystemError(err)}`);
  }
  try {
    if ((input.kind !== 'file' && input.kind !== 'block') || input.size === null || rootImage === '-') {
      throw new ToolError('ROOTFS_OPEN', `${rootImage}: the root filesystem must be an image file or a block device`);
    }
    const { fd } = input;
    const read: ByteReader = (offset, length) => readAt(fd, offset, length);
    return { ...recogniseRootfs(rootImage, read, input.size), close: () => input.close() };
  } catch (err) {
    input.close();
    throw err;
  }
}

const TREE_TYPES: Record<InodeKind, TreeNodeType | null> = {
  file: 'file', dir: 'dir', symlink: 'symlink', chardev: 'char', blockdev: 'block', fifo: 'fifo', socket: 'socket', unknown: null,
};

/**
 * An ext2/3/4 rootfs as kernel discovery reads any rootfs; null for other filesystems (fsmaker
 * looks for kernels in ext only). The last component of a path is never followed (a symlink is
 * reported as one); the ones before it are, inside the image (an absolute target is taken from
 * the image's root, as the ext reader resolves it). Errors of the image are ToolError 21.
 * readRange checks every block a file maps on its first read of that file (so a kernel's bad
 * extent is refused when it is chosen, before anything is written).
 */
export function rootViewOfImage(rootfs: Rootfs): (RootView & { readRange(path: string, offset: number, length: number): Buffer }) | null {
  const ext = rootfs.ext;
  if (!ext) return null;
  const inodeAt = (p: string) => readingRootfs(rootfs.path, () => ext.lookup(p, { follow: false }));
  const checked = new Set<string>();
  return {
    name: rootfs.path,
    stat(p) {
      const inode = inodeAt(p);
      const type = inode ? TREE_TYPES[inode.kind] : null;
      if (!inode || !type) return null;
      if (type === 'symlink') return { type, size: 0, target: readingRootfs(rootfs.path, () => ext.readLink(inode)) };
      return { type, size: type === 'file' ? inode.size : 0 };
    },
    list(p) {
      const inode = inodeAt(p);
      if (!inode || inode.kind !== 'dir') return null;
      return readingRootfs(rootfs.path, () => ext.readDir(inode).map((e) => e.name));
    },
    async readFiles(paths, maxBytes) {
      const out = new Map<string, Buffer>();
      let total = 0;
      for (const p of paths) {
        const inode = inodeAt(p);
        if (!inode || inode.kind !== 'file') throw new ToolError('ROOTFS_UNKNOWN', `${rootfs.path}: ${p} is not a regular file`);
        total += inode.size;
        if (total > maxBytes) throw new ToolError('ROOTFS_UNKNOWN', `${rootfs.path}: the files asked for hold more than ${maxBytes} bytes`);
        out.set(p, readingRootfs(rootfs.path, () => ext.readFile(inode, 0, inode.size)));
      }
      return out;
    },
    /** Part of a regular file, read when asked (a kernel or initrd is never held whole). */
    readRange(p, offset, length) {
      const inode = inodeAt(p);
      if (!inode || inode.kind !== 'file') throw new ToolError('ROOTFS_UNKNOWN', `${rootfs.path}: ${p} is not a regular file`);
      return readingRootfs(rootfs.path, () => {
        if (!checked.has(p)) {
          ext.fileExtents(inode);
          checked.add(p);
        }
        return ext.readFile(inode, offset, length);
      });
    },
  };
}
