/**
 * Kernel discovery and the kernel/initramfs match (issue 13, item 4): version order against
 * `sort -V`, links resolved inside the rootfs, the bzImage's release against its name, and each
 * of the cases through chooseBootFor on a stand-in RootView (the directory/archive one is
 * another module's) and on an ext4 image (rootViewOfImage), with the real default kernel's
 * modules (scripts/fetch-kernel.sh's cache; skipped, with the reason printed, without it).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findDefaultBootAssets } from '../src/fsmaker/boot-assets.js';
import { type BootForRequest, chooseBootFor } from '../src/fsmaker/boot-choice.js';
import { bzImageRelease } from '../src/fsmaker/boot-files.js';
import { cpioArchive, parseCpioNewc } from '../src/fsmaker/cpio.js';
import { initrdMemberNames } from '../src/fsmaker/initrd-inspect.js';
import { findRootKernel, resolveInside, versionedKernels } from '../src/fsmaker/kernel-find.js';
import { decompressModule, indexModules } from '../src/fsmaker/kernel-modules.js';
import { inspectRootfs, rootViewOfImage } from '../src/fsmaker/rootfs.js';
import { openTree } from '../src/fsmaker/tree-open.js';
import { rootViewOfTree } from '../src/fsmaker/tree-view.js';
import { fileVersionCompare, versionSortCompare } from '../src/fsmaker/version-sort.js';
import { ToolError } from '../src/errors.js';
import { fakeInitrd, fakeKernel } from './fsmaker-fixtures.js';
import { type Entry, file, kernelOf, link, memoryRoot } from './fsmaker-kernel-fixtures.js';
import { ROOT, makeTempDir, prng } from './helpers.js';

/** Real version strings of Debian, Ubuntu, Fedora and upstream kernels and packages. */
const VERSIONS = [
  '6.1.0-57-cloud-amd64', '6.1.0-50-cloud-amd64', '6.1.0-9-amd64', '6.1.0-10-amd64', '6.1.0-0.deb11.7-amd64',
  '5.10.0-28-amd64', '6.12.9-amd64', '6.12~rc6-amd64', '6.12-amd64', '6.12.0-rc7-amd64', '6.12.0-1-amd64',
  '6.1.0-18-rt-amd64', '4.19.0-26-amd64', '6.5.0-0.deb12.4-amd64', '6.1.0-57-cloud-amd64.old', '6.1.0-57+b1',
  '6.1.192-3', '6.1.192-3+deb12u1', '6.1.192-3~bpo11+1', '1:1.35.0-4+deb12u1+b1', '6.8.0-49-generic', '6.8.0-100-generic',
  '6.11.4-201.fc40.x86_64', '6.11.10-300.fc41.x86_64', 'linux', 'linux-lts', '6.6.1-arch1-1', '6.10.0-rc1', '6.10.0',
  '6.10', '6.9.12', '2.6.32-5-686', '3.16.0-4-amd64', '10.0', '9.99', '0.0~1', '~', '', 'a~b', '1.0.tar.gz', '1.0.gz', '1.0~beta.xz',
];


