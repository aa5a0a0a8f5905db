// Do the npm packages `pako` (pure-JS zlib) and `crc-32` beat Node's built-in node:zlib and
// zlib.crc32 on this project's workloads? Measures, on a 64 MiB sample of a disk image:
//   1. inflate of its gzip -6 form, the way gunzip-source.ts does it and the alternatives;
//   2. deflate level 6, the way gzip-sink.ts does it (1 MiB pieces, 4 in flight) and the alternatives;
//   3. CRC-32 of 1 MiB buffers (gzip-sink.ts runs one over every data byte it writes).
// Prints one markdown table: MiB/s of *uncompressed* bytes (median of ROUNDS) and the ratio to the
// node:zlib baseline of each operation (the first row of its group; > 1 means faster).
//
// Run: node bench/codecs.mjs            (ROUNDS=5 by default; about 80 s on the 2-core VM; per-round times on stderr)
//
// pako and crc-32 are deliberately not in package.json: they are only candidates. They are
// installed here on demand with `npm install --no-save`, which leaves package.json and
// package-lock.json alone (a later `npm ci` removes them again).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { Bench } from 'tinybench';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 1 << 20;
const SAMPLE_BYTES = 64 * MiB;
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const log = (...args) => console.error(...args); // progress on stderr, so stdout is just the report

// ---------------------------------------------------------------------------------------------
// Candidates: install on demand (idempotent: skipped when both are already in node_modules).
// ---------------------------------------------------------------------------------------------
function ensureCandidates() {
  const missing = ['pako', 'crc-32'].filter((p) => !fs.existsSync(path.join(ROOT, 'node_modules', p, 'package.json')));
  if (missing.length === 0) return;
  log(`installing (not saved to package.json): ${missing.join(', ')}`);
  const r = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--loglevel=error', 'pako@2', 'crc-32@1'], {
    cwd: ROOT,
    stdio: ['ignore', 2, 2], // npm's chatter goes to stderr with ours
  });
  if (r.status !== 0) throw new Error(`npm install of pako/crc-32 failed (exit ${r.status})`);
}
ensureCandidates();
// Imported dynamically: a static import would fail at link time, before the install above runs.
const pako = (await import('pako')).default;
const CRC32 = (await import('crc-32')).default;
const versionOf = (p) => JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', p, 'package.json'), 'utf8')).version;

// ---------------------------------------------------------------------------------------------
// Workload: 64 MiB of real disk-image data (file contents, metadata, some zero tails).
// ---------------------------------------------------------------------------------------------
/** 64 MiB of the ext4 fixture from 300 MiB on (inside its data extents), skipping whole-MiB holes. */
function sampleFromImage(file) {
  const fd = fs.openSync(file, 'r');
  const out = Buffer.alloc(SAMPLE_BYTES);
  const zero = Buffer.alloc(MiB);
  const start = 300 * MiB;
  let filled = 0;
  let pos = start;
  try {
    const size = fs.fstatSync(fd).size;
    while (filled < SAMPLE_BYTES && pos + MiB <= size) {
      const piece = out.subarray(filled, filled + MiB);
      fs.readSync(fd, piece, 0, MiB, pos);
      pos += MiB;
      // A MiB that is all zeros is a hole of the sparse image, not data the codecs would see
      // (sparsecopy never compresses long zero runs): leave it out, overwrite it with the next.
      if (!piece.equals(zero)) filled += MiB;
    }
  } finally {
    fs.closeSync(fd);
  }
  if (filled < SAMPLE_BYTES) return null;
  return { data: out, source: `${path.relative(ROOT, file)} bytes ${start / MiB}-${pos / MiB} MiB (all-zero MiBs skipped)` };
}

