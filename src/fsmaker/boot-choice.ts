/**
 * Which kernel and initrd a disk boots, and why. chooseBootFor (any rootfs, through a RootView):
 * -k/-i, else the rootfs's kernel as grub-mkconfig finds it (kernel-find.ts) and its initrd, else
 * the default kernel; with no initrd to go with the kernel, a busybox initramfs generated from the
 * modules of that kernel's release (kernel-modules.ts), or a refusal (34) when there are none.
 * chooseBoot, the v0.05 rule (ext2/3/4 only: /boot/vmlinuz and /boot/initrd.img, else the default
 * kernel with the default modules), stays until the command line has switched. Each file is
 * checked before anything is written (boot-files.ts): a file that cannot boot is refused (27),
 * never read without bound; a rootfs that cannot be read is refused (21), never taken for one
 * without a kernel.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ToolError, describeSystemError, systemErrorCode } from '../errors.js';
import { type OpenedInput, openInput } from '../io/target.js';
import { defaultBootCacheDir, findDefaultBootAssets } from './boot-assets.js';
import { BOOT_FILE_HEAD_BYTES, bzImageRelease, initrdFormat, kernelProblem } from './boot-files.js';
import type { Inode } from './ext4.js';
import { UDHCPC_SCRIPT, buildInitramfs, initScript } from './initramfs.js';
import { INITRD_INSPECT_LIMIT, initrdMemberNames, initrdNfsSupport } from './initrd-inspect.js';
import { checkNamedRelease, findRootKernel, moduleReleases, modulesDirOf } from './kernel-find.js';
import {
  DEFAULT_ROOT_MODULES,
  type GatheredModules,
  type ModuleSource,
  gatherModules,
  hostModuleSource,
  indexModules,
  resolveModuleOrder,
  rootModuleSource,
} from './kernel-modules.js';
import { readAt, readFileRange } from './read-range.js';
import { type Rootfs, readingRootfs } from './rootfs.js';
import type { RootView } from './tree.js';

/** A kernel or initrd: its size, where it comes from, and its bytes on demand (never all at once). */
export interface BootFile {
  size: number;
  /** Where it comes from: a path, "/boot/vmlinuz in ROOT", "generated (...)". */
  from: string;
  /** Why this one was taken when it is a default. */
  why?: string;
  /** Exactly `length` bytes from `offset`. */
  read: (offset: number, length: number) => Buffer;
}

export interface BootChoice {
  kernel: BootFile;
  initrd: BootFile;
}

type Role = 'kernel' | 'initrd';

/** Why `head` (of a file of `size` bytes) cannot be this role's file, or null. */
function problemOf(role: Role, head: Buffer, size: number): string | null {
  if (role === 'kernel') return kernelProblem(head, size);
  const format = initrdFormat(head, size);
  return 'problem' in format ? format.problem : null;
}

function refuseUnusable(role: Role, from: string, head: Buffer, size: number): void {
  const problem = problemOf(role, head, size);
  if (problem) throw new ToolError('BOOT_FILE_UNUSABLE', `${from}: the ${role} ${problem}`);
}

/** -k/-i: a regular file or a block device (a size known up front), checked from its first bytes. */
export function givenBootFile(file: string, role: Role): BootFile {
  let input: OpenedInput;
  try {
    input = openInput(file);
  } catch (err) {
    if (systemErrorCode(err) === 'EISDIR') throw new ToolError('BOOT_FILE_UNUSABLE', `${file}: the ${role} is a directory`);
    throw new ToolError('KERNEL_MISSING', `${file}: cannot read the ${role}: ${describeSystemError(err)}`);
  }
  try {
    if ((input.kind !== 'file' && input.kind !== 'block') || input.size === null || file === '-') {
      // A pipe or a character device (/dev/zero) has no size to check and may never end.
      throw new ToolError('BOOT_FILE_UNUSABLE', `${file}: the ${role} is not a regular file (${input.kind === 'char' ? 'a character device' : input.kind === 'pipe' ? 'a pipe' : 'not a file'})`);
    }
    const size = input.size;
    refuseUnusable(role, file, readAt(input.fd, 0, Math.min(size, BOOT_FILE_HEAD_BYTES)), size);
    return { size, from: file, read: (offset, length) => readFileRange(file, offset, length) };
  } catch (err) {
    if (err instanceof ToolError) throw err;
    throw new ToolError('KERNEL_MISSING', `${file}: cannot read the ${role}: ${describeSystemError(err)}`);
  } finally {
    input.close();
  }
}

