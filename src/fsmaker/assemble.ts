/**
 * fsmaker's assembly: a layout (layout-model.ts; v0.05's command line is one) becomes a bootable
 * partitioned disk, streamed as one composite extent source (table sectors, GRUB's core.img, the
 * FAT filesystems fsmaker writes, ext4 filesystems written from trees, image files, swap
 * signatures, the backup GPT; holes between) into any sparsecopy sink. No root privileges, loop
 * devices or mounts; the only programs run are grub-mkimage (GRUB's images), mkfs for a partition
 * of contents `mkfs` (on a sparse temporary file) and, once, scripts/fetch-kernel.sh for the
 * default kernel.
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
import { diskOnFd, fdSectorReader, writeSectors } from '../io/disk.js';
import { type OpenedInput, deviceSize, openInput } from '../io/target.js';
import { partUuid } from '../partition/show.js';
import type { SectorReader, SectorWrite } from '../partition/model.js';
import { serializeTable } from '../partition/read.js';
import { planTableWrite } from '../partition/wipe-plan.js';
import { copyExtents, needsExtentsInOrder, refuseOutputUpFront } from '../sparsecopy/copy.js';
import type { CopySummary, SparseCopyOptions } from '../sparsecopy/options.js';
import { type BootChoice, chooseBootFor } from './boot-choice.js';
import type { Ext4Plan } from './ext4-writer.js';
import { planFat, type FatFile } from './fat.js';
import { patchBootSector, patchCoreImage } from './grub-bios.js';
import { grubConfig } from './grub-config.js';
import { type GrubImages, buildGrubImages, findGrubDirs } from './grub-images.js';
import { archiveFatFiles, imageBytes, isTreeSource, planTreeExt4, rootHasFstabEntry } from './layout-contents.js';
import { type Bootloader, type LayoutSpec, checkLayout, isEspPartition, numberOf } from './layout-model.js';
import { swapHeader } from './layout-swap.js';
import { type DiskLayout, type PlacedPartition, fatSerialOf, partitionName, planLayout, seededGuid, v005Layout } from './layout.js';
import { bootDirFiles, checkOptions, refuseOutputAmongInputs, refuseOutputInside } from './preflight.js';
import { type Rootfs, inspectRootfs, rootViewOfImage } from './rootfs.js';
import type { FileTree, RootView } from './tree.js';
import { openTree } from './tree-open.js';
import { rootViewOfTree } from './tree-view.js';

export type { BootChoice, BootFile } from './boot-choice.js';
export { inspectRootfs } from './rootfs.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;

export interface FsmakerOptions {
  /** A filesystem image, or a directory (or archive) to build the root's ext4 from. */
  rootImage: string;
  output: string;
  kernel?: string;
  initrd?: string;
  /** Total image size; the space after boot and root becomes the spare partition. */
  sizeBytes?: number;
  /** Boot (FAT) partition size (default 128 MiB: FAT32 with room for several kernels). */
  bootBytes?: number;
  /** The root partition's size (a tree's ext4 size; default: automatic, or the image's). */
  rootfsBytes?: number;
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
  /** Round the disk up to a multiple of this many bytes (sparsecopy's --pad, for the disk). */
  padBytes?: number;
  /** Stops the run (SIGINT/SIGTERM): child processes are killed, nothing is left behind. */
  signal?: AbortSignal;
  /** Passed to the sink: the output format (gzip, qcow2 and its cluster size...), digests, --force, progress. */
  copy?: FsmakerCopyOptions;
}

/** A run from a layout: where to, and how. */
export interface LayoutRun {
  layout: LayoutSpec;
  output: string;
  grubDir?: string;
  padBytes?: number;
  signal?: AbortSignal;
  copy?: FsmakerCopyOptions;
}

export type FsmakerCopyOptions = Omit<SparseCopyOptions, 'source' | 'destination' | 'signal'>;

export interface PlannedDisk {
  layout: DiskLayout;
  /** The layout as planned: every size, number and UUID resolved (what --print-config prints). */
  resolved: LayoutSpec;
  /** The root filesystem; null when the root is elsewhere (root: /dev/nfs). */
  rootfs: { type: string; uuid?: string; label?: string } | null;
  /** The kernel and initrd (with where a generated initramfs's modules come from, when chooseBootFor chose). */
  boot: (BootChoice & { modules?: string }) | null;
}

