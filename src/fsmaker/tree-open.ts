/**
 * A root filesystem given as a directory or a tar archive, opened as a FileTree. An archive is
 * recognised by its content, never its name: plain tar, gzip, xz, zstd or bzip2 around one.
 *
 * An archive is read twice (its headers, then its files' bytes), so it must be a file: '-' and
 * pipes are refused by name rather than spooled (a Debian tarball is hundreds of MB, and where a
 * spool would go is the caller's choice: `cat > FILE` first).
 */
import fs from 'node:fs';
import { ToolError, describeSystemError, systemErrorCode } from '../errors.js';
import { FORMAT_DESCRIPTIONS, IDENTIFY_HEAD_BYTES, identifyImage } from '../format/identify.js';
import { TAR_BLOCK, parseTarHeaderFields } from '../format/tar.js';
import type { FileTree } from './tree.js';
import { openDirectoryTree } from './tree-dir.js';
import type { ArchiveCompression } from './tree-stream.js';
import { openTarTree } from './tree-tar.js';

// Reserved: no options yet (the signature is the one the layout code calls).
export type OpenTreeOptions = Record<string, never>;

const COMPRESSIONS: readonly string[] = ['gzip', 'xz', 'zstd', 'bzip2'];

/** What an archive's first bytes say it is: a compression around a tar, a plain tar, or (a message) neither. */
export function archiveKind(head: Buffer): ArchiveCompression | { not: string } {
  const format = identifyImage(head);
  if (format !== null && COMPRESSIONS.includes(format)) return format as ArchiveCompression;
  if (format === 'ova') return { not: 'an OVA appliance, not a root filesystem archive' };
  if (head.length === 0) return { not: 'empty, not a tar archive' };
  // A tar before the other formats: one of its files' bytes can hold another format's magic
  // where identifyImage looks (ISO 9660's at byte 32769).
  if (head.length >= TAR_BLOCK && head.subarray(0, TAR_BLOCK).every((b) => b === 0)) return 'none'; // an empty archive
  // A ustar magic says tar: a header that is damaged past it is for the reader to describe.
  if (head.length >= TAR_BLOCK && head.toString('latin1', 257, 262) === 'ustar') return 'none';
  try {
    parseTarHeaderFields(head.subarray(0, TAR_BLOCK), 0);
    return 'none';
  } catch {
    if (format !== null) return { not: `${FORMAT_DESCRIPTIONS[format]}, not a tar archive` };
    return { not: 'not a tar archive (plain, gzip, xz, zstd or bzip2) nor a directory' };
  }
}

export async function openTree(path: string, _options: OpenTreeOptions = {}): Promise<FileTree> {
  if (path === '-') throw new ToolError('ROOTFS_OPEN', `-: an archive on standard input cannot be read: it is read twice; save it to a file first`);
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch (err) {
    throw new ToolError('ROOTFS_OPEN', `${path}: cannot open: ${describeSystemError(err)}`, { cause: err });
  }
  if (st.isDirectory()) return openDirectoryTree(path);
  if (!st.isFile()) {
    const what = st.isFIFO() ? 'a pipe' : st.isSocket() ? 'a socket' : st.isBlockDevice() ? 'a block device' : 'a character device';
    throw new ToolError('ROOTFS_OPEN', `${path}: is ${what}, not a directory or an archive file (an archive is read twice; save it to a file first)`);
  }
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw new ToolError('ROOTFS_OPEN', `${path}: cannot open: ${describeSystemError(err)}`, { cause: err });
  }
  try {
    const head = Buffer.alloc(Math.min(IDENTIFY_HEAD_BYTES, st.size));
    fs.readSync(fd, head, 0, head.length, 0);
    const kind = archiveKind(head);
    if (typeof kind !== 'string') throw new ToolError('ROOTFS_UNKNOWN', `${path}: ${kind.not}`);
    return await openTarTree(path, fd, kind);
  } catch (err) {
    fs.closeSync(fd);
    // Only the system's own failures (EIO) are the archive's; anything else is a bug, not hidden.
    if (err instanceof ToolError || systemErrorCode(err) === undefined) throw err;
    throw new ToolError('ROOTFS_OPEN', `${path}: cannot read: ${describeSystemError(err)}`, { cause: err });
  }
}
