/**
 * fsmaker's assembly: a bare root filesystem image becomes a bootable partitioned disk, streamed
 * as one composite extent source (table sectors + GRUB + boot FAT + the rootfs file + spare +
 * backup GPT) into any sparsecopy sink. No root privileges, loop devices or mounts; the only
 * programs run are grub-mkimage (GRUB's images), the spare partition's mkfs (on a sparse
 * temporary file) and, once, scripts/fetch-kernel.sh for the default kernel.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ToolError, describeSystemError } from '../errors.js';
import { type Piece, concatPieces } from '../extent/concat.js';
import { registerExitCleanup, unregisterExitCleanup } from '../io/exit-cleanup.js';
import { DEFAULT_CHUNK_BYTES, sourceExtents } from '../io/sources.js';
import { prestartWriterThread } from '../io/writer-thread.js';
import { isStaleWorkDir, removeStale, workDirName } from '../io/temp-files.js';
import { type OpenedInput, openInput } from '../io/target.js';
import { partUuid } from '../partition/show.js';
import { serializeTable } from '../partition/read.js';
import { copyExtents, needsExtentsInOrder, refuseOutputUpFront } from '../sparsecopy/copy.js';
import type { CopySummary, SparseCopyOptions } from '../sparsecopy/options.js';
import { type BootChoice, chooseBoot } from './boot-choice.js';
import { planFat, type FatFile } from './fat.js';
import { patchBootSector, patchCoreImage } from './grub-bios.js';
import { grubConfig } from './grub-config.js';
import { type GrubFirmware, type GrubImages, buildGrubImages, findGrubDirs } from './grub-images.js';
import { type DiskLayout, planDisk } from './layout.js';
import { bootDirFiles, checkOptions, refuseOutputAmongInputs } from './preflight.js';
import { type Rootfs, inspectRootfs } from './rootfs.js';

export type { BootChoice, BootFile } from './boot-choice.js';
export { inspectRootfs } from './rootfs.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;

export interface FsmakerOptions {
  rootImage: string;
  output: string;
  kernel?: string;
  initrd?: string;
  /** Total image size; the space after boot and root becomes the spare partition. */
  sizeBytes?: number;
  /** Boot (FAT) partition size (default 128 MiB: FAT32 with room for several kernels). */
  bootBytes?: number;
  /** Filesystem of the spare partition (mkfs.TYPE), or 'none' to leave it unformatted. */
  spareType?: string;
  /** Extra files for the boot partition (copied under their relative paths). */
  bootDir?: string;
  /** Directory holding GRUB's i386-pc and x86_64-efi directories (default /usr/lib/grub). */
  grubDir?: string;
  label?: 'mbr' | 'gpt';
  firmware?: 'bios' | 'uefi' | 'both';
  seed?: string;
  append?: string;
  timeoutSeconds?: number;
  /** Stops the run (SIGINT/SIGTERM): child processes are killed, nothing is left behind. */
  signal?: AbortSignal;
  /** Passed to the sink: the output format (gzip, qcow2 and its cluster size...), digests, --force, progress. */
  copy?: FsmakerCopyOptions;
}

export type FsmakerCopyOptions = Omit<SparseCopyOptions, 'source' | 'destination' | 'signal'>;

export interface FsmakerResult extends CopySummary {
  layout: DiskLayout;
  rootfs: { type: string; uuid?: string; label?: string };
  boot: BootChoice;
}

const repoRoot = (): string => path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** -k/-i, else the rootfs's own /boot/vmlinuz and /boot/initrd.img (ext2/3/4), else the default; each checked. */
export function chooseBootFiles(options: Pick<FsmakerOptions, 'kernel' | 'initrd'>, rootfs: Rootfs): BootChoice {
  return chooseBoot({ kernel: options.kernel, initrd: options.initrd, repoRoot: repoRoot() }, rootfs);
}

/** Refuses an output that is the rootfs, the kernel or the initrd (13), before anything is opened for writing. */
function refuseOutputAsInput(options: FsmakerOptions): void {
  refuseOutputAmongInputs(options.output, [
    { role: 'the rootfs', path: options.rootImage },
    ...(options.kernel !== undefined ? [{ role: 'the kernel', path: options.kernel }] : []),
    ...(options.initrd !== undefined ? [{ role: 'the initrd', path: options.initrd }] : []),
  ]);
}

