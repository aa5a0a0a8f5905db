/**
 * Issue 13's first case, booted: an ext4 rootfs with a kernel (/boot/vmlinuz-RELEASE, the Debian
 * cloud kernel) and its /lib/modules/RELEASE but no initrd. chooseBootFor, through
 * rootViewOfImage, takes the rootfs's kernel and builds the initramfs from the rootfs's own
 * modules (marked, so the test sees where they came from); the disk boots under qemu (SeaBIOS,
 * virtio) to the rootfs's /sbin/init. Until the command line uses chooseBootFor, the choice is
 * written out and given to fsmaker with -k/-i. Skipped, with the reason printed, without qemu or
 * the default kernel.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findDefaultBootAssets } from '../src/fsmaker/boot-assets.js';
import { chooseBootFor } from '../src/fsmaker/boot-choice.js';
import { parseCpioNewc } from '../src/fsmaker/cpio.js';
import { DEFAULT_ROOT_MODULES, indexModules, resolveModuleOrder } from '../src/fsmaker/kernel-modules.js';
import { inspectRootfs, rootViewOfImage } from '../src/fsmaker/rootfs.js';
import { ROOT, makeTempDir, runCli } from './helpers.js';
import { bootAndWaitFor, qemuUnavailableReason } from './qemu-boot.js';

const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
const MARKER = 'OWN-MODULES-ROOT-OK';
const MARK = Buffer.from('\0FROM-THE-ROOTFS\0');
let dir: string;
let unavailable: string | null = qemuUnavailableReason('bios');
let assets: ReturnType<typeof findDefaultBootAssets>;

beforeAll(() => {
  dir = makeTempDir('fsm-kboot-');
  if (!unavailable) {
    assets = findDefaultBootAssets(path.join(ROOT, '.cache/boot'));
    if (assets.status !== 'ok') {
      spawnSync('sh', [path.join(ROOT, 'scripts/fetch-kernel.sh')]);
      assets = findDefaultBootAssets(path.join(ROOT, '.cache/boot'));
    }
    if (assets.status !== 'ok') unavailable = assets.message;
  }
  if (unavailable) console.warn(`skipping the own-modules boot test: ${unavailable}`);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('a rootfs kernel without an initrd boots with an initramfs of its own modules', () => {
  it('issue case 1, booted: /boot/vmlinuz-RELEASE and /usr/lib/modules/RELEASE, no initrd', async (ctx) => {
    if (unavailable || assets.status !== 'ok') return ctx.skip();
    const release = assets.kernelVersion;
    const tree = path.join(dir, 'tree');
    for (const d of ['bin', 'sbin', 'proc', 'sys', 'dev', 'boot', `usr/lib/modules/${release}`]) fs.mkdirSync(path.join(tree, d), { recursive: true });
    fs.symlinkSync('usr/lib', path.join(tree, 'lib'));
    fs.copyFileSync(assets.busybox, path.join(tree, 'bin/busybox'));
    fs.chmodSync(path.join(tree, 'bin/busybox'), 0o755);
    fs.writeFileSync(path.join(tree, 'sbin/init'), `#!/bin/busybox sh\n/bin/busybox echo ${MARKER}\n/bin/busybox poweroff -f\n`, { mode: 0o755 });
    fs.copyFileSync(assets.kernel, path.join(tree, `boot/vmlinuz-${release}`));
    // The modules the root needs, as the rootfs's own (a mark appended: the ELF loader ignores it).
    for (const m of resolveModuleOrder(DEFAULT_ROOT_MODULES, indexModules(assets.modulesDir))) {
      const to = path.join(tree, `usr/lib/modules/${release}`, path.relative(assets.modulesDir, m.path));
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.writeFileSync(to, Buffer.concat([fs.readFileSync(m.path), MARK]));
    }
    fs.copyFileSync(path.join(assets.modulesDir, 'modules.builtin'), path.join(tree, `usr/lib/modules/${release}/modules.builtin`));
    const image = path.join(dir, 'rootfs.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'ownmods', '-d', tree, image, '64M']);

    const rootfs = inspectRootfs(image);
    const kernel = path.join(dir, 'vmlinuz');
    const initrd = path.join(dir, 'initrd.img');
    try {
      const choice = await chooseBootFor({ repoRoot: ROOT }, rootViewOfImage(rootfs));
      expect(choice.kernel.from).toBe(`/boot/vmlinuz-${release} in ${image}`);
      expect(choice.modules).toBe(`/usr/lib/modules/${release} in ${image}`);
      const gz = choice.initrd.read(0, choice.initrd.size);
      const cpio = zlib.gunzipSync(gz);
      const modules = parseCpioNewc(cpio).filter((h) => h.name.startsWith('lib/modules/'));
      expect(modules.length).toBe(12);
      for (const h of modules) expect(cpio.subarray(h.dataOffset + h.filesize - MARK.length, h.dataOffset + h.filesize).equals(MARK), h.name).toBe(true);
      fs.writeFileSync(kernel, choice.kernel.read(0, choice.kernel.size));
      fs.writeFileSync(initrd, gz);
    } finally {
      rootfs.close();
    }
    const disk = path.join(dir, 'disk.img');
    const r = runCli(FSMAKER, ['--seed', 'ownmods', '--firmware', 'bios', '-k', kernel, '-i', initrd, image, disk]);
    expect(r.status, r.stderr).toBe(0);
    const boot = await bootAndWaitFor({ image: disk, firmware: 'bios', disk: 'virtio', marker: new RegExp(`${MARKER}|INITRD-FAIL`), timeoutMs: 300_000 });
    expect(boot.serial, boot.serial.slice(-3000)).toContain(MARKER);
    expect(boot.serial).not.toMatch(/disagrees about version|INITRD-WARN/);
  }, 420_000);
});
