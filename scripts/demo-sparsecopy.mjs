// The README's main job on a built-in example: build an ext4 image the size of a small disk,
// allocate it fully (as a download or a dd from a device would), then let sparsecopy make it
// sparse again, and show the summary and the allocated sizes.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sparsecopy-demo-'));
const full = path.join(dir, 'disk-full.img');
const sparse = path.join(dir, 'disk-sparse.img');
const MiB = 1024 * 1024;

const allocated = (f) => fs.statSync(f).blocks * 512;
const show = (label, f) =>
  console.log(`${label.padEnd(34)} size ${(fs.statSync(f).size / MiB).toFixed(0).padStart(5)} MiB, allocated ${(allocated(f) / MiB).toFixed(1).padStart(7)} MiB`);

try {
  console.log('1. mkfs.ext4 -d src/: a 1 GiB ext4 image holding this project\'s sources');
  execFileSync('truncate', ['-s', '1G', full]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'demo', '-d', path.join(root, 'src'), full]);
  console.log('2. allocate every block, as a download or a raw dd from a disk leaves it');
  execFileSync('cp', ['--sparse=never', full, `${full}.tmp`]);
  fs.renameSync(`${full}.tmp`, full);
  show('   input (fully allocated):', full);

  console.log(`3. sparsecopy --json ${path.basename(full)} ${path.basename(sparse)}`);
  const r = spawnSync(process.execPath, [path.join(root, 'dist/bin/sparsecopy.mjs'), '--json', full, sparse], { encoding: 'utf8' });
  process.stderr.write(`${r.stderr.trimEnd().replace(/^/gm, '   ')}\n`);
  if (r.status !== 0) process.exit(r.status ?? 1);
  const summary = JSON.parse(r.stdout);
  show('   output (sparse):', sparse);
  execFileSync('cmp', [full, sparse]);
  console.log(`   identical bytes (cmp), ${(summary.bytesSkipped / MiB).toFixed(0)} MiB of zeros became holes in ${summary.seconds.toFixed(2)} s`);
  const fsck = spawnSync('e2fsck', ['-fn', sparse], { encoding: 'utf8' });
  console.log(`   e2fsck -fn on the copy: ${fsck.status === 0 ? 'clean' : `exit ${fsck.status}`}`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
