/**
 * What fsmaker refuses before it reads a rootfs block or writes a byte: an output that is one of
 * its inputs (13, as sparsecopy), a boot directory that cannot be read, options GRUB or the
 * partition table cannot take.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ToolError, describeSystemError } from '../errors.js';
import { sameTarget } from '../io/target.js';
import type { FatFile } from './fat.js';
import { grubConfig } from './grub-config.js';
import { readFileRange } from './read-range.js';

/**
 * Whether two paths name the same file or device (symlinks followed, hard links alike). The one
 * place fsmaker decides it, so that src/io's fuller answer (loop devices and their backing files)
 * can replace it.
 */
export function sameFile(a: string, b: string): boolean {
  let sa: fs.Stats;
  let sb: fs.Stats;
  try {
    sa = fs.statSync(a);
    sb = fs.statSync(b);
  } catch {
    return false;
  }
  return sameTarget(sa, sb);
}

export interface NamedInput {
  /** What it is to fsmaker: "the rootfs", "the kernel"... */
  role: string;
  path: string;
}

/** Refuses an output that is one of the inputs (SAME_FILE, 13), naming both. */
export function refuseOutputAmongInputs(output: string, inputs: NamedInput[]): void {
  if (output === '-' || output === '') return;
  for (const input of inputs) {
    if (sameFile(input.path, output)) throw new ToolError('SAME_FILE', `${output}: the output is ${input.role} ${input.path}: nothing written`);
  }
}

/** The real path of `p`, or of its parent directory joined with its name when `p` does not exist yet. */
function realPathOf(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    try {
      return path.join(fs.realpathSync(path.dirname(path.resolve(p))), path.basename(p));
    } catch {
      return path.resolve(p);
    }
  }
}

/** Refuses an output that is or lies inside a directory fsmaker reads (SAME_FILE, 13). */
export function refuseOutputInside(output: string, dir: string, role: string): void {
  if (output === '-' || output === '') return;
  const realDir = realPathOf(dir);
  const realOut = realPathOf(output);
  if (realOut === realDir || realOut.startsWith(`${realDir}${path.sep}`)) throw new ToolError('SAME_FILE', `${output}: the output lies inside ${role} ${dir}: nothing written`);
}

/**
 * The files of --bootdir DIR for the boot partition, each checked not to be the output; DIR
 * itself must be a readable directory that does not hold the output (its temporary file would be
 * written, and read back, inside it).
 */
export function bootDirFiles(dir: string | undefined, output: string): FatFile[] {
  if (dir === undefined) return [];
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    throw new ToolError('USAGE', `${dir}: cannot read the boot directory: ${describeSystemError(err)}`);
  }
  if (!st.isDirectory()) throw new ToolError('USAGE', `${dir}: the boot directory is not a directory`);
  refuseOutputInside(output, dir, 'the boot directory');
  const files: FatFile[] = [];
  const walk = (rel: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
    } catch (err) {
      throw new ToolError('USAGE', `${path.join(dir, rel)}: cannot read the boot directory: ${describeSystemError(err)}`);
    }
    for (const entry of entries) {
      const r = rel ? `${rel}/${entry.name}` : entry.name;
      const full = path.join(dir, r);
      if (entry.isDirectory()) walk(r);
      else if (entry.isFile()) {
        refuseOutputAmongInputs(output, [{ role: "the boot directory's file", path: full }]);
        files.push({ path: r, size: fs.statSync(full).size, read: (o, n) => readFileRange(full, o, n) });
      }
    }
  };
  walk('');
  return files;
}

/** FAT's limit (2^32 sectors of 512 bytes), above any boot partition. */
const MAX_BOOT_BYTES = 2 ** 41;
const SPARE_TYPE = /^[a-z0-9][a-z0-9_-]*$/i;

export interface CheckedOptions {
  bootBytes?: number;
  spareType?: string;
  append?: string;
  timeoutSeconds?: number;
  firmware?: 'bios' | 'uefi' | 'both';
}

/** Refuses options the disk cannot be made with (USAGE, 1), before any work. */
export function checkOptions(options: CheckedOptions): void {
  const { bootBytes, spareType } = options;
  if (bootBytes !== undefined) {
    if (bootBytes <= 0) throw new ToolError('USAGE', `bad boot size ${bootBytes} bytes: the boot partition cannot be empty`);
    if (bootBytes > MAX_BOOT_BYTES) throw new ToolError('USAGE', `bad boot size ${bootBytes} bytes: a FAT boot partition holds at most 2 TiB`);
  }
  if (spareType !== undefined && !SPARE_TYPE.test(spareType)) throw new ToolError('USAGE', `bad -t '${spareType}': expected a filesystem name such as ext4 (mkfs.TYPE runs), or none`);
  // The GRUB configuration is pure: making it now refuses what it cannot hold.
  grubConfig({ rootPartUuid: '00000000-01', append: options.append, timeoutSeconds: options.timeoutSeconds ?? 1, firmware: options.firmware ?? 'both' });
}
