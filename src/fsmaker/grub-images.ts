/**
 * GRUB images for fsmaker: the i386-pc core.img (+ the shipped boot.img) and the x86_64-efi
 * BOOTX64.EFI, built with `grub-mkimage` from the module directories of Debian's grub-pc-bin /
 * grub-efi-amd64-bin. Both embed every module they need and the same early config, which finds
 * the FAT partition by its volume serial and sets the prefix to ($root)/grub, so the disk needs
 * only /grub/grub.cfg (see shared/notes/boot-recipe.md). grub-mkimage is the only external
 * program fsmaker runs; it needs no root. Its output is reproducible: GRUB 2.06 (Debian 12)
 * gives byte-identical images for the same inputs and module directory (no timestamps).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ToolError } from '../errors.js';
import { bootImageProblem, coreImageProblem } from './grub-bios.js';

const execFileAsync = promisify(execFile);

export const DEFAULT_GRUB_LIB = '/usr/lib/grub';

/** Modules embedded in both images (besides the platform's disk/video module). */
export const GRUB_COMMON_MODULES = [
  'part_msdos', 'part_gpt', 'fat', 'ext2', 'normal', 'configfile', 'linux', 'search',
  'search_fs_uuid', 'search_fs_file', 'echo', 'test', 'serial', 'terminal', 'sleep', 'halt', 'reboot',
] as const;
export const GRUB_BIOS_MODULES = ['biosdisk', ...GRUB_COMMON_MODULES] as const;
export const GRUB_EFI_MODULES = ['efi_gop', ...GRUB_COMMON_MODULES] as const;

export type GrubFirmware = 'bios' | 'uefi' | 'both';

export interface GrubDirs {
  /** Directory holding boot.img, kernel.img, *.mod for i386-pc, or null when not installed. */
  i386Pc: string | null;
  /** Directory holding kernel.img, *.mod for x86_64-efi, or null when not installed. */
  x86_64Efi: string | null;
}

export interface GrubDirMissing {
  platform: 'i386-pc' | 'x86_64-efi';
  dir: string;
  /** The Debian package that provides the directory. */
  debianPackage: 'grub-pc-bin' | 'grub-efi-amd64-bin';
}

export interface GrubDirsResult extends GrubDirs {
  /** Platforms whose module directory is missing (empty when both are there). */
  missing: GrubDirMissing[];
}

function usable(dir: string, needBootImg: boolean): boolean {
  return fs.existsSync(path.join(dir, 'kernel.img')) && fs.existsSync(path.join(dir, 'normal.mod'))
    && (!needBootImg || fs.existsSync(path.join(dir, 'boot.img')));
}

/**
 * The GRUB module directories under `override` (a directory containing i386-pc/ and
 * x86_64-efi/, default /usr/lib/grub). A platform not installed is null and listed in
 * `missing` with the Debian package that provides it.
 */
export function findGrubDirs(override?: string): GrubDirsResult {
  const base = override ?? DEFAULT_GRUB_LIB;
  const pc = path.join(base, 'i386-pc');
  const efi = path.join(base, 'x86_64-efi');
  const missing: GrubDirMissing[] = [];
  const i386Pc = usable(pc, true) ? pc : null;
  const x86_64Efi = usable(efi, false) ? efi : null;
  if (!i386Pc) missing.push({ platform: 'i386-pc', dir: pc, debianPackage: 'grub-pc-bin' });
  if (!x86_64Efi) missing.push({ platform: 'x86_64-efi', dir: efi, debianPackage: 'grub-efi-amd64-bin' });
  return { i386Pc, x86_64Efi, missing };
}

export interface BuildGrubImagesOptions {
  /** FAT volume serial as GRUB prints it, 'xxxx-xxxx' (case-insensitive). */
  fatSerial: string;
  firmware: GrubFirmware;
  grubDirs: GrubDirs;
  /** Scratch directory (must exist); early.cfg and the images are written there. */
  workDir: string;
  /** grub-mkimage executable (default: found on PATH). */
  grubMkimage?: string;
  /** Stops the runs (their processes are killed); the build then fails with the signal's reason. */
  signal?: AbortSignal;
}

