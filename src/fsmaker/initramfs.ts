/**
 * A minimal busybox initramfs (gzip'ed cpio newc, deterministic): /init is a busybox `sh`
 * script that mounts proc/sys/devtmpfs, loads the given kernel modules with `insmod` in the
 * order given, waits (rd.timeout=N, default 60 s) for the partition whose PARTUUID equals
 * `root=PARTUUID=...`, mounts it at /newroot (rootfstype=, ro/rw) and switch_roots to
 * /sbin/init (or init=). It prints `INITRD-OK` once the root partition is found and
 * `INITRD-FAIL: <reason>` before powering off (or starting a shell with rd.shell).
 *
 * Linux 6.1 does not expose PARTUUID to user space without udev/blkid, so /init computes it
 * from the partition table with busybox dd + hexdump (see partUuidShellFunction):
 *   MBR: `%08x` of the u32 LE disk signature at 0x1B8, '-', `%02x` of the partition number;
 *   GPT: the entry's unique partition GUID (entry bytes 16..31; first three fields
 *        little-endian), lower case.
 *
 * root=/dev/nfs mounts an NFS root instead, with the kernel's own nfsroot= and ip= syntax
 * (Documentation/admin-guide/nfs/nfsroot.rst), done in user space with busybox because the
 * Debian kernels have neither CONFIG_ROOT_NFS nor CONFIG_IP_PNP:
 *   ip=dhcp|on|any|bootp|both (or absent): DHCP with busybox udhcpc on the device named in ip=,
 *     else the first interface that is not lo; ip=off|none: none (the interface must be up some
 *     other way); ip=CLIENT:SERVER:GW:NETMASK:HOSTNAME:DEVICE:AUTOCONF: static when CLIENT is
 *     given and AUTOCONF is empty, on, any, off or none; DHCP when AUTOCONF is dhcp, bootp, both
 *     or rarp, or empty/on/any without CLIENT.
 *   nfsroot=[SERVER:]DIR[,OPTIONS]: SERVER defaults to ip='s server, then the DHCP server (siaddr,
 *     else the server identifier); DIR defaults to DHCP's root path (option 17), then
 *     /tftpboot/%s; %s is the client's address. OPTIONS go to mount as they are; vers=4* mounts
 *     nfs4 (addr= added, as mount.nfs does), otherwise nfs with nolock (no lock manager runs this
 *     early) and vers=3 unless given: the kernel's default, vers=2, is one most servers (nfs-ganesha,
 *     Linux 6.x nfsd) no longer serve.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { cpioArchive, type CpioEntry } from './cpio.js';

export interface InitramfsModule {
  /** Module name (e.g. "virtio_blk"); the file is stored as /lib/modules/<name>.ko. */
  name: string;
  /** Path of the uncompressed .ko file on the host (read when `data` is absent). */
  path?: string;
  /** The module's ELF bytes. */
  data?: Buffer;
}

export interface InitramfsOptions {
  /** A static busybox binary, as bytes or a host path. */
  busybox: Buffer | string;
  /** Modules in load order (dependencies first; see resolveModuleOrder). */
  modules: InitramfsModule[];
  /** Default wait for the root partition when the command line has no rd.timeout= (default 60). */
  timeoutSeconds?: number;
  /** mtime of every archive entry (default 0). */
  mtime?: number;
}

/**
 * Shell functions (busybox sh / POSIX sh with dd and hexdump) that compute PARTUUIDs:
 *   rd_hex FILE OFFSET COUNT      -> COUNT bytes at OFFSET as lower-case hex
 *   rd_le FILE OFFSET COUNT       -> the COUNT-byte little-endian unsigned integer at OFFSET (decimal)
 *   partuuid DISK N [SECTOR_SIZE] -> the PARTUUID of partition N of DISK (a whole-disk device
 *                                    or an image file); prints nothing and fails if none.
 */