const memoryFile = (p: string, data: Buffer): FatFile => ({ path: p, size: data.length, read: (o, n) => data.subarray(o, o + n) });
const serialText = (serial: number): string => {
  const h = (serial >>> 0).toString(16).padStart(8, '0');
  return `${h.slice(0, 4)}-${h.slice(4)}`;
};

/** Formats the spare partition with the system's mkfs on a sparse temporary file (killed on abort). */
async function formatSpare(type: string, bytes: number, workDir: string, signal: AbortSignal): Promise<string> {
  const file = path.join(workDir, 'spare.img');
  try {
    fs.writeFileSync(file, '');
    fs.truncateSync(file, bytes);
  } catch (err) {
    throw new ToolError('SPARE_MKFS', `${file}: cannot make the ${bytes}-byte spare partition image: ${describeSystemError(err)}`);
  }
  try {
    await execFileAsync(`mkfs.${type}`, type.startsWith('ext') ? ['-q', '-F', file] : [file], { signal });
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const why = e.code === 'ENOENT' ? `mkfs.${type} not found` : ((e.stderr ?? '').trim().split('\n').pop() || describeSystemError(err));
    throw new ToolError('SPARE_MKFS', `mkfs.${type} for the spare partition failed: ${why}`);
  }
  return file;
}

/**
 * Makes the disk. Everything that can refuse it is checked first, before GRUB is built or a byte
 * is written: the options, an output that is an input, the rootfs (as Linux would mount it), the
 * kernel and initrd, the layout, whether the boot files fit and what the output format refuses.
 */
export async function makeBootableDisk(options: FsmakerOptions): Promise<FsmakerResult> {
  const inAnyOrder = takesExtentsInAnyOrder(options);
  // A disk image is written from a writer thread: start it now, so that it is running (about
  // 25 ms, on the other core) by the time the copy starts.
  if (inAnyOrder) void prestartWriterThread();
  const label = options.label ?? 'mbr';
  const firmware = options.firmware ?? 'both';
  const bootBytes = options.bootBytes ?? 128 * MiB;
  checkOptions({ ...options, bootBytes });
  refuseOutputAsInput(options);
  const extraBootFiles = bootDirFiles(options.bootDir, options.output);
  const rootfs = inspectRootfs(options.rootImage);
  try {
    const grubDirs = findGrubDirs(options.grubDir);
    const needed = grubDirs.missing.filter((m) => (m.platform === 'i386-pc' ? firmware !== 'uefi' : firmware !== 'bios'));
    if (needed.length > 0) {
      throw new ToolError('GRUB_MISSING', `GRUB files missing: ${needed.map((m) => `${m.dir} (install the Debian package ${m.debianPackage})`).join(', ')}`);
    }
    const boot = chooseBootFiles(options, rootfs);
    // Without --seed, one random seed for the whole run: the layout is planned twice (before and
    // after GRUB's image size is known) and must keep the same FAT serial both times.
    const seed = options.seed ?? randomBytes(16).toString('hex');
    const plan = (coreSectors: number): DiskLayout => {
      let layout: DiskLayout;
      try {
        layout = planDisk({ label, rootBytes: rootfs.size, bootBytes, totalBytes: options.sizeBytes, coreSectors, seed });
      } catch (err) {
        if (err instanceof ToolError && err.code === 'USAGE') throw new ToolError(/core.img/.test(err.message) ? 'CORE_TOO_LARGE' : /--size allows/.test(err.message) ? 'ROOTFS_TOO_LARGE' : 'USAGE', err.message);
        throw err;
      }
      serializeTable(layout.table); // refuses a table its format cannot hold (MBR's 32-bit fields)
      return layout;
    };
    // Where everything goes does not depend on core.img's size (only whether it fits), so the
    // layout is known before GRUB is built, with the FAT serial GRUB's early config searches for.
    const layout = plan(0);
    // An output its format cannot take (a qcow2 to stdout or a device, or larger than its clusters
    // map; --compress on a raw image) is refused as sparsecopy refuses it, before GRUB is built or
    // the spare partition formatted.
    refuseOutputUpFront({ ...options.copy, source: options.rootImage, destination: options.output }, layout.totalBytes);
    planBootFat(layout, boot, options, firmware, extraBootFiles, null); // refuses boot files that do not fit
    return await writeDisk(options, { rootfs, boot, layout, plan, firmware, extraBootFiles, inAnyOrder, grubDirs });
  } finally {
    rootfs.close();
  }
}

