/**
 * Opening the destination so that a failure never damages it:
 *  - a new file, or one being replaced (the default, truncating mode), is written under a
 *    temporary name in the same directory and renamed over the final name only on success;
 *  - an existing file with --overlay, and a block device, are written in place, after every check
 *    that can refuse the copy has passed;
 *  - a pipe, character device or "-" (stdout) is a plain byte stream.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ToolError, describeSystemError, systemErrorCode } from '../errors.js';
import { findDeviceUse } from '../io/device-use.js';
import { loopDevicesBackedBy } from '../io/same-target.js';
import { deviceSectorSize, deviceSize, kindOf } from '../io/target.js';
import { registerExitCleanup, unregisterExitCleanup } from '../io/exit-cleanup.js';
import { copyTempName, isStaleCopyTemp, removeStale } from '../io/temp-files.js';
import { openWaiting } from '../io/fd-io.js';

export interface DestinationRequest {
  path: string;
  overlay: boolean;
  /** Open devices even when mounted or in use. */
  force: boolean;
  /** The output is a compressed stream of this format ("gzip"): always a new file (or a stream), never a device. */
  compressed?: string;
  /** Gives up waiting for a FIFO's reader. */
  signal?: AbortSignal;
}

export interface OpenedDestination {
  name: string;
  kind: 'file' | 'block' | 'stream';
  fd: number;
  stat: fs.Stats | null;
  /** Bytes at the start that may hold old data (0 for a new or truncated file). */
  oldLength: number;
  /** Capacity of a block device; null when unbounded. */
  capacity: number | null;
  sectorSize: number;
  /**
   * A second descriptor on a block device opened with O_DIRECT, for aligned writes: they skip the
   * page cache, which otherwise doubles the work (and the final flush) on the way to the device.
   */
  directFd: number | null;
  /** Smallest unit a skipped zero run must cover to save space (the filesystem or device block). */
  holeUnit: number;
  /** An existing file is being replaced: the copy is written beside it (both need room). */
  replacing: boolean;
  /** The directory a new or replaced file is written in (where a format spools beside it); unset for the others. */
  directory?: string;
  /** A new file under a temporary name: nothing sees it before commit(). */
  temporary: boolean;
  /** What a discarded copy leaves behind, for messages: "left as it was", "partly written"... */
  abandoned: string;
  /** Make the result visible under its final name (rename a temporary file). */
  commit(): void;
  /** Close, and remove a temporary file: the final name is left as it was. */
  discard(): void;
}

function destinationError(name: string, err: unknown, what = 'cannot open destination'): ToolError {
  return new ToolError('DEST_OPEN', `${name}: ${what}: ${describeSystemError(err)}`, { cause: err });
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch (err) {
    if (systemErrorCode(err) === 'ENOENT') return null;
    throw destinationError(p, err);
  }
}

/** Where a new file should appear: through a dangling symlink, at its target (as cp does). */
function creationPath(p: string): string {
  let current = p;
  for (let hops = 0; hops < 40; hops++) {
    let link: string;
    try {
      link = fs.readlinkSync(current);
    } catch {
      return current; // not a symlink (or nothing there): create it here
    }
    current = path.resolve(path.dirname(current), link);
  }
  throw new ToolError('DEST_OPEN', `${p}: cannot open destination: too many levels of symbolic links`);
}

/**
 * What the destination names, before anything is opened: the file a path or symlink leads to, or
 * what stdout is for "-" (a regular file when redirected); null for a file yet to be created.
 */
export function destinationStat(p: string): fs.Stats | null {
  if (p === '-') {
    try {
      return fs.fstatSync(1);
    } catch {
      return null;
    }
  }
  return statOrNull(p);
}