export type FsmakerResult = CopySummary & PlannedDisk;

const repoRoot = (): string => path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');


/** fsmaker v0.05's command line as a layout (the seed made once, so that every GUID and serial agrees). */
export function layoutOfOptions(options: FsmakerOptions): LayoutSpec {
  const bootBytes = options.bootBytes ?? 128 * MiB;
  checkOptions({ ...options, bootBytes });
  const root = isTreeSource(options.rootImage) ? { kind: 'ext4' as const, from: options.rootImage } : { kind: 'image' as const, path: options.rootImage };
  return v005Layout({
    label: options.label ?? 'mbr',
    root,
    rootBytes: options.rootfsBytes,
    bootBytes,
    totalBytes: options.sizeBytes,
    spareType: options.spareType,
    bootDir: options.bootDir,
    firmware: options.firmware ?? 'both',
    seed: options.seed ?? randomBytes(16).toString('hex'),
    kernel: options.kernel,
    initrd: options.initrd,
    append: options.append,
    timeoutSeconds: options.timeoutSeconds,
  });
}

/** Makes the disk of fsmaker v0.05's command line. */
export async function makeBootableDisk(options: FsmakerOptions): Promise<FsmakerResult> {
  const layout = layoutOfOptions(options);
  return makeLayoutDisk({ layout, output: options.output, grubDir: options.grubDir, padBytes: options.padBytes, signal: options.signal, copy: options.copy });
}

/** Refuses a layout with problems (USAGE, 1): all of them, one per line. */
export function refuseBadLayout(layout: LayoutSpec, where = 'the layout'): void {
  const problems = checkLayout(layout);
  if (problems.length > 0) throw new ToolError('USAGE', problems.map((p) => `${where}: ${p.path.join('.')}: ${p.message}`).join('\n'));
}

/** Every file the layout reads, by role (for the output-is-an-input check). */
function layoutInputs(layout: LayoutSpec): { role: string; path: string }[] {
  const inputs = layout.partitions.flatMap((p, i) => {
    const c = p.contents;
    if (c.kind === 'image') return [{ role: p.mount === '/' ? 'the rootfs' : `${partitionName(p, i)}'s image`, path: c.path }];
    if (c.kind === 'ext4') return [{ role: p.mount === '/' ? 'the rootfs' : `${partitionName(p, i)}'s tree`, path: c.from }];
    return [];
  });
  if (layout.kernel !== undefined) inputs.push({ role: 'the kernel', path: layout.kernel });
  if (layout.initrd !== undefined) inputs.push({ role: 'the initrd', path: layout.initrd });
  return inputs;
}

/** A partition's contents, ready to plan and to stream. */
interface Filled {
  /** Bytes the contents need (undefined: none of their own). */
  bytes?: number;
  /** An image file to stream. */
  file?: string;
  /** An ext4 filesystem planned from a tree, streamed from it. */
  ext4?: Ext4Plan;
  /** A FAT's own files (a directory's). */
  fatFiles?: FatFile[];
}

/** The run's work directory (GRUB's files, built filesystems), removed whatever happens. */
interface WorkDir {
  dir: string;
  stop: AbortController;
  signal: AbortSignal;
}

/**
 * Makes the disk of a layout. Everything that can refuse it is checked first, before GRUB is
 * built or a byte of the output is written: the layout, an output that is an input, the root (as
 * Linux would mount it), the kernel and initrd, the sizes, whether the boot files fit and what the
 * output format refuses. A tree's ext4 is built in the work directory before the sizes are known.
 */
