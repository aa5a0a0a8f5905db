/**
 * Names for temporary files and directories that say who made them, so that what a killed process
 * left behind (SIGKILL, a power cut: no handler runs) is recognised and removed by a later run:
 *
 *   .NAME.sparsecopy-PID-START-RAND     a copy being written next to its destination
 *   fsmaker-PID-START-RAND               fsmaker's work directory in the temporary directory
 *
 * PID alone is not enough (PIDs are reused); PID with the process's start time (field 22 of
 * /proc/PID/stat, clock ticks since boot) names one process of this boot. A name whose process is
 * no longer running is stale. Names of an older release (".NAME.sparsecopy-PID-RAND") are stale
 * when that PID is gone.
 */
import fs from 'node:fs';
import path from 'node:path';

/** The start time of process `pid` in clock ticks since boot, or null when it is not running. */
export function processStartTime(pid: number): string | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
  const afterName = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return afterName[19] ?? null; // field 22 of the whole line
}

let ownTag: string | null = null;

/** "PID-START" of this process. */
export function ownerTag(): string {
  ownTag ??= `${process.pid}-${processStartTime(process.pid) ?? '0'}`;
  return ownTag;
}

/** A random suffix (Math.random, not node:crypto: unlikely is enough, and crypto costs 3.5 ms to load). */
export const randomSuffix = (): string =>
  Math.floor(Math.random() * 0x1_0000_0000)
    .toString(16)
    .padStart(8, '0');

/** The temporary name of a copy of `base` being written by this process. */
export const copyTempName = (base: string): string => `.${base}.sparsecopy-${ownerTag()}-${randomSuffix()}`;

/** The name of a work directory of `tool` made by this process. */
export const workDirName = (tool: string): string => `${tool}-${ownerTag()}-${randomSuffix()}`;

const COPY_TEMP = /^\..+\.sparsecopy-(\d+)-(?:(\d+)-)?[0-9a-f]{8}$/;

function isStale(pid: number, start: string | undefined): boolean {
  const running = processStartTime(pid);
  if (running === null) return true;
  return start !== undefined && running !== start;
}

/** Whether `name` is a sparsecopy temporary file whose writer is gone. */
export function isStaleCopyTemp(name: string): boolean {
  const m = COPY_TEMP.exec(name);
  return m !== null && isStale(Number(m[1]), m[2]);
}

/** Whether `name` is a work directory of `tool` whose process is gone. */
export function isStaleWorkDir(tool: string, name: string): boolean {
  const m = new RegExp(`^${tool}-(\\d+)-(\\d+)-[0-9a-f]{8}$`).exec(name);
  return m !== null && isStale(Number(m[1]), m[2]);
}

/**
 * Removes, from `dir`, the entries `isStaleEntry` recognises; returns their names. Best effort:
 * an entry that cannot be listed or removed (permissions, a race with another cleaner) stays.
 */
export function removeStale(dir: string, isStaleEntry: (name: string) => boolean): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!isStaleEntry(name)) continue;
    try {
      fs.rmSync(path.join(dir, name), { recursive: true, force: true });
      removed.push(name);
    } catch {
      /* not ours to remove after all: leave it */
    }
  }
  return removed;
}
