// The same sparsecopy commands from two builds, alternating: did a change cost anything?
// Usage: BASE=/path/to/other/checkout node bench/against-base.mjs   (ROUNDS=9)
// BASE is another checkout of this repository, built (npm run build there). Cases: the file paths
// of bench/sparsecopy.mjs (a) and (b), and gzip in and out of bench/gzip.mjs.
import fs from 'node:fs';
import path from 'node:path';
import { SPARSECOPY, WORK, compare, formatTable, sh } from './lib.mjs';
import { ext4Image, ext4ImageAllocated } from './fixtures.mjs';

const base = process.env.BASE;
if (!base || !fs.existsSync(path.join(base, 'dist/bin/sparsecopy.mjs'))) throw new Error('BASE=checkout with a build (dist/bin/sparsecopy.mjs)');
const rounds = Number(process.env.ROUNDS ?? 9);
const builds = { base: `node ${path.join(base, 'dist/bin/sparsecopy.mjs')} -q`, this: `node ${SPARSECOPY} -q` };
const out = path.join(WORK, 'against-base.out');
const clean = () => {
  for (const f of [out, `${out}.gz`]) fs.rmSync(f, { force: true });
};
const gz = path.join(WORK, 'ext4-2g.img.gz');
if (!fs.existsSync(gz)) sh(`pigz -6 -c '${ext4Image()}' > '${gz}.tmp' && mv '${gz}.tmp' '${gz}'`);

const cases = [
  ['(a) 2 GiB ext4 image, sparse -> file', (sc) => `${sc} '${ext4Image()}' '${out}'`],
  ['(b) the same image fully allocated -> file', (sc) => `${sc} '${ext4ImageAllocated()}' '${out}'`],
  ['img.gz -> sparse file', (sc) => `${sc} '${gz}' '${out}'`],
  ['img -> img.gz --md5', (sc) => `${sc} --md5 '${ext4Image()}' '${out}.gz' > /dev/null`],
];
for (const [title, command] of cases) {
  const result = compare(title, Object.entries(builds).map(([name, sc]) => ({ name: `${name} build`, prepare: clean, run: command(sc) })), rounds);
  console.log(`${formatTable(result)}\n`);
}
clean();
