/**
 * A --layout disk booted (GPT, OVMF): a FAT /boot that is also the ESP, an ext4 root built from a
 * busybox directory, a swap partition and an ext4 home built from a directory. The root's
 * /sbin/init turns the swap on, mounts home, reads a file from it, checks that / is mounted
 * read-write (its tree has no fstab, so the command line says rw) and prints what it found.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, makeTempDir, runCli } from './helpers.js';
import { bootAndWaitFor, qemuUnavailableReason } from './qemu-boot.js';

const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
let dir: string;
let busybox = '';
let unavailable: string | null = qemuUnavailableReason('uefi');

beforeAll(() => {
  dir = makeTempDir('fsm-layout-boot-');
  if (!unavailable) {
    const r = spawnSync('sh', [path.join(ROOT, 'scripts/fetch-kernel.sh')], { encoding: 'utf8' });
    if (r.status !== 0) unavailable = `default kernel unavailable: ${r.stderr.trim()}`;
    else busybox = /^BUSYBOX=(.*)$/m.exec(r.stdout)?.[1] ?? '';
  }
  if (unavailable) console.warn(`skipping the layout boot test: ${unavailable}`);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const INIT = `#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B swapon /dev/vda3 && $B grep -q '^/dev/vda3 ' /proc/swaps && swap=on
$B mkdir -p /tmp/home && $B mount -t ext4 /dev/vda4 /tmp/home && home=$($B cat /tmp/home/hello)
root=$($B awk '$2 == "/" { split($4, o, ","); print o[1] }' /proc/mounts | $B tail -n 1)
$B echo "LAYOUT-BOOT swap=$swap home=$home root=$root"
$B poweroff -f
`;

describe('a --layout disk boots', () => {
  it('GPT under OVMF: /boot+ESP, root, swap and home, each working in the booted system', async () => {
    if (unavailable) return;
    const tree = path.join(dir, 'root');
    for (const d of ['bin', 'sbin', 'proc', 'sys', 'dev', 'etc', 'tmp']) fs.mkdirSync(path.join(tree, d), { recursive: true });
    fs.copyFileSync(busybox, path.join(tree, 'bin/busybox'));
    fs.chmodSync(path.join(tree, 'bin/busybox'), 0o755);
    fs.writeFileSync(path.join(tree, 'sbin/init'), INIT, { mode: 0o755 });
    fs.mkdirSync(path.join(dir, 'home'));
    fs.writeFileSync(path.join(dir, 'home/hello'), 'from-home\n');
    const layout = path.join(dir, 'boot.yaml');
    fs.writeFileSync(
      layout,
      `label: gpt
bootloader: uefi
seed: layout-boot
timeout: 0
partitions:
  - { name: boot, size: 64M, type: esp, mount: /boot, contents: fat }
  - { name: root, mount: /, contents: { kind: ext4, from: root } }
  - { name: swap, size: 32M, contents: { kind: swap, label: swap } }
  - { name: home, type: home, contents: { kind: ext4, from: home } }
`,
    );
    const image = path.join(dir, 'disk.img');
    const r = runCli(FSMAKER, ['-q', '--layout', layout, image]);
    expect(r.status, r.stderr).toBe(0);
    const boot = await bootAndWaitFor({ image, firmware: 'uefi', disk: 'virtio', marker: /LAYOUT-BOOT [^\n]*\n/, timeoutMs: 240_000 });
    expect(boot.found, boot.serial.slice(-3000)).toBe(true);
    expect(boot.serial).toMatch(/LAYOUT-BOOT swap=on home=from-home root=rw/);
  }, 300_000);
});