export async function makeLayoutDisk(run: LayoutRun): Promise<FsmakerResult>;
export async function makeLayoutDisk(run: LayoutRun, planOnly: true): Promise<PlannedDisk>;
export async function makeLayoutDisk(run: LayoutRun, planOnly = false): Promise<FsmakerResult | PlannedDisk> {
  const inAnyOrder = takesExtentsInAnyOrder(run);
  // A disk image is written from a writer thread: start it now, so that it is running (about
  // 25 ms, on the other core) by the time the copy starts.
  if (inAnyOrder && !planOnly) void prestartWriterThread();
  const spec: LayoutSpec = { ...run.layout, seed: run.layout.seed ?? randomBytes(16).toString('hex') };
  refuseBadLayout(spec);
  for (const p of spec.partitions) if (p.contents.kind === 'mkfs') checkOptions({ spareType: p.contents.fs });
  checkOptions({ append: spec.cmdline.append, timeoutSeconds: spec.timeout, firmware: spec.bootloader === 'none' ? 'both' : spec.bootloader });
  refuseOutputAmongInputs(run.output, layoutInputs(spec));
  spec.partitions.forEach((p, i) => {
    if (p.contents.kind === 'ext4' && isDirectory(p.contents.from)) refuseOutputInside(run.output, p.contents.from, p.mount === '/' ? 'the rootfs tree' : `${partitionName(p, i)}'s tree`);
  });
  const filled: Filled[] = [];
  for (const p of spec.partitions) {
    const c = p.contents;
    if (c.kind !== 'fat') filled.push({});
    else filled.push({ fatFiles: c.from !== undefined && !isDirectory(c.from) && isTreeSource(c.from) ? await archiveFatFiles(c.from) : bootDirFiles(c.from, run.output) });
  }
  const rootIndex = spec.partitions.findIndex((p) => p.mount === '/');
  // The root image is judged first, as v0.05 did: a corrupt rootfs is refused before anything is built.
  const rootContents = rootIndex >= 0 ? spec.partitions[rootIndex]!.contents : null;
  const rootfs: Rootfs | null = rootContents?.kind === 'image' ? inspectRootfs(rootContents.path) : null;
  const trees: FileTree[] = [];
  let rootView: RootView | null = rootfs ? rootViewOfImage(rootfs) : null;
  const work = openWorkDir(run.signal);
  try {
    spec.partitions.forEach((p, i) => {
      if (p.contents.kind === 'image') filled[i] = { bytes: i === rootIndex ? rootfs!.size : imageBytes(p.contents.path, `${partitionName(p, i)}'s image`), file: p.contents.path };
    });
    for (const [i, p] of spec.partitions.entries()) {
      const c = p.contents;
      if (c.kind !== 'ext4') continue;
      const tree = await openTree(c.from);
      trees.push(tree);
      const ext4 = await planTreeExt4({ tree, sizeBytes: typeof p.size === 'number' ? p.size : undefined, label: c.label, seed: spec.seed!, number: numberOf(p, i) });
      filled[i] = { bytes: ext4.sizeBytes, ext4 };
      if (i === rootIndex) rootView = rootViewOfTree(tree);
    }
    return await assemble(run, spec, filled, { rootfs, rootView }, inAnyOrder, work, planOnly);
  } finally {
    for (const tree of trees) tree.close();
    rootfs?.close();
    await closeWorkDir(work);
  }
}

/** The kernel and initrd, found in whatever holds the root (an image, a tree, or none for netboot), matched to their modules. */
async function chooseBootFiles(spec: LayoutSpec, root: Root, run: LayoutRun): Promise<PlannedDisk['boot']> {
  const request = { kernel: spec.kernel, initrd: spec.initrd, repoRoot: repoRoot() };
  return chooseBootFor({ ...request, netboot: spec.cmdline.root === '/dev/nfs', warn: run.copy?.onWarning }, root.rootView);
}

/** The root: its image (null for a tree or none) and what kernel discovery reads. */
interface Root {
  rootfs: Rootfs | null;
  rootView: RootView | null;
}

function openWorkDir(outer: AbortSignal | undefined): WorkDir {
  // Stopped by the caller's signal, or here when anything fails: child processes never outlive the run.
  const stop = new AbortController();
  const signal = outer ? AbortSignal.any([outer, stop.signal]) : stop.signal;
  removeStale(os.tmpdir(), (name) => isStaleWorkDir('fsmaker', name));
  const dir = path.join(os.tmpdir(), workDirName('fsmaker'));
  fs.mkdirSync(dir, { mode: 0o700 });
  registerExitCleanup(dir);
  return { dir, stop, signal };
}

/** Removes the work directory (writeDisk has waited for GRUB's children: nothing writes into it any more). */
async function closeWorkDir(work: WorkDir): Promise<void> {
  if (!work.signal.aborted) work.stop.abort(new Error('fsmaker: the run ended'));
  fs.rmSync(work.dir, { recursive: true, force: true });
  unregisterExitCleanup(work.dir);
}

