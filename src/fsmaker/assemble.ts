/**
 * fsmaker's assembly: a bare root filesystem image becomes a bootable partitioned disk, streamed
 * as one composite extent source (table sectors + GRUB + boot FAT + the rootfs file + spare +
 * backup GPT) into any sparsecopy sink. No root privileges, loop devices or mounts; the only
 * programs run are grub-mkimage (GRUB's images), the spare partition's mkfs (on a sparse
 * temporary file) and, once, scripts/fetch-kernel.sh for the default kernel.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ToolError, describeSystemError } from '../errors.js';
import { type Piece, concatPieces } from '../extent/concat.js';
import { DEFAULT_CHUNK_BYTES, sourceExtents } from '../io/sources.js';
import { prestartWriterThread } from '../io/writer-thread.js';
import { isStaleWorkDir, removeStale, workDirName } from '../io/temp-files.js';
import { type OpenedInput, openInput } from '../io/target.js';
import { partUuid } from '../partition/show.js';
import { serializeTable } from '../partition/read.js';
import { copyExtents, needsExtentsInOrder } from '../sparsecopy/copy.js';
import type { CopySummary, SparseCopyOptions } from '../sparsecopy/options.js';
import { planFat, type FatFile } from './fat.js';
import { detectFilesystem } from './fs-detect.js';
import { openExt } from './ext4.js';
import { patchBootSector, patchCoreImage } from './grub-bios.js';
import { grubConfig } from './grub-config.js';
import { type GrubFirmware, type GrubImages, buildGrubImages, findGrubDirs } from './grub-images.js';
import { buildInitramfs, initScript } from './initramfs.js';
import { DEFAULT_ROOT_MODULES, indexModules, resolveModuleOrder } from './kernel-modules.js';
import { type DiskLayout, planDisk } from './layout.js';
import { defaultBootCacheDir, findDefaultBootAssets } from './boot-assets.js';

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
  /** Passed to the sink: gzip output, digests, --force, progress. */
  copy?: Omit<SparseCopyOptions, 'source' | 'destination'>;
}

export interface BootChoice {
  kernel: { bytes: () => Buffer; size: number; from: string };
  initrd: { bytes: () => Buffer; size: number; from: string };
}

export interface FsmakerResult extends CopySummary {
  layout: DiskLayout;
  rootfs: { type: string; uuid?: string; label?: string };
  boot: BootChoice;
}

const repoRoot = (): string => path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function fileBytes(file: string, what: string): { bytes: () => Buffer; size: number; from: string } {
  try {
    const size = fs.statSync(file).size;
    return { bytes: () => fs.readFileSync(file), size, from: file };
  } catch (err) {
    throw new ToolError('KERNEL_MISSING', `${file}: cannot read the ${what}: ${describeSystemError(err)}`);
  }
}

/** Reads the rootfs superblock; refuses what is not a filesystem or is corrupt. */
export function inspectRootfs(rootImage: string): { type: string; uuid?: string; label?: string; size: number; read: (o: number, n: number) => Buffer } {
  let fd: number;
  try {
    fd = fs.openSync(rootImage, 'r');
  } catch (err) {
    throw new ToolError('ROOTFS_OPEN', `${rootImage}: cannot open the root filesystem: ${describeSystemError(err)}`);
  }
  const size = fs.fstatSync(fd).size;
  const read = (offset: number, length: number): Buffer => {
    const b = Buffer.alloc(length);
    const n = fs.readSync(fd, b, 0, length, offset);
    return b.subarray(0, n);
  };
  const found = detectFilesystem(read);
  if (!found) throw new ToolError('ROOTFS_UNKNOWN', `${rootImage}: not a filesystem fsmaker knows (ext2/3/4, xfs, btrfs, squashfs, erofs, vfat)`);
  if (found.corrupt) throw new ToolError('ROOTFS_UNKNOWN', `${rootImage}: corrupt ${found.type} superblock: ${found.corrupt}`);
  return { type: found.type, uuid: found.uuid, label: found.label, size, read };
}

