/**
 * Netboot (issue 13, item 3): a disk whose kernel command line is `root=/dev/nfs nfsroot=... ip=dhcp`
 * and whose generated initramfs has the NIC and NFS client modules boots, under qemu (TCG, SeaBIOS),
 * a busybox root exported by nfs-ganesha on this machine (test/nfs-server.ts: NFSv4 on
 * 127.0.0.1, which the guest reaches at 10.0.2.2 over qemu's user network); the root's /sbin/init
 * checks with `mount` that / is NFS before printing its marker. Skipped, with the reason printed,
 * when qemu, the NFS server or the default kernel cannot run here.
 *
 * The disks are --layout files: a boot partition only, and the VMware lab's two partitions (boot
 * with the kernel, initrd and NFS command line; home filled from a directory owned 1000:100, which
 * the NFS root's /sbin/init mounts and reports).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseBootFor } from '../src/fsmaker/boot-choice.js';
import { ROOT, makeTempDir, runCli } from './helpers.js';
import { type NfsServer, nfsServerUnavailableReason, startNfsServer } from './nfs-server.js';
import { bootAndWaitFor, qemuUnavailableReason } from './qemu-boot.js';

const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
const MARKER = 'NFSROOT-OK-MARKER';
const PORT = 20490;
let dir: string;
let server: NfsServer | null = null;
let kernel: string;
let busybox: string;
let unavailable: string | null = qemuUnavailableReason('bios') ?? nfsServerUnavailableReason();

function fetchBootAssets(): { kernel: string; busybox: string } | string {
  const r = spawnSync('sh', [path.join(ROOT, 'scripts/fetch-kernel.sh')], { encoding: 'utf8' });
  if (r.status !== 0) return `default kernel unavailable: ${r.stderr.trim()}`;
  const value = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(r.stdout)?.[1] ?? '';
  return { kernel: value('KERNEL'), busybox: value('BUSYBOX') };
}

/** The exported root: busybox, and an /sbin/init that prints the marker only when / is mounted over NFS. */
function exportTree(tree: string): void {
  for (const d of ['bin', 'sbin', 'proc', 'sys', 'dev', 'etc', 'tmp', 'mnt']) fs.mkdirSync(path.join(tree, d), { recursive: true });
  fs.copyFileSync(busybox, path.join(tree, 'bin/busybox'));
  fs.chmodSync(path.join(tree, 'bin/busybox'), 0o755);
  fs.writeFileSync(
    path.join(tree, 'sbin/init'),
    `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
if [ -b /dev/vda2 ] && /bin/busybox mount -t ext4 -o ro /dev/vda2 /mnt; then
	/bin/busybox echo "HOME: $(/bin/busybox stat -c '%u:%g %a %n' /mnt/alice/notes.txt)"
fi
line=$(/bin/busybox mount | /bin/busybox grep ' on / type nfs')
/bin/busybox echo "ROOT-MOUNT: $line"
case "$line" in
*' type nfs'*) /bin/busybox echo ${MARKER} ;;
*) /bin/busybox echo NFSROOT-NOT-NFS ;;
esac
/bin/busybox poweroff -f
`,
    { mode: 0o755 },
  );
}