/** The layout with what planning decided written in: sizes in bytes, numbers, GUIDs, the seed. */
export function resolvedLayout(spec: LayoutSpec, layout: DiskLayout, padBytes?: number): LayoutSpec {
  const byIndex = new Map(layout.parts.map((p) => [p.index, p]));
  const gpt = spec.label === 'gpt';
  const partitions = spec.partitions.flatMap((p, i) => {
    const placed = byIndex.get(i);
    if (!placed) return [];
    const entry = layout.table.partitions.find((e) => e.number === placed.number)!;
    const { ifRoom: _, ...rest } = p;
    return [{ ...rest, number: placed.number, size: placed.sectors * 512, type: p.type ?? entry.type, ...(gpt ? { uuid: entry.uuid } : {}) }];
  });
  const output = padBytes !== undefined ? { ...spec.output, pad: padBytes } : spec.output;
  return { ...spec, size: layout.unpaddedBytes, partitions, ...(output ? { output } : {}) };
}

interface Planned {
  spec: LayoutSpec;
  layout: DiskLayout;
  plan: (coreSectors: number) => DiskLayout;
  boot: PlannedDisk['boot'];
  readWrite: boolean;
  filled: Filled[];
  inAnyOrder: boolean;
  grubDirs: ReturnType<typeof findGrubDirs>;
}

async function assemble(run: LayoutRun, spec: LayoutSpec, filled: Filled[], root: Root, inAnyOrder: boolean, work: WorkDir, planOnly: boolean): Promise<FsmakerResult | PlannedDisk> {
  const firmware = spec.bootloader;
  const grubDirs = findGrubDirs(run.grubDir);
  const needed = grubDirs.missing.filter((m) => (m.platform === 'i386-pc' ? firmware === 'bios' || firmware === 'both' : firmware === 'uefi' || firmware === 'both'));
  if (needed.length > 0 && !planOnly) {
    throw new ToolError('GRUB_MISSING', `GRUB files missing: ${needed.map((m) => `${m.dir} (install the Debian package ${m.debianPackage})`).join(', ')}`);
  }
  const boot = firmware === 'none' && spec.kernel === undefined && spec.initrd === undefined ? null : await chooseBootFiles(spec, root, run);
  const plan = (coreSectors: number): DiskLayout => {
    const layout = planLayout(spec, { contentBytes: (i) => filled[i]!.bytes, coreSectors, padBytes: run.padBytes });
    serializeTable(layout.table); // refuses a table its format cannot hold (MBR's 32-bit fields)
    return layout;
  };
  // Where everything goes does not depend on core.img's size (only whether it fits), so the
  // layout is known before GRUB is built, with the FAT serial GRUB's early config searches for.
  const layout = plan(0);
  // An output its format cannot take (a qcow2 to stdout or a device, or larger than its clusters
  // map; --compress on a raw image) is refused as sparsecopy refuses it, before GRUB is built or
  // a partition formatted.
  refuseOutputUpFront({ ...run.copy, source: sourceName(spec), destination: run.output }, layout.totalBytes);
  // Without an fstab entry for /, systemd leaves a root mounted `ro` read-only (and says it is
  // running): the kernel mounts such a root `rw` then, whether fsmaker built it from a tree or it
  // is an ext image (`mkfs.ext4 -d` of an mmdebstrap tree has the same placeholder fstab). A root
  // whose fstab fsmaker cannot read (not ext) keeps v0.05's `ro`.
  const readWrite = root.rootView !== null && !(await rootHasFstabEntry(root.rootView));
  const planned: Planned = { spec, layout, plan, boot, readWrite, filled, inAnyOrder, grubDirs };
  for (const part of layout.parts) if (part.spec.contents.kind === 'fat') fatOf(planned, part, null); // refuses files that do not fit
  const summary = rootSummary(root, layout, filled);
  if (planOnly) return { layout, resolved: resolvedLayout(spec, layout, run.padBytes), rootfs: summary, boot };
  return await writeDisk(run, planned, summary, work);
}

function rootSummary(root: Root, layout: DiskLayout, filled: Filled[]): PlannedDisk['rootfs'] {
  if (root.rootfs) return { type: root.rootfs.type, uuid: root.rootfs.uuid, label: root.rootfs.label };
  const placed = layout.parts.find((p) => p.spec.mount === '/');
  const c = placed?.spec.contents;
  if (!placed || c?.kind !== 'ext4') return null;
  return { type: 'ext4', uuid: filled[placed.index]!.ext4?.uuid, ...(c.label !== undefined ? { label: c.label } : {}) };
}

const isDirectory = (p: string): boolean => {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
};