export async function openDestination(request: DestinationRequest): Promise<OpenedDestination> {
  const name = request.path;
  if (name === '-') {
    refuseClosedStdout();
    return streamDestination('stdout', 1, null, false);
  }
  const stat = statOrNull(name);
  const kind = stat ? kindOf(stat) : 'file';
  switch (kind) {
    case 'directory':
      throw new ToolError('DEST_OPEN', `${name}: cannot open destination: is a directory`);
    case 'block':
      if (request.compressed) throw new ToolError('USAGE', `${name}: ${request.compressed} output to a block device makes no sense; write the image itself`);
      return blockDestination(name, stat!, request.force);
    case 'pipe':
    case 'char':
    case 'other': {
      let fd: number;
      try {
        // A FIFO's open waits for a reader: on the thread pool, so that a signal still ends it.
        fd = stat!.isFIFO() ? await openWaiting(name, fs.constants.O_WRONLY, request.signal) : fs.openSync(name, fs.constants.O_WRONLY);
      } catch (err) {
        if (request.signal?.aborted && err === request.signal.reason) throw err;
        throw destinationError(name, err);
      }
      return streamDestination(name, fd, stat, true);
    }
    case 'file': {
      const inPlace = request.overlay && stat !== null && !request.compressed;
      if (stat && !request.force) refuseLoopBackingFile(name, stat, inPlace);
      return inPlace ? overlayDestination(name, stat) : replacementDestination(name, stat);
    }
  }
}

/**
 * A file that loop devices show: replacing it (a new file renamed over the name) would leave the
 * devices on the old, deleted inode while the name shows the new one; writing into it in place
 * (--overlay) is what the devices see, but not under a mounted or held device.
 */
function refuseLoopBackingFile(name: string, stat: fs.Stats, inPlace: boolean): void {
  const devices = loopDevicesBackedBy(stat);
  if (devices.length === 0) return;
  if (!inPlace) {
    throw new ToolError(
      'DEST_IN_USE',
      `${name}: is the backing file of ${devices.join(', ')}: replacing it would leave the device on the old, deleted file; use -o to write into it in place, or detach the device (--force replaces it anyway)`,
    );
  }
  for (const device of devices) {
    const rdev = statOrNull(device)?.rdev;
    const use = rdev === undefined ? { inUse: false } : findDeviceUse(rdev);
    if (use.inUse) throw new ToolError('DEST_IN_USE', `${name}: is the backing file of ${device}, which is in use (${use.reason}); refusing to write (use --force to override)`);
  }
}

/**
 * A closed stdout is not there to write to, but Node, finding descriptor 1 closed at start-up,
 * opens /dev/null read-write in its place, so the copy would "succeed" into nothing. A shell's
 * `>/dev/null` opens it write-only; read-write /dev/null on descriptor 1 is taken for a closed
 * stdout (naming /dev/null as DEST is the way to discard the output).
 */
function refuseClosedStdout(): void {
  let stat: fs.Stats;
  try {
    stat = fs.fstatSync(1);
  } catch (err) {
    throw new ToolError('WRITE', `stdout: cannot write: ${describeSystemError(err)}`, { cause: err });
  }
  let devNull: fs.Stats | null = null;
  try {
    devNull = fs.statSync('/dev/null');
  } catch {
    return;
  }
  if (!stat.isCharacterDevice() || stat.rdev !== devNull.rdev) return;
  const flags = /^flags:\s*([0-7]+)/m.exec(readFdInfo(1))?.[1];
  if (flags !== undefined && (parseInt(flags, 8) & 3) === fs.constants.O_RDWR) {
    throw new ToolError('WRITE', 'stdout: is closed (it reads as /dev/null opened read-write): nothing would be written; name /dev/null as DEST to discard the output');
  }
}

function readFdInfo(fd: number): string {
  try {
    return fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  } catch {
    return '';
  }
}

function streamDestination(name: string, fd: number, stat: fs.Stats | null, owned: boolean): OpenedDestination {
  const close = (): void => {
    if (owned) fs.closeSync(fd);
  };
  return { name, kind: 'stream', fd, stat, oldLength: 0, capacity: null, sectorSize: 512, directFd: null, holeUnit: 0, replacing: false, temporary: false, abandoned: 'the output is incomplete', commit: close, discard: close };
}

