/**
 * Seeded random trees through the ext4 writer: every node type, names of any bytes Linux allows
 * (1-255 bytes, UTF-8, spaces), sparse files with ranges at any offset, xattrs in the inode, in a
 * block or both sizes, hard links, devices with wide numbers, 32-bit owners. Each image must be
 * clean for e2fsck -fn and read back by our reader exactly as the tree says; the writer must pass
 * the tree's chunks through (no copies of file data).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openExt } from '../src/fsmaker/ext4.js';
import { planExt4 } from '../src/fsmaker/ext4-writer.js';
import type { TreeNode } from '../src/fsmaker/tree.js';
import { makeTempDir, patternBytes } from './helpers.js';
import { memTree } from './mem-tree.js';

const haveTools = spawnSync('sh', ['-c', 'command -v e2fsck'], { stdio: 'ignore' }).status === 0;
if (!haveTools) console.log('skipping random ext4 writer trees: e2fsck is not installed');
const dir = makeTempDir('ext4w-random-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function rng(seed: number): (n: number) => number {
  let x = seed * 2654435761 + 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

const ALPHABET = ['a', 'Z', '0', '-', '_', '.', ' ', 'é', 'ß', '日', '€', '~', '#'];

function randomName(r: (n: number) => number, taken: Set<string>): string {
  for (;;) {
    const long = r(10) === 0;
    let name = '';
    const target = long ? 200 + r(56) : 1 + r(20);
    while (Buffer.byteLength(name) < target) {
      const c = ALPHABET[r(ALPHABET.length)]!;
      if (Buffer.byteLength(name + c) > 255) break;
      name += c;
    }
    if (name !== '.' && name !== '..' && !taken.has(name)) {
      taken.add(name);
      return name;
    }
  }
}

/** A random tree and the bytes of its files (`bytes(node, offset, length)`). */
function randomTree(seed: number): { nodes: TreeNode[]; bytes: (path: string, offset: number, length: number) => Buffer } {
  const r = rng(seed);
  const time = (): number => 1_600_000_000 + r(200_000_000) + r(1024) / 1024;
  const nodes: TreeNode[] = [{ path: '', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: time(), size: 0 }];
  const dirs: Array<{ path: string; names: Set<string> }> = [{ path: '', names: new Set() }];
  const files: TreeNode[] = [];
  const count = 5 + r(60);
  for (let i = 0; i < count; i++) {
    const parent = dirs[r(dirs.length)]!;
    const p = (parent.path ? `${parent.path}/` : '') + randomName(r, parent.names);
    const base = { path: p, mode: r(0o10000), uid: r(3) === 0 ? r(2 ** 32) : r(2000), gid: r(3) === 0 ? r(2 ** 32) : r(2000), mtime: time(), atime: time(), ctime: time(), size: 0 };
    const kind = r(12);
    let n: TreeNode;
    if (kind < 3) {
      n = { ...base, type: 'dir' };
      dirs.push({ path: p, names: new Set() });
    } else if (kind < 7) {
      const size = [0, 1 + r(100), 4096 * (1 + r(4)), 1 + r(300_000), r(4) === 0 ? 40_000_000 + r(1000) : 50_000][r(5)]!;
      n = { ...base, type: 'file', size };
      if (size > 0 && r(2) === 0) {
        const ranges = [];
        let at = r(5000);
        while (at < size) {
          const length = Math.min(size - at, 1 + r(20_000));
          ranges.push({ offset: at, length });
          at += length + 1 + r(size > 1_000_000 ? 5_000_000 : 30_000);
        }
        n.dataRanges = ranges;
      }
      files.push(n);
    } else if (kind < 8 && files.length > 0) {
      const target = files[r(files.length)]!;
      n = { ...target, path: p, linkTo: target.path };
      delete n.dataRanges;
      n.dataRanges = target.dataRanges;
    } else if (kind < 9) {
      n = { ...base, type: 'symlink', target: 'x/'.repeat(1 + r(150)).slice(0, 1 + r(300)) };
    } else if (kind < 10) {
      n = { ...base, type: r(2) ? 'char' : 'block', rdev: { major: r(4096), minor: r(2) ? r(256) : r(1 << 20) } };
    } else {
      n = { ...base, type: r(2) ? 'fifo' : 'socket' };
    }
    if (!n.linkTo && r(3) === 0) {
      const xattrs = new Map<string, Buffer>();
      const k = 1 + r(4);
      let total = 0;
      for (let j = 0; j < k; j++) {
        const size = [0, 1 + r(20), 20 + r(200), 300 + r(700)][r(4)]!;
        if (total + size > 3000) break;
        total += size + 32;
        xattrs.set(`${['user.', 'trusted.', 'security.'][r(3)]}${randomName(r, new Set())}`.slice(0, 200), patternBytes(size, seed + j));
      }
      n.xattrs = xattrs;
    }
    nodes.push(n);
  }
  return { nodes, bytes: (p, offset, length) => patternBytes(length, (seed * 31 + p.length * 7 + offset) >>> 0) };
}

