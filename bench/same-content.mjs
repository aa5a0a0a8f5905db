// cmp for sparse files: compares the data ranges of both allocation maps (holes read as zeros),
// so a 1 TiB file with 256 MiB of data is checked in a second. Exit 1 when they differ.
import fs from 'node:fs';
import { seekData, seekHole } from '../dist/io/ffi.js';

const [a, b] = process.argv.slice(2);
const fa = fs.openSync(a, 'r');
const fb = fs.openSync(b, 'r');
const size = fs.fstatSync(fa).size;
if (size !== fs.fstatSync(fb).size) {
  console.error(`${a} ${b}: sizes differ`);
  process.exit(1);
}
function dataRanges(fd) {
  const ranges = [];
  for (let p = 0; ; ) {
    const d = seekData(fd, p);
    if (d.kind !== 'offset') break;
    const h = seekHole(fd, d.offset);
    const end = h.kind === 'offset' ? h.offset : size;
    ranges.push([d.offset, end]);
    p = end;
  }
  return ranges;
}
const ba = Buffer.alloc(1 << 20);
const bb = Buffer.alloc(1 << 20);
for (const [start, end] of [...dataRanges(fa), ...dataRanges(fb)]) {
  for (let p = start; p < end; p += ba.length) {
    const n = Math.min(ba.length, end - p);
    const na = fs.readSync(fa, ba, 0, n, p);
    const nb = fs.readSync(fb, bb, 0, n, p);
    if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) {
      console.error(`${a} ${b}: differ in bytes ${p}..${p + n}`);
      process.exit(1);
    }
  }
}