/**
 * The rootfs's own file at the first of `paths` that is a regular file, checked; null when there
 * is none (the rootfs has no kernel: a default is used). A rootfs that cannot be read throws 21.
 */
export function ownBootFile(rootfs: Rootfs, paths: string[], role: Role): BootFile | null {
  const ext = rootfs.ext;
  if (!ext) return null;
  return readingRootfs(rootfs.path, () => {
    for (const p of paths) {
      const inode = ext.lookup(p);
      if (!inode || inode.kind !== 'file') continue;
      const from = `${p} in ${rootfs.path}`;
      ext.fileExtents(inode); // every block it maps is checked now, before anything is written
      refuseUnusable(role, from, ext.readFile(inode, 0, BOOT_FILE_HEAD_BYTES), inode.size);
      return { size: inode.size, from, read: inodeReader(rootfs, inode) };
    }
    return null;
  });
}

function inodeReader(rootfs: Rootfs, inode: Inode): (offset: number, length: number) => Buffer {
  return (offset, length) => readingRootfs(rootfs.path, () => rootfs.ext!.readFile(inode, offset, length));
}

const KERNEL_PATHS = ['/boot/vmlinuz', '/vmlinuz'];
const INITRD_PATHS = ['/boot/initrd.img', '/initrd.img'];

/** Why the rootfs cannot supply this role's file. */
const noOwn = (rootfs: Rootfs, paths: string[]): string =>
  rootfs.ext ? `${rootfs.path} has no ${paths.join(' or ')}` : `${rootfs.path} is ${rootfs.type}: fsmaker looks for kernels in ext2/3/4 only`;

export interface BootRequest {
  kernel?: string;
  initrd?: string;
  /** Where the default kernel, modules and busybox are cached (scripts/fetch-kernel.sh fills it). */
  repoRoot: string;
}

/** -k/-i, else the rootfs's own files, else the default: each checked, each saying where it is from. */
export function chooseBoot(request: BootRequest, rootfs: Rootfs): BootChoice {
  let kernel = request.kernel !== undefined ? givenBootFile(request.kernel, 'kernel') : ownBootFile(rootfs, KERNEL_PATHS, 'kernel');
  let initrd = request.initrd !== undefined ? givenBootFile(request.initrd, 'initrd') : ownBootFile(rootfs, INITRD_PATHS, 'initrd');
  if (!kernel || !initrd) {
    const assets = defaultBootAssets(request.repoRoot);
    if (!kernel) kernel = { ...givenBootFile(assets.kernel, 'kernel'), why: `the default: ${noOwn(rootfs, KERNEL_PATHS)}` };
    if (!initrd) {
      const { image, moduleCount } = cachedInitramfs(assets.busybox, assets.modules, Number(process.env.SOURCE_DATE_EPOCH ?? 0));
      initrd = {
        size: image.length,
        from: `generated (busybox, ${moduleCount} modules from ${assets.modules})`,
        why: `the default: ${noOwn(rootfs, INITRD_PATHS)}`,
        read: (offset, length) => image.subarray(offset, offset + length),
      };
    }
  }
  return { kernel, initrd };
}

/**
 * The default kernel, modules and busybox: found in the cache when scripts/fetch-kernel.sh has
 * filled it (the set-up does), else fetched by running it (13 ms even when there is nothing to
 * fetch: the cache is looked at first).
 */
