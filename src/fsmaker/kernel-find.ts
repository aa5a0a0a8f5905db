/**
 * Finds the kernel a rootfs boots as grub-mkconfig's 10_linux does (GRUB 2.06, Debian 12): the
 * versioned /boot/vmlinuz-VERSION and /vmlinuz-VERSION files, the newest by version order
 * (version-sort.ts; a VERSION.old after its VERSION); with none, the /boot/vmlinuz and /vmlinuz
 * links Debian keeps. The initrd that goes with it is the first of initrd.img-VERSION,
 * initrd-VERSION.img, initrd-VERSION.gz, initrd-VERSION, initramfs-VERSION.img (Debian, Fedora,
 * Arch names) next to it, or for a kernel found through a link, the matching /boot/initrd.img or
 * /initrd.img link. Links are resolved inside the rootfs (an absolute target from its root, '..'
 * stopping at it, as under chroot), never on the host. Pure: reads only through a RootView.
 */
import { ToolError } from '../errors.js';
import type { RootView } from './tree.js';
import { versionSortCompare } from './version-sort.js';

/** Linux's MAXSYMLINKS. */
const MAX_LINKS = 40;

/**
 * `p` with every symlink resolved inside the rootfs, or null when a component is missing (or the
 * links loop or run deeper than Linux follows).
 */
export function resolveInside(root: RootView, p: string): string | null {
  let links = 0;
  const walk = (parts: string[]): string | null => {
    const done: string[] = [];
    const todo = [...parts];
    while (todo.length > 0) {
      const name = todo.shift()!;
      if (name === '' || name === '.') continue;
      if (name === '..') {
        done.pop();
        continue;
      }
      const here = `/${[...done, name].join('/')}`;
      const st = root.stat(here);
      if (!st) return null;
      if (st.type === 'symlink') {
        if (++links > MAX_LINKS || st.target === undefined || st.target === '') return null;
        const target = st.target.split('/');
        if (st.target.startsWith('/')) done.length = 0;
        todo.unshift(...target);
        continue;
      }
      if (todo.some((t) => t !== '' && t !== '.') && st.type !== 'dir') return null;
      done.push(name);
    }
    return `/${done.join('/')}`;
  };
  return walk(p.split('/'));
}

/** The regular file `p` resolves to inside the rootfs, or null. */
function regularFile(root: RootView, p: string): string | null {
  const resolved = resolveInside(root, p);
  return resolved !== null && root.stat(resolved)?.type === 'file' ? resolved : null;
}

/** What grub-mkconfig's grub_file_is_not_garbage leaves out: package-manager leftovers, documentation, signatures. */
const isGarbage = (name: string): boolean => /\.dpkg-[^/]*$|\.rpmsave$|\.rpmnew$|\.sig$|^README/.test(name);

export interface FoundKernel {
  /** The regular file (links resolved), absolute in the rootfs. */
  path: string;
  /** The name it was found as (a link, or `path` itself). */
  foundAs: string;
  /** VERSION of a vmlinuz-VERSION name, or null (a /vmlinuz link to an unversioned file). */
  nameVersion: string | null;
  /** Its initrd (links resolved), or null. */
  initrd: string | null;
  /** The initrd's name as found. */
  initrdFoundAs: string | null;
  why: string;
}

const dirOf = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/';
const baseOf = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

function initrdFor(root: RootView, kernelDir: string, version: string): { path: string; foundAs: string } | null {
  const alt = version.replace(/\.old$/, '');
  const names = [`initrd.img-${version}`, `initrd-${version}.img`, `initrd-${version}.gz`, `initrd-${version}`, `initramfs-${version}.img`];
  if (alt !== version) names.push(`initrd.img-${alt}`, `initrd-${alt}.img`, `initrd-${alt}`, `initramfs-${alt}.img`);
  for (const n of names) {
    const foundAs = `${kernelDir === '/' ? '' : kernelDir}/${n}`;
    const p = regularFile(root, foundAs);
    if (p) return { path: p, foundAs };
  }
  return null;
}

