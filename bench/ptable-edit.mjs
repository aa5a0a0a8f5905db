// ptable's in-place edits against sfdisk's (issue 14): `-N 1 --move-data` of a 4 GiB partition
// full of data (the one edit that moves data: its time and its peak RSS, which must not grow with
// the partition), and a one-line -N resize, a --delete and a --part-type (start-up bound).
// Usage: npm run build && node bench/ptable-edit.mjs   ROUNDS=3  MOVE_GIB=4
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, WORK, compare, ensureDir, formatTable, sh } from './lib.mjs';

const rounds = Number(process.env.ROUNDS ?? 3);
const moveGiB = Number(process.env.MOVE_GIB ?? 4);
const PTABLE = path.join(ROOT, 'dist/bin/ptable.mjs');
ensureDir(WORK);

const base = path.join(WORK, 'ptable-edit-base.img');
const target = (name) => path.join(WORK, `ptable-edit-${name}.img`);
// A partition of MOVE_GIB GiB whose every byte is data (pseudo-random, so nothing compresses or
// stays a hole), moved up by 64 MiB into free space it overlaps: the backwards copy.
if (!fs.existsSync(base) || fs.statSync(base).size !== (moveGiB + 1) * 2 ** 30) {
  sh(`rm -f '${base}' && truncate -s ${moveGiB + 1}G '${base}' && printf 'label: gpt\\nstart=2048, size=${moveGiB}G, type=L\\n' | sfdisk -q --no-reread --no-tell-kernel '${base}'`);
  sh(`openssl enc -aes-128-ctr -pass pass:bench -nosalt -pbkdf2 < /dev/zero 2>/dev/null | head -c ${moveGiB}G | dd of='${base}' bs=4M seek=1M oflag=seek_bytes conv=notrunc status=none`);
}
const fresh = (name) => () => sh(`cp --sparse=always '${base}' '${target(name)}'`);

const moveLine = '+64M,';
const results = [
  compare(`-N 1 --move-data: a ${moveGiB} GiB partition moved up 64 MiB (overlapping: copied backwards)`, [
    { name: 'ptable -N 1 --move-data', prepare: fresh('ptable'), run: `echo '${moveLine}' | node ${PTABLE} --no-reread -q -N 1 --move-data '${target('ptable')}'` },
    { name: 'sfdisk -N 1 --move-data', prepare: fresh('sfdisk'), run: `echo '${moveLine}' | sfdisk --no-reread --no-tell-kernel -q -N 1 --move-data '${target('sfdisk')}'` },
  ], rounds),
  compare('-N 1 resize, --delete, --part-type (the table only)', [
    { name: 'ptable -N 1 (,-1G)', prepare: fresh('ptable'), run: `echo ',-1G' | node ${PTABLE} --no-reread -q -N 1 '${target('ptable')}'` },
    { name: 'sfdisk -N 1 (,-1G)', prepare: fresh('sfdisk'), run: `echo ',-1G' | sfdisk --no-reread --no-tell-kernel -q -N 1 '${target('sfdisk')}'` },
    { name: 'ptable --delete 1', prepare: fresh('ptable'), run: `node ${PTABLE} --no-reread -q --delete '${target('ptable')}' 1` },
    { name: 'sfdisk --delete 1', prepare: fresh('sfdisk'), run: `sfdisk --no-reread --no-tell-kernel -q --delete '${target('sfdisk')}' 1` },
    { name: 'ptable --part-type 1 S', prepare: fresh('ptable'), run: `node ${PTABLE} --no-reread -q --part-type '${target('ptable')}' 1 S` },
    { name: 'sfdisk --part-type 1 S', prepare: fresh('sfdisk'), run: `sfdisk --no-reread --no-tell-kernel -q --part-type '${target('sfdisk')}' 1 S` },
  ], rounds),
];
// The two tools' images after the move must be the same bytes (the GUIDs are the base's).
fresh('ptable')();
fresh('sfdisk')();
sh(`echo '${moveLine}' | node ${PTABLE} --no-reread -q -N 1 --move-data '${target('ptable')}'`);
sh(`echo '${moveLine}' | sfdisk --no-reread --no-tell-kernel -q -N 1 --move-data '${target('sfdisk')}'`);
sh(`cmp '${target('ptable')}' '${target('sfdisk')}'`);
for (const r of results) console.log(`${formatTable(r)}\n`);
console.log('after the move, cmp finds the two images identical');
for (const name of ['ptable', 'sfdisk']) fs.rmSync(target(name), { force: true });