/**
 * The default kernel, modules and busybox: found in the cache when scripts/fetch-kernel.sh has
 * filled it (the set-up does), else fetched by running it (13 ms even when there is nothing to
 * fetch: the cache is looked at first).
 */
function defaultBootAssets(): { kernel: string; modules: string; busybox: string } {
  const cached = findDefaultBootAssets(defaultBootCacheDir(repoRoot()));
  if (cached.status === 'ok') return { kernel: cached.kernel, modules: cached.modulesDir, busybox: cached.busybox };
  const script = path.join(repoRoot(), 'scripts/fetch-kernel.sh');
  const r = spawnSync('sh', [script], { encoding: 'utf8' });
  if (r.status !== 0) throw new ToolError('KERNEL_MISSING', `no kernel given and the default one is not available: ${r.stderr.trim().split('\n').pop()}`);
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(r.stdout)?.[1] ?? '';
  return { kernel: value('KERNEL'), modules: value('MODULES'), busybox: value('BUSYBOX') };
}

/** -k/-i, else the rootfs's own /boot/vmlinuz and /boot/initrd.img (ext2/3/4), else the default. */
export function chooseBoot(options: FsmakerOptions, rootfs: ReturnType<typeof inspectRootfs>): BootChoice {
  let kernel = options.kernel ? fileBytes(options.kernel, 'kernel') : null;
  let initrd = options.initrd ? fileBytes(options.initrd, 'initrd') : null;
  if ((!kernel || !initrd) && rootfs.type.startsWith('ext')) {
    const ext = openExt(rootfs.read);
    const own = (p: string) => {
      const inode = ext.lookup(p);
      return inode && inode.kind === 'file' ? { bytes: () => ext.readFile(inode), size: inode.size, from: `${p} in ${options.rootImage}` } : null;
    };
    kernel ??= own('/boot/vmlinuz') ?? own('/vmlinuz');
    initrd ??= own('/boot/initrd.img') ?? own('/initrd.img');
  }
  if (!kernel || !initrd) {
    const assets = defaultBootAssets();
    kernel ??= fileBytes(assets.kernel, 'kernel');
    if (!initrd) {
      const { image, moduleCount } = cachedInitramfs(assets.busybox, assets.modules, Number(process.env.SOURCE_DATE_EPOCH ?? 0));
      initrd = { bytes: () => image, size: image.length, from: `generated (busybox, ${moduleCount} modules from ${assets.modules})` };
    }
  }
  return { kernel, initrd };
}

/**
 * The generated initramfs, kept next to the cached kernel: building it (gzip -9 of busybox and the
 * modules) is most of a default run's fixed cost (0.8 s of 1.1 s here), and its inputs rarely
 * change. Even finding the modules and their dependencies costs 18 ms, so the cache is looked up
 * by what decides them: the /init script for the root modules asked for, the archive's mtime, and
 * the path, size and times of busybox and of the (extracted once, never modified) modules
 * directory. A change of any of them builds it again.
 */
function cachedInitramfs(busybox: string, modulesDir: string, mtime: number): { image: Buffer; moduleCount: number } {
  const key = createHash('sha256').update(initScript(60, [...DEFAULT_ROOT_MODULES])).update(String(mtime));
  for (const file of [busybox, modulesDir]) {
    const st = fs.statSync(file);
    key.update(`${file}\0${st.size}\0${st.mtimeMs}\0${st.ctimeMs}\0`);
  }
  const cached = path.join(path.dirname(busybox), `initramfs-${key.digest('hex').slice(0, 16)}`);
  try {
    const moduleCount = Number(fs.readFileSync(`${cached}.modules`, 'utf8'));
    if (Number.isInteger(moduleCount)) return { image: fs.readFileSync(`${cached}.img`), moduleCount };
  } catch {
    // not cached yet
  }
  const order = resolveModuleOrder(DEFAULT_ROOT_MODULES, indexModules(modulesDir));
  const image = buildInitramfs({ busybox, modules: order.map((m) => ({ name: m.name, path: m.path })), mtime });
  const tmp = `${cached}.${process.pid}.tmp`;
  try {
    // The image first: a count without its image is never read as a hit.
    fs.writeFileSync(tmp, image);
    fs.renameSync(tmp, `${cached}.img`);
    fs.writeFileSync(tmp, String(order.length));
    fs.renameSync(tmp, `${cached}.modules`);
  } catch {
    fs.rmSync(tmp, { force: true }); // a read-only cache still works, uncached
  }
  return { image, moduleCount: order.length };
}