const sourceName = (spec: LayoutSpec): string => {
  const root = spec.partitions.find((p) => p.mount === '/')?.contents;
  return root?.kind === 'image' ? root.path : root?.kind === 'ext4' ? root.from : 'the layout';
};

/** Builds GRUB, formats mkfs partitions and streams the disk. */
async function writeDisk(run: LayoutRun, d: Planned, rootfs: PlannedDisk['rootfs'], work: WorkDir): Promise<FsmakerResult> {
  const { layout, inAnyOrder, spec } = d;
  const { signal } = work;
  const firmware = spec.bootloader;
  // grub-mkimage runs in child processes while this thread formats partitions and, for a disk
  // image or a device, writes the partitions that do not wait for GRUB.
  const building: Promise<GrubImages> =
    firmware === 'none' ? Promise.resolve({}) : buildGrubImages({ fatSerial: serialText(layout.fatSerial), firmware, grubDirs: d.grubDirs, workDir: work.dir, signal });
  building.catch(() => undefined); // its failure is reported where it is awaited
  const inputs: OpenedInput[] = [];
  try {
    const streams = new Map<number, OpenedInput>();
    for (const part of layout.parts) {
      const c = part.spec.contents;
      let file = d.filled[part.index]!.file;
      if (c.kind === 'mkfs') file = await formatSpare(c.fs, part.sectors * 512, work.dir, signal);
      if (file !== undefined) {
        const input = openInput(file);
        inputs.push(input);
        streams.set(part.index, input);
      }
    }
    signal.throwIfAborted();
    const table = tableWrites(run.output, layout);
    const { waiting, ready } = piecesOf(d, streams, table.inDisk);
    const grubPieces = async (): Promise<Piece[]> => {
      const images = await building;
      d.plan(images.coreImg ? Math.ceil(images.coreImg.length / 512) : 0); // refuses a core.img too large for its room
      return waiting(images);
    };
    const total = layout.totalBytes;
    // The pieces that wait for GRUB (the table's first sectors with boot.img, core.img, the ESP)
    // usually all lie before the others: then the others are written first, while GRUB is built.
    const readyStart = Math.min(total, ...ready.map((p) => p.offset));
    const bios = spec.bootloader === 'bios' || spec.bootloader === 'both';
    const coreEnd = bios ? (layout.coreLba + layout.coreRoomSectors) * 512 : 0;
    const split = inAnyOrder && coreEnd <= readyStart && layout.parts.every((p) => !waitsForGrub(d, p) || (p.startLba + p.sectors) * 512 <= readyStart);
    const extents = split
      ? (async function* () {
          yield* concatPieces(ready, total, readyStart);
          yield* concatPieces(await grubPieces(), readyStart);
        })()
      : concatPieces([...(await grubPieces()), ...ready], total);
    const summary = await copyExtents(
      { name: sourceName(spec), length: total, extents, anyOrder: split },
      { ...run.copy, ...ovaFirmwareOf(firmware), destination: run.output, blockSize: 4096, signal },
    );
    writePastTheDisk(run.output, table.pastDisk);
    return { ...summary, layout, resolved: resolvedLayout(spec, layout, run.padBytes), rootfs, boot: d.boot };
  } finally {
    for (const input of inputs) input.close();
    if (!signal.aborted) work.stop.abort(new Error('fsmaker: the run ended'));
    await building.catch(() => undefined);
  }
}

/**
 * The table's sectors, from the plan every table write follows (src/partition/wipe-plan.ts).
 * fsmaker replaces every byte of the disk it builds (a file is new; on a device the holes are
 * written as zeros), so the plan sees that range as blank: its sector 0 carries fsmaker's boot
 * code, not the device's. What lies past it is old: on a larger device, a former GPT's backup
 * header at the device's end, which the kernel and sfdisk would still find, is wiped.
 */
function tableWrites(output: string, layout: DiskLayout): { inDisk: SectorWrite[]; pastDisk: SectorWrite[] } {
  const sectors = layout.table.diskSectors;
  const blank: SectorReader = (_lba, count) => Buffer.alloc(count * 512);
  const device = output !== '-' && isBlockDevice(output) ? openOutput(output, 'r') : null;
  try {
    let read = blank;
    let deviceSectors = sectors;
    if (device !== null) {
      deviceSectors = Math.floor(deviceSize(device) / 512);
      const old = fdSectorReader(output, device, 512, { errorCode: 'DEST_CHECK_READ' });
      read = (lba, count) => (lba >= sectors ? old(lba, count) : blank(lba, count));
    }
    const { writes } = planTableWrite(read, layout.table, { mediumSectors: deviceSectors });
    return { inDisk: writes.filter((w) => w.lba < sectors), pastDisk: writes.filter((w) => w.lba >= sectors) };
  } finally {
    if (device !== null) fs.closeSync(device);
  }
}