/** The versioned kernels grub-mkconfig lists, newest first. */
export function versionedKernels(root: RootView): Array<{ foundAs: string; version: string }> {
  const found: Array<{ foundAs: string; version: string }> = [];
  for (const dir of ['/boot', '/']) {
    const resolvedDir = resolveInside(root, dir);
    if (resolvedDir === null) continue;
    for (const name of root.list(resolvedDir) ?? []) {
      const m = /^vmlinuz-(.+)$/.exec(name);
      if (!m || isGarbage(name)) continue;
      const foundAs = `${dir === '/' ? '' : dir}/${name}`;
      if (regularFile(root, foundAs)) found.push({ foundAs, version: m[1]! });
    }
  }
  // grub-mkconfig: "X.old" sorts as X, just below it.
  const key = (v: string) => v.replace(/\.old$/, '');
  return found.sort((a, b) => versionSortCompare(key(b.version), key(a.version)) || Number(a.version.endsWith('.old')) - Number(b.version.endsWith('.old')) || (a.foundAs < b.foundAs ? -1 : 1));
}

/** The kernel the rootfs boots and its initrd, or null when it has none. */
export function findRootKernel(root: RootView): FoundKernel | null {
  const versioned = versionedKernels(root);
  if (versioned.length > 0) {
    const best = versioned[0]!;
    const p = regularFile(root, best.foundAs)!;
    const initrd = initrdFor(root, dirOf(best.foundAs), best.version);
    const others = versioned.length > 1 ? ` (newest of ${versioned.map((v) => baseOf(v.foundAs)).join(', ')} by version order, as grub-mkconfig takes it)` : '';
    return {
      path: p,
      foundAs: best.foundAs,
      nameVersion: best.version,
      initrd: initrd?.path ?? null,
      initrdFoundAs: initrd?.foundAs ?? null,
      why: `the rootfs's kernel ${best.foundAs}${others}`,
    };
  }
  for (const [link, initrdLink] of [['/boot/vmlinuz', '/boot/initrd.img'], ['/vmlinuz', '/initrd.img']] as const) {
    const p = regularFile(root, link);
    if (!p) continue;
    const m = /^vmlinuz-(.+)$/.exec(baseOf(p));
    const version = m ? m[1]! : null;
    const byVersion = version ? initrdFor(root, dirOf(p), version) : null;
    const initrdPath = byVersion?.path ?? regularFile(root, initrdLink);
    return {
      path: p,
      foundAs: link,
      nameVersion: version,
      initrd: initrdPath,
      initrdFoundAs: byVersion?.foundAs ?? (initrdPath ? initrdLink : null),
      why: `the rootfs's kernel ${link}${p !== link ? ` (-> ${p})` : ''}`,
    };
  }
  return null;
}

/** The modules directory of release `version` in the rootfs (/lib/modules or /usr/lib/modules), links resolved, or null. */
export function modulesDirOf(root: RootView, version: string): string | null {
  for (const base of ['/lib/modules', '/usr/lib/modules']) {
    const p = resolveInside(root, `${base}/${version}`);
    if (p !== null && root.stat(p)?.type === 'dir') return p;
  }
  return null;
}

/** The releases the rootfs has modules for. */
export function moduleReleases(root: RootView): string[] {
  const out = new Set<string>();
  for (const base of ['/lib/modules', '/usr/lib/modules']) {
    const p = resolveInside(root, base);
    if (p === null) continue;
    for (const name of root.list(p) ?? []) if (root.stat(`${p}/${name}`)?.type === 'dir') out.add(name);
  }
  return [...out].sort(versionSortCompare);
}

/** Refuses a kernel whose header announces another release than its name (a renamed or mixed-up file). */
export function checkNamedRelease(from: string, nameVersion: string | null, headerRelease: string | null): void {
  if (nameVersion === null || headerRelease === null || !/^[0-9]/.test(nameVersion)) return;
  if (nameVersion.replace(/\.old$/, '') !== headerRelease) {
    throw new ToolError('BOOT_FILE_UNUSABLE', `${from}: the kernel's header says it is release ${headerRelease}, its name says ${nameVersion}: its modules and initrd would not match`);
  }
}