function bootDirFiles(dir: string | undefined): FatFile[] {
  if (!dir) return [];
  const files: FatFile[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(r);
      else if (entry.isFile()) {
        const full = path.join(dir, r);
        files.push({ path: r, size: fs.statSync(full).size, read: (o, n) => readRange(full, o, n) });
      }
    }
  };
  walk('');
  return files;
}

function readRange(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(length);
    fs.readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

const memoryFile = (p: string, data: Buffer): FatFile => ({ path: p, size: data.length, read: (o, n) => data.subarray(o, o + n) });
const serialText = (serial: number): string => {
  const h = (serial >>> 0).toString(16).padStart(8, '0');
  return `${h.slice(0, 4)}-${h.slice(4)}`;
};

/** Formats the spare partition with the system's mkfs on a sparse temporary file. */
function formatSpare(type: string, bytes: number, workDir: string): string {
  const file = path.join(workDir, 'spare.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, bytes);
  const r = spawnSync(`mkfs.${type}`, type.startsWith('ext') ? ['-q', '-F', file] : [file], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new ToolError('SPARE_MKFS', `mkfs.${type} for the spare partition failed: ${r.error ? describeSystemError(r.error) : r.stderr.trim().split('\n').pop()}`);
  }
  return file;
}

export async function makeBootableDisk(options: FsmakerOptions): Promise<FsmakerResult> {
  const inAnyOrder = takesExtentsInAnyOrder(options);
  // A disk image is written from a writer thread: start it now, so that it is running (about
  // 25 ms, on the other core) by the time the copy starts.
  if (inAnyOrder) void prestartWriterThread();
  const label = options.label ?? 'mbr';
  const firmware = options.firmware ?? 'both';
  const rootfs = inspectRootfs(options.rootImage);
  const grubDirs = findGrubDirs(options.grubDir);
  const needed = grubDirs.missing.filter((m) => (m.platform === 'i386-pc' ? firmware !== 'uefi' : firmware !== 'bios'));
  if (needed.length > 0) {
    throw new ToolError('GRUB_MISSING', `GRUB files missing: ${needed.map((m) => `${m.dir} (install the Debian package ${m.debianPackage})`).join(', ')}`);
  }
  removeStale(os.tmpdir(), (name) => isStaleWorkDir('fsmaker', name));
  const workDir = path.join(os.tmpdir(), workDirName('fsmaker'));
  fs.mkdirSync(workDir, { mode: 0o700 });
  let building: Promise<GrubImages> | null = null;
  try {
    const bootBytes = options.bootBytes ?? 128 * MiB;
    // Without --seed, one random seed for the whole run: the layout is planned twice (before and
    // after GRUB's image size is known) and must keep the same FAT serial both times.
    const seed = options.seed ?? randomBytes(16).toString('hex');
    const plan = (coreSectors: number): DiskLayout => {
      try {
        return planDisk({ label, rootBytes: rootfs.size, bootBytes, totalBytes: options.sizeBytes, coreSectors, seed });
      } catch (err) {
        if (err instanceof ToolError) throw new ToolError(/core.img/.test(err.message) ? 'CORE_TOO_LARGE' : 'ROOTFS_TOO_LARGE', err.message);
        throw err;
      }
    };
    // Where everything goes does not depend on core.img's size (only whether it fits), so the
    // layout is known before GRUB is built, with the FAT serial GRUB's early config searches for.
    const layout = plan(0);
    // grub-mkimage runs in child processes while this thread finds the kernel and the initramfs
    // and, for a disk image or a device, writes the rootfs.
    building = buildGrubImages({ fatSerial: serialText(layout.fatSerial), firmware, grubDirs, workDir });
    building.catch(() => undefined); // its failure is reported where it is awaited
    const boot = chooseBoot(options, rootfs);
    const head = async (): Promise<Piece[]> => {
      const images = await building!;
      plan(images.coreImg ? Math.ceil(images.coreImg.length / 512) : 0); // refuses a core.img too large for its room
      return headPieces(layout, images, boot, options, firmware);
    };

    const rootInput = openInput(options.rootImage);
    let spareInput: ReturnType<typeof openInput> | null = null;
    try {
      if (layout.spare && (options.spareType ?? 'ext3') !== 'none') {
        spareInput = openInput(formatSpare(options.spareType ?? 'ext3', layout.spare.sectors * 512, workDir));
      }
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
        { ...options.copy, destination: options.output, blockSize: 4096 },
      );
      return { ...summary, layout, rootfs: { type: rootfs.type, uuid: rootfs.uuid, label: rootfs.label }, boot };
    } finally {
      spareInput?.close();
      rootInput.close();
    }
  } finally {
    await building?.catch(() => undefined); // nothing may still write into workDir once it is removed
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

/**
 * A disk image takes the disk's extents in any order: the rootfs first, while GRUB is built, then
 * the boot pieces. It is written under a temporary name, so a failure to build GRUB after the
 * rootfs is written still leaves nothing behind. Not a block device (it would be left half
 * written), a stream, a .gz or digests (they need the bytes in order): those wait for GRUB.
 */
function takesExtentsInAnyOrder(options: FsmakerOptions): boolean {
  if (options.output === '-' || needsExtentsInOrder(options.copy ?? {})) return false;
  try {
    return fs.statSync(options.output).isFile();
  } catch {
    return true; // a new file
  }
}

/** Everything before the rootfs: the partition table (boot.img in the MBR), core.img, the FAT. */
function headPieces(layout: DiskLayout, images: GrubImages, boot: BootChoice, options: FsmakerOptions, firmware: GrubFirmware): Piece[] {
  const cfg = grubConfig({ rootPartUuid: partUuid(layout.table, 1), append: options.append, timeoutSeconds: options.timeoutSeconds ?? 1, firmware });
  const files: FatFile[] = [
    { path: 'vmlinuz', size: boot.kernel.size, read: lazyRead(boot.kernel.bytes) },
    { path: 'initrd.img', size: boot.initrd.size, read: lazyRead(boot.initrd.bytes) },
    memoryFile('grub/grub.cfg', Buffer.from(cfg)),
    ...(images.efiImg ? [memoryFile('EFI/BOOT/BOOTX64.EFI', images.efiImg)] : []),
    ...bootDirFiles(options.bootDir),
  ];
  const epoch = process.env.SOURCE_DATE_EPOCH;
  const fat = planFat({
    sizeBytes: layout.boot.sectors * 512,
    volumeLabel: 'BOOT',
    serial: layout.fatSerial,
    hiddenSectors: layout.boot.startLba,
    files,
    timestamp: epoch !== undefined ? new Date(Number(epoch) * 1000) : undefined,
  });
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

function lazyRead(bytes: () => Buffer): (offset: number, length: number) => Buffer {
  let cached: Buffer | null = null;
  return (offset, length) => {
    cached ??= bytes();
    return cached.subarray(offset, offset + length);
  };
}

function padTo(data: Buffer, length: number): Buffer {
  return data.length >= length ? data : Buffer.concat([data, Buffer.alloc(length - data.length)]);
}

