/**
 * Whether two targets are, or overlap on, the same bytes, whatever names they go by: a path and a
 * symlink to it or a hard link of it (one inode), a partition and its disk (the disk from the
 * partition's start), a loop device and its backing file (the file from the loop's offset), two
 * loop devices on one file, and chains of these (a loop device on a partition of a loop device).
 *
 * Every target is resolved down to what really holds its bytes, a regular file (an inode) or a
 * whole block device, with the window of it that the target shows. Two byte ranges clash when
 * they end up in the same bottom target and their windows overlap there.
 *
 * Loop devices and partitions are read from sysfs (/sys/dev/block/MAJOR:MINOR: `partition` and
 * `start`, `loop/backing_file`, `loop/offset`, `loop/sizelimit`), readable without privileges.
 * A backing file that was deleted (sysfs shows "(deleted)") cannot be stat'ed and is not matched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { splitDeviceNumber } from './target.js';

const SECTOR = 512;

/** Where a target's bytes live: one file or whole block device, and the window of it the target shows. */
export interface ResolvedTarget {
  /** "file DEV:INO" or "block MAJOR:MINOR" of the bottom target: equal identities, same bytes. */
  identity: string;
  /** The bottom target's name for messages (a path from sysfs, /dev/NAME), or null when only its stat is known. */
  name: string | null;
  /** The byte of the bottom target where byte 0 of the given target lies. */
  offset: number;
  /** Bytes of the bottom target the given one shows from `offset` (a loop's size limit, a partition's size); null: to its end. */
  limit: number | null;
  /** The devices passed on the way down, outermost first ("/dev/loop3", "/dev/loop0p1"...). */
  via: string[];
}

/** A byte range [start, end) of a file or device, as a copy or a build will read or write it. */
export interface TargetSpan {
  stat: fs.Stats;
  /** Default 0. */
  start?: number;
  /** Default: to the end (Infinity). */
  end?: number;
}

export interface TargetClash {
  /** The bottom target both spans land in: a name when sysfs gave one, else null (the caller's own path). */
  name: string | null;
  /** The overlapping bytes, in the bottom target's offsets. */
  start: number;
  end: number;
  /** The devices each side went through to get there (empty: the side is the bottom target itself). */
  aVia: string[];
  bVia: string[];
}

/** Where sysfs is: a test can point this at a fake tree. */
export interface SysfsRoot {
  sysfs?: string;
}

const readText = (p: string): string | null => {
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch {
    return null;
  }
};

const deviceId = (rdev: number): string => {
  const { major, minor } = splitDeviceNumber(rdev);
  return `${major}:${minor}`;
};

/** /dev/NAME of the block device MAJOR:MINOR (from its sysfs directory's name). */
function deviceName(sysfs: string, id: string): string {
  try {
    return `/dev/${path.basename(fs.realpathSync(path.join(sysfs, 'dev/block', id)))}`;
  } catch {
    return `block device ${id}`;
  }
}

const MAX_DEPTH = 16; // loops of loops: far more than anyone stacks, and no endless cycle

/**
 * Resolves a file or block device to its bottom target. Anything else (a pipe, a character
 * device, a directory) is its own bottom target, identified by its inode.
 */
