/**
 * The root filesystem fsmaker wraps: opened once, recognised, and (ext2/3/4) judged as Linux
 * would mount it. This is the boundary where the ext reader's ExtError becomes fsmaker's ToolError
 * 21 with the image's path: "the rootfs could not be read" is an error, never a reason to boot
 * something else.
 */
import { ToolError, describeSystemError } from '../errors.js';
import { type OpenedInput, openInput } from '../io/target.js';
import { ExtError, type ExtFs, openExt } from './ext4.js';
import { type ByteReader, detectFilesystem } from './fs-detect.js';
import { readAt } from './read-range.js';

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
