/**
 * Opening what the user names: a regular file, a block device, a pipe or stdin, a character
 * device. Classifies it once so that the rest of the code never stats again.
 */
import fs from 'node:fs';
import { blockDeviceSize, blockSectorSize } from './ffi.js';
import { sameTargetOrOverlap } from './same-target.js';
import { openWaiting } from './fd-io.js';

export type TargetKind = 'file' | 'block' | 'pipe' | 'char' | 'directory' | 'other';

export function kindOf(stat: fs.Stats): TargetKind {
  if (stat.isFile()) return 'file';
  if (stat.isBlockDevice()) return 'block';
  if (stat.isFIFO() || stat.isSocket()) return 'pipe';
  if (stat.isCharacterDevice()) return 'char';
  if (stat.isDirectory()) return 'directory';
  return 'other';
}

export interface OpenedInput {
  /** What messages call it: the path, or "stdin". */
  name: string;
  fd: number;
  kind: TargetKind;
  stat: fs.Stats;
  /** Logical size in bytes when it can be known before reading (files, block devices). */
  size: number | null;
  /** Where reading starts: 0, or stdin's current position when stdin is a regular file. */
  startOffset: number;
  /** Whether positional reads work (files and block devices). */
  seekable: boolean;
  /** Bytes already read from a stream (by sniffing its format); they come first. */
  pending: Buffer | null;
  /** Aborts waits on a stream (an idle pipe): reads then reject with its reason. */
  signal?: AbortSignal;
  close(): void;
}

/** Open a source for reading; "-" is stdin. Throws the raw system error; callers classify it. */
export function openInput(path: string): OpenedInput {
  return describeOpenInput(path === '-' ? 0 : fs.openSync(path, fs.constants.O_RDONLY), path);
}

/**
 * openInput for a command that must stay interruptible: a FIFO is opened on the thread pool (its
 * open waits for a writer), and the input keeps `signal` so that reads waiting on a pipe give up
 * when it aborts.
 */
export async function openInputWaiting(path: string, signal?: AbortSignal): Promise<OpenedInput> {
  let isFifo = false;
  try {
    isFifo = path !== '-' && fs.statSync(path).isFIFO();
  } catch {
    /* the open below reports it */
  }
  const input = isFifo ? describeOpenInput(await openWaiting(path, fs.constants.O_RDONLY, signal), path) : openInput(path);
  input.signal = signal;
  return input;
}

function describeOpenInput(fd: number, path: string): OpenedInput {
  const isStdin = path === '-';
  try {
    const stat = fs.fstatSync(fd);
    const kind = kindOf(stat);
    if (kind === 'directory') throw Object.assign(new Error('EISDIR: is a directory'), { code: 'EISDIR' });
    let size: number | null = null;
    let startOffset = 0;
    if (kind === 'file') {
      size = stat.size;
      if (isStdin) startOffset = currentPosition(fd);
    } else if (kind === 'block') {
      size = deviceSize(fd);
    }
    return {
      name: isStdin ? 'stdin' : path,
      fd,
      kind,
      stat,
      size: size === null ? null : Math.max(0, size - startOffset),
      startOffset,
      seekable: kind === 'file' || kind === 'block',
      pending: null,
      close: () => {
        if (!isStdin) fs.closeSync(fd);
      },
    };
  } catch (err) {
    if (!isStdin) fs.closeSync(fd);
    throw err;
  }
}

/** BLKGETSIZE64, or the end offset from lseek when ioctls are not reachable. */
export function deviceSize(fd: number): number {
  const size = blockDeviceSize(fd);
  if (size !== null) return size;
  return endOffsetBySeeking(fd);
}

export function deviceSectorSize(fd: number): number {
  return blockSectorSize(fd) ?? 512;
}

function endOffsetBySeeking(fd: number): number {
  // Node has no lseek; reading a byte at increasing offsets would be silly, so use the sysfs size
  // (512-byte units) as the portable fallback for block devices.
  const stat = fs.fstatSync(fd);
  const { major, minor } = splitDeviceNumber(stat.rdev);
  const text = fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
  return Number(text.trim()) * 512;
}

function currentPosition(fd: number): number {
  // /proc/self/fdinfo shows the file offset of a descriptor; Node has no lseek(SEEK_CUR).
  try {
    const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    const m = /^pos:\s*(\d+)/m.exec(info);
    return m?.[1] ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Linux dev_t encoding (glibc's gnu_dev_major/minor). */
export function splitDeviceNumber(rdev: number): { major: number; minor: number } {
  const high = Math.floor(rdev / 2 ** 32);
  const low = rdev % 2 ** 32;
  const major = ((low >>> 8) & 0xfff) | ((high & 0xfffff000) >>> 0);
  const minor = (low & 0xff) | ((low >>> 12) & 0xfff00);
  return { major, minor };
}

/**
 * Whether two whole files or devices share bytes: the same inode (symlinks, hard links), or loop
 * devices, partitions and their backing files resolved to what holds their bytes. A shorthand of
 * sameTargetOrOverlap (same-target.ts), which also takes byte ranges.
 */
export function sameTarget(a: fs.Stats, b: fs.Stats): boolean {
  return sameTargetOrOverlap(a, b) !== null;
}
