// GzipSink on a sparse image: time must follow the data, not the apparent size.
//
// Builds bench/work/gzip-sparse-16g.img (16 GiB apparent, 32 extents of 1 MiB of semi-compressible
// data, holes elsewhere), then times in-process (performance.now) the real source (openInput +
// sourceExtents: SEEK_DATA/SEEK_HOLE, 512 KiB reads) into GzipSink, and verifies with gzip -t.
// A second case times 256 MiB of dense data, to show compression running on every core.
//
// Usage: npm run --silent build && node bench/gzip-sparse.mjs [sparse] [dense] [cli]
//   LEVEL=6 (gzip level)   VERIFY=0 skips gzip -t (16 GiB of zeros take gzip ~80 s to inflate)
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = process.env.BENCH_WORK ?? path.join(ROOT, 'bench/work');
const { GzipSink } = await import(path.join(ROOT, 'dist/codec/gzip-sink.js'));
const { openInput } = await import(path.join(ROOT, 'dist/io/target.js'));
const { sourceExtents, DEFAULT_CHUNK_BYTES } = await import(path.join(ROOT, 'dist/io/sources.js'));

const MiB = 1 << 20;
const GiB = 1 << 30;
const level = Number(process.env.LEVEL ?? 6);
const verify = process.env.VERIFY !== '0';
const cases = process.argv.slice(2).length ? process.argv.slice(2) : ['sparse', 'dense'];
fs.mkdirSync(WORK, { recursive: true });

/** Semi-compressible bytes (about 2.5:1 with gzip -6): text-like words with random runs mixed in. */
function semiCompressible(length, seed) {
  let x = seed >>> 0 || 1;
  const rnd = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  const words = Array.from({ length: 2000 }, () => Array.from({ length: 2 + Math.floor(rnd() * 10) }, () => String.fromCharCode(97 + Math.floor(rnd() * 26))).join(''));
  const out = Buffer.alloc(length);
  const noise = crypto.createHash('sha512');
  let at = 0;
  while (at < length) {
    if (rnd() < 0.02) {
      const r = noise.copy().update(String(at)).digest(); // 64 random bytes
      at += r.copy(out, at);
    } else {
      at += out.write(`${words[Math.floor(rnd() ** 2 * words.length)]}${rnd() < 0.1 ? '\n' : ' '}`, at, 'latin1');
    }
  }
  return out;
}

function buildFile(file, size, extents) {
  const stamp = `${file}.ok`;
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === JSON.stringify({ size, extents: extents.length })) return;
  const fd = fs.openSync(file, 'w');
  for (const [i, offset] of extents.entries()) fs.writeSync(fd, semiCompressible(MiB, i + 1), 0, MiB, offset);
  fs.ftruncateSync(fd, size);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.writeFileSync(stamp, JSON.stringify({ size, extents: extents.length }));
}

async function gzipInProcess(source, target) {
  const input = openInput(source);
  const fd = fs.openSync(target, 'w');
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const sink = new GzipSink({ fd, name: target, level, position: 0 });
  for await (const extent of sourceExtents(input, { chunkBytes: DEFAULT_CHUNK_BYTES })) await sink.write(extent);
  const counters = await sink.close();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  fs.closeSync(fd);
  input.close();
  // process.cpuUsage counts every thread of the process: the thread pool's compression included.
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, counters, size: sink.compressedBytes, crc: sink.crc };
}

function timedShell(script) {
  const t0 = performance.now();
  const r = spawnSync('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`failed: ${script}\n${r.stderr}`);
  return { seconds: (performance.now() - t0) / 1000, stdout: r.stdout.toString() };
}

const fmt = (s) => `${s.toFixed(3)} s`;
const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;

if (cases.includes('sparse')) {
  const file = path.join(WORK, 'gzip-sparse-16g.img');
  const size = 16 * GiB;
  // 32 extents of 1 MiB spread over the 16 GiB, not aligned to anything bigger than 4 KiB.
  const extents = Array.from({ length: 32 }, (_, i) => i * 512 * MiB + (i * 37 % 64) * 4096);
  buildFile(file, size, extents);
  const out = path.join(WORK, 'gzip-sparse-16g.img.gz');
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await gzipInProcess(file, out));
  const best = runs.reduce((a, b) => (a.seconds < b.seconds ? a : b));
  console.log(`sparse: 16 GiB apparent, 32 MiB data, level ${level}`);
  console.log(`  GzipSink in-process: ${runs.map((r) => fmt(r.seconds)).join(', ')} (cpu ${fmt(best.cpuSeconds)} in the best run)`);
  console.log(`  output: ${mb(best.size)} (${best.size} bytes); counters real ${best.counters.real}, sparse ${best.counters.sparse}`);
  if (cases.includes('cli') && fs.existsSync(path.join(ROOT, 'dist/bin/sparsecopy.mjs'))) {
    const cliOut = path.join(WORK, 'gzip-sparse-16g-cli.img.gz');
    const r = timedShell(`node '${path.join(ROOT, 'dist/bin/sparsecopy.mjs')}' -q --gzip=${level} '${file}' '${cliOut}'`);
    console.log(`  whole process (sparsecopy --gzip=${level}): ${fmt(r.seconds)}, ${mb(fs.statSync(cliOut).size)}`);
    fs.rmSync(cliOut, { force: true });
  }
  if (verify) {
    const t = timedShell(`gzip -t '${out}'`);
    // gzip -t checks the CRC-32 and ISIZE (16 GiB mod 2^32 = 0). (gzip 1.12's -l would inflate it all again.)
    console.log(`  gzip -t: ok (${fmt(t.seconds)}: gzip inflates zero runs at ~200 MB/s)`);
  }
}

if (cases.includes('dense')) {
  const file = path.join(WORK, 'gzip-dense-256m.img');
  const size = 256 * MiB;
  buildFile(file, size, Array.from({ length: 256 }, (_, i) => i * MiB));
  const out = path.join(WORK, 'gzip-dense-256m.img.gz');
  const r = await gzipInProcess(file, out);
  console.log(`dense: 256 MiB of data, level ${level}`);
  console.log(`  GzipSink in-process: ${fmt(r.seconds)}, ${(size / MiB / r.seconds).toFixed(0)} MiB/s, cpu ${fmt(r.cpuSeconds)} (${((100 * r.cpuSeconds) / r.seconds).toFixed(0)}% of one core), output ${mb(r.size)}`);
  const g = timedShell(`gzip -${level} -c '${file}' | wc -c`);
  const p = timedShell(`pigz -${level} -p 2 -c '${file}' | wc -c`);
  console.log(`  gzip -${level}: ${fmt(g.seconds)}, ${mb(Number(g.stdout))}; pigz -${level} -p 2: ${fmt(p.seconds)}, ${mb(Number(p.stdout))}`);
  if (verify) {
    timedShell(`gzip -t '${out}'`);
    console.log('  gzip -t: ok');
  }
}
