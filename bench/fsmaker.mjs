// Whole-process comparisons for fsmaker (issue 5).
// Usage: sh scripts/fetch-kernel.sh && node bench/fsmaker.mjs [1] [2]   (default: both)  ROUNDS=3
//   1: rootfs (2 GiB ext4, sparse) -> sparse disk image, against cp --sparse=always of the rootfs
//      alone and against the same assembly done with standard tools in one bash script;
//   2: rootfs -> .gz + md5, against that assembly followed by pigz -6 | tee >(md5sum).
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, WORK, compare, ensureDir, formatTable, sh } from './lib.mjs';
import { ext4Image } from './fixtures.mjs';

const rounds = Number(process.env.ROUNDS ?? 3);
const cases = process.argv.slice(2).length ? process.argv.slice(2) : ['1', '2'];
const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');

const assets = Object.fromEntries(
  sh(`sh '${path.join(ROOT, 'scripts/fetch-kernel.sh')}'`).trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)),
);
const rootfs = ext4Image();
const dir = ensureDir(path.join(WORK, 'fsmaker'));
const out = path.join(dir, 'out.img');
const outGz = path.join(dir, 'out.img.gz');
const copy = path.join(dir, 'copy.img');
const std = path.join(dir, 'std'); // scratch folder of the standard-tools script

// An initrd for the standard-tools script: ~1.5 MB (the head of the cached busybox), made once.
const initrd = path.join(dir, 'initrd.img');
if (!fs.existsSync(initrd)) sh(`head -c 1500000 '${assets.BUSYBOX}' > '${initrd}'`);

// fsmaker's layout, read from a first (untimed) run: total size and partition starts.
fs.rmSync(out, { force: true });
sh(`node ${FSMAKER} -q --seed b '${rootfs}' '${out}'`);
const diskSize = fs.statSync(out).size;
const parts = sh(`sfdisk -d '${out}'`);
const startOf = (type) => Number(new RegExp(`start=\\s*(\\d+), size=\\s*(\\d+), type=${type}\\b`).exec(parts)[1]);
const bootStart = startOf('c');
const rootStart = startOf('83');
const bootKib = (rootStart - bootStart) / 2;
const rootSectors = fs.statSync(rootfs).size / 512;

// The same assembly with standard tools (BIOS GRUB only; boot.img/core.img not patched).
const assemble = `set -e
rm -rf '${std}' && mkdir -p '${std}' && cd '${std}'
truncate -s ${diskSize} '${out}'
sfdisk -q '${out}' <<'EOF'
label: dos
start=${bootStart}, size=${rootStart - bootStart}, type=c, bootable
start=${rootStart}, size=${rootSectors}, type=83
EOF
mkfs.fat -F 32 -i 1f6d791a -C boot.fat ${bootKib} >/dev/null
cat > grub.cfg <<'EOF'
set timeout=1
menuentry linux { search --no-floppy --fs-uuid --set=root 1F6D-791A; linux /vmlinuz root=/dev/sda1 ro console=ttyS0; initrd /initrd.img }
EOF
mmd -i boot.fat ::/grub
mcopy -i boot.fat '${assets.KERNEL}' ::/vmlinuz
mcopy -i boot.fat '${initrd}' ::/initrd.img
mcopy -i boot.fat grub.cfg ::/grub/grub.cfg
grub-mkimage -O i386-pc -p '(hd0,msdos1)/grub' -o core.img biosdisk part_msdos fat normal linux search search_fs_uuid
dd if=boot.fat of='${out}' bs=1M oflag=seek_bytes seek=${bootStart * 512} conv=sparse,notrunc status=none
dd if='${rootfs}' of='${out}' bs=1M oflag=seek_bytes seek=${rootStart * 512} conv=sparse,notrunc status=none
dd if=/usr/lib/grub/i386-pc/boot.img of='${out}' bs=440 count=1 conv=notrunc status=none
dd if=core.img of='${out}' bs=512 seek=1 conv=notrunc status=none
`;
// Untimed: delete the last outputs and sync, so that neither their writeback nor the discard of
// their blocks (this filesystem is mounted with -o discard) lands in the next contender's timing.
const clean = () => {
  for (const f of [out, outGz, copy]) fs.rmSync(f, { force: true });
  fs.rmSync(std, { recursive: true, force: true });
  sh('sync');
};

const duKib = (f) => Number(sh(`du -k '${f}'`).split(/\s/)[0]);
const results = [];
const notes = [];
notes.push(`layout (from fsmaker): ${diskSize} bytes, boot FAT at sector ${bootStart} (${bootKib} KiB), rootfs at sector ${rootStart}`);

if (cases.includes('1')) {
  results.push(
    compare(
      '(1) 2 GiB ext4 rootfs (~700 MB of files, sparse) -> sparse disk image',
      [
        { name: 'fsmaker --seed b rootfs out.img', prepare: clean, run: `node ${FSMAKER} -q --seed b '${rootfs}' '${out}'` },
        { name: 'cp --sparse=always rootfs copy.img (rootfs alone)', prepare: clean, run: `cp --sparse=always '${rootfs}' '${copy}'` },
        { name: 'standard tools (truncate, sfdisk, mkfs.fat, mcopy, grub-mkimage, dd conv=sparse)', prepare: clean, run: assemble },
      ],
      rounds,
    ),
  );
  // Check fsmaker's output: the rootfs partition holds the rootfs byte for byte, and it is sparse.
  clean();
  sh(`node ${FSMAKER} -q --seed b '${rootfs}' '${out}'`);
  sh(`cmp -n ${rootSectors * 512} -i 0:${rootStart * 512} '${rootfs}' '${out}'`);
  const a = duKib(rootfs);
  const b = duKib(out);
  notes.push(`du -k: rootfs ${a} KiB; fsmaker out.img ${b} KiB (${(b / a).toFixed(3)}x the rootfs); apparent size ${diskSize}`);
  sh(assemble);
  notes.push(`du -k: standard-tools out.img ${duKib(out)} KiB`);
  sh(`cp --sparse=always '${rootfs}' '${copy}'`);
  notes.push(`du -k: cp --sparse=always copy.img ${duKib(copy)} KiB`);
}

if (cases.includes('2')) {
  results.push(
    compare(
      '(2) 2 GiB ext4 rootfs -> disk image .gz + md5 of the uncompressed disk',
      [
        { name: 'fsmaker --seed b --md5 rootfs out.img.gz', prepare: clean, run: `node ${FSMAKER} -q --seed b --md5 '${rootfs}' '${outGz}' >/dev/null` },
        { name: 'standard tools, then pigz -6 < out.img \\| tee >(md5sum) > out.img.gz', prepare: clean, run: `${assemble}\npigz -6 < '${out}' | tee >(md5sum >/dev/null) > '${outGz}'` },
      ],
      rounds,
    ),
  );
  clean();
  const printed = sh(`node ${FSMAKER} --seed b --md5 '${rootfs}' '${outGz}'`);
  const md5 = sh(`pigz -dc '${outGz}' | md5sum`).split(' ')[0];
  if (!printed.includes(md5)) throw new Error(`fsmaker's md5 does not match the decompressed .gz (${md5}):\n${printed}`);
  notes.push(`.gz: fsmaker ${fs.statSync(outGz).size} bytes, md5 ${md5} (matches the decompressed output)`);
  sh(`${assemble}\npigz -6 < '${out}' > '${outGz}'`);
  notes.push(`.gz: standard tools ${fs.statSync(outGz).size} bytes`);
}
clean();

for (const r of results) console.log(`${formatTable(r)}\n`);
for (const n of notes) console.log(`- ${n}`);
