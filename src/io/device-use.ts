/**
 * Is a block device in use? Mounted (itself or one of its partitions), used as swap, held by a
 * device-mapper/md holder, or opened exclusively by someone else. Writing under any of these
 * destroys a live filesystem, so sparsecopy refuses unless --force.
 */
import fs from 'node:fs';
import { splitDeviceNumber } from './target.js';

export interface DeviceUse {
  inUse: boolean;
  reason?: string;
}

function readText(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** "major:minor" of the device and of each of its partitions. */
function deviceAndPartitions(rdev: number): string[] {
  const { major, minor } = splitDeviceNumber(rdev);
  const self = `${major}:${minor}`;
  const ids = [self];
  const sysDir = `/sys/dev/block/${self}`;
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(sysDir);
  } catch {
    return ids;
  }
  for (const entry of entries) {
    if (readText(`${sysDir}/${entry}/partition`) === null) continue;
    const dev = readText(`${sysDir}/${entry}/dev`);
    if (dev) ids.push(dev.trim());
  }
  return ids;
}

export function findDeviceUse(rdev: number): DeviceUse {
  const ids = deviceAndPartitions(rdev);
  const mountinfo = readText('/proc/self/mountinfo') ?? '';
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    if (fields[2] && ids.includes(fields[2])) {
      return { inUse: true, reason: `mounted on ${fields[4] ?? '?'}${fields[2] === ids[0] ? '' : ` (partition ${fields[2]})`}` };
    }
  }
  const swaps = (readText('/proc/swaps') ?? '').split('\n').slice(1);
  for (const line of swaps) {
    const path = line.split(/\s+/)[0];
    if (!path) continue;
    try {
      if (ids.includes(idOf(fs.statSync(path).rdev))) return { inUse: true, reason: `used as swap (${path})` };
    } catch {
      /* a vanished swap file is not our business */
    }
  }
  for (const id of ids) {
    let holders: string[] = [];
    try {
      holders = fs.readdirSync(`/sys/dev/block/${id}/holders`);
    } catch {
      /* no holders directory: nothing holds it */
    }
    if (holders.length > 0) return { inUse: true, reason: `held by ${holders.join(', ')}` };
  }
  return { inUse: false };
}

function idOf(rdev: number): string {
  const { major, minor } = splitDeviceNumber(rdev);
  return `${major}:${minor}`;
}
