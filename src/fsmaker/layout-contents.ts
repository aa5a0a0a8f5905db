/**
 * What a layout's partitions are filled from, before the disk is planned: an image's size, an
 * ext4 filesystem built from a tree (into the run's work directory), a FAT's files, whether the
 * root's /etc/fstab mounts / (the kernel command line says `rw` when it does not).
 *
 * The ext4 build is a stand-in until planExt4 (ext4-writer.ts) and openTree (tree-open.ts) land:
 * mke2fs -d on a sparse temporary file, from a directory only (mke2fs 1.47.0 reads no archives),
 * reproducible with the seed and SOURCE_DATE_EPOCH. Switching to planExt4 replaces buildExt4Tree
 * and nothing else: its result is an image file the assembly streams like any other.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ToolError, describeSystemError } from '../errors.js';
import { openInput } from '../io/target.js';
import { seededGuid } from './layout.js';
import type { Rootfs } from './rootfs.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;
const BLOCK = 4096;
/** Inode table and directory room per node, and a fixed headroom (journal, group metadata). */
const PER_NODE_BYTES = 512 + BLOCK;
const HEADROOM_BYTES = 16 * MiB;
const MAX_FSTAB_BYTES = 1 * MiB;

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

/** What ROOTFS is: a directory or an archive is a tree to build ext4 from, anything else an image. */
export function isTreeSource(file: string): boolean {
  try {
    if (fs.statSync(file).isDirectory()) return true;
  } catch {
    return false; // inspectRootfs says why it cannot be opened
  }
  return archiveKind(file) !== null;
}

/** An archive by its first bytes (tar's "ustar" at 257, gzip, xz, zstd, bzip2), not by its name. */
export function archiveKind(file: string): string | null {
  const head = Buffer.alloc(264);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
  if (head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return null;
}

/** An automatic size for a tree: its blocks, a block and an inode per node, headroom; 1 MiB aligned. */
export function treeExt4Bytes(dir: string): number {
  let bytes = 0;
  const walk = (d: string): void => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      bytes += PER_NODE_BYTES;
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) bytes += Math.ceil(fs.lstatSync(full).size / BLOCK) * BLOCK;
    }
  };
  try {
    walk(dir);
  } catch (err) {
    throw new ToolError('ROOTFS_OPEN', `${dir}: cannot read the tree: ${describeSystemError(err)}`);
  }
  return Math.ceil((bytes * 1.2 + HEADROOM_BYTES) / MiB) * MiB;
}

export interface Ext4TreeRequest {
  from: string;
  /** Filesystem size (absent: treeExt4Bytes). */
  sizeBytes?: number;
  label?: string;
  seed: string;
  /** Partition number, for the seeded UUID. */
  number: number;
  workDir: string;
  signal: AbortSignal;
}

/** Builds the ext4 filesystem of a tree in the work directory; returns its image file. */
export async function buildExt4Tree(r: Ext4TreeRequest): Promise<string> {
  const kind = fs.statSync(r.from).isDirectory() ? null : archiveKind(r.from);
  if (kind !== null) throw new ToolError('ROOTFS_UNKNOWN', `${r.from}: a ${kind} archive: building ext4 from an archive needs fsmaker's tree reader, not in this build (unpack it and give the directory)`);
  const sizeBytes = r.sizeBytes ?? treeExt4Bytes(r.from);
  const file = path.join(r.workDir, `partition-${r.number}.ext4`);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, sizeBytes);
  const epoch = process.env.SOURCE_DATE_EPOCH;
  const args = ['-q', '-F', '-t', 'ext4', '-U', seededGuid(r.seed, `ext4-uuid-${r.number}`).toLowerCase(), '-E', `hash_seed=${seededGuid(r.seed, `ext4-hash-${r.number}`).toLowerCase()}`, ...(r.label ? ['-L', r.label] : []), '-d', r.from, file];
  try {
    await execFileAsync('mke2fs', args, { signal: r.signal, env: { ...process.env, ...(epoch !== undefined ? { E2FSPROGS_FAKE_TIME: epoch } : {}) } });
  } catch (err) {
    if (r.signal.aborted) throw r.signal.reason;
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const why = e.code === 'ENOENT' ? 'mke2fs not found' : (e.stderr ?? '').trim().split('\n').pop() || describeSystemError(err);
    throw new ToolError('SPARE_MKFS', `${r.from}: building its ${sizeBytes}-byte ext4 filesystem failed: ${why}`);
  }
  return file;
}

/** Whether an fstab's text has an entry for / (the second field of a line that is no comment). */
export function fstabMountsRoot(text: string): boolean {
  return text.split('\n').some((line) => {
    const fields = line.replace(/#.*/, '').trim().split(/\s+/);
    return fields.length >= 2 && fields[1] === '/';
  });
}

/**
 * Whether the root filesystem's /etc/fstab mounts /; null when fsmaker cannot read it (not
 * ext2/3/4). Without an entry, systemd leaves a root the kernel mounted `ro` read-only.
 */
export function rootHasFstabEntry(rootfs: Rootfs): boolean | null {
  const ext = rootfs.ext;
  if (!ext) return null;
  const inode = ext.lookup('/etc/fstab', { follow: true });
  if (!inode || inode.kind !== 'file') return false;
  return fstabMountsRoot(ext.readFile(inode, 0, Math.min(inode.size, MAX_FSTAB_BYTES)).toString('utf8'));
}