export function resolveTarget(stat: fs.Stats, options: SysfsRoot = {}): ResolvedTarget {
  const sysfs = options.sysfs ?? '/sys';
  const via: string[] = [];
  let name: string | null = null;
  let offset = 0;
  let limit: number | null = null;
  /**
   * One level down: the current level is bytes [start, start + length) of the next (length null:
   * to its end). The given target's byte 0 is at `offset` of the current level.
   */
  const descend = (start: number, length: number | null): void => {
    if (length !== null) limit = Math.max(0, Math.min(limit ?? Infinity, length - offset));
    offset += start;
  };
  let current = stat;
  for (let depth = 0; depth < MAX_DEPTH && current.isBlockDevice(); depth++) {
    const id = deviceId(current.rdev);
    const dir = path.join(sysfs, 'dev/block', id);
    const partitionStart = readText(path.join(dir, 'start'));
    const parentId = readText(path.join(dir, 'partition')) !== null && partitionStart !== null ? readText(path.join(realpathOr(dir), '..', 'dev')) : null;
    if (parentId) {
      // A partition: a window of its disk, which is its parent directory in sysfs.
      const sectors = Number(readText(path.join(dir, 'size')));
      via.push(deviceName(sysfs, id));
      descend(Number(partitionStart) * SECTOR, Number.isFinite(sectors) ? sectors * SECTOR : null);
      name = deviceName(sysfs, parentId);
      current = blockStat(parentId);
      continue;
    }
    const backing = readText(path.join(dir, 'loop/backing_file'));
    const backingStat = backing === null ? null : statOrNull(backing); // "(deleted)": nothing else can name it
    if (backing === null || backingStat === null) break;
    via.push(deviceName(sysfs, id));
    const sizeLimit = Number(readText(path.join(dir, 'loop/sizelimit')) ?? 0);
    descend(Number(readText(path.join(dir, 'loop/offset')) ?? 0), sizeLimit > 0 ? sizeLimit : null);
    name = backing;
    current = backingStat;
  }
  const identity = current.isBlockDevice() ? `block ${deviceId(current.rdev)}` : `${current.isFile() ? 'file' : 'node'} ${current.dev}:${current.ino}`;
  return { identity, name, offset, limit, via };
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

function realpathOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

/** Enough of a Stats for resolveTarget: a block device by number. */
const blockStat = (id: string): fs.Stats => ({ isBlockDevice: () => true, isFile: () => false, rdev: rdevOf(id) }) as fs.Stats;

function rdevOf(id: string): number {
  const [major, minor] = id.split(':').map(Number) as [number, number];
  // glibc's makedev, the inverse of splitDeviceNumber.
  const low = ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & 0xfff00) << 12);
  const high = major & 0xfffff000;
  return high * 2 ** 32 + (low >>> 0);
}

const asSpan = (x: TargetSpan | fs.Stats): TargetSpan => ('stat' in x ? x : { stat: x });

/**
 * THE test for "input = output": null when the two spans cannot touch the same bytes, else where
 * they clash. Pass stats from fs.statSync (which follows symlinks) or fs.fstatSync; spans default
 * to the whole file or device. Pipes and character devices never clash (they hold no bytes).
 *
 *   // fsmaker: refuse an output that is the rootfs, the kernel, the initrd... under any name
 *   if (sameTargetOrOverlap(fs.statSync(rootImage), fs.statSync(output))) throw new ToolError('SAME_FILE', ...);
 *   // sparsecopy: the bytes it reads and the bytes it writes, in the same file through two loop devices
 *   sameTargetOrOverlap({ stat: source, start: 0, end: 50 << 20 }, { stat: dest, start: 1 << 20, end: 51 << 20 });
 */
export function sameTargetOrOverlap(a: TargetSpan | fs.Stats, b: TargetSpan | fs.Stats, options: SysfsRoot = {}): TargetClash | null {
  const [spanA, spanB] = [asSpan(a), asSpan(b)];
  const holdsBytes = (s: fs.Stats): boolean => s.isFile() || s.isBlockDevice();
  if (!holdsBytes(spanA.stat) || !holdsBytes(spanB.stat)) return null;
  const [ra, rb] = [resolveTarget(spanA.stat, options), resolveTarget(spanB.stat, options)];
  if (ra.identity !== rb.identity) return null;
  const [startA, endA] = windowOf(spanA, ra);
  const [startB, endB] = windowOf(spanB, rb);
  const start = Math.max(startA, startB);
  const end = Math.min(endA, endB);
  if (start >= end) return null;
  return { name: ra.name ?? rb.name, start, end, aVia: ra.via, bVia: rb.via };
}

/** A span in the bottom target's offsets, clipped to the window the target shows. */
function windowOf(span: TargetSpan, resolved: ResolvedTarget): [number, number] {
  const visible = resolved.limit ?? Infinity;
  const start = Math.min(span.start ?? 0, visible);
  const end = Math.min(span.end ?? Infinity, visible);
  return [resolved.offset + start, resolved.offset + Math.max(start, end)];
}

/** The loop devices (/dev/loopN) whose bytes are those of `stat`'s file, directly or through other loops. */
export function loopDevicesBackedBy(stat: fs.Stats, options: SysfsRoot = {}): string[] {
  const sysfs = options.sysfs ?? '/sys';
  const target = resolveTarget(stat, options).identity;
  let names: string[];
  try {
    names = fs.readdirSync(path.join(sysfs, 'block')).filter((n) => n.startsWith('loop'));
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const name of names) {
    const id = readText(path.join(sysfs, 'block', name, 'dev'));
    if (!id || readText(path.join(sysfs, 'block', name, 'loop/backing_file')) === null) continue;
    if (resolveTarget(blockStat(id), options).identity === target) found.push(`/dev/${name}`);
  }
  return found;
}