function blockDestination(name: string, stat: fs.Stats, force: boolean): OpenedDestination {
  if (!force) {
    const use = findDeviceUse(stat.rdev);
    if (use.inUse) {
      throw new ToolError('DEST_IN_USE', `${name}: device is in use (${use.reason}); refusing to write (use --force to override)`);
    }
  }
  let fd: number;
  try {
    // O_EXCL on a block device is an exclusive claim: it fails with EBUSY while mounted or held,
    // and keeps anyone from mounting it while we write.
    fd = fs.openSync(name, fs.constants.O_RDWR | (force ? 0 : fs.constants.O_EXCL));
  } catch (err) {
    if (systemErrorCode(err) === 'EBUSY') {
      throw new ToolError('DEST_IN_USE', `${name}: device is in use (opened exclusively elsewhere); refusing to write (use --force to override)`);
    }
    throw destinationError(name, err);
  }
  const capacity = deviceSize(fd);
  let directFd: number | null = null;
  try {
    // No O_EXCL here: the exclusive claim is already held through `fd`.
    directFd = fs.openSync(name, fs.constants.O_RDWR | fs.constants.O_DIRECT);
  } catch {
    directFd = null; // a device without O_DIRECT support: buffered writes only
  }
  const close = (): void => {
    if (directFd !== null) fs.closeSync(directFd);
    fs.closeSync(fd);
  };
  return { name, kind: 'block', fd, stat, oldLength: capacity, capacity, sectorSize: deviceSectorSize(fd), directFd, holeUnit: 4096, replacing: false, temporary: false, abandoned: 'partly written', commit: close, discard: close };
}

function overlayDestination(name: string, stat: fs.Stats): OpenedDestination {
  let fd: number;
  try {
    fd = fs.openSync(name, fs.constants.O_RDWR);
  } catch (err) {
    throw destinationError(name, err);
  }
  const close = (): void => fs.closeSync(fd);
  return { name, kind: 'file', fd, stat, oldLength: stat.size, capacity: null, sectorSize: 512, directFd: null, holeUnit: filesystemBlockSize(name), replacing: false, temporary: false, abandoned: 'partly written (it is written in place with --overlay)', commit: close, discard: close };
}

function replacementDestination(name: string, stat: fs.Stats | null): OpenedDestination {
  // Write next to the real file (through a symlink), so the rename stays on one filesystem and
  // replaces the file, not the link.
  let finalPath = stat ? name : creationPath(name);
  if (stat) {
    try {
      finalPath = fs.realpathSync(name);
    } catch (err) {
      throw destinationError(name, err);
    }
  }
  const dir = path.dirname(finalPath);
  const mode = stat ? stat.mode & 0o7777 : 0o666 & ~process.umask();
  const { fd, tempPath } = createTempFile(dir, path.basename(finalPath), name);
  // The final mode is set explicitly: open() would filter a replaced file's mode through the umask.
  fs.fchmodSync(fd, mode);
  registerExitCleanup(tempPath);
  let open = true;
  const closeOnce = (): void => {
    if (open) fs.closeSync(fd);
    open = false;
  };
  return {
    name,
    kind: 'file',
    fd,
    stat,
    oldLength: 0,
    capacity: null,
    sectorSize: 512,
    directFd: null,
    holeUnit: filesystemBlockSize(dir),
    replacing: stat !== null,
    directory: dir,
    temporary: true,
    abandoned: stat ? 'left as it was' : 'not created',
    commit: () => {
      if (stat) {
        try {
          // Keep the replaced file's owner, as truncating it in place (v0.10) did.
          fs.fchownSync(fd, stat.uid, stat.gid);
        } catch {
          /* not permitted for a non-root user: the new file is theirs, as cp would leave it */
        }
      }
      closeOnce();
      try {
        fs.renameSync(tempPath, finalPath);
      } catch (err) {
        fs.rmSync(tempPath, { force: true });
        throw destinationError(name, err, 'cannot rename the finished copy into place');
      } finally {
        unregisterExitCleanup(tempPath);
      }
    },
    discard: () => {
      closeOnce();
      fs.rmSync(tempPath, { force: true });
      unregisterExitCleanup(tempPath);
    },
  };
}

function filesystemBlockSize(p: string): number {
  try {
    return fs.statfsSync(p).bsize || 4096;
  } catch {
    return 4096;
  }
}

/**
 * A new file next to the destination, ".NAME.sparsecopy-PID-START-XXXXXXXX" (io/temp-files.ts),
 * created with O_EXCL so that nothing existing is ever opened; another name is tried if one is
 * taken. What killed copies left in the directory (their process is gone) is removed first.
 */
function createTempFile(dir: string, base: string, name: string): { fd: number; tempPath: string } {
  removeStale(dir, isStaleCopyTemp);
  for (let attempt = 0; ; attempt++) {
    const tempPath = path.join(dir, copyTempName(base));
    try {
      return { fd: fs.openSync(tempPath, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600), tempPath };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && attempt < 16) continue;
      throw destinationError(name, err, 'cannot create destination');
    }
  }
}
