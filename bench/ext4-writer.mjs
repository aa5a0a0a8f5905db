// fsmaker's ext4 writer (planExt4) against mkfs.ext4 -d on the same tree and the same size.
// Usage: npm run build && node bench/ext4-writer.mjs   ROUNDS=5
// The tree: a copy of parts of this machine's /usr (bin, share/doc, include, share/perl,
// share/zoneinfo, lib/node_modules: about 20 000 entries and 550 MB), made once under bench/work.
// `node bench/ext4-writer.mjs run TREE IMAGE SIZE` is the timed writer process: a minimal
// directory walker standing in for tree-dir.ts (lstat, readdir, whole files in 1 MiB chunks; no
// xattrs), planExt4 from dist/, each data extent written with pwrite into a sparse file.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, WORK, compare, ensureDir, formatTable, sh } from './lib.mjs';

const CHUNK = 1024 * 1024;

function walk(root) {
  const nodes = [];
  const seen = new Map(); // dev:ino -> path of the first name (hard links)
  const visit = (rel) => {
    const st = fs.lstatSync(path.join(root, rel), { bigint: true });
    const base = { path: rel, mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid), mtime: Number(st.mtimeNs) / 1e9, atime: Number(st.atimeNs) / 1e9, ctime: Number(st.ctimeNs) / 1e9, size: 0 };
    const key = `${st.dev}:${st.ino}`;
    if (!st.isDirectory() && st.nlink > 1n && seen.has(key)) {
      const first = nodes[seen.get(key)];
      nodes.push({ ...first, path: rel, linkTo: first.path });
      return;
    }
    if (!st.isDirectory()) seen.set(key, nodes.length);
    if (st.isDirectory()) {
      nodes.push({ ...base, type: 'dir' });
      for (const name of fs.readdirSync(path.join(root, rel)).sort()) visit(rel === '' ? name : `${rel}/${name}`);
    } else if (st.isSymbolicLink()) nodes.push({ ...base, type: 'symlink', target: fs.readlinkSync(path.join(root, rel)) });
    else if (st.isFile()) nodes.push({ ...base, type: 'file', size: Number(st.size) });
    else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const rdev = Number(st.rdev);
      nodes.push({ ...base, type: st.isCharacterDevice() ? 'char' : 'block', rdev: { major: (rdev >> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) } });
    } else if (st.isFIFO()) nodes.push({ ...base, type: 'fifo' });
    else if (st.isSocket()) nodes.push({ ...base, type: 'socket' });
  };
  visit('');
  return {
    name: root,
    nodes,
    async *contents() {
      for (let i = 0; i < nodes.length; i++) {
        const n = nodes[i];
        if (n.type !== 'file' || n.linkTo !== undefined || n.size === 0) continue;
        const fd = fs.openSync(path.join(root, n.path), 'r');
        try {
          for (let at = 0; at < n.size; at += CHUNK) {
            const b = Buffer.allocUnsafe(Math.min(CHUNK, n.size - at));
            if (fs.readSync(fd, b, 0, b.length, at) !== b.length) throw new Error(`${n.path}: short read`);
            yield { node: i, offset: at, data: b };
          }
        } finally {
          fs.closeSync(fd);
        }
      }
    },
    readFiles: async () => new Map(),
    close() {},
  };
}

async function run(treeDir, image, sizeBytes) {
  const { planExt4 } = await import(pathToFileURL(path.join(ROOT, 'dist/fsmaker/ext4-writer.js')).href);
  const plan = await planExt4({ tree: walk(treeDir), sizeBytes: sizeBytes ? Number(sizeBytes) : undefined, seed: 'bench', timestamp: 1_700_000_000 });
  const fd = fs.openSync(image, 'w');
  for await (const e of plan.extents()) if (e.data) fs.writeSync(fd, e.data, 0, e.length, e.offset);
  fs.ftruncateSync(fd, plan.sizeBytes);
  fs.closeSync(fd);
  if (!sizeBytes) console.log(plan.sizeBytes);
}

if (process.argv[2] === 'run') {
  await run(process.argv[3], process.argv[4], process.argv[5]);
} else {
  const rounds = Number(process.env.ROUNDS ?? 5);
  const dir = ensureDir(path.join(WORK, 'ext4-writer'));
  const tree = path.join(dir, 'tree');
  if (!fs.existsSync(path.join(tree, '.complete'))) {
    sh(`rm -rf '${tree}' && mkdir -p '${tree}/usr/share' '${tree}/usr/lib' && cp -a /usr/bin /usr/include '${tree}/usr/' && cp -a /usr/share/doc /usr/share/perl /usr/share/zoneinfo '${tree}/usr/share/' && cp -a /usr/lib/node_modules '${tree}/usr/lib/' && touch '${tree}/.complete'`);
  }
  const self = path.join(ROOT, 'bench/ext4-writer.mjs');
  const ours = path.join(dir, 'ours.img');
  const theirs = path.join(dir, 'mkfs.img');
  // One untimed run gives the automatic size; both then make a filesystem of exactly that size.
  const size = Number(sh(`node '${self}' run '${tree}' '${ours}'`).trim());
  const entries = Number(sh(`find '${tree}' | wc -l`).trim());
  const dataMb = Number(sh(`du -s --apparent-size -m '${tree}' | cut -f1`).trim());
  const result = compare(`ext4 from a tree: ${entries} entries, ${dataMb} MB, into a ${Math.round(size / 1048576)} MiB filesystem`, [
    { name: `planExt4 (node bench/ext4-writer.mjs run TREE ours.img ${size})`, prepare: () => fs.rmSync(ours, { force: true }), run: `node '${self}' run '${tree}' '${ours}' ${size}` },
    { name: `mkfs.ext4 -q -d TREE -F mkfs.img ${size / 1024}k`, prepare: () => fs.rmSync(theirs, { force: true }), run: `mkfs.ext4 -q -E root_owner=0:0 -d '${tree}' -F '${theirs}' ${size / 1024}k` },
  ], rounds);
  console.log(formatTable(result));
  for (const img of [ours, theirs]) console.log(`- ${path.basename(img)}: e2fsck -fn exit ${sh(`e2fsck -fn '${img}' >/dev/null 2>&1; echo $?`).trim()}, ${sh(`du -m '${img}' | cut -f1`).trim()} MB allocated`);
}
