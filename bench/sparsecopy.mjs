// Whole-process comparisons for sparsecopy (issue 2): cases (a)-(d).
// Usage: node bench/sparsecopy.mjs [a] [b] [c] [d]   (default: all)  ROUNDS=5
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, SPARSECOPY, WORK, compare, formatTable, have, sh } from './lib.mjs';
import { blankDeviceBacking, ext4Image, ext4ImageAllocated, terabyteSparse } from './fixtures.mjs';

const rounds = Number(process.env.ROUNDS ?? 5);
const cases = process.argv.slice(2).length ? process.argv.slice(2) : ['a', 'b', 'c', 'd'];
const out = path.join(WORK, 'out.img');
// Untimed: delete the last output and sync, so that neither its writeback nor the discard of its
// blocks (this filesystem is mounted with -o discard) lands in the next contender's timing.
const rmOut = () => {
  fs.rmSync(out, { force: true });
  sh('sync');
};
const sc = `node ${SPARSECOPY} -q`;

function fileCase(title, src, { withDd = true } = {}) {
  const contenders = [
    { name: 'sparsecopy', prepare: rmOut, run: `${sc} '${src}' '${out}'` },
    { name: 'cp --sparse=always', prepare: rmOut, run: `cp --sparse=always '${src}' '${out}'` },
  ];
  if (withDd) contenders.push({ name: 'dd conv=sparse bs=1M', prepare: rmOut, run: `dd if='${src}' of='${out}' bs=1M conv=sparse status=none` });
  if (have('qemu-img')) contenders.push({ name: 'qemu-img convert -O raw', prepare: rmOut, run: `qemu-img convert -O raw '${src}' '${out}'` });
  const result = compare(title, contenders, rounds);
  sameSparseContent(src, out); // the last run's output is right
  return result;
}

const sameSparseContent = (a, b) => sh(`node ${path.join(ROOT, 'bench/same-content.mjs')} '${a}' '${b}'`);

const results = [];
if (cases.includes('a')) results.push(fileCase('(a) 2 GiB ext4 image, ~700 MB of files, sparse -> file', ext4Image()));
if (cases.includes('b')) results.push(fileCase('(b) the same image fully allocated -> file', ext4ImageAllocated()));
if (cases.includes('c')) {
  const src = terabyteSparse();
  // dd would read the whole terabyte of holes (hours): left out.
  results.push(fileCase('(c) 1 TiB sparse file, 256 MiB of data in 32 extents -> file', src, { withDd: false }));
  const json = JSON.parse(sh(`node ${SPARSECOPY} -q --json '${src}' '${out}'`));
  results.push({ note: `(c) bytes read by sparsecopy: ${json.bytesRead} of ${json.total} (holes never read: ${json.bytesRead === 256 * 1024 * 1024})` });
}
if (cases.includes('d')) {
  const src = ext4Image();
  const backing = blankDeviceBacking();
  const dev = sh(`losetup -f --show '${backing}'`).trim();
  try {
    // Every run starts from a blank device: discard punches the backing file's blocks out.
    const blank = () => sh(`blkdiscard -f '${dev}' 2>/dev/null || dd if=/dev/zero of='${dev}' bs=1M status=none oflag=direct`);
    results.push(
      compare(
        '(d) ext4 image -> blank 2 GiB loop device',
        [
          { name: 'sparsecopy -n (device known blank)', prepare: blank, run: `${sc} -n '${src}' '${dev}'` },
          { name: 'dd conv=sparse bs=1M oflag=direct (no final flush)', prepare: blank, run: `dd if='${src}' of='${dev}' bs=1M conv=sparse oflag=direct status=none` },
          { name: 'dd conv=sparse,fsync bs=1M oflag=direct (flushes, as sparsecopy does)', prepare: blank, run: `dd if='${src}' of='${dev}' bs=1M conv=sparse,fsync oflag=direct status=none` },
          { name: 'sparsecopy (default: check zeros against the device)', prepare: blank, run: `${sc} '${src}' '${dev}'` },
        ],
        rounds,
      ),
    );
    sh(`cmp -n $(stat -c %s '${src}') '${src}' '${dev}'`);
  } finally {
    sh(`losetup -d '${dev}'`);
    fs.rmSync(backing, { force: true });
  }
}
rmOut();
for (const r of results) console.log(r.note ?? `${formatTable(r)}\n`);