function openOutput(output: string, flags: 'r' | 'r+'): number {
  try {
    return fs.openSync(output, flags);
  } catch (err) {
    throw new ToolError('DEST_OPEN', `${output}: cannot open it to look for an old GPT past the new disk: ${describeSystemError(err)}`, { cause: err });
  }
}

function isBlockDevice(p: string): boolean {
  try {
    return fs.statSync(p).isBlockDevice();
  } catch {
    return false;
  }
}

/** The plan's wipes past the disk fsmaker built (after the copy, which ends at the disk's end). */
function writePastTheDisk(output: string, writes: SectorWrite[]): void {
  if (writes.length === 0) return;
  const fd = openOutput(output, 'r+');
  try {
    const sizeBytes = Math.max(...writes.map((w) => w.lba * 512 + w.data.length));
    writeSectors(diskOnFd(output, fd, { isBlockDevice: true, sectorSize: 512, sizeBytes, errors: { read: 'WRITE', write: 'WRITE' } }), writes);
  } finally {
    fs.closeSync(fd);
  }
}

/** A partition whose bytes need GRUB's images: the ESP (the EFI image goes in it). */
const waitsForGrub = (d: Planned, part: PlacedPartition): boolean => d.spec.bootloader !== 'none' && part.spec.contents.kind === 'fat' && isEspPartition(part.spec, d.spec.label) && (d.spec.bootloader === 'uefi' || d.spec.bootloader === 'both');

/** The disk's pieces: those waiting for GRUB's images (a function of them), and the others. */
function piecesOf(d: Planned, streams: Map<number, OpenedInput>, writes: SectorWrite[]): { waiting: (images: GrubImages) => Piece[]; ready: Piece[] } {
  const { layout } = d;
  const firstPartition = Math.min(...layout.parts.map((p) => p.startLba), layout.table.diskSectors);
  const ready: Piece[] = [];
  for (const w of writes) if (w.lba >= firstPartition) ready.push({ name: `table at LBA ${w.lba}`, offset: w.lba * 512, length: w.data.length, source: w.data });
  for (const part of layout.parts) {
    if (waitsForGrub(d, part)) continue;
    const piece = partitionPiece(d, part, streams, null);
    if (piece) ready.push(piece);
  }
  const waiting = (images: GrubImages): Piece[] => {
    const pieces: Piece[] = [];
    for (const w of writes) {
      if (w.lba >= firstPartition) continue;
      let data = w.data;
      if (w.lba === 0 && images.bootImg) data = Buffer.concat([patchBootSector(images.bootImg, data.subarray(0, 512), layout.coreLba), data.subarray(512)]);
      pieces.push({ name: `table at LBA ${w.lba}`, offset: w.lba * 512, length: data.length, source: data });
    }
    if (images.coreImg) {
      const coreBytes = Math.ceil(images.coreImg.length / 512) * 512;
      pieces.push({ name: 'core.img', offset: layout.coreLba * 512, length: coreBytes, source: padTo(patchCoreImage(images.coreImg, layout.coreLba, layout.coreRoomSectors), coreBytes) });
    }
    for (const part of layout.parts) {
      if (!waitsForGrub(d, part)) continue;
      const piece = partitionPiece(d, part, streams, images.efiImg ?? null);
      if (piece) pieces.push(piece);
    }
    return pieces;
  };
  return { waiting, ready };
}

function partitionPiece(d: Planned, part: PlacedPartition, streams: Map<number, OpenedInput>, efiImg: Buffer | null): Piece | null {
  const offset = part.startLba * 512;
  const length = part.sectors * 512;
  const name = partitionName(part.spec, part.index);
  const c = part.spec.contents;
  const input = streams.get(part.index);
  if (input) return { name, offset, length, source: sourceExtents(input, { chunkBytes: DEFAULT_CHUNK_BYTES }) };
  const ext4 = d.filled[part.index]!.ext4;
  if (ext4) return { name, offset, length, source: ext4.extents() };
  if (c.kind === 'fat') return { name, offset, length, source: fatOf(d, part, efiImg).extents() };
  if (c.kind === 'swap') {
    const uuid = c.uuid ?? seededGuid(d.spec.seed, `swap-${part.number}`);
    return { name, offset, length, source: swapHeader({ sizeBytes: length, uuid, label: c.label }) };
  }
  return null; // empty: a hole
}