describe('version order (grub-mkconfig: sort -V)', () => {
  it('sorts real kernel and package versions exactly as sort -V does', () => {
    const expected = execFileSync('sort', ['-V'], { input: `${VERSIONS.join('\n')}\n`, encoding: 'utf8' }).split('\n').slice(0, -1);
    expect([...VERSIONS].sort(versionSortCompare)).toEqual(expected);
    expect(fileVersionCompare('6.1.0-10-amd64', '6.1.0-9-amd64')).toBeGreaterThan(0);
    expect(fileVersionCompare('6.12~rc6-amd64', '6.12-amd64')).toBeLessThan(0);
  });

  it('agrees with sort -V on 3000 seeded random version-like strings', () => {
    const rand = prng(1313);
    const alphabet = '0123456789..--~~++abz_:A';
    const list = Array.from({ length: 3000 }, () => Array.from({ length: 1 + Math.floor(rand() * 12) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join(''));
    const expected = execFileSync('sort', ['-V'], { input: `${list.join('\n')}\n`, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }).split('\n').slice(0, -1);
    expect([...list].sort(versionSortCompare)).toEqual(expected);
  });
});

describe('kernels found as grub-mkconfig finds them', () => {
  it('takes the newest versioned /boot/vmlinuz-VERSION by version order (not by name), skipping package leftovers', () => {
    const root = memoryRoot('R', {
      '/boot/vmlinuz-6.1.0-9-amd64': file(kernelOf('6.1.0-9-amd64')),
      '/boot/vmlinuz-6.1.0-10-amd64': file(kernelOf('6.1.0-10-amd64')),
      '/boot/vmlinuz-6.1.0-10-amd64.old': file(kernelOf('6.1.0-10-amd64')),
      '/boot/vmlinuz-6.1.0-11-amd64.dpkg-tmp': file(kernelOf('6.1.0-11-amd64')),
      '/boot/initrd.img-6.1.0-10-amd64': file(fakeInitrd()),
    });
    expect(versionedKernels(root).map((k) => k.version)).toEqual(['6.1.0-10-amd64', '6.1.0-10-amd64.old', '6.1.0-9-amd64']);
    const found = findRootKernel(root)!;
    expect(found.path).toBe('/boot/vmlinuz-6.1.0-10-amd64');
    expect(found.initrd).toBe('/boot/initrd.img-6.1.0-10-amd64');
    expect(found.why).toMatch(/newest of .*by version order/);
  });

  it('finds the initrd as Fedora and Arch name it', () => {
    const fedora = memoryRoot('F', { '/boot/vmlinuz-6.11.4-201.fc40.x86_64': file(kernelOf('6.11.4-201.fc40.x86_64')), '/boot/initramfs-6.11.4-201.fc40.x86_64.img': file(fakeInitrd()) });
    expect(findRootKernel(fedora)!.initrd).toBe('/boot/initramfs-6.11.4-201.fc40.x86_64.img');
    const arch = memoryRoot('A', { '/boot/vmlinuz-linux': file(kernelOf('6.6.1-arch1-1')), '/boot/initramfs-linux.img': file(fakeInitrd()) });
    expect(findRootKernel(arch)).toMatchObject({ path: '/boot/vmlinuz-linux', nameVersion: 'linux', initrd: '/boot/initramfs-linux.img' });
    const initrdDash = memoryRoot('O', { '/boot/vmlinuz-5.0': file(kernelOf('5.0')), '/boot/initrd-5.0.img': file(fakeInitrd()) });
    expect(findRootKernel(initrdDash)!.initrd).toBe('/boot/initrd-5.0.img');
  });

  it('follows /vmlinuz and /boot/vmlinuz links, relative and absolute, inside the rootfs only', () => {
    const rel = memoryRoot('R', { '/vmlinuz': link('boot/kernel.img'), '/boot/kernel.img': file(kernelOf(null)), '/initrd.img': link('boot/initrd.gz'), '/boot/initrd.gz': file(fakeInitrd()) });
    expect(findRootKernel(rel)).toMatchObject({ path: '/boot/kernel.img', foundAs: '/vmlinuz', nameVersion: null, initrd: '/boot/initrd.gz' });
    // An absolute target, and '..' past the root, stay in the rootfs (as under chroot), never on the host.
    const abs = memoryRoot('R', { '/boot/vmlinuz': link('/../../../boot/k'), '/boot/k': file(kernelOf(null)) });
    expect(findRootKernel(abs)!.path).toBe('/boot/k');
    const escape = memoryRoot('R', { '/boot/vmlinuz': link('/etc/passwd') });
    expect(findRootKernel(escape)).toBeNull(); // the host's /etc/passwd is never looked at
    const loop = memoryRoot('R', { '/boot/vmlinuz': link('a'), '/boot/a': link('vmlinuz') });
    expect(findRootKernel(loop)).toBeNull();
    expect(resolveInside(memoryRoot('R', { '/lib': link('usr/lib'), '/usr/lib/modules/x': { type: 'dir' } }), '/lib/modules/x')).toBe('/usr/lib/modules/x');
  });

  it('reads the release from the bzImage header (the real default kernel and stand-ins)', () => {
    expect(bzImageRelease(kernelOf('6.1.0-50-cloud-amd64'))).toBe('6.1.0-50-cloud-amd64');
    expect(bzImageRelease(kernelOf(null))).toBeNull();
    expect(bzImageRelease(fakeKernel(200_000, 1))).toBeNull(); // random bytes are no release
    const assets = findDefaultBootAssets(path.join(ROOT, '.cache/boot'));
    if (assets.status === 'ok') expect(bzImageRelease(fs.readFileSync(assets.kernel).subarray(0, 0x10300))).toBe(assets.kernelVersion);
  });
});

// --- chooseBootFor, against the real default kernel's modules ---

let dir: string;
let defaultModules: string;
let defaultVersion: string;
/** Why the default kernel's modules are not there (fetched once here, as the other boot tests do). */
const unavailable: string | null = (() => {
  let assets = findDefaultBootAssets(path.join(ROOT, '.cache/boot'));
  if (assets.status !== 'ok') {
    spawnSync('sh', [path.join(ROOT, 'scripts/fetch-kernel.sh')]);
    assets = findDefaultBootAssets(path.join(ROOT, '.cache/boot'));
  }
  if (assets.status !== 'ok') return assets.message;
  defaultModules = assets.modulesDir;
  defaultVersion = assets.kernelVersion;
  return null;
})();
const OLD = '6.1.0-50-cloud-amd64';
const ROOTFS_MARK = Buffer.from('\0ROOTFS-MODULE-MARK\0');

beforeAll(() => {
  dir = makeTempDir('fsm-kernel-');
  if (unavailable) console.warn(`skipping chooseBootFor tests: ${unavailable}`);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * /lib/modules/VERSION entries for a rootfs: the default kernel's modules (real ELF with .modinfo)
 * that `names` and their dependencies need, each marked at its end (so that the initramfs shows
 * where its modules came from), as `compress` stores them.
 */
function rootModules(version: string, options: { compress?: 'xz' | 'zst'; drop?: string[]; builtin?: string[]; all?: boolean } = {}): Record<string, Entry> {
  const index = indexModules(defaultModules);
  const out: Record<string, Entry> = {};
  const wanted = ['virtio_pci', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_ring', 'virtio', 'virtio_blk', 'scsi_common', 'scsi_mod', 'virtio_scsi', 'libata', 'ata_piix', 'sd_mod'];
  const net = ['virtio_net', 'net_failover', 'failover', 'nfs', 'nfsv4', 'nfsv3', 'sunrpc', 'lockd', 'grace', 'fscache', 'netfs', 'dns_resolver', 'nfs_acl', 'af_packet'];
  for (const n of options.all ? [...wanted, ...net] : wanted) {
    if (options.drop?.includes(n) || !index.has(n)) continue;
    const rel = path.relative(defaultModules, index.get(n)!);
    let data = Buffer.concat([fs.readFileSync(index.get(n)!), ROOTFS_MARK]);
    let name = rel;
    if (options.compress) {
      data = execFileSync(options.compress === 'xz' ? 'xz' : 'zstd', ['-c', '-q'], { input: data, maxBuffer: 1 << 28 });
      name = `${rel}.${options.compress}`;
    }
    out[`/usr/lib/modules/${version}/${name}`] = file(data);
  }
  if (options.builtin) out[`/usr/lib/modules/${version}/modules.builtin`] = file(Buffer.from(options.builtin.map((b) => `kernel/drivers/${b}.ko\n`).join('')));
  out['/lib'] = link('usr/lib'); // merged /usr, as Debian 12
  return out;
}

/** The generated initramfs's modules: name -> bytes. */
function initramfsModules(gz: Buffer): Map<string, Buffer> {
  const cpio = zlib.gunzipSync(gz);
  const out = new Map<string, Buffer>();
  for (const h of parseCpioNewc(cpio)) {
    const m = /^lib\/modules\/(.+)\.ko$/.exec(h.name);
    if (m) out.set(m[1]!, cpio.subarray(h.dataOffset, h.dataOffset + h.filesize));
  }
  return out;
}

const request = (extra: Partial<BootForRequest> = {}): BootForRequest => ({ repoRoot: ROOT, ...extra });

async function refusal(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ToolError) return { code: err.exitCode, message: err.message };
    throw err;
  }
  throw new Error('not refused');
}

describe.skipIf(unavailable !== null)('the initramfs is built from the modules of the kernel actually used', () => {
  it(`issue case 1: a rootfs kernel (${OLD}) without an initrd gets an initramfs of its own /lib/modules/${OLD}, not the default kernel's`, async () => {
    const root = memoryRoot('ROOT', { '/boot/vmlinuz': link(`vmlinuz-${OLD}`), [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), ...rootModules(OLD) });
    const choice = await chooseBootFor(request(), root);
    expect(choice.kernel.from).toBe(`/boot/vmlinuz-${OLD} in ROOT`);
    expect(choice.kernelVersion).toBe(OLD);
    expect(choice.modules).toBe(`/usr/lib/modules/${OLD} in ROOT`);
    expect(choice.initrd.from).toMatch(new RegExp(`^generated \\(busybox, 12 modules from /usr/lib/modules/${OLD} in ROOT\\)$`));
    const mods = initramfsModules(choice.initrd.read(0, choice.initrd.size));
    expect([...mods.keys()]).toContain('virtio_blk');
    for (const [name, data] of mods) expect(data.subarray(-ROOTFS_MARK.length).equals(ROOTFS_MARK), name).toBe(true);
    expect(choice.warnings).toEqual([]);
  });

  it(`issue case 2: /boot/vmlinuz-${OLD} with its initrd and no /vmlinuz link is the kernel booted, with that initrd`, async () => {
    const initrd = fakeInitrd(5000, 9);
    const root = memoryRoot('ROOT', { [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), [`/boot/initrd.img-${OLD}`]: file(initrd), ...rootModules(OLD) });
    const choice = await chooseBootFor(request(), root);
    expect(choice.kernel.from).toBe(`/boot/vmlinuz-${OLD} in ROOT`);
    expect(choice.initrd.from).toBe(`/boot/initrd.img-${OLD} in ROOT`);
    expect(choice.initrd.read(0, choice.initrd.size).equals(initrd)).toBe(true);
    expect(choice.modules).toMatch(/rootfs's own initrd/);
    expect(root.reads.some((r) => r.includes('/lib/modules/'))).toBe(false);
  });

  it('refuses (KERNEL_MODULES_MISSING, 34) a rootfs kernel with no initrd and no modules of its release', async () => {
    const root = memoryRoot('ROOT', { [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), ...rootModules('6.1.0-49-cloud-amd64') });
    const r = await refusal(chooseBootFor(request(), root));
    expect(r.code).toBe(34);
    expect(r.message).toMatch(new RegExp(`^/boot/vmlinuz-${OLD} in ROOT: no modules for release ${OLD}: ROOT has no /lib/modules/${OLD}.*only 6\\.1\\.0-49-cloud-amd64`));
  });

  it('a kernel known by its name only (vmlinuz-RELEASE.old, no release in its header) uses the modules of RELEASE', async () => {
    const root = memoryRoot('ROOT', { [`/boot/vmlinuz-${OLD}.old`]: file(kernelOf(null)), ...rootModules(OLD) });
    const choice = await chooseBootFor(request(), root);
    expect(choice.kernelVersion).toBe(OLD);
    expect(choice.kernel.why).toBe(`the rootfs's kernel /boot/vmlinuz-${OLD}.old; release ${OLD} (its name)`);
    expect(choice.modules).toBe(`/usr/lib/modules/${OLD} in ROOT`);
  });

  it('refuses a kernel whose header release disagrees with its file name, by name', async () => {
    const root = memoryRoot('ROOT', { [`/boot/vmlinuz-${OLD}`]: file(kernelOf('6.1.0-51-cloud-amd64')), [`/boot/initrd.img-${OLD}`]: file(fakeInitrd()) });
    const r = await refusal(chooseBootFor(request(), root));
    expect(r.code).toBe(27);
    expect(r.message).toBe(`/boot/vmlinuz-${OLD} in ROOT: the kernel's header says it is release 6.1.0-51-cloud-amd64, its name says ${OLD}: its modules and initrd would not match`);
  });

  it('the default kernel uses the cached default modules, and warns when the rootfs has modules for another kernel only', async () => {
    const warned: string[] = [];
    const root = memoryRoot('ROOT', { '/sbin/init': file(Buffer.from('#!/bin/sh\n')), ...rootModules(OLD) });
    const choice = await chooseBootFor(request({ warn: (w) => warned.push(w) }), root);
    expect(choice.kernel.why).toMatch(/^the default: ROOT has no/);
    expect(choice.kernelVersion).toBe(defaultVersion);
    expect(choice.modules).toBe(defaultModules);
    const mods = initramfsModules(choice.initrd.read(0, choice.initrd.size));
    for (const [name, data] of mods) expect(data.equals(fs.readFileSync(indexModules(defaultModules).get(name)!)), name).toBe(true);
    expect(warned).toEqual([`ROOT has modules for ${OLD} but no kernel of that release: it boots ${defaultVersion}, and systemd will miss its modules (give that kernel with -k)`]);
    expect(choice.warnings).toEqual(warned);
    expect(choice.kernel.why).toContain(`warning: ${warned[0]}`);
    expect(root.reads).toEqual([]); // the rootfs's modules are not read for another kernel
  });

  it("-k: its release matched against the default's (cached modules) and the rootfs's modules; neither is refused", async () => {
    const k = path.join(dir, 'k-default');
    fs.writeFileSync(k, kernelOf(defaultVersion));
    const withDefault = await chooseBootFor(request({ kernel: k }), null);
    expect(withDefault.modules).toBe(defaultModules);
    expect(withDefault.kernel.why).toBe(`given with -k; release ${defaultVersion} (its header)`);

    const kOld = path.join(dir, 'k-old');
    fs.writeFileSync(kOld, kernelOf(OLD));
    const root = memoryRoot('ROOT', rootModules(OLD));
    const withRoot = await chooseBootFor(request({ kernel: kOld }), root);
    expect(withRoot.modules).toBe(`/usr/lib/modules/${OLD} in ROOT`);

    const r = await refusal(chooseBootFor(request({ kernel: kOld }), null));
    expect(r.code).toBe(34);
    expect(r.message).toMatch(new RegExp(`^${kOld}: no modules for release ${OLD}: there is no rootfs`));
    const kNone = path.join(dir, 'k-none');
    fs.writeFileSync(kNone, kernelOf(null));
    const unknown = await refusal(chooseBootFor(request({ kernel: kNone }), root));
    expect(unknown.code).toBe(34);
    expect(unknown.message).toMatch(/names no release.*give its initrd with -i/);
    // With -i, no modules are needed.
    const i = path.join(dir, 'i');
    fs.writeFileSync(i, fakeInitrd());
    expect((await chooseBootFor(request({ kernel: kNone, initrd: i }), root)).initrd.from).toBe(i);
  });

  for (const compress of ['xz', 'zst'] as const) {
    it(`decompresses .ko.${compress} modules (Debian 13) with the host's decoder`, async () => {
      const root = memoryRoot('ROOT', { [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), ...rootModules(OLD, { compress }) });
      const choice = await chooseBootFor(request(), root);
      const mods = initramfsModules(choice.initrd.read(0, choice.initrd.size));
      expect(mods.size).toBe(12);
      for (const [name, data] of mods) {
        expect(data.readUInt32BE(0), name).toBe(0x7f454c46);
        expect(data.subarray(-ROOTFS_MARK.length).equals(ROOTFS_MARK)).toBe(true);
      }
    });
  }

  it('refuses a compressed module by name when its decoder is not installed', () => {
    const saved = process.env.PATH;
    process.env.PATH = dir; // no xz there
    try {
      expect(() => decompressModule('kernel/drivers/block/virtio_blk.ko.xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]))).toThrow(
        'kernel module kernel/drivers/block/virtio_blk.ko.xz is xz-compressed and xz is not installed to decompress it (Debian package xz-utils)',
      );
    } finally {
      process.env.PATH = saved;
    }
  });

  it('leaves out a driver modules.builtin names; refuses one that is neither a module nor built in', async () => {
    const builtinRoot = memoryRoot('ROOT', { [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), ...rootModules(OLD, { drop: ['virtio_blk'], builtin: ['block/virtio_blk'] }) });
    const choice = await chooseBootFor(request(), builtinRoot);
    expect([...initramfsModules(choice.initrd.read(0, choice.initrd.size)).keys()]).not.toContain('virtio_blk');
    const missingRoot = memoryRoot('ROOT', { [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), ...rootModules(OLD, { drop: ['virtio_blk'], builtin: ['block/loop'] }) });
    const r = await refusal(chooseBootFor(request(), missingRoot));
    expect(r.code).toBe(34);
    expect(r.message).toMatch(new RegExp(`^/boot/vmlinuz-${OLD} in ROOT: kernel module virtio_blk is neither in /usr/lib/modules/${OLD} in ROOT nor built into the kernel; an initramfs without it`));
    const depMissing = memoryRoot('ROOT', { [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), ...rootModules(OLD, { drop: ['virtio_ring'] }) });
    expect((await refusal(chooseBootFor(request(), depMissing))).message).toMatch(/kernel module virtio_ring not found in \/usr\/lib\/modules\/.* in ROOT \(needed by virtio\w*\)/);
  });

  it('netboot: the generated initramfs gains the NIC drivers and the NFS client modules the .modinfo depends= name', async () => {
    const root = memoryRoot('ROOT', { [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), ...rootModules(OLD, { all: true }) });
    const choice = await chooseBootFor(request({ netboot: true }), root);
    const names = [...initramfsModules(choice.initrd.read(0, choice.initrd.size)).keys()];
    for (const m of ['virtio_net', 'nfs', 'nfsv4', 'nfsv3', 'sunrpc', 'lockd', 'virtio_blk']) expect(names).toContain(m);
    expect(names.indexOf('sunrpc')).toBeLessThan(names.indexOf('nfs'));
    expect(choice.initrd.why).toMatch(/with the NIC and NFS client modules/);
    const noNic = memoryRoot('ROOT', { [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), ...rootModules(OLD, { all: true, drop: ['virtio_net'] }) });
    const r = await refusal(chooseBootFor(request({ netboot: true }), noNic));
    expect(r.code).toBe(34);
    expect(r.message).toMatch(/none of the network drivers virtio_net, e1000, e1000e/);
  });

  /** The entries as a directory on the host, with a /vmlinuz link to the older kernel (which must not win). */
  function hostTree(name: string, entries: Record<string, Entry>): string {
    const tree = path.join(dir, name);
    for (const [p, e] of Object.entries(entries)) {
      const host = path.join(tree, p);
      fs.mkdirSync(path.dirname(host), { recursive: true });
      if (e.type === 'file') fs.writeFileSync(host, e.data);
      else if (e.type === 'symlink') fs.symlinkSync(e.target, host);
    }
    fs.symlinkSync(`vmlinuz-6.1.0-9-cloud-amd64`, path.join(tree, 'vmlinuz'));
    return tree;
  }
  const treeEntries = () => ({ [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), [`/boot/vmlinuz-6.1.0-9-cloud-amd64`]: file(kernelOf('6.1.0-9-cloud-amd64')), ...rootModules(OLD, { compress: 'zst' }) });

  it('a directory and a tar.zst archive through rootViewOfTree (tree-view.ts): the same discovery and modules', async () => {
    const tree = hostTree('tree.d', treeEntries());
    const archive = path.join(dir, 'tree.tar.zst');
    execFileSync('tar', ['--zstd', '-cf', archive, '-C', tree, '.']);
    for (const source of [tree, archive]) {
      const opened = await openTree(source);
      try {
        const choice = await chooseBootFor(request(), rootViewOfTree(opened));
        expect(choice.kernel.from).toBe(`/boot/vmlinuz-${OLD} in ${opened.name}`);
        expect(choice.modules).toBe(`/usr/lib/modules/${OLD} in ${opened.name}`);
        const mods = initramfsModules(choice.initrd.read(0, choice.initrd.size));
        expect(mods.size, source).toBe(12);
        for (const data of mods.values()) expect(data.subarray(-ROOTFS_MARK.length).equals(ROOTFS_MARK)).toBe(true);
      } finally {
        opened.close();
      }
    }
  });

  it('an ext4 image through rootViewOfImage: the same discovery, links inside the image, modules read from it', async () => {
    const entries = { [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), [`/boot/vmlinuz-6.1.0-9-cloud-amd64`]: file(kernelOf('6.1.0-9-cloud-amd64')), ...rootModules(OLD) };
    const tree = hostTree('img.d', entries);
    const image = path.join(dir, 'img.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, image, '64M']);
    const rootfs = inspectRootfs(image);
    try {
      const view = rootViewOfImage(rootfs)!;
      expect(view.stat('/lib')).toEqual({ type: 'symlink', size: 0, target: 'usr/lib' });
      const choice = await chooseBootFor(request(), view);
      expect(choice.kernel.from).toBe(`/boot/vmlinuz-${OLD} in ${image}`);
      expect(choice.modules).toBe(`/usr/lib/modules/${OLD} in ${image}`);
      const mods = initramfsModules(choice.initrd.read(0, choice.initrd.size));
      expect(mods.size).toBe(12);
      for (const data of mods.values()) expect(data.subarray(-ROOTFS_MARK.length).equals(ROOTFS_MARK)).toBe(true);
      expect(choice.kernel.read(0, choice.kernel.size).equals(entries[`/boot/vmlinuz-${OLD}`]!.type === 'file' ? (entries[`/boot/vmlinuz-${OLD}`] as { data: Buffer }).data : Buffer.alloc(0))).toBe(true);
    } finally {
      rootfs.close();
    }
  });

  /** An initrd as initramfs-tools writes one: an uncompressed early cpio (microcode), then the main one compressed with zstd. */
  function debianInitrd(release: string, members: string[]): Buffer {
    const early = cpioArchive([{ type: 'dir', path: 'kernel' }, { type: 'file', path: 'kernel/x86/microcode/GenuineIntel.bin', data: Buffer.alloc(100, 1) }]);
    const main = cpioArchive([
      { type: 'file', path: 'init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
      ...members.map((m) => ({ type: 'file' as const, path: m.replace('VERSION', release), data: Buffer.from(m) })),
    ]);
    return Buffer.concat([early, execFileSync('zstd', ['-c', '-q'], { input: main })]);
  }

  it("netboot: the rootfs's own initrd when it mounts NFS (initramfs-tools scripts/nfs and nfs.ko), else a generated one, each saying why", async () => {
    const withNfs = debianInitrd(OLD, ['scripts/nfs', 'scripts/local', 'usr/lib/modules/VERSION/kernel/fs/nfs/nfs.ko']);
    const listed = initrdMemberNames(withNfs);
    expect(listed).toEqual({ names: ['kernel', 'kernel/x86/microcode/GenuineIntel.bin', 'init', 'scripts/nfs', 'scripts/local', `usr/lib/modules/${OLD}/kernel/fs/nfs/nfs.ko`] });
    const base = { [`/boot/vmlinuz-${OLD}`]: file(kernelOf(OLD)), ...rootModules(OLD, { all: true }) };
    const own = await chooseBootFor(request({ netboot: true }), memoryRoot('ROOT', { ...base, [`/boot/initrd.img-${OLD}`]: file(withNfs) }));
    expect(own.initrd.from).toBe(`/boot/initrd.img-${OLD} in ROOT`);
    expect(own.initrd.why).toBe(`the rootfs's initrd for /boot/vmlinuz-${OLD}; it mounts an NFS root: it has initramfs-tools scripts/nfs and nfs.ko`);

    const depOnly = debianInitrd(OLD, ['scripts/nfs', 'scripts/local', 'usr/lib/modules/VERSION/kernel/drivers/block/virtio_blk.ko']);
    const generated = await chooseBootFor(request({ netboot: true }), memoryRoot('ROOT', { ...base, [`/boot/initrd.img-${OLD}`]: file(depOnly) }));
    expect(generated.initrd.from).toMatch(/^generated \(busybox, \d+ modules from \/usr\/lib\/modules\//);
    expect(generated.initrd.why).toMatch(new RegExp(`^generated: the rootfs's initrd /boot/initrd.img-${OLD} cannot mount an NFS root: it has initramfs-tools scripts/nfs but no nfs.ko`));
    // Without netboot, the rootfs's initrd is taken as it is.
    expect((await chooseBootFor(request(), memoryRoot('ROOT', { ...base, [`/boot/initrd.img-${OLD}`]: file(depOnly) }))).initrd.from).toBe(`/boot/initrd.img-${OLD} in ROOT`);
    // An initrd that cannot be listed is not trusted with an NFS root.
    expect(initrdMemberNames(Buffer.concat([withNfs.subarray(0, 200), Buffer.from('garbage')]))).toMatchObject({ problem: expect.stringMatching(/^a cpio archive at byte 0 cannot be read|byte \d+ starts neither/) });
  });
});