describe.skipIf(!haveTools)('ext4 writer on random trees', () => {
  for (let seed = 1; seed <= 40; seed++) {
    it(`tree ${seed}`, async () => {
      const { nodes, bytes } = randomTree(seed);
      const chunks = new Set<ArrayBufferLike>();
      const plan = await planExt4({ tree: memTree(nodes, bytes, { name: 'random', seen: chunks }), seed: String(seed), timestamp: 1_700_000_000 });
      const image = path.join(dir, `t${seed}.img`);
      const fd = fs.openSync(image, 'w');
      let fileBytes = 0;
      for await (const e of plan.extents()) {
        if (!e.data) continue;
        fs.writeSync(fd, e.data, 0, e.length, e.offset);
        if (chunks.has(e.data.buffer)) fileBytes += e.length;
      }
      fs.ftruncateSync(fd, plan.sizeBytes);
      fs.closeSync(fd);
      // Every byte of file data came out in the tree's own buffers.
      const want = nodes.filter((n) => n.type === 'file' && !n.linkTo).reduce((s, n) => s + (n.dataRanges ?? [{ offset: 0, length: n.size }]).reduce((t, x) => t + x.length, 0), 0);
      expect(fileBytes).toBe(want);

      const fsck = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
      expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);
      expect(fsck.stdout.split('\n').filter((l) => l && !/^(Pass [1-5]: |.*: \d+\/\d+ files)/.test(l)), fsck.stdout).toEqual([]);

      const rfd = fs.openSync(image, 'r');
      try {
        const ext = openExt((offset, length) => {
          const b = Buffer.alloc(length);
          return b.subarray(0, fs.readSync(rfd, b, 0, length, offset));
        });
        const byPath = new Map(nodes.map((n) => [n.path, n]));
        for (const n of nodes) {
          const t = n.linkTo !== undefined ? byPath.get(n.linkTo)! : n;
          const ino = ext.lookup(`/${n.path}`, { follow: false });
          expect(ino, n.path).not.toBeNull();
          expect(ino!.mode & 0o7777, n.path).toBe(t.mode);
          expect([ino!.uid, ino!.gid], n.path).toEqual([t.uid, t.gid]);
          expect(ino!.mtime, n.path).toBe(Math.floor(t.mtime));
          if (t.type === 'dir') {
            const names = ext.listDir(`/${n.path}`).sort();
            const children = nodes.filter((c) => c.path !== '' && (c.path.includes('/') ? c.path.slice(0, c.path.lastIndexOf('/')) : '') === n.path).map((c) => c.path.slice(c.path.lastIndexOf('/') + 1));
            if (n.path === '') children.push('lost+found');
            expect(names, n.path).toEqual(children.sort());
          } else if (t.type === 'symlink') {
            expect(ext.readLink(ino!), n.path).toBe(t.target);
          } else if (t.type === 'file') {
            expect(ino!.size, n.path).toBe(t.size);
            expect(ino!.links, n.path).toBe(nodes.filter((c) => c.path === t.path || c.linkTo === t.path).length);
            const wantBytes = Buffer.alloc(t.size);
            for (const range of t.dataRanges ?? [{ offset: 0, length: t.size }]) {
              for (let at = range.offset; at < range.offset + range.length; at += 1 << 20) bytes(t.path, at, Math.min(1 << 20, range.offset + range.length - at)).copy(wantBytes, at);
            }
            expect(ext.readFile(ino!).equals(wantBytes), n.path).toBe(true);
            const allocated = ext.fileExtents(ino!).reduce((s, e) => s + e.length, 0);
            const dataBlocks = new Set<number>();
            for (const range of t.dataRanges ?? [{ offset: 0, length: t.size }]) for (let b = Math.floor(range.offset / 4096); b < Math.ceil((range.offset + range.length) / 4096); b++) dataBlocks.add(b);
            expect(allocated, `${n.path}: only blocks with data are allocated`).toBe(dataBlocks.size * 4096);
          }
        }
      } finally {
        fs.closeSync(rfd);
      }
      fs.rmSync(image);
    }, 60_000);
  }
});