/**
 * A FAT partition: /boot gets the kernel, the initrd and grub.cfg, the ESP GRUB's EFI image (once
 * built), each its directory's files.
 */
function fatOf(d: Planned, part: PlacedPartition, efiImg: Buffer | null): ReturnType<typeof planFat> {
  const { spec, layout } = d;
  const c = part.spec.contents;
  if (c.kind !== 'fat') throw new Error(`fatOf: partition ${part.number} is not fat`); // callers pass fat partitions only
  const isBoot = part.spec.mount === '/boot';
  const files: FatFile[] = [];
  if (isBoot && d.boot && spec.bootloader !== 'none') {
    const cfg = grubConfig({
      rootPartUuid: layout.root ? partUuid(layout.table, layout.root.number) : '00000000-00',
      append: spec.cmdline.append,
      timeoutSeconds: spec.timeout ?? 1,
      firmware: spec.bootloader,
      line: { root: spec.cmdline.root, readWrite: d.readWrite, serial: spec.cmdline.serial },
    });
    files.push({ path: 'vmlinuz', size: d.boot.kernel.size, read: d.boot.kernel.read }, { path: 'initrd.img', size: d.boot.initrd.size, read: d.boot.initrd.read }, memoryFile('grub/grub.cfg', Buffer.from(cfg)));
  }
  if (efiImg && isEspPartition(part.spec, spec.label)) files.push(memoryFile('EFI/BOOT/BOOTX64.EFI', efiImg));
  files.push(...(d.filled[part.index]!.fatFiles ?? []));
  const epoch = process.env.SOURCE_DATE_EPOCH;
  return planFat({
    sizeBytes: part.sectors * 512,
    volumeLabel: c.label ?? (isBoot ? 'BOOT' : ''),
    serial: isBoot ? layout.fatSerial : fatSerialOf(spec.seed, part.number, false),
    hiddenSectors: part.startLba,
    files,
    timestamp: epoch !== undefined ? new Date(Number(epoch) * 1000) : undefined,
  });
}

/**
 * What an OVA's OVF says the disk boots under: BIOS or EFI when fsmaker built only that; a disk
 * that boots under both leaves the choice to the host (no firmware entry: its default works).
 */
function ovaFirmwareOf(firmware: Bootloader): Pick<SparseCopyOptions, 'ovaFirmware'> {
  return firmware === 'bios' ? { ovaFirmware: 'bios' } : firmware === 'uefi' ? { ovaFirmware: 'efi' } : {};
}

/**
 * A disk image takes the disk's extents in any order: the partitions that do not wait for GRUB
 * first, while GRUB is built, then the rest. It is written under a temporary name, so a failure
 * to build GRUB after the rootfs is written still leaves nothing behind. Not a block device (it
 * would be left half written), a stream, a .gz or digests (they need the bytes in order): those
 * wait for GRUB.
 */
function takesExtentsInAnyOrder(run: Pick<LayoutRun, 'output' | 'copy'>): boolean {
  if (run.output === '-' || needsExtentsInOrder({ ...run.copy, source: '', destination: run.output })) return false;
  try {
    return fs.statSync(run.output).isFile();
  } catch {
    return true; // a new file
  }
}

const memoryFile = (p: string, data: Buffer): FatFile => ({ path: p, size: data.length, read: (o, n) => data.subarray(o, o + n) });
const serialText = (serial: number): string => {
  const h = (serial >>> 0).toString(16).padStart(8, '0');
  return `${h.slice(0, 4)}-${h.slice(4)}`;
};

/** Formats a partition with the system's mkfs on a sparse temporary file (killed on abort). */
async function formatSpare(type: string, bytes: number, workDir: string, signal: AbortSignal): Promise<string> {
  const file = path.join(workDir, `mkfs-${type}-${bytes}.img`);
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

function padTo(data: Buffer, length: number): Buffer {
  return data.length >= length ? data : Buffer.concat([data, Buffer.alloc(length - data.length)]);
}
