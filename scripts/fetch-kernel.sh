#!/bin/sh
# Fetch the boot assets fsmaker's tests and defaults use, without installing anything:
#   - the Debian 12 cloud kernel: linux-image-cloud-amd64 is a metapackage whose Depends names the
#     real image package (linux-image-6.1.0-NN-cloud-amd64); that .deb is `dpkg -x`-extracted;
#   - busybox-static: /bin/busybox is extracted.
# Cache directory: $FSMAKER_CACHE, default <repository>/.cache/boot. Idempotent: packages already
# downloaded/extracted are reused. Works as non-root provided the apt lists exist
# (/var/lib/apt/lists: `apt-get update` must have been run once by root).
# Prints three lines: KERNEL=<vmlinuz path>, MODULES=<lib/modules/KVER dir>, BUSYBOX=<path>.
# Exit status: 0 ok, 1 failure (message on stderr).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${FSMAKER_CACHE:-$here/.cache/boot}
debs=$cache/debs
mkdir -p "$debs"

die() { echo "fetch-kernel: $*" >&2; exit 1; }

command -v apt-get >/dev/null 2>&1 || die "apt-get not found (Debian/Ubuntu host required)"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb not found"

# download PKG: leaves exactly one PKG_*.deb in $debs (reused when present); prints its path.
download() {
  pkg=$1
  found=$(ls "$debs/${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
  if [ -z "$found" ]; then
    # apt-get download writes into the current directory; as root, _apt cannot write to most
    # directories, so apt warns and downloads unsandboxed: silence that warning only.
    ( cd "$debs" && apt-get download -q "$pkg" 2>&1 >/dev/null | grep -v 'unsandboxed' >&2 || true )
    found=$(ls "$debs/${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
    [ -n "$found" ] || die "could not download $pkg (mirror unreachable, or apt lists missing: run 'apt-get update' as root)"
  fi
  echo "$found"
}

meta=$(download linux-image-cloud-amd64)
# Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)
real=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n 1)
[ -n "$real" ] || die "no linux-image-<version> package in the Depends of $meta"
kver=${real#linux-image-}

kdir=$cache/kernel-$kver
if [ ! -f "$kdir/.done" ]; then
  deb=$(download "$real")
  rm -rf "$kdir.tmp"
  mkdir -p "$kdir.tmp"
  dpkg -x "$deb" "$kdir.tmp"
  rm -rf "$kdir"
  mv "$kdir.tmp" "$kdir"
  : > "$kdir/.done"
fi
kernel=$kdir/boot/vmlinuz-$kver
modules=$kdir/lib/modules/$kver
[ -f "$kernel" ] || die "kernel not found at $kernel"
[ -d "$modules" ] || die "modules not found at $modules"

busybox=$cache/busybox
if [ ! -x "$busybox" ]; then
  deb=$(download busybox-static)
  rm -rf "$cache/busybox.tmp"
  mkdir -p "$cache/busybox.tmp"
  dpkg -x "$deb" "$cache/busybox.tmp"
  [ -f "$cache/busybox.tmp/bin/busybox" ] || die "bin/busybox not in $deb"
  cp "$cache/busybox.tmp/bin/busybox" "$busybox.new"
  chmod 755 "$busybox.new"
  mv "$busybox.new" "$busybox"
  rm -rf "$cache/busybox.tmp"
fi

echo "KERNEL=$kernel"
echo "MODULES=$modules"
echo "BUSYBOX=$busybox"
