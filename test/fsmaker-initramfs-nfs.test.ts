/**
 * The generated /init's NFS root (root=/dev/nfs): nfsroot= and ip= as the kernel's nfsroot.rst
 * defines them, run by the real busybox sh in a chroot where ip, udhcpc and mount are stand-ins
 * that log their arguments (udhcpc "answers" as qemu's slirp DHCP server does); the boot under
 * qemu is fsmaker-netboot.test.ts. The stand-ins are shell functions: Debian's static busybox sh
 * runs its own applets before anything on PATH. Skipped, with the reason printed, without root (chroot) or
 * without the default busybox (scripts/fetch-kernel.sh).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findDefaultBootAssets } from '../src/fsmaker/boot-assets.js';
import { nfsShellFunctions } from '../src/fsmaker/initramfs.js';
import { ROOT, makeTempDir } from './helpers.js';

const assets = findDefaultBootAssets(path.join(ROOT, '.cache/boot'));
const unavailable = process.getuid?.() !== 0 ? 'chroot needs root' : assets.status !== 'ok' ? assets.message : null;
let dir: string;

const STUBS = `ip() { echo "ip $*" >> /log; }
mount() { echo "mount $*" >> /log; }
udhcpc() {
	echo "udhcpc $*" >> /log
	[ -e /dhcp-silent ] && return 1
	{ echo "net_ip='10.0.2.15'"; echo "net_siaddr='10.0.2.2'"; echo "net_serverid='10.0.2.2'"; echo "net_rootpath='$(cat /dhcp-rootpath 2>/dev/null)'"; } > /run/net.conf
}
`;

beforeAll(() => {
  if (unavailable) {
    console.warn(`skipping the /init NFS tests: ${unavailable}`);
    return;
  }
  dir = makeTempDir('fsm-init-nfs-');
  for (const d of ['bin', 'dev', 'run', 'etc', 'newroot', 'sys/class/net/lo', 'sys/class/net/eth0']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  spawnSync('mknod', ['-m', '666', path.join(dir, 'dev/null'), 'c', '1', '3']);
  if (assets.status === 'ok') fs.copyFileSync(assets.busybox, path.join(dir, 'bin/busybox'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  for (const applet of ['sh', 'cat', 'tr', 'sed', 'usleep', 'sleep', 'ipcalc', 'rm']) fs.symlinkSync('busybox', path.join(dir, 'bin', applet));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs mount_nfs_root with these nfsroot= and ip= values; returns the logged commands and the output. */
function run(nfsroot: string, ip: string, dhcp: { rootpath?: string; silent?: boolean } = {}): { log: string[]; out: string } {
  fs.rmSync(path.join(dir, 'log'), { force: true });
  fs.rmSync(path.join(dir, 'dhcp-silent'), { force: true });
  fs.writeFileSync(path.join(dir, 'dhcp-rootpath'), dhcp.rootpath ?? '');
  if (dhcp.silent) fs.writeFileSync(path.join(dir, 'dhcp-silent'), '');
  const q = (v: string) => `'${v.replace(/'/g, "'\\''")}'`;
  const script = `fail() { echo "INITRD-FAIL: $*"; exit 1; }\n${STUBS}${nfsShellFunctions()}\nnfsroot=${q(nfsroot)} ipconf=${q(ip)} rwmode=rw timeout=0\nmount_nfs_root\n`;
  fs.writeFileSync(path.join(dir, 'test.sh'), script);
  const r = spawnSync('/usr/sbin/chroot', [dir, '/bin/sh', '/test.sh'], { encoding: 'utf8', env: { PATH: '/bin' } });
  let log: string[] = [];
  try {
    log = fs.readFileSync(path.join(dir, 'log'), 'utf8').trim().split('\n');
  } catch {
    // nothing was run
  }
  return { log, out: (r.stdout + r.stderr).trim() };
}

const mounts = (log: string[]) => log.filter((l) => l.startsWith('mount '));

describe.skipIf(unavailable !== null)('/init: root=/dev/nfs with nfsroot= and ip= (nfsroot.rst)', () => {
  it('ip=dhcp and nfsroot=SERVER:DIR,vers=4.1: DHCP on the first interface but lo, then an nfs4 mount with addr=', () => {
    const r = run('10.0.2.2:/export,vers=4.1,port=20490', 'dhcp');
    expect(r.log).toContain('udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 2');
    expect(mounts(r.log)).toEqual(['mount -t nfs4 -o rw,addr=10.0.2.2,vers=4.1,port=20490 10.0.2.2:/export /newroot']);
    expect(r.out).toContain('INITRD-NET: eth0 10.0.2.15 (dhcp), server 10.0.2.2');
    expect(r.out).toContain('INITRD-OK: root 10.0.2.2:/export is mounted over NFS');
  });

  it('nfsroot=DIR with %s: the server is the DHCP server, %s the client address, nfs v3 with nolock by default', () => {
    expect(mounts(run('/srv/%s', '').log)).toEqual(['mount -t nfs -o rw,nolock,vers=3 10.0.2.2:/srv/10.0.2.15 /newroot']);
  });

  it('no nfsroot=: the root path DHCP gives (option 17), else /tftpboot/%s', () => {
    expect(mounts(run('', 'dhcp', { rootpath: '/nfs/client' }).log)).toEqual(['mount -t nfs -o rw,nolock,vers=3 10.0.2.2:/nfs/client /newroot']);
    expect(mounts(run('', 'dhcp').log)).toEqual(['mount -t nfs -o rw,nolock,vers=3 10.0.2.2:/tftpboot/10.0.2.15 /newroot']);
  });

  it('static ip=CLIENT:SERVER:GW:NETMASK:HOSTNAME:DEVICE:off, the server from ip=, options kept', () => {
    const r = run('/nfs,vers=3,tcp', '192.168.1.5:192.168.1.1:192.168.1.254:255.255.255.0:host:eth0:off');
    expect(r.log.filter((l) => l.startsWith('udhcpc'))).toEqual([]);
    expect(r.log).toContain('ip addr add 192.168.1.5/24 dev eth0');
    expect(r.log).toContain('ip route add default via 192.168.1.254 dev eth0');
    expect(mounts(r.log)).toEqual(['mount -t nfs -o rw,nolock,vers=3,tcp 192.168.1.1:/nfs /newroot']);
  });

  it('fails by name: no server anywhere, a missing device, no DHCP answer, an unknown autoconf', () => {
    expect(run('/nfs', 'off').out).toBe('INITRD-NET: eth0 unconfigured (none)\nINITRD-FAIL: no NFS server: nfsroot= names none, ip= has no server-ip, DHCP gave none');
    expect(run('/nfs', ':::::eth1:dhcp').out).toBe('INITRD-FAIL: no network interface eth1 after 0s (is its driver in the initramfs?)');
    expect(run('/nfs', 'dhcp', { silent: true }).out).toBe('INITRD-FAIL: no DHCP answer on eth0');
    expect(run('/nfs', ':::::eth0:pxe').out).toBe('INITRD-FAIL: ip=:::::eth0:pxe: unknown autoconf method pxe');
  });
});