interface DiskPlan {
  rootfs: Rootfs;
  boot: BootChoice;
  layout: DiskLayout;
  plan: (coreSectors: number) => DiskLayout;
  firmware: GrubFirmware;
  extraBootFiles: FatFile[];
  inAnyOrder: boolean;
  grubDirs: ReturnType<typeof findGrubDirs>;
}

/** Builds GRUB, formats the spare partition and streams the disk, in a work directory that never outlives the run. */
async function writeDisk(options: FsmakerOptions, d: DiskPlan): Promise<FsmakerResult> {
  const { layout, inAnyOrder } = d;
  // Stopped by the caller's signal, or here when anything fails: child processes never outlive the run.
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  removeStale(os.tmpdir(), (name) => isStaleWorkDir('fsmaker', name));
  const workDir = path.join(os.tmpdir(), workDirName('fsmaker'));
  fs.mkdirSync(workDir, { mode: 0o700 });
  registerExitCleanup(workDir);
  let building: Promise<GrubImages> | null = null;
  try {
    // grub-mkimage runs in child processes while this thread formats the spare partition and, for
    // a disk image or a device, writes the rootfs.
    building = buildGrubImages({ fatSerial: serialText(layout.fatSerial), firmware: d.firmware, grubDirs: d.grubDirs, workDir, signal });
    building.catch(() => undefined); // its failure is reported where it is awaited
    const head = async (): Promise<Piece[]> => {
      const images = await building!;
      d.plan(images.coreImg ? Math.ceil(images.coreImg.length / 512) : 0); // refuses a core.img too large for its room
      return headPieces(layout, images, d.boot, options, d.firmware, d.extraBootFiles);
    };

    let rootInput: OpenedInput | null = null;
    let spareInput: OpenedInput | null = null;
    try {
      if (layout.spare && (options.spareType ?? 'ext3') !== 'none') {
        spareInput = openInput(await formatSpare(options.spareType ?? 'ext3', layout.spare.sectors * 512, workDir, signal));
      }
      signal.throwIfAborted();
      rootInput = openInput(options.rootImage);
      const tail = tailPieces(layout, rootInput, spareInput);
      const headEnd = layout.root.startLba * 512;
      const total = layout.totalBytes;
      const extents = inAnyOrder
        ? (async function* () {
            yield* concatPieces(tail, total, headEnd);
            yield* concatPieces(await head(), headEnd);
          })()
        : concatPieces([...(await head()), ...tail], total);
      const summary = await copyExtents(
        { name: options.rootImage, length: total, extents, anyOrder: inAnyOrder },
        { ...options.copy, ...ovaFirmwareOf(d.firmware), destination: options.output, blockSize: 4096, signal },
      );
      return { ...summary, layout, rootfs: { type: d.rootfs.type, uuid: d.rootfs.uuid, label: d.rootfs.label }, boot: d.boot };
    } finally {
      spareInput?.close();
      rootInput?.close();
    }
  } finally {
    if (!signal.aborted) stop.abort(new Error('fsmaker: the run ended'));
    await building?.catch(() => undefined); // nothing may still write into workDir once it is removed
    fs.rmSync(workDir, { recursive: true, force: true });
    unregisterExitCleanup(workDir);
  }
}

/**
 * What an OVA's OVF says the disk boots under: BIOS or EFI when fsmaker built only that; a disk
 * that boots under both leaves the choice to the host (no firmware entry: its default works).
 */
function ovaFirmwareOf(firmware: GrubFirmware): Pick<SparseCopyOptions, 'ovaFirmware'> {
  return firmware === 'bios' ? { ovaFirmware: 'bios' } : firmware === 'uefi' ? { ovaFirmware: 'efi' } : {};
}

/**
 * A disk image takes the disk's extents in any order: the rootfs first, while GRUB is built, then
 * the boot pieces. It is written under a temporary name, so a failure to build GRUB after the
 * rootfs is written still leaves nothing behind. Not a block device (it would be left half
 * written), a stream, a .gz or digests (they need the bytes in order): those wait for GRUB.
 */
