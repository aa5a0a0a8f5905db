// Whole-process comparisons for VMDK output (issue 12), against qemu-img, on the 2 GiB ext4 image.
//   stream   raw -> streamOptimized VMDK against `qemu-img convert -O vmdk -o subformat=streamOptimized`
//            (target 0.6x: sparsecopy compresses on both cores, qemu-img on one), and to a pipe
//   sparse   raw -> monolithicSparse and monolithicFlat against qemu-img's (no target: context)
//   terabyte a 1 TiB virtual disk with 256 MiB of data -> streamOptimized: peak RSS (target < 200 MB)
// Usage: ROUNDS=5 node bench/vmdk.mjs [stream] [sparse] [terabyte]   (default: all)
// Every output is checked with `qemu-img compare` against the image.
import fs from 'node:fs';
import path from 'node:path';
import { SPARSECOPY, WORK, compare, formatTable, have, sh } from './lib.mjs';
import { ext4Image, terabyteSparse } from './fixtures.mjs';

const rounds = Number(process.env.ROUNDS ?? 5);
const cases = process.argv.slice(2).length ? process.argv.slice(2) : ['stream', 'sparse', 'terabyte'];
if (!have('qemu-img')) throw new Error('vmdk bench: needs qemu-img (npm run setup installs it)');
const sc = `node ${SPARSECOPY} -q`;
const out = path.join(WORK, 'vmdk-out.vmdk');
const rmOut = () => {
  for (const name of fs.readdirSync(WORK)) if (name.startsWith('vmdk-out')) fs.rmSync(path.join(WORK, name), { force: true });
};
const same = (image, file) => sh(`qemu-img compare -q -f raw -F vmdk '${image}' '${file}'`);

const results = [];
const img = ext4Image();

if (cases.includes('stream')) {
  results.push(
    compare('raw -> streamOptimized VMDK (2 GiB ext4 image; target 0.6x of qemu-img)', [
      { name: 'qemu-img convert -O vmdk -o subformat=streamOptimized img out.vmdk', prepare: rmOut, run: `qemu-img convert -f raw -O vmdk -o subformat=streamOptimized '${img}' '${out}'` },
      { name: 'sparsecopy img out.vmdk', prepare: rmOut, run: `${sc} '${img}' '${out}'` },
      { name: 'sparsecopy --format vmdk img - | cat > out.vmdk', prepare: rmOut, run: `${sc} --format vmdk '${img}' - | cat > '${out}'` },
    ], rounds),
  );
  same(img, out);
}

if (cases.includes('sparse')) {
  for (const subformat of ['monolithicSparse', 'monolithicFlat']) {
    results.push(
      compare(`raw -> ${subformat} VMDK (2 GiB ext4 image; no target)`, [
        { name: `qemu-img convert -O vmdk -o subformat=${subformat} img out.vmdk`, prepare: rmOut, run: `qemu-img convert -f raw -O vmdk -o subformat=${subformat} '${img}' '${out}'` },
        { name: `sparsecopy --vmdk-subformat ${subformat} img out.vmdk`, prepare: rmOut, run: `${sc} --vmdk-subformat ${subformat} '${img}' '${out}'` },
      ], rounds),
    );
    same(img, out);
  }
}

if (cases.includes('terabyte')) {
  const tera = terabyteSparse();
  results.push(
    compare('1 TiB virtual disk, 256 MiB of data: raw -> streamOptimized (peak RSS target < 200 MB)', [
      { name: 'qemu-img convert -O vmdk -o subformat=streamOptimized 1t.img out.vmdk', prepare: rmOut, run: `qemu-img convert -f raw -O vmdk -o subformat=streamOptimized '${tera}' '${out}'` },
      { name: 'sparsecopy 1t.img out.vmdk', prepare: rmOut, run: `${sc} '${tera}' '${out}'` },
    ], Math.min(rounds, 3)),
  );
  same(tera, out);
}

rmOut();
for (const r of results) console.log(`${formatTable(r)}\n`);
