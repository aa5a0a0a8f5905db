// Whole-process comparisons for gzip in and out (issue 3).
// Usage: node bench/gzip.mjs [in] [dev] [md5] [out] [sparse]   (default: all)  ROUNDS=3
import fs from 'node:fs';
import path from 'node:path';
import { SPARSECOPY, WORK, compare, formatTable, have, sh } from './lib.mjs';
import { ext4Image } from './fixtures.mjs';

const rounds = Number(process.env.ROUNDS ?? 3);
const cases = process.argv.slice(2).length ? process.argv.slice(2) : ['in', 'dev', 'md5', 'out', 'sparse'];
const sc = `node ${SPARSECOPY} -q`;
const out = path.join(WORK, 'gz-out.img');
const outGz = path.join(WORK, 'gz-out.img.gz');
const rm = (...files) => () => files.forEach((f) => fs.rmSync(f, { force: true }));

/** The 2 GiB ext4 image compressed with gzip -6 (made with pigz -6: same format, faster). */
function imageGz() {
  const file = path.join(WORK, 'ext4-2g.img.gz');
  if (!fs.existsSync(file)) sh(`pigz -6 -c '${ext4Image()}' > '${file}.tmp' && mv '${file}.tmp' '${file}'`);
  return file;
}

function imageBmap() {
  const file = path.join(WORK, 'ext4-2g.bmap');
  if (!fs.existsSync(file)) sh(`bmaptool create -o '${file}' '${ext4Image()}'`);
  return file;
}

const results = [];
const md5Of = (file) => sh(`md5sum < '${file}'`).split(' ')[0];

if (cases.includes('in')) {
  const gz = imageGz();
  const contenders = [
    { name: 'sparsecopy img.gz out', prepare: rm(out), run: `${sc} '${gz}' '${out}'` },
    { name: 'pigz -dc | dd bs=1M iflag=fullblock conv=sparse', prepare: rm(out), run: `pigz -dc '${gz}' | dd of='${out}' bs=1M iflag=fullblock conv=sparse status=none` },
    { name: 'gzip -dc | dd bs=1M iflag=fullblock conv=sparse', prepare: rm(out), run: `gzip -dc '${gz}' | dd of='${out}' bs=1M iflag=fullblock conv=sparse status=none` },
  ];
  if (have('bmaptool')) contenders.push({ name: 'bmaptool copy --bmap (no verify)', prepare: rm(out), run: `bmaptool -q copy --no-verify --bmap '${imageBmap()}' '${gz}' '${out}'` });
  results.push(compare('gz -> sparse file (2 GiB ext4 image, 248 MB gz)', contenders, rounds));
  sh(`cmp '${ext4Image()}' '${out}'`);
}

if (cases.includes('dev')) {
  const gz = imageGz();
  const backing = path.join(WORK, 'gz-loop.img');
  sh(`rm -f '${backing}' && truncate -s 2G '${backing}'`);
  const dev = sh(`losetup -f --show '${backing}'`).trim();
  try {
    const blank = () => sh(`blkdiscard -f '${dev}'`);
    const contenders = [
      { name: 'sparsecopy --zero=skip img.gz /dev/loopN', prepare: blank, run: `${sc} --zero=skip '${gz}' '${dev}'` },
      { name: 'pigz -dc | dd conv=sparse oflag=direct (no flush)', prepare: blank, run: `pigz -dc '${gz}' | dd of='${dev}' bs=1M iflag=fullblock conv=sparse oflag=direct status=none` },
      { name: 'pigz -dc | dd conv=sparse,fsync oflag=direct', prepare: blank, run: `pigz -dc '${gz}' | dd of='${dev}' bs=1M iflag=fullblock conv=sparse,fsync oflag=direct status=none` },
    ];
    if (have('bmaptool')) contenders.push({ name: 'bmaptool copy --bmap (no verify)', prepare: blank, run: `bmaptool -q copy --no-verify --bmap '${imageBmap()}' '${gz}' '${dev}'` });
    results.push(compare('gz -> blank 2 GiB loop device', contenders, rounds));
    sh(`cmp -n $(stat -c %s '${ext4Image()}') '${ext4Image()}' '${dev}'`);
  } finally {
    sh(`losetup -d '${dev}'`);
    fs.rmSync(backing, { force: true });
  }
}

if (cases.includes('md5')) {
  const gz = imageGz();
  results.push(
    compare(
      'cost of --md5 in the pass (gz -> sparse file)',
      [
        { name: 'sparsecopy img.gz out', prepare: rm(out), run: `${sc} '${gz}' '${out}'` },
        { name: 'sparsecopy --md5 img.gz out', prepare: rm(out), run: `${sc} --md5 '${gz}' '${out}' > /dev/null` },
      ],
      rounds,
    ),
  );
}

if (cases.includes('out')) {
  const img = ext4Image();
  const contenders = [
    { name: 'sparsecopy --md5 img out.gz (level 6)', prepare: rm(outGz), run: `${sc} --md5 '${img}' '${outGz}' > /dev/null` },
    { name: 'tee >(md5sum) < img | pigz -6 > out.gz', prepare: rm(outGz), run: `tee >(md5sum > /dev/null) < '${img}' | pigz -6 > '${outGz}'` },
    { name: 'tee >(md5sum) < img | gzip -6 > out.gz', prepare: rm(outGz), run: `tee >(md5sum > /dev/null) < '${img}' | gzip -6 > '${outGz}'` },
  ];
  results.push(compare('file -> .gz + md5 (2 GiB ext4 image)', contenders, Math.min(rounds, 2)));
  sh(`${sc} --md5 '${img}' '${outGz}' > '${WORK}/md5.txt'`);
  sh(`gzip -t '${outGz}'`);
  const ours = fs.readFileSync(path.join(WORK, 'md5.txt'), 'utf8').split(' ')[0];
  results.push({ note: `sizes: sparsecopy .gz ${fs.statSync(outGz).size} bytes; md5 ${ours === md5Of(img) ? 'matches' : 'DIFFERS from'} md5sum` });
}

if (cases.includes('sparse')) {
  const file = path.join(WORK, 'sparse-16g.img');
  if (!fs.existsSync(file)) {
    const fd = fs.openSync(`${file}.tmp`, 'w');
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < 32; i++) {
      for (let j = 0; j < chunk.length; j += 8) chunk.writeDoubleLE(Math.sin(i * 1e6 + j), j);
      fs.writeSync(fd, chunk, 0, chunk.length, i * 512 * (1 << 20) + 4096);
    }
    fs.ftruncateSync(fd, 16 * 2 ** 30);
    fs.closeSync(fd);
    fs.renameSync(`${file}.tmp`, file);
  }
  results.push(compare('16 GiB sparse file, 32 MiB of data -> .gz', [{ name: 'sparsecopy sparse-16g.img out.gz', prepare: rm(outGz), run: `${sc} '${file}' '${outGz}'` }], rounds));
  sh(`gzip -t '${outGz}'`);
  results.push({ note: `16 GiB -> ${fs.statSync(outGz).size} bytes of gzip; gzip -t passes` });
}
rm(out, outGz)();
for (const r of results) console.log(r.note ?? `${formatTable(r)}\n`);
