// fsmaker straight to an OVA (issue 12), against fsmaker to a raw disk followed by what a user
// would do next: qemu-img convert -O vmdk -o subformat=streamOptimized, sha256sum for the
// manifest, and tar (the OVF is a prepared file: writing one by hand is not timed).
// Usage: sh scripts/fetch-kernel.sh && node bench/ova.mjs   ROUNDS=3 (the lead's run; ROUNDS=1 to try it)
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, WORK, compare, ensureDir, formatTable, sh } from './lib.mjs';
import { ext4Image } from './fixtures.mjs';

const rounds = Number(process.env.ROUNDS ?? 3);
const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
sh(`sh '${path.join(ROOT, 'scripts/fetch-kernel.sh')}'`);
const rootfs = ext4Image();
const dir = ensureDir(path.join(WORK, 'ova'));
const ova = path.join(dir, 'disk.ova');
const std = path.join(dir, 'std'); // the standard tools' scratch folder: disk.img, its VMDK, ovf, mf, ova

// The OVF the standard-tools path packs: fsmaker's own, from an untimed run.
fs.rmSync(ova, { force: true });
sh(`SOURCE_DATE_EPOCH=1700000000 node ${FSMAKER} -q --seed b '${rootfs}' '${ova}'`);
const ovfTemplate = path.join(dir, 'template.ovf');
sh(`tar -xOf '${ova}' disk.ovf > '${ovfTemplate}'`);

const standardTools = `set -e
mkdir -p '${std}' && cd '${std}'
node ${FSMAKER} -q --seed b '${rootfs}' disk.img
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized,adapter_type=lsilogic disk.img disk-disk1.vmdk
cp '${ovfTemplate}' disk.ovf
{ echo "SHA256(disk.ovf)= $(sha256sum disk.ovf | cut -d' ' -f1)"; echo "SHA256(disk-disk1.vmdk)= $(sha256sum disk-disk1.vmdk | cut -d' ' -f1)"; } > disk.mf
tar --format=ustar --owner=0 --group=0 --mode=0644 -cf disk.ova disk.ovf disk.mf disk-disk1.vmdk
`;
// Untimed: the last outputs deleted and synced, so their writeback lands in nobody's timing.
const clean = () => {
  fs.rmSync(ova, { force: true });
  fs.rmSync(std, { recursive: true, force: true });
  sh('sync');
};

const result = compare(
  '2 GiB ext4 rootfs -> bootable disk as an OVA (ovf, mf, streamOptimized VMDK)',
  [
    { name: 'fsmaker --seed b rootfs disk.ova', prepare: clean, run: `node ${FSMAKER} -q --seed b '${rootfs}' '${ova}'` },
    { name: 'fsmaker to disk.img, qemu-img convert -O vmdk (streamOptimized), sha256sum, tar', prepare: clean, run: standardTools },
  ],
  rounds,
);
// What both made: the sizes of the two OVAs, and that fsmaker's disk member is the raw disk.
clean();
sh(`node ${FSMAKER} -q --seed b '${rootfs}' '${ova}'`);
sh(standardTools);
const member = path.join(dir, 'member.vmdk');
sh(`tar -xOf '${ova}' disk-disk1.vmdk > '${member}'`);
const same = sh(`qemu-img compare '${path.join(std, 'disk.img')}' '${member}' && echo same`).includes('same');
console.log(`${formatTable(result)}\n`);
console.log(`- OVA sizes: fsmaker ${fs.statSync(ova).size} bytes, standard tools ${fs.statSync(path.join(std, 'disk.ova')).size} bytes`);
console.log(`- fsmaker's disk member equals fsmaker's raw disk (qemu-img compare): ${same}`);
fs.rmSync(member, { force: true });
clean();
