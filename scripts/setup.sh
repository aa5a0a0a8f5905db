#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: Debian packages (when root), npm packages, build.
# Safe to run before every command; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the tests and benchmarks compare against or check with. Installed only when missing.
DEB_PACKAGES=(e2fsprogs util-linux fdisk gdisk dosfstools mtools qemu-utils pigz bmap-tools hyperfine time file strace
  grub-pc-bin grub-efi-amd64-bin grub-common cpio xfsprogs btrfs-progs squashfs-tools erofs-utils
  qemu-system-x86 ovmf xz-utils zstd bzip2 lbzip2 lz4 zip genisoimage android-sdk-libsparse-utils
  libvmdk-utils libxml2-utils grub2-common mmdebstrap nfs-ganesha nfs-ganesha-vfs rpcbind libcap2-bin attr libarchive-tools
  exfatprogs ntfs-3g mdadm cryptsetup-bin lvm2 f2fs-tools bcache-tools)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    # Update the lists once per machine; a failed install retries with fresh lists.
    stamp=/var/lib/apt/periodic/sparse-image-tools-update-stamp
    if [ ! -f "$stamp" ]; then apt-get update -qq && mkdir -p "$(dirname "$stamp")" && touch "$stamp"; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "setup: not root: cannot install ${missing[*]}; tests that need them will say so and skip" >&2
  fi
fi

# fsmaker's default kernel and busybox: Debian packages extracted (not installed) into .cache/boot.
if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  sh scripts/fetch-kernel.sh >/dev/null || echo "setup: the default kernel could not be fetched; fsmaker needs -k/-i then" >&2
fi

# The Debian 12 rootfs tarball the end-to-end boot tests and bench/fsmaker-tree.mjs use (mmdebstrap
# in root mode): built once, cached in .cache/debian by a hash of its recipe.
if [ "$(id -u)" = 0 ]; then
  sh scripts/debian-rootfs.sh >/dev/null || echo "setup: the Debian rootfs tarball could not be built; test/fsmaker-debian.test.ts will fail" >&2
else
  echo "setup: not root: the Debian rootfs tarball (scripts/debian-rootfs.sh) is not built; its boot tests skip" >&2
fi

# npm packages: reinstall only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# Compile TypeScript (incremental: fast when nothing changed), then bundle the commands.
npm run --silent build