function takesExtentsInAnyOrder(options: FsmakerOptions): boolean {
  if (options.output === '-' || needsExtentsInOrder({ ...options.copy, source: options.rootImage, destination: options.output })) return false;
  try {
    return fs.statSync(options.output).isFile();
  } catch {
    return true; // a new file
  }
}

/** The boot partition's FAT: kernel, initrd, grub.cfg, the EFI image (once built) and --bootdir's files. */
function planBootFat(layout: DiskLayout, boot: BootChoice, options: FsmakerOptions, firmware: GrubFirmware, extra: FatFile[], efiImg: Buffer | null): ReturnType<typeof planFat> {
  const cfg = grubConfig({ rootPartUuid: partUuid(layout.table, 1), append: options.append, timeoutSeconds: options.timeoutSeconds ?? 1, firmware });
  const files: FatFile[] = [
    { path: 'vmlinuz', size: boot.kernel.size, read: boot.kernel.read },
    { path: 'initrd.img', size: boot.initrd.size, read: boot.initrd.read },
    memoryFile('grub/grub.cfg', Buffer.from(cfg)),
    ...(efiImg ? [memoryFile('EFI/BOOT/BOOTX64.EFI', efiImg)] : []),
    ...extra,
  ];
  const epoch = process.env.SOURCE_DATE_EPOCH;
  return planFat({
    sizeBytes: layout.boot.sectors * 512,
    volumeLabel: 'BOOT',
    serial: layout.fatSerial,
    hiddenSectors: layout.boot.startLba,
    files,
    timestamp: epoch !== undefined ? new Date(Number(epoch) * 1000) : undefined,
  });
}

/** Everything before the rootfs: the partition table (boot.img in the MBR), core.img, the FAT. */
function headPieces(layout: DiskLayout, images: GrubImages, boot: BootChoice, options: FsmakerOptions, firmware: GrubFirmware, extra: FatFile[]): Piece[] {
  const fat = planBootFat(layout, boot, options, firmware, extra, images.efiImg ?? null);
  const pieces: Piece[] = [];
  for (const w of tableWrites(layout).head) {
    let data = w.data;
    if (w.lba === 0 && images.bootImg) data = Buffer.concat([patchBootSector(images.bootImg, data.subarray(0, 512), layout.coreLba), data.subarray(512)]);
    pieces.push({ name: `table at LBA ${w.lba}`, offset: w.lba * 512, length: data.length, source: data });
  }
  if (images.coreImg) {
    const coreBytes = Math.ceil(images.coreImg.length / 512) * 512;
    pieces.push({ name: 'core.img', offset: layout.coreLba * 512, length: coreBytes, source: padTo(patchCoreImage(images.coreImg, layout.coreLba, layout.coreRoomSectors), coreBytes) });
  }
  pieces.push({ name: 'boot filesystem', offset: layout.boot.startLba * 512, length: layout.boot.sectors * 512, source: fat.extents() });
  return pieces;
}

/** The rootfs, the spare partition and the backup GPT: nothing here waits for GRUB. */
function tailPieces(layout: DiskLayout, rootInput: OpenedInput, spareInput: OpenedInput | null): Piece[] {
  const pieces: Piece[] = [{ name: 'rootfs', offset: layout.root.startLba * 512, length: layout.root.sectors * 512, source: sourceExtents(rootInput, { chunkBytes: DEFAULT_CHUNK_BYTES }) }];
  if (spareInput && layout.spare) {
    pieces.push({ name: 'spare', offset: layout.spare.startLba * 512, length: layout.spare.sectors * 512, source: sourceExtents(spareInput, { chunkBytes: DEFAULT_CHUNK_BYTES }) });
  }
  for (const w of tableWrites(layout).tail) pieces.push({ name: `table at LBA ${w.lba}`, offset: w.lba * 512, length: w.data.length, source: w.data });
  return pieces;
}

/** The table's sectors before the rootfs (MBR, or protective MBR and primary GPT) and after it (backup GPT). */
function tableWrites(layout: DiskLayout): { head: ReturnType<typeof serializeTable>; tail: ReturnType<typeof serializeTable> } {
  const writes = serializeTable(layout.table);
  const before = (w: { lba: number }): boolean => w.lba < layout.root.startLba;
  return { head: writes.filter(before), tail: writes.filter((w) => !before(w)) };
}

function padTo(data: Buffer, length: number): Buffer {
  return data.length >= length ? data : Buffer.concat([data, Buffer.alloc(length - data.length)]);
}

