/**
 * What a layout's partitions are filled from, before the disk is planned: an image's size, an
 * ext4 filesystem planned from a tree (a directory or an archive: openTree, planExt4; streamed
 * as extents, never written to a temporary file), and whether the root's /etc/fstab mounts /
 * (the kernel command line says `rw` when it does not).
 */
import fs from 'node:fs';
import { ToolError, describeSystemError } from '../errors.js';
import { openInput } from '../io/target.js';
import { type Ext4Plan, planExt4 } from './ext4-writer.js';
import { detectFilesystem } from './fs-detect.js';
import { readAt } from './read-range.js';
import type { FatFile } from './fat.js';
import { archiveKind, openTree } from './tree-open.js';
import type { FileTree, RootView } from './tree.js';

const MAX_FSTAB_BYTES = 1024 * 1024;
/** Enough of a file to tell an archive from a filesystem image (tar's header, the compressions' magics). */
const ARCHIVE_HEAD_BYTES = 4096;

/** Bytes of an image file or block device, or a ToolError naming it (ROOTFS_OPEN). */
export function imageBytes(file: string, role: string): number {
  let input;
  try {
    input = openInput(file);
  } catch (err) {
    throw new ToolError('ROOTFS_OPEN', `${file}: cannot open ${role}: ${describeSystemError(err)}`);
  }
  try {
    if ((input.kind !== 'file' && input.kind !== 'block') || input.size === null || file === '-') throw new ToolError('ROOTFS_OPEN', `${file}: ${role} must be an image file or a block device`);
    return input.size;
  } finally {
    input.close();
  }
}

/**
 * What ROOTFS is: a directory, or a file that holds no filesystem fsmaker knows and whose first
 * bytes are an archive's (not its name), is a tree to build ext4 from; anything else is an image
 * (inspectRootfs says what is wrong with it). The filesystem is looked for first: an image's
 * first 4 KiB are often zeros, which is also what an empty tar archive is.
 */
export function isTreeSource(file: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return false;
  }
  if (st.isDirectory()) return true;
  if (!st.isFile()) return false;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    if (detectFilesystem((offset, length) => readAt(fd, offset, length)) !== null) return false;
    const head = Buffer.alloc(Math.min(ARCHIVE_HEAD_BYTES, st.size));
    fs.readSync(fd, head, 0, head.length, 0);
    return typeof archiveKind(head) === 'string';
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

export interface Ext4TreeRequest {
  tree: FileTree;
  /** Filesystem size (absent: what the tree needs plus headroom). */
  sizeBytes?: number;
  label?: string;
  seed: string;
  /** Partition number: each partition's filesystem gets its own UUID from the seed. */
  number: number;
}

/** Plans the ext4 filesystem of a tree (reproducible with the seed and SOURCE_DATE_EPOCH). */
export function planTreeExt4(r: Ext4TreeRequest): Promise<Ext4Plan> {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  return planExt4({
    tree: r.tree,
    ...(r.sizeBytes !== undefined ? { sizeBytes: r.sizeBytes } : {}),
    seed: `${r.seed}\0ext4-${r.number}`,
    ...(r.label !== undefined ? { label: r.label } : {}),
    ...(epoch !== undefined ? { timestamp: Number(epoch) } : {}),
  });
}

/**
 * The most an archive may hold for a FAT partition: its files are read into memory in one pass
 * (the FAT writer reads its files by offset, which an archive cannot do). An ESP or a /boot holds
 * tens of MB; a larger tree is refused, to be unpacked and given as a directory.
 */
export const FAT_ARCHIVE_MAX_BYTES = 512 * 1024 * 1024;

/** The regular files of an archive, for a FAT partition (directories are made for them; owners, modes, links and the rest FAT cannot hold are left out). */
export async function archiveFatFiles(archive: string): Promise<FatFile[]> {
  const tree = await openTree(archive);
  try {
    const files = tree.nodes.filter((n) => n.type === 'file' && n.linkTo === undefined && n.path !== '');
    const data = await tree.readFiles(files.map((n) => n.path), FAT_ARCHIVE_MAX_BYTES);
    return files.map((n) => {
      const bytes = data.get(n.path)!;
      return { path: n.path, size: bytes.length, read: (o: number, len: number) => bytes.subarray(o, o + len) };
    });
  } finally {
    tree.close();
  }
}

/** Whether an fstab's text has an entry for / (the second field of a line that is no comment). */
export function fstabMountsRoot(text: string): boolean {
  return text.split('\n').some((line) => {
    const fields = line.replace(/#.*/, '').trim().split(/\s+/);
    return fields.length >= 2 && fields[1] === '/';
  });
}

/** Whether the root's /etc/fstab mounts / (false without one: a placeholder or none at all). */
export async function rootHasFstabEntry(root: RootView): Promise<boolean> {
  const st = root.stat('/etc/fstab');
  if (!st || st.type !== 'file' || st.size > MAX_FSTAB_BYTES) return false;
  const text = (await root.readFiles(['/etc/fstab'], MAX_FSTAB_BYTES)).get('/etc/fstab');
  return text !== undefined && fstabMountsRoot(text.toString('utf8'));
}