beforeAll(async () => {
  dir = makeTempDir('fsm-netboot-');
  if (!unavailable) {
    const assets = fetchBootAssets();
    if (typeof assets === 'string') unavailable = assets;
    else ({ kernel, busybox } = assets);
  }
  if (!unavailable) {
    const tree = path.join(dir, 'export');
    exportTree(tree);
    try {
      server = await startNfsServer(tree, { port: PORT, versions: [3, 4] });
    } catch (err) {
      unavailable = `no NFS server: ${(err as Error).message}`;
    }
  }
  if (unavailable) console.warn(`skipping the netboot boot test: ${unavailable}`);
}, 120_000);
afterAll(() => {
  server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * A disk with the default kernel, the generated netboot initramfs and `cmdline` (root=/dev/nfs
 * and the NFS words): a boot partition, then `extraPartitions` (YAML list items).
 */
async function netbootDisk(nfsWords: string, name: string, extraPartitions = ''): Promise<string> {
  const choice = await chooseBootFor({ repoRoot: ROOT, netboot: true }, null);
  expect(choice.kernel.from).toBe(kernel);
  const initrd = path.join(dir, 'initrd.img');
  fs.writeFileSync(initrd, choice.initrd.read(0, choice.initrd.size));
  fs.copyFileSync(kernel, path.join(dir, 'vmlinuz'));
  const disk = path.join(dir, `netboot-${name}.img`);
  const layout = path.join(dir, `netboot-${name}.yaml`);
  fs.writeFileSync(
    layout,
    `label: mbr\nseed: netboot\nbootloader: bios\nkernel: vmlinuz\ninitrd: initrd.img\ncmdline: { root: /dev/nfs, append: "${nfsWords}" }\npartitions:\n  - { size: 64M, bootable: true, mount: /boot, contents: fat }\n${extraPartitions}`,
  );
  const r = runCli(FSMAKER, ['--layout', layout, disk]);
  expect(r.status, r.stderr).toBe(0);
  expect(r.stderr).toMatch(/no root partition/);
  return disk;
}

describe('netboot: an NFS root', () => {
  it('boots to the NFS root\'s marker with fsmaker\'s generated initramfs (DHCP by udhcpc, nfs4 mount)', async (ctx) => {
    if (unavailable) ctx.skip();
    const disk = await netbootDisk(`nfsroot=10.0.2.2:${server!.pseudo},vers=4.1,port=${PORT} ip=dhcp rw rd.timeout=60`, 'v4');

    const boot = await bootAndWaitFor({ image: disk, firmware: 'bios', disk: 'virtio', nic: 'virtio-net-pci', marker: new RegExp(`${MARKER}|NFSROOT-NOT-NFS|INITRD-FAIL`), timeoutMs: 300_000 });
    const context = `${boot.serial.slice(-3000)}\n[ganesha] ${server!.log().slice(-1500)}`;
    expect(boot.serial, context).toContain(MARKER);
    expect(boot.serial).toMatch(/INITRD-NET: eth0 10\.0\.2\.15 \(dhcp\), server 10\.0\.2\.2/);
    expect(boot.serial).toContain(`INITRD-OK: root 10.0.2.2:${server!.pseudo} is mounted over NFS`);
    expect(boot.serial).toMatch(new RegExp(`ROOT-MOUNT: 10\\.0\\.2\\.2:${server!.pseudo} on / type nfs4 \\(rw,`));
  }, 420_000);

  it('boots the same root over NFSv3 (nfsroot= without vers=: busybox mount -t nfs, nolock, vers=3; mountd found through rpcbind)', async (ctx) => {
    if (unavailable) ctx.skip();
    const disk = await netbootDisk(`nfsroot=10.0.2.2:${server!.pseudo} ip=dhcp rw rd.timeout=60`, 'v3');
    const boot = await bootAndWaitFor({ image: disk, firmware: 'bios', disk: 'virtio', nic: 'virtio-net-pci', marker: new RegExp(`${MARKER}|NFSROOT-NOT-NFS|INITRD-FAIL`), timeoutMs: 300_000 });
    const context = `${boot.serial.slice(-3000)}\n[ganesha] ${server!.log().slice(-1500)}`;
    expect(boot.serial, context).toContain(MARKER);
    expect(boot.serial).toMatch(new RegExp(`ROOT-MOUNT: 10\\.0\\.2\\.2:${server!.pseudo} on / type nfs \\(rw,.*vers=3.*nolock`));
  }, 420_000);
  it('a VMware lab disk: a boot partition with the NFS command line and a home partition from a directory owned 1000:100, checked and booted to the NFS root', async (ctx) => {
    if (unavailable) ctx.skip();
    if (process.getuid?.() !== 0) {
      console.warn('skipping the VMware lab disk: giving files to 1000:100 needs root');
      return ctx.skip();
    }
    const home = path.join(dir, 'hometree');
    fs.mkdirSync(path.join(home, 'alice'), { recursive: true });
    fs.writeFileSync(path.join(home, 'alice/notes.txt'), 'lab notes\n');
    fs.chmodSync(path.join(home, 'alice/notes.txt'), 0o640);
    fs.chmodSync(path.join(home, 'alice'), 0o750);
    for (const p of ['alice', 'alice/notes.txt']) fs.chownSync(path.join(home, p), 1000, 100);
    const disk = await netbootDisk(`nfsroot=10.0.2.2:${server!.pseudo},vers=4.1,port=${PORT} ip=dhcp rw rd.timeout=60`, 'lab', `  - { type: home, contents: { kind: ext4, from: ${home} } }\n`);

    const table = JSON.parse(execFileSync('sfdisk', ['-J', disk], { encoding: 'utf8' })) as { partitiontable: { label: string; partitions: { type: string; bootable?: boolean }[] } };
    expect(table.partitiontable.label).toBe('dos');
    expect(table.partitiontable.partitions.map((p) => [p.type, p.bootable ?? false])).toEqual([['c', true], ['83', false]]);
    const homeFs = path.join(dir, 'lab-home.ext4');
    expect(runCli(path.join(ROOT, 'dist/bin/sparsecopy.mjs'), ['-q', '--from-partition', '2', disk, homeFs]).status).toBe(0);
    const fsck = spawnSync('e2fsck', ['-fn', homeFs], { encoding: 'utf8' });
    expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);
    const stat = execFileSync('debugfs', ['-R', 'stat /alice/notes.txt', homeFs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(stat).toMatch(/User:\s+1000\s+Group:\s+100\b/);
    expect(stat).toMatch(/Mode:\s+0640\b/);

    const boot = await bootAndWaitFor({ image: disk, firmware: 'bios', disk: 'virtio', nic: 'virtio-net-pci', marker: new RegExp(`${MARKER}|NFSROOT-NOT-NFS|INITRD-FAIL`), timeoutMs: 300_000 });
    expect(boot.serial, `${boot.serial.slice(-3000)}\n[ganesha] ${server!.log().slice(-1500)}`).toContain(MARKER);
    expect(boot.serial).toMatch(new RegExp(`ROOT-MOUNT: 10\\.0\\.2\\.2:${server!.pseudo} on / type nfs4 \\(rw,`));
    expect(boot.serial).toContain('HOME: 1000:100 640 /mnt/alice/notes.txt');
  }, 420_000);
});