/** Fallback without the fixture: files under /usr/share, in sorted order, concatenated. */
function sampleFromUsrShare() {
  const out = Buffer.alloc(SAMPLE_BYTES);
  let filled = 0;
  const walk = (dir) => {
    let names;
    try {
      names = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    } catch {
      return;
    }
    for (const d of names) {
      if (filled >= SAMPLE_BYTES) return;
      const p = path.join(dir, d.name);
      if (d.isDirectory()) walk(p);
      else if (d.isFile()) {
        try {
          const fd = fs.openSync(p, 'r');
          try {
            filled += fs.readSync(fd, out, filled, SAMPLE_BYTES - filled, 0);
          } finally {
            fs.closeSync(fd);
          }
        } catch {
          /* unreadable: skip */
        }
      }
    }
  };
  walk('/usr/share');
  if (filled < SAMPLE_BYTES) throw new Error(`only ${filled} bytes under /usr/share`);
  return { data: out, source: 'files under /usr/share, concatenated' };
}

const image = path.join(ROOT, 'bench/work/ext4-2g.img');
const sample = (fs.existsSync(image) && sampleFromImage(image)) || sampleFromUsrShare();
const data = sample.data;
let zeroBytes = 0;
for (let i = 0; i < data.length; i++) if (data[i] === 0) zeroBytes++;
log('compressing the sample with gzipSync level 6 ...');
const gz = zlib.gzipSync(data, { level: 6 });
const gzSlices = (size) => Array.from({ length: Math.ceil(gz.length / size) }, (_, i) => gz.subarray(i * size, (i + 1) * size));

// ---------------------------------------------------------------------------------------------
// Measurement helpers.
// ---------------------------------------------------------------------------------------------
/**
 * This VM has 2 cores and other work may share them; a slow round is then not the codec's fault.
 * Busy CPU seconds of the whole machine (/proc/stat, USER_HZ = 100) minus this process's own CPU
 * time gives the other processes' load during a round, in cores; printed so noisy rows stand out.
 */
function machineBusySeconds() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return (f.reduce((a, b) => a + b, 0) - f[3] - f[4]) / 100; // all but idle and iowait
  } catch {
    return NaN; // not Linux: the column shows n/a
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * contenders: [{ name, run: async () => bytes }]. Each round runs every contender once, in an order
 * rotated per round (round r starts with contender r mod n), so the VM's slow spells and GC debt
 * spread over all of them instead of landing on one. Returns median seconds per contender.
 */
async function interleaved(contenders, rounds) {
  const secs = contenders.map(() => []);
  const others = contenders.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < contenders.length; k++) {
      const i = (k + round) % contenders.length;
      const busy0 = machineBusySeconds();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const bytes = await contenders[i].run();
      const wall = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const other = Math.max(0, (machineBusySeconds() - busy0 - (cpu.user + cpu.system) / 1e6) / wall);
      secs[i].push(wall);
      others[i].push(other);
      log(`  round ${round + 1}: ${wall.toFixed(3)} s (other processes ${other.toFixed(2)} cores)  ${contenders[i].name}`);
      if (bytes !== data.length) throw new Error(`${contenders[i].name}: ${bytes} bytes, expected ${data.length}`);
    }
  }
  return contenders.map((c, i) => ({
    name: c.name,
    seconds: median(secs[i]),
    min: Math.min(...secs[i]),
    max: Math.max(...secs[i]),
    other: median(others[i]),
  }));
}