export function partUuidShellFunction(): string {
  return `rd_hex() {
	dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | hexdump -v -e '1/1 "%02x"'
}
rd_le() {
	_h=$(rd_hex "$1" "$2" "$3")
	[ \${#_h} -eq $(($3 * 2)) ] || return 1
	echo $((0x$(rd_swap "$_h")))
}
partuuid() {
	_d=$1 _n=$2 _ss=\${3:-512}
	case "$_n" in ''|*[!0-9]*) return 1 ;; esac
	[ "$(rd_hex "$_d" 510 2)" = 55aa ] || return 1
	if [ "$(rd_hex "$_d" "$_ss" 8)" = 4546492050415254 ]; then
		# GPT: header at LBA 1; entries LBA (u64 @72), count (u32 @80), entry size (u32 @84)
		_lba=$(rd_le "$_d" $((_ss + 72)) 8) || return 1
		_cnt=$(rd_le "$_d" $((_ss + 80)) 4) || return 1
		_esz=$(rd_le "$_d" $((_ss + 84)) 4) || return 1
		[ "$_n" -ge 1 ] && [ "$_n" -le "$_cnt" ] || return 1
		_g=$(rd_hex "$_d" $((_lba * _ss + (_n - 1) * _esz + 16)) 16)
		[ \${#_g} -eq 32 ] || return 1
		[ "$_g" != 00000000000000000000000000000000 ] || return 1
		_a=\${_g%????????????????????????}
		_g=\${_g#????????}
		_b=\${_g%????????????????????}
		_g=\${_g#????}
		_c=\${_g%????????????????}
		_g=\${_g#????}
		_e=\${_g%????????????}
		_f=\${_g#????}
		echo "$(rd_swap "$_a")-$(rd_swap "$_b")-$(rd_swap "$_c")-$_e-$_f"
	else
		# MBR: disk signature (u32 LE @0x1B8) and the partition number
		[ "$_n" -ge 1 ] || return 1
		_s=$(rd_le "$_d" 440 4) || return 1
		printf '%08x-%02x\\n' "$_s" "$_n"
	fi
}
rd_swap() {
	_x=$1 _y=
	while [ -n "$_x" ]; do
		_t=\${_x#??}
		_y="\${_x%"$_t"}$_y"
		_x=$_t
	done
	echo "$_y"
}
`;
}

/** The udhcpc event script: configures the interface and records what the server said in /run/net.conf. */
export const UDHCPC_SCRIPT = `#!/bin/sh
# fsmaker initramfs: busybox udhcpc -s script
case "$1" in
deconfig)
	ip addr flush dev "$interface" 2>/dev/null
	ip link set "$interface" up ;;
bound|renew)
	ip addr flush dev "$interface" 2>/dev/null
	ip addr add "$ip/\${mask:-24}" dev "$interface"
	ip link set "$interface" up
	for r in $router; do ip route add default via "$r" dev "$interface" && break; done
	: > /run/net.conf
	for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
	{
		echo "net_ip='$ip'"
		echo "net_siaddr='$siaddr'"
		echo "net_serverid='$serverid'"
		echo "net_rootpath='$rootpath'"
		echo "net_hostname='$hostname'"
	} > /run/net.conf ;;
esac
exit 0
`;

/**
 * Shell functions of /init for root=/dev/nfs (see the file comment): net_up brings the interface
 * up as ip= says, mount_nfs_root mounts nfsroot= at /newroot and sets nfs_what.
 */