function defaultBootAssets(repoRoot: string): { kernel: string; modules: string; busybox: string; version: string } {
  const cached = findDefaultBootAssets(defaultBootCacheDir(repoRoot));
  if (cached.status === 'ok') return { kernel: cached.kernel, modules: cached.modulesDir, busybox: cached.busybox, version: cached.kernelVersion };
  const script = path.join(repoRoot, 'scripts/fetch-kernel.sh');
  const r = spawnSync('sh', [script], { encoding: 'utf8' });
  if (r.status !== 0) throw new ToolError('KERNEL_MISSING', `no kernel given and the default one is not available: ${(r.stderr ?? '').trim().split('\n').pop()}`);
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(r.stdout)?.[1] ?? '';
  return { kernel: value('KERNEL'), modules: value('MODULES'), busybox: value('BUSYBOX'), version: path.basename(value('MODULES')) };
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
  let order: ReturnType<typeof resolveModuleOrder>;
  let image: Buffer;
  try {
    order = resolveModuleOrder(DEFAULT_ROOT_MODULES, indexModules(modulesDir));
    image = buildInitramfs({ busybox, modules: order.map((m) => ({ name: m.name, path: m.path })), mtime });
  } catch (err) {
    // A cache that is not what the Debian packages unpacked (a module that is no ELF, a dependency
    // missing, a compressed module, a busybox that is no binary): no initramfs can be built from it.
    if (err instanceof ToolError || !(err instanceof Error)) throw err;
    throw new ToolError('BOOT_FILE_UNUSABLE', `default boot files in ${path.dirname(busybox)}: ${err.message}; cannot build the initramfs (delete the directory to fetch them again)`, { cause: err });
  }
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

/** The modules a generated initramfs loads for a local root (DEFAULT_ROOT_MODULES, required). */
const DISK_MODULES = DEFAULT_ROOT_MODULES;
/** NIC drivers for an NFS root: whichever the kernel has (qemu's virtio-net, e1000 and VMware's e1000e); at least one. */
export const NIC_MODULES: readonly string[] = ['virtio_net', 'e1000', 'e1000e'];
/** The NFS client (sunrpc, lockd, grace... follow from depends=); af_packet for DHCP's raw socket when modular. */
export const NFS_MODULES: readonly string[] = ['nfs', 'nfsv4'];
const NFS_OPTIONAL_MODULES: readonly string[] = ['nfsv3', 'af_packet'];

/** How many bytes of a kernel to read for its release string (the pointer at 0x20E is 16 bits, plus 0x200, plus the string). */
const RELEASE_HEAD_BYTES = 0x10000 + 0x200 + 256;

/** A RootView that can also read part of a file (an image's: a kernel need not be read whole). */
export interface RangedRootView extends RootView {
  readRange?(path: string, offset: number, length: number): Buffer;
}

/** Kernels and initrds read whole from a RootView without ranges (an archive), at most. */
const WHOLE_BOOT_FILES_LIMIT = 512 * 1024 * 1024;

async function rootBootFile(root: RangedRootView, p: string, foundAs: string, role: Role, why: string): Promise<BootFile> {
  const size = root.stat(p)!.size;
  const from = `${foundAs}${p !== foundAs ? ` (-> ${p})` : ''} in ${root.name}`;
  let read: (offset: number, length: number) => Buffer;
  if (root.readRange) {
    const ranged = root.readRange.bind(root);
    read = (offset, length) => ranged(p, offset, length);
  } else {
    const whole = (await root.readFiles([p], WHOLE_BOOT_FILES_LIMIT)).get(p);
    if (!whole) throw new ToolError('KERNEL_MISSING', `${from}: the ${role} could not be read`);
    read = (offset, length) => whole.subarray(offset, offset + length);
  }
  refuseUnusable(role, from, read(0, Math.min(size, BOOT_FILE_HEAD_BYTES)), size);
  return { size, from, why, read };
}

const releaseOf = (file: BootFile): string | null => bzImageRelease(file.read(0, Math.min(file.size, RELEASE_HEAD_BYTES)));

export interface BootForRequest extends BootRequest {
  /** The disk boots an NFS root (root=/dev/nfs): a generated initramfs also gets the NIC and NFS client modules. */
  netboot?: boolean;
  /** Where warnings go (default: nowhere; they are also in the choice's `warnings` and why's). */
  warn?: (message: string) => void;
}

export interface BootForChoice extends BootChoice {
  /** The kernel's release (uname -r) when its header or name tells it. */
  kernelVersion: string | null;
  /** Where the generated initramfs's modules come from, or why none are read. */
  modules: string;
  warnings: string[];
}

/**
 * -k/-i, else the rootfs's kernel as grub-mkconfig finds it (kernel-find.ts) with its initrd,
 * else the default kernel; an initramfs is generated when there is no initrd to go with the
 * kernel, from the modules of that kernel's release: the rootfs's /lib/modules/RELEASE, or the
 * cached default modules for the default kernel's release only. No modules for the kernel's
 * release is refused (KERNEL_MODULES_MISSING) rather than a disk whose initramfs cannot load its
 * drivers. Each file says where it comes from and why.
 */
export async function chooseBootFor(request: BootForRequest, root: RangedRootView | null): Promise<BootForChoice> {
  const warnings: string[] = [];
  const found = request.kernel === undefined && root ? findRootKernel(root) : null;
  let defaults: ReturnType<typeof defaultBootAssets> | undefined;
  const assets = () => (defaults ??= defaultBootAssets(request.repoRoot));
  const noKernel = root ? `${root.name} has no /boot/vmlinuz-VERSION, /vmlinuz-VERSION, /boot/vmlinuz or /vmlinuz` : 'the rootfs is not one fsmaker reads kernels from';

  let kernel: BootFile;
  let isDefault = false;
  let nameVersion: string | null = null;
  if (request.kernel !== undefined) {
    kernel = { ...givenBootFile(request.kernel, 'kernel'), why: 'given with -k' };
  } else if (found && root) {
    kernel = await rootBootFile(root, found.path, found.foundAs, 'kernel', found.why);
    nameVersion = found.nameVersion;
  } else {
    const a = assets();
    kernel = { ...givenBootFile(a.kernel, 'kernel'), why: `the default: ${noKernel}` };
    nameVersion = a.version;
    isDefault = true;
  }
  const headerRelease = releaseOf(kernel);
  checkNamedRelease(kernel.from, nameVersion, headerRelease);
  const release = headerRelease ?? (nameVersion !== null && /^[0-9]/.test(nameVersion) ? nameVersion.replace(/\.old$/, '') : null);
  if (release) kernel.why = `${kernel.why}; release ${release}${headerRelease ? ' (its header)' : ' (its name)'}`;

  // A rootfs with modules for other kernels only: its systemd-modules-load and udev will not find theirs.
  const ownReleases = root ? moduleReleases(root) : [];
  if (!found && ownReleases.length > 0 && (release === null || !ownReleases.includes(release))) {
    const w = `${root!.name} has modules for ${ownReleases.join(', ')} but no kernel of that release: it boots ${release ?? 'a kernel of unknown release'}, and systemd will miss its modules (give that kernel with -k)`;
    warnings.push(w);
    request.warn?.(w);
    kernel.why = `${kernel.why}; warning: ${w}`;
  }

  if (request.initrd !== undefined) {
    const initrd = { ...givenBootFile(request.initrd, 'initrd'), why: 'given with -i' };
    return { kernel, initrd, kernelVersion: release, modules: 'none read: the initrd was given', warnings };
  }
  let why = found ? `generated: ${found.foundAs} has no initrd next to it` : request.kernel !== undefined ? 'generated: no -i given' : `generated: the default kernel's (${noKernel})`;
  if (found?.initrd && root) {
    const initrd = await rootBootFile(root, found.initrd, found.initrdFoundAs!, 'initrd', `the rootfs's initrd for ${found.foundAs}`);
    const nfs = request.netboot ? nfsSupportOf(initrd) : null;
    if (!nfs || nfs.nfs) {
      if (nfs) initrd.why = `${initrd.why}; it mounts an NFS root: ${nfs.why}`;
      return { kernel, initrd, kernelVersion: release, modules: "none read: the rootfs's own initrd loads them", warnings };
    }
    why = `generated: the rootfs's initrd ${found.initrdFoundAs} cannot mount an NFS root: ${nfs.why}`;
  }

  // A generated initramfs: from the modules of this kernel's release.
  if (release === null) {
    throw new ToolError('KERNEL_MODULES_MISSING', `${kernel.from}: the kernel's header names no release (kernel_version at 0x20E) and its name none either: fsmaker cannot tell which modules its initramfs needs; give its initrd with -i`);
  }
  let source: ModuleSource;
  let cacheable = false;
  const ownDir = root ? modulesDirOf(root, release) : null;
  if (ownDir && root && !isDefault) {
    const builtinPath = `${ownDir}/modules.builtin`;
    const builtinText = root.stat(builtinPath)?.type === 'file' ? ((await root.readFiles([builtinPath], 16 * 1024 * 1024)).get(builtinPath)?.toString('utf8') ?? null) : null;
    source = rootModuleSource(root, ownDir, builtinText);
  } else if (release === assets().version) {
    source = hostModuleSource(assets().modules);
    cacheable = true;
  } else {
    const where = root ? `${root.name} has no /lib/modules/${release} (nor /usr/lib/modules/${release})${ownReleases.length ? `, only ${ownReleases.join(', ')}` : ''}` : 'there is no rootfs to take them from';
    throw new ToolError('KERNEL_MODULES_MISSING', `${kernel.from}: no modules for release ${release}: ${where}, and fsmaker's default modules are ${assets().version}'s; an initramfs built from them could not load the disk drivers (give the initrd with -i, or the kernel whose modules the rootfs has)`);
  }
  const image = await generatedInitramfs(request, assets().busybox, source, kernel.from, cacheable);
  const initrd: BootFile = {
    size: image.image.length,
    from: `generated (busybox, ${image.moduleCount} modules from ${source.name})`,
    why: `${why}; modules of release ${release}${request.netboot ? ', with the NIC and NFS client modules for root=/dev/nfs' : ''}`,
    read: (offset, length) => image.image.subarray(offset, offset + length),
  };
  return { kernel, initrd, kernelVersion: release, modules: source.name, warnings };
}

/** Whether a rootfs's initrd mounts an NFS root (initrd-inspect.ts), judged from its member names. */
function nfsSupportOf(initrd: BootFile): { nfs: boolean; why: string } {
  if (initrd.size > INITRD_INSPECT_LIMIT) return { nfs: false, why: `it is ${initrd.size} bytes, more than fsmaker inspects` };
  const listed = initrdMemberNames(initrd.read(0, initrd.size));
  if ('problem' in listed) return { nfs: false, why: `its contents cannot be listed: ${listed.problem}` };
  return initrdNfsSupport(listed.names);
}

/**
 * The generated initramfs for `source`'s modules. With the default modules (`cacheable`) it is
 * cached next to the default kernel like cachedInitramfs (same reasons), keyed also by the
 * modules' bytes and whether it netboots; one from a rootfs's modules is built each time, so that
 * the cache does not fill with one image per rootfs.
 */
async function generatedInitramfs(request: BootForRequest, busybox: string, source: ModuleSource, kernelFrom: string, cacheable: boolean): Promise<{ image: Buffer; moduleCount: number }> {
  let gathered: GatheredModules;
  try {
    gathered = await gatherModules(source, request.netboot ? [...DISK_MODULES, ...NFS_MODULES] : DISK_MODULES, request.netboot ? [...NIC_MODULES, ...NFS_OPTIONAL_MODULES] : []);
  } catch (err) {
    if (err instanceof ToolError || !(err instanceof Error)) throw err;
    throw new ToolError('KERNEL_MODULES_MISSING', `${kernelFrom}: ${err.message}; an initramfs without it could not mount the root (give the initrd with -i)`, { cause: err });
  }
  if (request.netboot && NIC_MODULES.every((n) => gathered.absent.includes(n))) {
    throw new ToolError('KERNEL_MODULES_MISSING', `${kernelFrom}: none of the network drivers ${NIC_MODULES.join(', ')} is in ${source.name} or built in: an NFS root cannot be reached (give the initrd with -i)`);
  }
  const mtime = Number(process.env.SOURCE_DATE_EPOCH ?? 0);
  const names = gathered.modules.map((m) => m.name);
  const key = createHash('sha256').update(initScript(60, names)).update(UDHCPC_SCRIPT).update(String(mtime));
  for (const m of gathered.modules) key.update(`${m.name}\0${m.data.length}\0`).update(m.data);
  const st = fs.statSync(busybox);
  key.update(`${busybox}\0${st.size}\0${st.mtimeMs}\0${st.ctimeMs}\0`);
  const cached = cacheable ? path.join(path.dirname(busybox), `initramfs-${key.digest('hex').slice(0, 16)}.img`) : null;
  try {
    if (cached) return { image: fs.readFileSync(cached), moduleCount: names.length };
  } catch {
    // not cached yet
  }
  let image: Buffer;
  try {
    image = buildInitramfs({ busybox, modules: gathered.modules.map((m) => ({ name: m.name, data: m.data })), mtime });
  } catch (err) {
    if (err instanceof ToolError || !(err instanceof Error)) throw err;
    throw new ToolError('BOOT_FILE_UNUSABLE', `${source.name}: ${err.message}; cannot build the initramfs`, { cause: err });
  }
  if (cached) {
    const tmp = `${cached}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, image);
      fs.renameSync(tmp, cached);
    } catch {
      fs.rmSync(tmp, { force: true }); // a read-only cache still works, uncached
    }
  }
  return { image, moduleCount: names.length };
}