export interface GrubImages {
  /** i386-pc core.img (diskboot + kernel + modules + early config), unpatched. */
  coreImg?: Buffer;
  /** i386-pc boot.img as shipped (512 bytes), to be patched with patchBootSector. */
  bootImg?: Buffer;
  /** x86_64-efi image, to be stored as /EFI/BOOT/BOOTX64.EFI. */
  efiImg?: Buffer;
}

const SERIAL_RE = /^[0-9a-f]{4}-[0-9a-f]{4}$/i;

/** The early config embedded in both images. */
export function grubEarlyConfig(fatSerial: string): string {
  if (!SERIAL_RE.test(fatSerial)) {
    throw new RangeError(`grubEarlyConfig: FAT serial must look like xxxx-xxxx, got ${JSON.stringify(fatSerial)}`);
  }
  return `search --no-floppy --fs-uuid --set=root ${fatSerial.toLowerCase()}\nset prefix=($root)/grub\n`;
}

async function mkimage(exe: string, format: string, dir: string, earlyCfg: string, out: string, modules: readonly string[], signal?: AbortSignal): Promise<Buffer> {
  try {
    await execFileAsync(exe, ['-d', dir, '-O', format, '-c', earlyCfg, '-p', '/grub', '-o', out, ...modules], { signal });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new ToolError('GRUB_MISSING', `grub-mkimage not found (${exe}): install the Debian package grub-common`);
    }
    const why = (e.stderr ?? e.message).trim().split('\n').pop() ?? '';
    // GRUB's own limit for i386-pc (480 KiB, below the room fsmaker leaves) is the one that bites.
    if (/core image is too big/.test(why)) throw new ToolError('CORE_TOO_LARGE', `core.img built from ${dir} is too large: ${why}`);
    throw new ToolError('GRUB_MISSING', `grub-mkimage -O ${format} with the files in ${dir} failed: ${why}`);
  }
  return fs.readFileSync(out);
}

/** `image` when `problem` finds nothing wrong with it; else the GRUB files are unusable (24, naming them). */
function usableImage(what: string, image: Buffer, problem: (image: Buffer) => string | null): Buffer {
  const why = problem(image);
  if (why) throw new ToolError('GRUB_MISSING', `${what}: ${why}: not GRUB's i386-pc image (reinstall grub-pc-bin, or check -g)`);
  return image;
}

/** Runs grub-mkimage for the requested firmware(s) and returns the images as buffers. */
export async function buildGrubImages(options: BuildGrubImagesOptions): Promise<GrubImages> {
  const { fatSerial, firmware, grubDirs, workDir } = options;
  const exe = options.grubMkimage ?? 'grub-mkimage';
  const earlyCfg = path.join(workDir, 'early.cfg');
  fs.writeFileSync(earlyCfg, grubEarlyConfig(fatSerial));
  const result: GrubImages = {};
  // The two grub-mkimage runs are independent processes: run them at once (2 cores).
  const runs: Promise<void>[] = [];
  if (firmware === 'bios' || firmware === 'both') {
    if (!grubDirs.i386Pc) throw new Error('GRUB i386-pc modules not found: install the Debian package grub-pc-bin');
    const i386Pc = grubDirs.i386Pc;
    result.bootImg = usableImage(path.join(i386Pc, 'boot.img'), fs.readFileSync(path.join(i386Pc, 'boot.img')), bootImageProblem);
    const coreFile = path.join(workDir, 'core.img');
    runs.push(mkimage(exe, 'i386-pc', i386Pc, earlyCfg, coreFile, GRUB_BIOS_MODULES, options.signal).then((img) => void (result.coreImg = usableImage(`core.img made by grub-mkimage from ${i386Pc}`, img, coreImageProblem))));
  }
  if (firmware === 'uefi' || firmware === 'both') {
    if (!grubDirs.x86_64Efi) throw new Error('GRUB x86_64-efi modules not found: install the Debian package grub-efi-amd64-bin');
    runs.push(mkimage(exe, 'x86_64-efi', grubDirs.x86_64Efi, earlyCfg, path.join(workDir, 'BOOTX64.EFI'), GRUB_EFI_MODULES, options.signal).then((img) => void (result.efiImg = img)));
  }
  await Promise.all(runs);
  return result;
}
