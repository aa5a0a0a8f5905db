#!/bin/sh
# Build the Debian 12 (bookworm) root filesystem the end-to-end tests and benchmarks boot, as a
# tarball, with mmdebstrap (root mode: the kernel's postinst builds an initrd, iputils-ping's
# postinst gives /usr/bin/ping cap_net_raw with setcap, and the tarball keeps that xattr in its
# pax headers).
# Contents: systemd-sysv, linux-image-cloud-amd64 (with initramfs-tools and an initrd),
# iputils-ping, libcap2-bin (getcap), root's password "root" for the serial login (systemd starts
# serial-getty@ttyS0 when the kernel has console=ttyS0), a user 1000 with a home, a few files with
# other owners under /srv/owners, and mmdebstrap's placeholder /etc/fstab left as it is.
# Packages come from the Debian archive this machine's apt sources name.
# Cache: $DEBIAN_ROOTFS_CACHE, default <repository>/.cache/debian, one tarball per hash of this
# script and the sources: a rerun costs nothing, a changed recipe rebuilds, an interrupted build
# leaves no cache entry (its partial files are removed on exit, or by the next run if killed hard);
# a new entry replaces the older ones.
# Prints ROOTFS=<tarball path>. Exit status: 0 ok, 1 build failure, 2 cannot build here (not root,
# mmdebstrap missing): the reason on stderr.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${DEBIAN_ROOTFS_CACHE:-$here/.cache/debian}

PACKAGES=systemd-sysv,udev,linux-image-cloud-amd64,initramfs-tools,iputils-ping,libcap2-bin,passwd,login,procps,kmod
SOURCE_DATE_EPOCH=1700000000
export SOURCE_DATE_EPOCH

die() { echo "debian-rootfs: $1" >&2; exit "${2:-1}"; }

# The Debian sources of this machine, as one deb822 file (never third-party repositories).
sources() {
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cat /etc/apt/sources.list.d/debian.sources
  elif [ -f /etc/apt/sources.list ]; then
    grep -E '^deb .*debian' /etc/apt/sources.list
  fi
}

key=$( { cat "$0"; sources; } | sha256sum | cut -c1-16)
tarball=$cache/debian12-$key.tar
if [ -f "$tarball" ]; then
  echo "ROOTFS=$tarball"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "not root: mmdebstrap's root mode is needed (setcap and the initrd in the chroot)" 2
command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap not installed (Debian package mmdebstrap)" 2
[ -n "$(sources)" ] || die "no Debian apt sources on this machine (/etc/apt/sources.list.d/debian.sources)" 2

mkdir -p "$cache"
rm -f "$cache"/*.partial.*
partial=$cache/debian12-$key.$$.partial.tar
src=$cache/debian12-$key.$$.partial.sources
[ -f /etc/apt/sources.list.d/debian.sources ] || src=$cache/debian12-$key.$$.partial.list
trap 'rm -f "$partial" "$src"' EXIT
trap 'exit 1' INT TERM HUP
sources > "$src"

# mmdebstrap picks the output format by the name's ending (.tar).
mmdebstrap --quiet --mode=root --variant=apt --format=tar --include="$PACKAGES" \
  --customize-hook='echo debian-fixture > "$1/etc/hostname"' \
  --customize-hook='echo root:root | chroot "$1" chpasswd' \
  --customize-hook='chroot "$1" useradd --create-home --uid 1000 --user-group --shell /bin/bash tester' \
  --customize-hook='echo hello > "$1/home/tester/hello.txt" && chown 1000:1000 "$1/home/tester/hello.txt" && chmod 640 "$1/home/tester/hello.txt"' \
  --customize-hook='mkdir -p "$1/srv/owners" && echo data > "$1/srv/owners/staff" && chown 1000:100 "$1/srv/owners/staff" && echo other > "$1/srv/owners/other" && chown 1234:5678 "$1/srv/owners/other" && chmod 4750 "$1/srv/owners/other"' \
  bookworm "$partial" "$src" >&2 || die "mmdebstrap failed"
mv "$partial" "$tarball"
# Older recipes' tarballs are a few hundred MB each and never used again.
for old in "$cache"/debian12-*.tar; do [ "$old" = "$tarball" ] || rm -f "$old"; done
echo "ROOTFS=$tarball"