const rows = [];
function addRows(operation, results, note = () => '') {
  const baseline = data.length / MiB / results[0].seconds;
  for (const r of results) {
    const mibs = data.length / MiB / r.seconds;
    const other = r.other === undefined ? '-' : Number.isNaN(r.other) ? 'n/a' : r.other.toFixed(2);
    rows.push({ operation, name: r.name, mibs, ratio: mibs / baseline, spread: `${r.min.toFixed(3)}-${r.max.toFixed(3)} s`, other, note: note(r) });
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Inflate. Each contender takes `onChunk` so the same code is timed (counting bytes only) and,
// once beforehand, checked byte for byte against the sample.
// ---------------------------------------------------------------------------------------------
/** node:zlib's Gunzip stream, fed 1 MiB of compressed input at a time (gunzip-source.ts reads 1 MiB). */
async function nodeGunzipStream(chunkSize, onChunk) {
  const gunzip = zlib.createGunzip(chunkSize ? { chunkSize } : {});
  await pipeline(Readable.from(gzSlices(MiB)), gunzip, async (source) => {
    for await (const chunk of source) onChunk(chunk);
  });
}

/** pako's streaming Inflate: 1 MiB compressed pushes and 1 MiB output chunks, like the node stream. */
function pakoInflateStream(onChunk) {
  const inflater = new pako.Inflate({ chunkSize: MiB }); // auto-detects the gzip wrapper
  inflater.onData = onChunk; // the default onData would keep every chunk
  const slices = gzSlices(MiB);
  slices.forEach((s, i) => inflater.push(s, i === slices.length - 1));
  if (inflater.err) throw new Error(`pako.Inflate: ${inflater.msg}`);
}

const inflaters = [
  { name: 'node:zlib createGunzip, chunkSize 1 MiB (stream, async)', run: (on) => nodeGunzipStream(MiB, on) },
  { name: 'node:zlib createGunzip, default 16 KiB chunkSize', run: (on) => nodeGunzipStream(0, on) },
  { name: 'node:zlib gunzipSync', run: async (on) => on(zlib.gunzipSync(gz)) },
  { name: `pako ${versionOf('pako')} ungzip`, run: async (on) => on(pako.ungzip(gz)) },
  { name: `pako ${versionOf('pako')} Inflate, 1 MiB chunks (stream)`, run: async (on) => pakoInflateStream(on) },
];

log('inflate: checking outputs (also the warm-up) ...');
for (const c of inflaters) {
  const chunks = [];
  await c.run((chunk) => chunks.push(chunk));
  if (!Buffer.concat(chunks).equals(data)) throw new Error(`${c.name}: output differs from the sample`);
}
log(`inflate: ${ROUNDS} rounds ...`);
addRows(
  'inflate (gunzip)',
  await interleaved(
    inflaters.map((c) => ({
      name: c.name,
      run: async () => {
        let n = 0;
        await c.run((chunk) => (n += chunk.length));
        return n;
      },
    })),
    ROUNDS,
  ),
);

// ---------------------------------------------------------------------------------------------
// 2. Deflate level 6. Each contender returns its raw deflate stream so it can be checked by
// inflating it back, and so the compressed sizes can be compared.
// ---------------------------------------------------------------------------------------------
const LEVEL = 6;
const WINDOW = 32 << 10;
const IN_FLIGHT = 4;
/** A final, empty stored block: ends a stream of sync-flushed pieces (as gzip-format.ts's FINAL_EMPTY_BLOCK). */
const FINAL_EMPTY_BLOCK = Buffer.from([0x03, 0x00]);

const deflateRawAsync = (input, options) =>
  new Promise((resolve, reject) => zlib.deflateRaw(input, options, (err, out) => (err ? reject(err) : resolve(out))));

/**
 * gzip-sink.ts's scheme: 1 MiB pieces, each primed with the 32 KiB before it as a dictionary and
 * ended with a sync flush so they concatenate into one stream; up to 4 on the thread pool at once
 * (2 cores, and queued work to keep both busy).
 */
async function nodeDeflatePieces(input) {
  const outputs = [];
  const queue = [];
  for (let off = 0; off < input.length; off += MiB) {
    const piece = input.subarray(off, off + MiB);
    const dictionary = off > 0 ? input.subarray(off - WINDOW, off) : undefined;
    queue.push(deflateRawAsync(piece, { level: LEVEL, dictionary, finishFlush: zlib.constants.Z_SYNC_FLUSH }));
    while (queue.length >= IN_FLIGHT) outputs.push(await queue.shift());
  }
  while (queue.length) outputs.push(await queue.shift());
  outputs.push(FINAL_EMPTY_BLOCK);
  return Buffer.concat(outputs);
}

const deflaters = [
  { name: 'node:zlib deflateRaw (async), one call', run: (input) => deflateRawAsync(input, { level: LEVEL }) },
  { name: `node:zlib deflateRaw, 1 MiB pieces, ${IN_FLIGHT} in flight (thread pool)`, run: nodeDeflatePieces },
  { name: `pako ${versionOf('pako')} deflateRaw`, run: async (input) => pako.deflateRaw(input, { level: LEVEL }) },
];

log('deflate: warm-up and round-trip check ...');
const compressedSize = new Map();
for (const c of deflaters) {
  await c.run(data.subarray(0, 8 * MiB)); // warm-up (JIT, thread pool) on a prefix: full runs are slow
  const out = await c.run(data);
  if (!zlib.inflateRawSync(out).equals(data)) throw new Error(`${c.name}: does not inflate back to the sample`);
  compressedSize.set(c.name, out.length);
}
log(`deflate: ${ROUNDS} rounds ...`);
addRows(
  'deflate level 6',
  await interleaved(
    deflaters.map((c) => ({
      name: c.name,
      run: async () => {
        await c.run(data);
        return data.length;
      },
    })),
    ROUNDS,
  ),
  (r) => `output ${(compressedSize.get(r.name) / MiB).toFixed(2)} MiB`,
);

// ---------------------------------------------------------------------------------------------
// 3. CRC-32 of 1 MiB buffers: tinybench (many short calls). Cycles through the sample's 64 MiB
// rather than one hot buffer, as the sink sees fresh data each time (1 MiB > this VM's L2 anyway).
// ---------------------------------------------------------------------------------------------
const buffers = Array.from({ length: SAMPLE_BYTES / MiB }, (_, i) => data.subarray(i * MiB, (i + 1) * MiB));
for (const b of buffers.slice(0, 4)) {
  if (zlib.crc32(b) >>> 0 !== CRC32.buf(b) >>> 0) throw new Error('zlib.crc32 and crc-32 disagree');
}
let next = 0;
let sink = 0; // consumed below, so the calls cannot be optimised away
const crcTasks = [
  { name: 'zlib.crc32', fn: () => (sink ^= zlib.crc32(buffers[next++ & 63])) },
  { name: `crc-32 ${versionOf('crc-32')} CRC32.buf`, fn: () => (sink ^= CRC32.buf(buffers[next++ & 63])) },
];
log('crc32: tinybench ...');
const bench = new Bench({ time: 1500, warmupTime: 300, iterations: 64, throws: true });
for (const t of crcTasks) bench.add(t.name, t.fn);
await bench.run();
const crcResults = bench.tasks.map((t) => {
  const { latency } = t.result; // milliseconds per 1 MiB call
  return { name: t.name, seconds: (latency.p50 / 1000) * (data.length / MiB), min: (latency.min / 1000) * (data.length / MiB), max: (latency.max / 1000) * (data.length / MiB) };
});
addRows('crc32, 1 MiB buffers', crcResults, (r) => `${bench.tasks.find((t) => t.name === r.name).runs} calls`);
if (sink === 0.5) console.log(sink); // never true; keeps `sink` live

// ---------------------------------------------------------------------------------------------
// Report.
// ---------------------------------------------------------------------------------------------
const cpus = (await import('node:os')).cpus();
console.log(`## Codecs: node:zlib against pako / crc-32 (bench/codecs.mjs)

Node ${process.version}, zlib ${process.versions.zlib}, ${cpus.length} x ${cpus[0]?.model ?? '?'}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}.
Sample: 64 MiB from ${sample.source}; ${((100 * zeroBytes) / data.length).toFixed(1)}% zero bytes; gzip -6 (zlib.gzipSync): ${(gz.length / MiB).toFixed(2)} MiB (${((100 * gz.length) / data.length).toFixed(1)}%).
MiB/s are of uncompressed bytes; inflate/deflate: median of ${ROUNDS} interleaved rounds of the whole 64 MiB (spread = min-max seconds per round);
crc32: tinybench median latency of one 1 MiB call (spread scaled to 64 MiB). Ratio = MiB/s / MiB/s of the group's first row (node:zlib); > 1 is faster.
"other load": median CPU (in cores, of ${cpus.length}) used by other processes during this row's rounds; well above 0 means that row was slowed by them.

| operation | implementation | MiB/s | ratio to node:zlib | spread | other load | notes |
|---|---|---:|---:|---|---:|---|`);
for (const r of rows) {
  console.log(`| ${r.operation} | ${r.name} | ${r.mibs.toFixed(1)} | ${r.ratio.toFixed(2)} | ${r.spread} | ${r.other} | ${r.note} |`);
}
