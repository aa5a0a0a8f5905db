/**
 * Which kernel and initrd a disk boots, and why: -k/-i, else the rootfs's own /boot/vmlinuz and
 * /boot/initrd.img (ext2/3/4), else the default kernel and a generated busybox initramfs. Each is
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
import { BOOT_FILE_HEAD_BYTES, initrdFormat, kernelProblem } from './boot-files.js';
import type { Inode } from './ext4.js';
import { buildInitramfs, initScript } from './initramfs.js';
import { DEFAULT_ROOT_MODULES, indexModules, resolveModuleOrder } from './kernel-modules.js';
import { readAt, readFileRange } from './read-range.js';
import { type Rootfs, readingRootfs } from './rootfs.js';

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
function defaultBootAssets(repoRoot: string): { kernel: string; modules: string; busybox: string } {
  const cached = findDefaultBootAssets(defaultBootCacheDir(repoRoot));
  if (cached.status === 'ok') return { kernel: cached.kernel, modules: cached.modulesDir, busybox: cached.busybox };
  const script = path.join(repoRoot, 'scripts/fetch-kernel.sh');
  const r = spawnSync('sh', [script], { encoding: 'utf8' });
  if (r.status !== 0) throw new ToolError('KERNEL_MISSING', `no kernel given and the default one is not available: ${(r.stderr ?? '').trim().split('\n').pop()}`);
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(r.stdout)?.[1] ?? '';
  return { kernel: value('KERNEL'), modules: value('MODULES'), busybox: value('BUSYBOX') };
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