export function nfsShellFunctions(): string {
	return `# net_up: configures the interface ip= names (DHCP by default); sets net_ip, net_server, net_rootpath
net_up() {
	_c=\${ipconf:-dhcp}
	_client= _server= _gw= _mask= _host= _dev= _auto=
	case "$_c" in
	off|none) _auto=none ;;
	on|any|dhcp|bootp|both|rarp) _auto=dhcp ;;
	*)
		_rest=$_c
		for _f in _client _server _gw _mask _host _dev _auto; do
			eval "$_f=\\\${_rest%%:*}"
			case "$_rest" in *:*) _rest=\${_rest#*:} ;; *) _rest= ;; esac
		done
		# nfsroot.rst: autoconf defaults to any, which a given client address makes unnecessary.
		case "$_auto" in
		off|none) [ -n "$_client" ] && _auto=static || _auto=none ;;
		''|on|any) [ -n "$_client" ] && _auto=static || _auto=dhcp ;;
		dhcp|bootp|both|rarp) _auto=dhcp ;;
		*) fail "ip=$_c: unknown autoconf method $_auto" ;;
		esac ;;
	esac
	i=0
	while :; do
		if [ -n "$_dev" ]; then
			[ -e "/sys/class/net/$_dev" ] && break
		else
			for _n in /sys/class/net/*; do
				_n=\${_n##*/}
				[ "$_n" = lo ] || [ ! -e "/sys/class/net/$_n" ] && continue
				_dev=$_n
				break
			done
			[ -n "$_dev" ] && break
		fi
		[ "$i" -ge $((timeout * 5)) ] && fail "no network interface\${_dev:+ $_dev} after \${timeout}s (is its driver in the initramfs?)"
		usleep 200000 2>/dev/null || sleep 1
		i=$((i + 1))
	done
	ip link set lo up 2>/dev/null
	ip link set "$_dev" up || fail "cannot bring $_dev up"
	net_ip= net_siaddr= net_serverid= net_rootpath=
	case "$_auto" in
	dhcp)
		udhcpc -i "$_dev" -s /etc/udhcpc.script -n -q -t 10 -T 2 \${_host:+-x hostname:$_host} >/dev/null 2>&1 || fail "no DHCP answer on $_dev"
		. /run/net.conf ;;
	static)
		_bits=24
		[ -n "$_mask" ] && _bits=$(ipcalc -p "$_client" "$_mask" 2>/dev/null | sed -n 's/^PREFIX=//p')
		ip addr add "$_client/\${_bits:-24}" dev "$_dev" || fail "cannot set $_client on $_dev"
		[ -n "$_gw" ] && ip route add default via "$_gw" dev "$_dev"
		net_ip=$_client ;;
	esac
	net_server=\${_server:-\${net_siaddr:-$net_serverid}}
	[ "$net_server" = 0.0.0.0 ] && net_server=$net_serverid
	echo "INITRD-NET: $_dev \${net_ip:-unconfigured} ($_auto)\${net_server:+, server $net_server}"
}

# mount_nfs_root: mounts nfsroot= (nfsroot.rst syntax) on /newroot; sets nfs_what
mount_nfs_root() {
	net_up
	_spec=\${nfsroot%%,*}
	_opts=
	case "$nfsroot" in *,*) _opts=\${nfsroot#*,} ;; esac
	_srv=$net_server
	case "$_spec" in
	*:*) _srv=\${_spec%%:*}; _dir=\${_spec#*:} ;;
	'') _dir=\${net_rootpath:-/tftpboot/%s} ;;
	*) _dir=$_spec ;;
	esac
	case "$_dir" in *%s*) _dir="\${_dir%%%s*}$net_ip\${_dir#*%s}" ;; esac
	[ -n "$_srv" ] || fail "no NFS server: nfsroot= names none, ip= has no server-ip, DHCP gave none"
	_vers=
	for _o in $(echo "$_opts" | tr ',' ' '); do
		case "$_o" in vers=*|nfsvers=*) _vers=\${_o#*=} ;; esac
	done
	nfs_what="$_srv:$_dir"
	case "$_vers" in
	4*)
		mount -t nfs4 -o "$rwmode,addr=$_srv\${_opts:+,$_opts}" "$nfs_what" /newroot || fail "cannot mount $nfs_what (nfs4, $rwmode,addr=$_srv\${_opts:+,$_opts}) on /newroot" ;;
	*)
		[ -n "$_vers" ] || _opts="vers=3\${_opts:+,$_opts}"
		mount -t nfs -o "$rwmode,nolock,$_opts" "$nfs_what" /newroot || fail "cannot mount $nfs_what (nfs, $rwmode,nolock,$_opts) on /newroot" ;;
	esac
	echo "INITRD-OK: root $nfs_what is mounted over NFS"
}
`;
}

