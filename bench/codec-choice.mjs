// Which implementation of xz, zstd and bzip2 should sparsecopy use on Node 20 (whose node:zlib has
// none of them)? Times every candidate on the same 512 MiB sample of the benchmark ext4 image:
//   decode: the npm packages in-process, against the Debian tools as child processes (their output
//           read through a pipe, as sparsecopy reads them);
//   encode: zstd-napi (zstd's own threads) against `zstd -T0`; lzma-native against `xz -T0`.
// Prints one markdown table per operation: seconds (median of ROUNDS), MiB/s of uncompressed bytes
// and the ratio to the first row of each format.
//
// Run: node bench/codec-choice.mjs        (ROUNDS=3 by default; several minutes: xz -6 is slow)
//
// The candidates that lost (fzstd, lzma-native, xz-decompress, seek-bzip) are not dependencies:
// they are installed here with `npm install --no-save`, which leaves package.json alone.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, WORK, ensureDir } from './lib.mjs';
import { ext4Image } from './fixtures.mjs';

const require = createRequire(import.meta.url);
const MiB = 1 << 20;
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SAMPLE = 512 * MiB;
const log = (...a) => console.error(...a);

const CANDIDATES = ['fzstd@0.1.1', 'lzma-native@8.0.6', 'xz-decompress@0.2.3', 'seek-bzip@2.0.0'];
const missing = CANDIDATES.filter((c) => !fs.existsSync(path.join(ROOT, 'node_modules', c.split('@')[0], 'package.json')));
if (missing.length > 0) {
  log(`installing (not saved): ${missing.join(' ')}`);
  const r = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--loglevel=error', ...missing], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (r.status !== 0) throw new Error('npm install of the candidates failed');
}

// The sample and its compressed forms, made once with the reference tools.
const dir = ensureDir(path.join(WORK, 'codec-choice'));
const sample = path.join(dir, 'sample.img');
if (!fs.existsSync(sample)) spawnSync('sh', ['-c', `head -c ${SAMPLE} '${ext4Image()}' > '${sample}'`]);
const packed = {
  zst: ['zstd', ['-q', '-T0', '-3', '-c']],
  xz: ['xz', ['-T0', '-6', '-c']],
  bz2: ['lbzip2', ['-c']],
};
for (const [ext, [tool, args]] of Object.entries(packed)) {
  const file = `${sample}.${ext}`;
  if (!fs.existsSync(file)) {
    log(`making ${file}`);
    spawnSync('sh', ['-c', `${tool} ${args.join(' ')} '${sample}' > '${file}.tmp' && mv '${file}.tmp' '${file}'`], { stdio: 'inherit' });
  }
}

/** Bytes from a child's stdout, counted (the pipe is what sparsecopy reads). */
async function childBytes(cmd, args, input) {
  const child = spawn(cmd, [...args, input], { stdio: ['ignore', 'pipe', 'inherit'] });
  let n = 0;
  for await (const chunk of child.stdout) n += chunk.length;
  return n;
}

async function* fileChunks(file) {
  const fd = fs.openSync(file, 'r');
  try {
    for (;;) {
      const b = Buffer.allocUnsafe(MiB);
      const n = fs.readSync(fd, b, 0, MiB, null);
      if (n === 0) return;
      yield b.subarray(0, n);
    }
  } finally {
    fs.closeSync(fd);
  }
}

async function streamBytes(transform, file) {
  let n = 0;
  const done = new Promise((resolve, reject) => {
    transform.on('data', (c) => (n += c.length));
    transform.on('end', resolve);
    transform.on('error', reject);
  });
  for await (const chunk of fileChunks(file)) if (!transform.write(chunk)) await new Promise((r) => transform.once('drain', r));
  transform.end();
  await done;
  return n;
}

const { decodeThread } = await import(path.join(ROOT, 'dist/codec/decoder-thread.js'));
async function threadBytes(kind, file) {
  const fd = fs.openSync(file, 'r');
  let n = 0;
  try {
    const { extents } = decodeThread(kind, { fd, start: 0, end: fs.fstatSync(fd).size, pending: null });
    for await (const e of extents) {
      n += e.length;
      e.release();
    }
  } finally {
    fs.closeSync(fd);
  }
  return n;
}

