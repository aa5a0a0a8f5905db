// The default device path (issue 10, section 5): a gzip image written to a 2 GiB loop device in
// each of three states the device can be in, against the pipeline a user would otherwise run.
// Usage (root): ROUNDS=5 node bench/device-states.mjs [discarded] [zeros] [image]   (default: all)
//
// States, set up untimed before every run:
//   discarded  blkdiscard: the loop device's backing file is all holes (a new thin volume, a trimmed SSD)
//   zeros      filled with zeros by dd (allocated zeros: every read really reads)
//   image      holding the image already (zeros first, then the image): rewriting a device that held it
// Contenders: sparsecopy's default (--zero=compare: the device is read under every zero range and
// zeros are written only where it holds data, so the result is exact), --zero=skip (trusts the
// device to be zero), and `pigz -dc img.gz | dd conv=sparse bs=1M oflag=direct`, which leaves
// whatever the device held under the image's zero MiBs (exact only on a zeroed device).
import fs from 'node:fs';
import path from 'node:path';
import { SPARSECOPY, WORK, compare, formatTable, have, sh } from './lib.mjs';
import { ext4Image } from './fixtures.mjs';

const rounds = Number(process.env.ROUNDS ?? 5);
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : ['discarded', 'zeros', 'image'];
if (process.getuid?.() !== 0) throw new Error('device-states: needs root (loop devices)');
if (!have('pigz')) throw new Error('device-states: needs pigz');

const image = ext4Image();
const gz = path.join(WORK, 'ext4-2g.img.gz');
if (!fs.existsSync(gz)) sh(`pigz -6 -c '${image}' > '${gz}.tmp' && mv '${gz}.tmp' '${gz}'`);
const backing = path.join(WORK, 'loop-states.img');
sh(`rm -f '${backing}' && truncate -s 2G '${backing}'`);
const dev = sh(`losetup -f --show '${backing}'`).trim();

const discard = () => sh(`blkdiscard -f '${dev}'`);
const zeroFill = () => sh(`dd if=/dev/zero of='${dev}' bs=4M count=512 oflag=direct status=none`); // 2 GiB: the device's size
const STATES = {
  discarded: { title: 'discarded (backing file all holes)', prepare: discard },
  zeros: { title: 'filled with zeros', prepare: zeroFill },
  image: {
    title: 'holding the image already',
    prepare: () => {
      zeroFill();
      sh(`dd if='${image}' of='${dev}' bs=4M oflag=direct status=none`);
    },
  },
};

const sc = `node ${SPARSECOPY} -q`;
const results = [];
try {
  for (const name of wanted) {
    const state = STATES[name];
    if (!state) throw new Error(`unknown state ${name}: ${Object.keys(STATES).join(', ')}`);
    results.push(
      compare(
        `img.gz -> 2 GiB loop device, ${state.title}`,
        [
          { name: 'pigz -dc img.gz | dd of=DEV conv=sparse bs=1M oflag=direct', prepare: state.prepare, run: `pigz -dc '${gz}' | dd of='${dev}' conv=sparse bs=1M oflag=direct status=none` },
          { name: 'sparsecopy img.gz DEV (default: --zero=compare)', prepare: state.prepare, run: `${sc} '${gz}' '${dev}'` },
          { name: 'sparsecopy --zero=skip img.gz DEV', prepare: state.prepare, run: `${sc} --zero=skip '${gz}' '${dev}'` },
        ],
        rounds,
      ),
    );
    // The default mode is exact from any state: check its last result.
    state.prepare();
    sh(`${sc} '${gz}' '${dev}' && cmp '${image}' '${dev}'`);
  }
} finally {
  sh(`losetup -d '${dev}'`);
  fs.rmSync(backing, { force: true });
}
for (const r of results) console.log(`${formatTable(r)}\n`);
