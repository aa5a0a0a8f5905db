// Whole-process comparisons for the image formats of issue 10.
//   speed   xz, zstd and bzip2 images of the 2 GiB ext4 image -> sparse file, against the tool
//           piped into dd conv=sparse (the targets: 1.0x, 0.8x and 1.0x)
//   out     the same image -> .zst, .xz, .bz2 against the tools themselves (no target: context)
//   memory  peak RSS of gz, xz, zst and bz2 -> file and -> a loop device, 2 GiB and 12 GiB
//           images, with and without --md5, on an idle machine and with both cores kept busy
// Usage: node bench/formats.mjs [speed] [out] [memory]   (default: speed out)   ROUNDS=5
// The memory case needs root (a loop device) and builds a 12 GiB image and its four compressed
// forms once into bench/work (about 25 minutes the first time; xz -1 and lbzip2 -1 for speed).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SPARSECOPY, WORK, compare, formatTable, sh, timed } from './lib.mjs';
import { ext4Image } from './fixtures.mjs';

const rounds = Number(process.env.ROUNDS ?? 5);
const cases = process.argv.slice(2).length ? process.argv.slice(2) : ['speed', 'out'];
const sc = `node ${SPARSECOPY} -q`;
const out = path.join(WORK, 'formats-out.img');
const rm = (...files) => () => files.forEach((f) => fs.rmSync(f, { force: true }));

/** `image` compressed by `command` (stdin to stdout) into bench/work, once. */
function packed(image, ext, command) {
  const file = `${image}.${ext}`;
  if (!fs.existsSync(file)) sh(`${command} < '${image}' > '${file}.tmp' && mv '${file}.tmp' '${file}'`);
  return file;
}

const results = [];

if (cases.includes('speed')) {
  const img = ext4Image();
  const forms = [
    { name: 'xz', file: packed(img, 'xz', 'xz -T0 -6 -c'), tool: 'xz -dc -T0', target: '1.0x' },
    { name: 'zstd', file: packed(img, 'zst', 'zstd -q -T0 -3 -c'), tool: 'zstd -dc', target: '0.8x' },
    { name: 'bzip2', file: packed(img, 'bz2', 'lbzip2 -9 -c'), tool: 'lbzip2 -dc', target: '1.0x' },
  ];
  for (const f of forms) {
    const size = (fs.statSync(f.file).size / 1e6).toFixed(0);
    results.push(
      compare(`${f.name} -> sparse file (2 GiB ext4 image, ${size} MB ${f.name}; target ${f.target} of the first dd row)`, [
        { name: `${f.tool} | dd conv=sparse bs=1M`, prepare: rm(out), run: `${f.tool} '${f.file}' | dd of='${out}' conv=sparse bs=1M status=none` },
        { name: `sparsecopy img.${path.extname(f.file).slice(1)} out`, prepare: rm(out), run: `${sc} '${f.file}' '${out}'` },
        { name: `${f.tool} | dd conv=sparse bs=1M iflag=fullblock`, prepare: rm(out), run: `${f.tool} '${f.file}' | dd of='${out}' conv=sparse bs=1M iflag=fullblock status=none` },
      ], rounds),
    );
    sh(`cmp '${img}' '${out}'`);
  }
  fs.rmSync(out, { force: true });
}

if (cases.includes('out')) {
  const img = ext4Image();
  const packedOut = path.join(WORK, 'formats-out.pack');
  for (const [name, ext, tool] of [['zstd', 'zst', 'zstd -q -T0 -3 -c'], ['xz', 'xz', 'xz -T0 -6 -c'], ['bzip2', 'bz2', 'lbzip2 -9 -c']]) {
    results.push(
      compare(`2 GiB ext4 image -> .${ext}`, [
        { name: `${tool} < img > out`, prepare: rm(packedOut), run: `${tool} < '${img}' > '${packedOut}'` },
        { name: `sparsecopy img out.${ext}`, prepare: rm(`${packedOut}.${ext}`), run: `${sc} '${img}' '${packedOut}.${ext}'` },
      ], name === 'xz' ? Math.min(rounds, 3) : rounds),
    );
    fs.rmSync(packedOut, { force: true });
    fs.rmSync(`${packedOut}.${ext}`, { force: true });
  }
}

