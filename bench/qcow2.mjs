// Whole-process comparisons for qcow2 (issue 11), against qemu-img, on the 2 GiB ext4 image (a).
//   in       img.qcow2 -> sparse file, against `qemu-img convert -O raw` (target 1.0x); the same
//            from a compressed qcow2 (no target: context)
//   device   img.qcow2 -> blank 2 GiB loop device, against `qemu-img convert -n -O raw` onto it
//            (target 1.0x; root): sparsecopy's default (compare) and --zero=zeroout, which does
//            what qemu-img -n does with zeros (write-zeroes with unmap)
//   out      raw -> qcow2 against `qemu-img convert -O qcow2` (target 1.0x), and raw -> compressed
//            qcow2 against `qemu-img convert -c -O qcow2` (target 0.6x)
//   terabyte a 1 TiB virtual disk with 256 MiB of data, both ways: peak RSS (target < 200 MB)
// Usage: ROUNDS=5 node bench/qcow2.mjs [in] [device] [out] [terabyte]   (default: all)
// Every output is checked: raw outputs `cmp`ed with the image, qcow2 outputs by `qemu-img check`
// and `qemu-img compare` against the image.
import fs from 'node:fs';
import path from 'node:path';
import { SPARSECOPY, WORK, compare, formatTable, have, sh } from './lib.mjs';
import { blankDeviceBacking, ext4Image, terabyteSparse } from './fixtures.mjs';

const rounds = Number(process.env.ROUNDS ?? 5);
const cases = process.argv.slice(2).length ? process.argv.slice(2) : ['in', 'device', 'out', 'terabyte'];
if (!have('qemu-img')) throw new Error('qcow2 bench: needs qemu-img (npm run setup installs it)');
const sc = `node ${SPARSECOPY} -q`;
const rm = (...files) => () => files.forEach((f) => fs.rmSync(f, { force: true }));
const out = path.join(WORK, 'qcow2-out.img');
const outQcow2 = path.join(WORK, 'qcow2-out.qcow2');

/** `image` converted by qemu-img into bench/work once (`extra`: more qemu-img options). */
function qcow2Of(image, name, extra = '') {
  const file = path.join(WORK, name);
  if (!fs.existsSync(file)) sh(`qemu-img convert -f raw -O qcow2 ${extra} '${image}' '${file}.tmp' && mv '${file}.tmp' '${file}'`);
  return file;
}

/** A qcow2 output is right: no errors, no leaks, the same disk as `image`. */
function checkQcow2(file, image) {
  sh(`qemu-img check -q '${file}'`);
  sh(`qemu-img compare -q -f raw -F qcow2 '${image}' '${file}'`);
}

const results = [];
const img = ext4Image();

if (cases.includes('in')) {
  for (const [label, file] of [['qcow2', qcow2Of(img, 'ext4-2g.qcow2')], ['compressed qcow2', qcow2Of(img, 'ext4-2g-c.qcow2', '-c')]]) {
    results.push(
      compare(`${label} -> sparse file (2 GiB ext4 image; target 1.0x of qemu-img${label === 'qcow2' ? '' : ', none for this one'})`, [
        { name: 'qemu-img convert -O raw img.qcow2 out', prepare: rm(out), run: `qemu-img convert -f qcow2 -O raw '${file}' '${out}'` },
        { name: 'sparsecopy img.qcow2 out', prepare: rm(out), run: `${sc} '${file}' '${out}'` },
      ], rounds),
    );
    sh(`cmp '${img}' '${out}'`);
  }
  fs.rmSync(out, { force: true });
}

if (cases.includes('device')) {
  if (process.getuid?.() !== 0) throw new Error('qcow2 bench device: needs root (a loop device)');
  const file = qcow2Of(img, 'ext4-2g.qcow2');
  const backing = blankDeviceBacking();
  const dev = sh(`losetup -f --show '${backing}'`).trim();
  const blank = () => sh(`blkdiscard -f '${dev}'`);
  try {
    results.push(
      compare('qcow2 -> blank 2 GiB loop device (target 1.0x of qemu-img -n)', [
        { name: 'qemu-img convert -n -O raw img.qcow2 DEV', prepare: blank, run: `qemu-img convert -n -f qcow2 -O raw '${file}' '${dev}'` },
        { name: 'sparsecopy img.qcow2 DEV (default: --zero=compare reads the zeros back)', prepare: blank, run: `${sc} '${file}' '${dev}'` },
        { name: 'sparsecopy --zero=zeroout img.qcow2 DEV (zeros unmapped, as qemu-img -n)', prepare: blank, run: `${sc} --zero=zeroout '${file}' '${dev}'` },
      ], rounds),
    );
    sh(`cmp '${img}' '${dev}'`);
  } finally {
    sh(`losetup -d '${dev}'`);
    fs.rmSync(backing, { force: true });
  }
}

if (cases.includes('out')) {
  results.push(
    compare('raw -> qcow2 (2 GiB ext4 image; target 1.0x of qemu-img)', [
      { name: 'qemu-img convert -O qcow2 img out.qcow2', prepare: rm(outQcow2), run: `qemu-img convert -f raw -O qcow2 '${img}' '${outQcow2}'` },
      { name: 'sparsecopy img out.qcow2', prepare: rm(outQcow2), run: `${sc} '${img}' '${outQcow2}'` },
    ], rounds),
  );
  checkQcow2(outQcow2, img);
  results.push(
    compare('raw -> compressed qcow2 (2 GiB ext4 image; target 0.6x of qemu-img -c)', [
      { name: 'qemu-img convert -c -O qcow2 img out.qcow2', prepare: rm(outQcow2), run: `qemu-img convert -c -f raw -O qcow2 '${img}' '${outQcow2}'` },
      { name: 'sparsecopy --compress img out.qcow2', prepare: rm(outQcow2), run: `${sc} --compress '${img}' '${outQcow2}'` },
    ], Math.min(rounds, 3)),
  );
  checkQcow2(outQcow2, img);
  fs.rmSync(outQcow2, { force: true });
}

if (cases.includes('terabyte')) {
  const tera = terabyteSparse();
  const teraQcow2 = qcow2Of(tera, 'sparse-1t.qcow2');
  results.push(
    compare('1 TiB virtual disk, 256 MiB of data: raw -> qcow2 (peak RSS target < 200 MB)', [
      { name: 'qemu-img convert -O qcow2 1t.img out.qcow2', prepare: rm(outQcow2), run: `qemu-img convert -f raw -O qcow2 '${tera}' '${outQcow2}'` },
      { name: 'sparsecopy 1t.img out.qcow2', prepare: rm(outQcow2), run: `${sc} '${tera}' '${outQcow2}'` },
    ], Math.min(rounds, 3)),
  );
  checkQcow2(outQcow2, tera);
  fs.rmSync(outQcow2, { force: true });
  results.push(
    compare('1 TiB virtual disk, 256 MiB of data: qcow2 -> sparse file (peak RSS target < 200 MB)', [
      { name: 'qemu-img convert -O raw 1t.qcow2 out', prepare: rm(out), run: `qemu-img convert -f qcow2 -O raw '${teraQcow2}' '${out}'` },
      { name: 'sparsecopy 1t.qcow2 out', prepare: rm(out), run: `${sc} '${teraQcow2}' '${out}'` },
    ], Math.min(rounds, 3)),
  );
  sh(`qemu-img compare -q -f raw -F raw '${tera}' '${out}'`); // holes are not read: cmp would read 1 TiB
  fs.rmSync(out, { force: true });
}

for (const r of results) console.log(`${formatTable(r)}\n`);
