// Test and bench utility: an ext4 image from a directory or an archive by fsmaker's own tree
// reader and ext4 writer (openTree + planExt4, from the build in dist/), for the tarball route
// before the fsmaker command takes trees. Run as any user: the owners come from the archive.
// Usage: node test/debian-ext4-from-tree.mjs SOURCE IMAGE   (prints the image's size on stdout)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '../dist/fsmaker');
const { openTree } = await import(path.join(dist, 'tree-open.js'));
const { planExt4 } = await import(path.join(dist, 'ext4-writer.js'));

const [source, image] = process.argv.slice(2);
const plan = await planExt4({ tree: await openTree(source), seed: 'debian', timestamp: 1700000000 });
const fd = fs.openSync(image, 'wx');
try {
  fs.ftruncateSync(fd, plan.sizeBytes);
  for await (const extent of plan.extents()) {
    if (extent.data) fs.writeSync(fd, extent.data, 0, extent.length, extent.offset);
    extent.release?.();
  }
} finally {
  fs.closeSync(fd);
}
console.log(plan.sizeBytes);
