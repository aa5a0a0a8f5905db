// Tarball -> bootable disk (issue 13), on the Debian 12 tarball of scripts/debian-rootfs.sh.
// Usage (as root: the standard routes unpack with owners kept, the root route mounts):
//   sh scripts/debian-rootfs.sh && node bench/fsmaker-tree.mjs      ROUNDS=3
// Contenders:
//   (a) fsmaker TARBALL disk.img as uid 65534, when this fsmaker takes a tarball (else left out, with a note);
//   (a') fsmaker's tree reader and ext4 writer (test/debian-ext4-from-tree.mjs: openTree +
//       planExt4) as uid 65534, then fsmaker of that image: route (a) before the command has it;
//   (b) the standard rootless route: tar x (as root, to keep owners) + mkfs.ext4 -d + fsmaker of
//       the image; and fsmaker of that image alone (its peak RSS);
//   (c) the root route: truncate + sfdisk + losetup --offset/--sizelimit (this machine's loop
//       devices do not scan partitions) + mkfs.ext4 + mount + tar x + grub-install + grub.cfg +
//       umount. Its disk boots to the login prompt like fsmaker's (checked by hand, not here).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, WORK, compare, ensureDir, formatTable, sh } from './lib.mjs';

const rounds = Number(process.env.ROUNDS ?? 3);
if (process.getuid() !== 0) throw new Error('run as root: routes (b) and (c) need it');
const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
const tarball = /^ROOTFS=(.*)$/m.exec(sh(`sh '${path.join(ROOT, 'scripts/debian-rootfs.sh')}'`))[1];
const dir = ensureDir(path.join(WORK, 'fsmaker-tree'));
const tree = path.join(dir, 'tree');
const image = path.join(dir, 'root.ext4');
const disk = path.join(dir, 'disk.img');
const mnt = path.join(dir, 'mnt');
const SIZE = 1 << 30;
const TAR_X = `tar --xattrs --xattrs-include='*' --numeric-owner -xpf '${tarball}'`;

const BUILD_UID = 65534;
const asUser = `setpriv --reuid=${BUILD_UID} --regid=${BUILD_UID} --clear-groups`;
fs.chmodSync(dir, 0o777); // the unprivileged route writes its image and disk here

const clean = () => {
  for (const f of [disk, image]) fs.rmSync(f, { force: true });
  fs.rmSync(tree, { recursive: true, force: true });
  sh('sync');
};

const rootless = `set -e
mkdir '${tree}' && ${TAR_X} -C '${tree}'
truncate -s ${SIZE} '${image}' && mkfs.ext4 -q -F -d '${tree}' '${image}'
node ${FSMAKER} -q --seed b '${image}' '${disk}'`;

// The image for "fsmaker of the image alone", made untimed.
const withImage = () => {
  clean();
  sh(rootless.replace(/\nnode .*$/, ''));
};

// Loop devices are detached and the mount undone on every path out (trap), so a failed round
// leaves nothing attached.
const rootRoute = `set -e
whole= part=
trap 'mountpoint -q "${mnt}" && umount "${mnt}"; [ -n "$part" ] && losetup -d "$part"; [ -n "$whole" ] && losetup -d "$whole"' EXIT
truncate -s ${SIZE} '${disk}'
printf 'label: dos\\nstart=2048, type=83, bootable\\n' | sfdisk -q '${disk}'
whole=$(losetup -f --show '${disk}')
part=$(losetup -f --show --offset $((2048 * 512)) --sizelimit $((${SIZE} - 2048 * 512)) '${disk}')
mkfs.ext4 -q -F "$part"
mkdir -p '${mnt}' && mount "$part" '${mnt}'
${TAR_X} -C '${mnt}'
grub-install --target=i386-pc --boot-directory='${mnt}/boot' --modules='part_msdos ext2 biosdisk' "$whole" 2>/dev/null
uuid=$(blkid -o value -s UUID "$part")
cat > '${mnt}/boot/grub/grub.cfg' <<EOF
set timeout=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry debian { linux /vmlinuz root=UUID=$uuid rw console=ttyS0,115200; initrd /initrd.img; }
EOF
`;

const contenders = [];
const notes = [`tarball: ${tarball}, ${fs.statSync(tarball).size} bytes; every disk 1 GiB of ext4 (fsmaker adds its boot partition)`];
const takesTarball = spawnSync('node', [FSMAKER, '--print-config', tarball], { stdio: 'ignore' }).status === 0;
if (takesTarball) contenders.push({ name: 'fsmaker --seed b --rootfs-size 1G TARBALL disk.img (as uid 65534)', prepare: clean, run: `${asUser} node ${FSMAKER} -q --seed b --rootfs-size 1G '${tarball}' '${disk}'` });
else notes.push('(a) left out: this fsmaker does not take a tarball (`fsmaker --print-config TARBALL` fails)');
contenders.push(
  {
    name: "tree reader + ext4 writer (as uid 65534) + fsmaker root.ext4 disk.img",
    prepare: clean,
    run: `set -e\n${asUser} node '${path.join(ROOT, 'test/debian-ext4-from-tree.mjs')}' '${tarball}' '${image}' >/dev/null\n${asUser} node ${FSMAKER} -q --seed b '${image}' '${disk}'`,
  },
  { name: 'tar x (root) + mkfs.ext4 -d + fsmaker root.ext4 disk.img', prepare: clean, run: rootless },
  { name: 'fsmaker root.ext4 disk.img alone', prepare: withImage, run: `node ${FSMAKER} -q --seed b '${image}' '${disk}'` },
  { name: 'root route: sfdisk + losetup + mkfs.ext4 + mount + tar x + grub-install + umount', prepare: clean, run: rootRoute },
);

const result = compare('Debian 12 tarball (mmdebstrap, ~330 MB) -> bootable 1 GiB disk', contenders, rounds);
clean();
fs.rmSync(mnt, { recursive: true, force: true });
console.log(`${formatTable(result)}\n`);
for (const n of notes) console.log(`- ${n}`);