const decoders = {
  zstd: [
    ['zstd-napi in the decoder thread (chosen)', () => threadBytes('zstd', `${sample}.zst`)],
    ['zstd -dc (child)', () => childBytes('zstd', ['-dc'], `${sample}.zst`)],
    ['fzstd (pure JS)', async () => {
      const { Decompress } = require('fzstd');
      let n = 0;
      const d = new Decompress((c) => (n += c.length));
      for await (const c of fileChunks(`${sample}.zst`)) d.push(c);
      d.push(new Uint8Array(0), true);
      return n;
    }],
  ],
  xz: [
    ['xz -dc -T0 (child, chosen)', () => childBytes('xz', ['-dc', '-T0'], `${sample}.xz`)],
    ['xz -dc (child, one thread)', () => childBytes('xz', ['-dc'], `${sample}.xz`)],
    ['lzma-native', () => streamBytes(require('lzma-native').createDecompressor({ threads: 0 }), `${sample}.xz`)],
    ['xz-decompress (WebAssembly)', async () => {
      const { XzReadableStream } = require('xz-decompress');
      const reader = new XzReadableStream((await fs.openAsBlob(`${sample}.xz`)).stream()).getReader();
      let n = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return n;
        n += value.length;
      }
    }],
  ],
  bzip2: [
    ['lbzip2 -dc (child, chosen)', () => childBytes('lbzip2', ['-dc'], `${sample}.bz2`)],
    ['pbzip2 -dc (child)', () => childBytes('pbzip2', ['-dc'], `${sample}.bz2`)],
    ['bzip2 -dc (child)', () => childBytes('bzip2', ['-dc'], `${sample}.bz2`)],
    ['seek-bzip (pure JS)', async () => require('seek-bzip').decode(fs.readFileSync(`${sample}.bz2`)).length],
  ],
};

const encoders = {
  zstd: [
    ['zstd-napi, 2 worker threads (chosen)', async () => {
      const { CCtx, CParameter, EndDirective } = require('zstd-napi/binding');
      const c = new CCtx();
      c.setParameter(CParameter.compressionLevel, 3);
      c.setParameter(CParameter.nbWorkers, 2);
      const out = Buffer.allocUnsafe(MiB);
      let n = 0;
      for await (let chunk of fileChunks(sample)) {
        while (chunk.length > 0) {
          const [, produced, consumed] = c.compressStream2(out, chunk, EndDirective.continue);
          n += produced;
          chunk = chunk.subarray(consumed);
        }
      }
      for (;;) {
        const [left, produced] = c.compressStream2(out, new Uint8Array(0), EndDirective.end);
        n += produced;
        if (left === 0) return n;
      }
    }],
    ['zstd -3 -T0 (child)', () => childBytes('zstd', ['-q', '-3', '-T0', '-c'], sample)],
  ],
  xz: [
    ['xz -6 -T0 (child, chosen)', () => childBytes('xz', ['-6', '-T0', '-c'], sample)],
    ['lzma-native, threads 0', () => streamBytes(require('lzma-native').createCompressor({ preset: 6, threads: 0 }), sample)],
  ],
  bzip2: [['lbzip2 -9 (child, chosen)', () => childBytes('lbzip2', ['-9', '-c'], sample)]],
};

async function measure(title, table) {
  console.log(`\n### ${title} (${SAMPLE / MiB} MiB of the 2 GiB ext4 image, ${ROUNDS} rounds)\n`);
  console.log('| implementation | median s | MiB/s | ratio |');
  console.log('|---|---|---|---|');
  for (const [format, rows] of Object.entries(table)) {
    let base = null;
    for (const [name, run] of rows) {
      const times = [];
      for (let r = 0; r < ROUNDS; r++) {
        const t = performance.now();
        await run();
        times.push((performance.now() - t) / 1000);
        log(`${title} ${format} ${name}: ${times.at(-1).toFixed(2)} s`);
      }
      const median = times.sort((a, b) => a - b)[times.length >> 1];
      base ??= median;
      console.log(`| ${format}: ${name} | ${median.toFixed(2)} | ${(SAMPLE / MiB / median).toFixed(0)} | ${(median / base).toFixed(2)} |`);
    }
  }
}

await measure('Decoding', decoders);
await measure('Encoding', encoders);
