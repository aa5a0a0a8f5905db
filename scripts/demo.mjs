// The README's main job on a built-in example: a tiny busybox root filesystem (no kernel, no boot
// sector), wrapped by fsmaker into a bootable disk without root privileges, loop devices or
// mounts, then booted under qemu (software emulation) with the serial console shown.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fsmaker-demo-'));
const say = (s) => console.log(`\n== ${s}`);
const run = (cmd, args) => {
  console.log(`$ ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

try {
  say('1. the default kernel and busybox (Debian packages, extracted into .cache/boot, not installed)');
  const assets = execFileSync('sh', [path.join(root, 'scripts/fetch-kernel.sh')]).toString();
  const busybox = /^BUSYBOX=(.*)$/m.exec(assets)[1];

  say('2. a root filesystem with nothing bootable in it: busybox and an /sbin/init');
  const tree = path.join(dir, 'rootfs');
  for (const d of ['bin', 'sbin', 'proc', 'sys', 'dev', 'etc']) fs.mkdirSync(path.join(tree, d), { recursive: true });
  fs.copyFileSync(busybox, path.join(tree, 'bin/busybox'));
  fs.chmodSync(path.join(tree, 'bin/busybox'), 0o755);
  fs.writeFileSync(
    path.join(tree, 'sbin/init'),
    '#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n/bin/busybox echo\n/bin/busybox echo "*** Hello from a disk that fsmaker built without root: $(/bin/busybox uname -sr) ***"\n/bin/busybox echo\n/bin/busybox poweroff -f\n',
    { mode: 0o755 },
  );
  const rootfs = path.join(dir, 'rootfs.ext4');
  execFileSync('truncate', ['-s', '64M', rootfs]);
  run('mkfs.ext4', ['-q', '-F', '-L', 'demo', '-d', tree, rootfs]);

  say('3. fsmaker: MBR, GRUB for BIOS and UEFI, the kernel, a generated initramfs');
  const disk = path.join(dir, 'disk.img');
  run(process.execPath, [path.join(root, 'dist/bin/fsmaker.mjs'), '--seed', 'demo', rootfs, disk]);
  run(process.execPath, [path.join(root, 'dist/bin/ptable.mjs'), 'show', disk]);

  say('4. boot it: qemu-system-x86_64 (TCG, SeaBIOS), serial console below; about ten seconds');
  const qemu = spawn('qemu-system-x86_64', ['-accel', 'tcg', '-machine', 'pc', '-m', '512', '-display', 'none', '-no-reboot', '-nodefaults', '-serial', 'stdio', '-drive', `file=${disk},format=raw,if=virtio`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let seen = '';
  const timer = setTimeout(() => qemu.kill('SIGKILL'), 90_000);
  qemu.stdout.on('data', (d) => {
    process.stdout.write(d);
    seen += d.toString();
  });
  const code = await new Promise((resolve) => qemu.on('exit', resolve));
  clearTimeout(timer);
  const ok = /Hello from a disk that fsmaker built/.test(seen);
  console.log(`\n== ${ok ? 'booted: the rootfs init ran and powered the machine off' : `did not boot (qemu exit ${code})`}`);
  process.exitCode = ok ? 0 : 1;
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
