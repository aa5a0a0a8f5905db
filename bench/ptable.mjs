// ptable (issue 4): in-process table reading/checking (tinybench) and whole-process start-up
// against sfdisk -d. Run: node bench/ptable.mjs   ROUNDS=20
import fs from 'node:fs';
import path from 'node:path';
import { Bench } from 'tinybench';
import { ROOT, WORK, ensureDir, sh } from './lib.mjs';
import { bufferReader, checkTable, readTable } from '../dist/partition/read.js';
import { formatSfdiskDump } from '../dist/partition/sfdisk-dump.js';

const rounds = Number(process.env.ROUNDS ?? 20);
const PTABLE = path.join(ROOT, 'dist/bin/ptable.mjs');
ensureDir(WORK);

function image(name, script) {
  const file = path.join(WORK, name);
  sh(`rm -f '${file}' && truncate -s 1G '${file}' && sfdisk --no-reread --no-tell-kernel -q '${file}' <<'EOF2'\n${script}\nEOF2`);
  return file;
}
const gpt = image('ptable-gpt.img', 'label: gpt\nsize=64M, type=U, name="ESP"\nsize=1M, type=21686148-6449-6E6F-744E-656564454649\nsize=256M, type=L, name="root"\ntype=L, name="data"');
const dos = image('ptable-dos.img', 'label: dos\nsize=64M, type=c, bootable\nsize=200M, type=83\ntype=5\nsize=100M, type=83\nsize=100M, type=82\ntype=83');

const results = [];
for (const [label, file] of [['gpt', gpt], ['dos', dos]]) {
  const bytes = fs.readFileSync(file);
  const read = bufferReader(bytes, 512);
  const sectors = bytes.length / 512;
  const bench = new Bench({ time: 300 });
  bench
    .add(`${label}: readTable`, () => readTable(read, 512, sectors))
    .add(`${label}: checkTable`, () => checkTable(read, 512, sectors))
    .add(`${label}: readTable + formatSfdiskDump`, () => formatSfdiskDump(readTable(read, 512, sectors).table, file));
  await bench.run();
  for (const t of bench.tasks) {
    const mean = t.result.latency?.mean ?? t.result.mean;
    results.push(`| ${t.name} | ${(mean * 1000).toFixed(1)} |`);
  }
}
console.log('| in process (image in memory) | mean µs |\n|---|---|');
console.log(results.join('\n'));
console.log();
// Whole process: hyperfine without a shell (-N), so the numbers are the commands' own.
for (const [label, file] of [['gpt', gpt], ['dos', dos]]) {
  console.log(`### start-up to exit, ${label} image (1 GiB, 4 partitions)\n`);
  const table = path.join(WORK, 'ptable-hyperfine.md');
  sh(`hyperfine -N --warmup 3 --runs ${rounds} --export-markdown '${table}' "node ${PTABLE} dump ${file}" "node ${PTABLE} check ${file}" "sfdisk -d ${file}"`);
  console.log(fs.readFileSync(table, 'utf8'));
}