/** A 12 GiB image: the 2 GiB image six times over (sparse, 4.3 GB of data). */
function image12g() {
  const file = path.join(WORK, 'ext4-12g.img');
  if (!fs.existsSync(file)) {
    const src = ext4Image();
    sh(`rm -f '${file}.tmp' && for i in 0 1 2 3 4 5; do node ${SPARSECOPY} -q -o -s $((i * 2))G '${src}' '${file}.tmp'; done; mv '${file}.tmp' '${file}'`);
  }
  return file;
}

/** Keeps both cores busy while `body` runs. */
async function busy(body) {
  const burners = [0, 1].map(() => spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
  try {
    return await body();
  } finally {
    for (const b of burners) b.kill('SIGKILL');
  }
}

if (cases.includes('memory')) {
  const images = { '2 GiB': ext4Image(), '12 GiB': image12g() };
  const compressors = { gz: 'pigz -6 -c', xz: 'xz -T0 -1 -c', zst: 'zstd -q -T0 -3 -c', bz2: 'lbzip2 -1 -c' };
  const backing = path.join(WORK, 'formats-loop.img');
  sh(`rm -f '${backing}' && truncate -s 13G '${backing}'`);
  const dev = sh(`losetup -f --show '${backing}'`).trim();
  const rows = [];
  try {
    for (const [size, img] of Object.entries(images)) {
      for (const [ext, tool] of Object.entries(compressors)) {
        const file = packed(img, ext, tool);
        for (const load of ['idle', 'busy']) {
          for (const md5 of [false, true]) {
            for (const target of ['file', 'device']) {
              const dest = target === 'file' ? out : dev;
              // The device in its default mode (--zero=compare: the zeros are read back), what users run.
              const run = async () => timed(`${sc}${md5 ? ' --md5' : ''} '${file}' '${dest}' > /dev/null`);
              fs.rmSync(out, { force: true });
              const r = load === 'busy' ? await busy(run) : await run();
              rows.push({ size, ext, load, md5, target, ...r });
              console.error(`${size} ${ext} ${load} ${md5 ? 'md5' : '-'} ${target}: ${r.seconds.toFixed(1)} s, ${r.rssMb.toFixed(0)} MB`);
            }
          }
        }
      }
    }
  } finally {
    sh(`losetup -d '${dev}'`);
    fs.rmSync(backing, { force: true });
    fs.rmSync(out, { force: true });
  }
  const lines = ['### Peak RSS of compressed image -> file or loop device (`/usr/bin/time -f %M`, MB)', '',
    'busy: two shell loops keep both cores at 100% meanwhile. -> device: a 13 GiB loop device in the default mode (--zero=compare). One run each; seconds in parentheses.', '',
    '| image | format | load | --md5 | -> file | -> device |', '|---|---|---|---|---|---|'];
  for (const r of rows.filter((x) => x.target === 'file')) {
    const d = rows.find((x) => x.target === 'device' && x.size === r.size && x.ext === r.ext && x.load === r.load && x.md5 === r.md5);
    lines.push(`| ${r.size} | ${r.ext} | ${r.load} | ${r.md5 ? 'yes' : 'no'} | ${r.rssMb.toFixed(0)} (${r.seconds.toFixed(1)} s) | ${d.rssMb.toFixed(0)} (${d.seconds.toFixed(1)} s) |`);
  }
  console.log(`${lines.join('\n')}\n\nmaximum: ${Math.max(...rows.map((r) => r.rssMb)).toFixed(0)} MB`);
}

for (const r of results) console.log(`${formatTable(r)}\n`);
