// In-process micro-benchmarks (tinybench) of the hot primitives. Run: node bench/micro.mjs
import { Bench } from 'tinybench';
import { isZeroRange, splitZeroRuns } from '../dist/extent/zero-runs.js';

const MiB = 1 << 20;
const zeros = Buffer.alloc(MiB);
const data = Buffer.alloc(MiB);
for (let i = 0; i < MiB; i++) data[i] = (i * 2654435761) >>> 24 || 1;
// An ext4-like mixed chunk: 4 KiB blocks, every third one ends in 2.5 KiB of zeros (file tails).
const mixed = Buffer.from(data);
for (let b = 0; b < MiB; b += 4096) if ((b / 4096) % 3 === 0) mixed.fill(0, b + 1536, b + 4096);

function loopU8(buf) {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}
function loopU32(buf) {
  const w = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
  for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
  return true;
}
function perBlockSubarrayEquals(buf, bs) {
  const z = zeros.subarray(0, bs);
  let n = 0;
  for (let o = 0; o < buf.length; o += bs) if (buf.subarray(o, o + bs).equals(z)) n++;
  return n;
}
function perBlockIsZeroRange(buf, bs) {
  let n = 0;
  for (let o = 0; o < buf.length; o += bs) if (isZeroRange(buf, o, o + bs)) n++;
  return n;
}

const bench = new Bench({ time: 500 });
bench
  .add('1 MiB of zeros: isZeroRange (Buffer.compare, memcmp)', () => isZeroRange(zeros))
  .add('1 MiB of zeros: Uint8Array loop', () => loopU8(zeros))
  .add('1 MiB of zeros: Uint32Array loop', () => loopU32(zeros))
  .add('1 MiB mixed, 512-byte blocks: subarray().equals()', () => perBlockSubarrayEquals(mixed, 512))
  .add('1 MiB mixed, 512-byte blocks: isZeroRange (first/last byte, then compare)', () => perBlockIsZeroRange(mixed, 512))
  .add('1 MiB mixed: splitZeroRuns, 512-byte blocks', () => splitZeroRuns(mixed, 0, 512))
  .add('1 MiB mixed: splitZeroRuns, 512-byte blocks, 4 KiB hole unit', () => splitZeroRuns(mixed, 0, 512, { holeUnit: 4096 }))
  .add('1 MiB data: splitZeroRuns, 512-byte blocks', () => splitZeroRuns(data, 0, 512));
await bench.run();
const rows = bench.tasks.map((t) => {
  const mean = t.result.latency?.mean ?? t.result.mean; // ms
  return { task: t.name, 'mean µs': (mean * 1000).toFixed(1), 'GiB/s': (MiB / (mean / 1000) / 2 ** 30).toFixed(2) };
});
console.log('| primitive | mean µs per MiB | GiB/s |\n|---|---|---|');
for (const r of rows) console.log(`| ${r.task} | ${r['mean µs']} | ${r['GiB/s']} |`);