/** The /init script. `timeoutSeconds` is the default for rd.timeout=. */
export function initScript(timeoutSeconds = 60, modules: readonly string[] = []): string {
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 0) throw new Error(`initramfs: bad timeout ${timeoutSeconds}`);
  for (const m of modules) {
    if (!/^[A-Za-z0-9_-]+$/.test(m)) throw new Error(`initramfs: bad module name ${JSON.stringify(m)}`);
  }
  const insmods = modules.map((m) => `load_module ${m}`).join('\n');
  return `#!/bin/sh
# fsmaker initramfs /init (busybox sh)
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
/bin/busybox --install -s

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev 2>/dev/null
[ -e /dev/console ] || mknod -m 600 /dev/console c 5 1
exec </dev/console >/dev/console 2>&1

root= rootfstype= rootflags= rwmode=ro init=/sbin/init shell= timeout=${timeoutSeconds} nfsroot= ipconf=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
		root=*) root=\${arg#root=} ;;
		nfsroot=*) nfsroot=\${arg#nfsroot=} ;;
		ip=*) ipconf=\${arg#ip=} ;;
		rootfstype=*) rootfstype=\${arg#rootfstype=} ;;
		rootflags=*) rootflags=\${arg#rootflags=} ;;
		ro) rwmode=ro ;;
		rw) rwmode=rw ;;
		init=*) init=\${arg#init=} ;;
		rd.shell|rd.shell=1|rd.shell=y|rd.shell=yes) shell=1 ;;
		rd.shell=0|rd.shell=n|rd.shell=no) shell= ;;
		rd.timeout=*) timeout=\${arg#rd.timeout=} ;;
	esac
done
case "$timeout" in ''|*[!0-9]*) timeout=${timeoutSeconds} ;; esac

fail() {
	echo "INITRD-FAIL: $*"
	if [ -n "$shell" ]; then
		echo "rd.shell: starting a shell (exit to power off)"
		setsid cttyhack sh || sh
	fi
	sync
	poweroff -f
	while :; do sleep 60; done
}

${partUuidShellFunction()}
load_module() {
	insmod "/lib/modules/$1.ko" || echo "INITRD-WARN: insmod $1 failed"
}

# find_root: prints the device node of the root partition (root=PARTUUID=... or root=/dev/...)
find_root() {
	case "$root" in
	PARTUUID=*|partuuid=*)
		want=$(echo "\${root#*=}" | tr 'A-F' 'a-f')
		for p in /sys/class/block/*; do
			[ -f "$p/partition" ] || continue
			n=$(cat "$p/partition")
			disk=$(readlink -f "$p")
			disk=\${disk%/*}
			disk=\${disk##*/}
			[ -b "/dev/$disk" ] || continue
			ss=$(cat "/sys/class/block/$disk/queue/logical_block_size" 2>/dev/null)
			got=$(partuuid "/dev/$disk" "$n" "\${ss:-512}") || continue
			if [ "$got" = "$want" ]; then
				echo "/dev/\${p##*/}"
				return 0
			fi
		done
		return 1 ;;
	/dev/*)
		[ -b "$root" ] && echo "$root" ;;
	*)
		return 1 ;;
	esac
}

${nfsShellFunctions()}
# move_and_switch WHAT: hands /newroot (WHAT mounted there) to its init
move_and_switch() {
	[ -x "/newroot$init" ] || [ -L "/newroot$init" ] || fail "$init not found on the root filesystem $1"
	mount --move /dev /newroot/dev 2>/dev/null || umount /dev 2>/dev/null
	umount /sys
	umount /proc
	exec switch_root /newroot "$init"
	fail "switch_root to $1 failed"
}

${insmods}

[ -n "$root" ] || fail "no root= on the kernel command line"
if [ "$root" = /dev/nfs ]; then
	mount_nfs_root
	move_and_switch "$nfs_what"
fi
dev=
i=0
while :; do
	dev=$(find_root) && [ -n "$dev" ] && break
	[ "$i" -ge $((timeout * 5)) ] && fail "root device $root not found after \${timeout}s"
	usleep 200000 2>/dev/null || sleep 1
	i=$((i + 1))
done
echo "INITRD-OK: root $root is $dev"

opts=$rwmode
[ -n "$rootflags" ] && opts="$opts,$rootflags"
if [ -n "$rootfstype" ]; then
	mount -t "$rootfstype" -o "$opts" "$dev" /newroot || fail "cannot mount $dev ($rootfstype, $opts) on /newroot"
else
	mount -o "$opts" "$dev" /newroot || fail "cannot mount $dev ($opts) on /newroot"
fi
move_and_switch "$dev"
`;
}

const moduleBytes = (m: InitramfsModule): Buffer => m.data ?? fs.readFileSync(m.path!);

/** Builds the gzip'ed cpio newc initramfs (deterministic for the same inputs). */
export function buildInitramfs(options: InitramfsOptions): Buffer {
  const busybox = typeof options.busybox === 'string' ? fs.readFileSync(options.busybox) : options.busybox;
  if (busybox.length < 4 || busybox.readUInt32BE(0) !== 0x7f454c46) throw new Error('initramfs: busybox is not an ELF binary');
  const seen = new Set<string>();
  for (const m of options.modules) {
    if (seen.has(m.name)) throw new Error(`initramfs: module ${m.name} listed twice`);
    seen.add(m.name);
    if (m.data === undefined && m.path === undefined) throw new Error(`initramfs: module ${m.name} has neither bytes nor a path`);
    if (m.data === undefined && /\.ko\.(xz|zst|gz)$/.test(m.path!)) throw new Error(`initramfs: module ${m.path} is compressed; busybox insmod needs a plain .ko`);
  }
  const script = initScript(options.timeoutSeconds ?? 60, options.modules.map((m) => m.name));

  const entries: CpioEntry[] = [
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 },
    { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    { type: 'dir', path: 'dev' },
    { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { type: 'file', path: 'init', data: Buffer.from(script), mode: 0o755 },
    { type: 'dir', path: 'lib' },
    { type: 'dir', path: 'lib/modules' },
    { type: 'dir', path: 'etc' },
    { type: 'file', path: 'etc/udhcpc.script', data: Buffer.from(UDHCPC_SCRIPT), mode: 0o755 },
    ...options.modules.map((m): CpioEntry => ({ type: 'file', path: `lib/modules/${m.name}.ko`, data: moduleBytes(m), mode: 0o644 })),
    { type: 'dir', path: 'newroot' },
    { type: 'dir', path: 'proc' },
    { type: 'dir', path: 'run' },
    { type: 'dir', path: 'sbin' },
    { type: 'dir', path: 'sys' },
    { type: 'dir', path: 'usr' },
    { type: 'dir', path: 'usr/bin' },
    { type: 'dir', path: 'usr/sbin' },
  ];
  const cpio = cpioArchive(entries, { mtime: options.mtime ?? 0 });
  return zlib.gzipSync(cpio, { level: 9 });
}
