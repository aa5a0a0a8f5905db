/**
 * Trees from an archive and a directory through the ext4 writer (the consumer they are for): the
 * filesystem is clean for e2fsck -fn, and debugfs finds the archive's owners (not the build
 * user's), modes, link targets, device numbers, file capabilities and bytes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planExt4 } from '../src/fsmaker/ext4-writer.js';
import type { FileTree } from '../src/fsmaker/tree.js';
import { openTree } from '../src/fsmaker/tree-open.js';
import { makeTempDir, patternBytes } from './helpers.js';

const isRoot = process.getuid?.() === 0;
let work = '';
let src = '';

beforeAll(() => {
  work = makeTempDir('fsmaker-tree-ext4-');
  src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, 'usr/bin'), { recursive: true });
  fs.mkdirSync(path.join(src, 'home/user'), { recursive: true });
  fs.writeFileSync(path.join(src, 'usr/bin/ping'), patternBytes(70000, 1), { mode: 0o755 });
  execFileSync('setcap', ['cap_net_raw+ep', path.join(src, 'usr/bin/ping')]);
  fs.writeFileSync(path.join(src, 'home/user/notes'), 'mine\n');
  fs.symlinkSync('usr/bin', path.join(src, 'bin'));
  const fd = fs.openSync(path.join(src, 'usr/sparse'), 'w');
  fs.writeSync(fd, patternBytes(5000, 2), 0, 5000, 3 << 20);
  fs.ftruncateSync(fd, 8 << 20);
  fs.closeSync(fd);
  if (isRoot) {
    execFileSync('chown', ['-R', '1000:100', path.join(src, 'home/user')]);
    execFileSync('mknod', [path.join(src, 'usr/null'), 'c', '1', '3']);
  }
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

async function writeExt4(tree: FileTree, file: string): Promise<void> {
  const plan = await planExt4({ tree, seed: 'tree-ext4', timestamp: 1_700_000_000 });
  const fd = fs.openSync(file, 'w');
  try {
    for await (const e of plan.extents()) if (e.data) fs.writeSync(fd, e.data, 0, e.length, e.offset);
    fs.ftruncateSync(fd, plan.sizeBytes);
  } finally {
    fs.closeSync(fd);
  }
}

const debugfs = (image: string, request: string): string => execFileSync('debugfs', ['-R', request, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

function dumped(image: string, inside: string): string {
  const out = path.join(work, `dump-${crypto.randomUUID()}`);
  debugfs(image, `dump ${inside} ${out}`);
  const hash = crypto.createHash('sha256').update(fs.readFileSync(out)).digest('hex');
  fs.rmSync(out);
  return hash;
}

const sha256 = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('trees through the ext4 writer', () => {
  for (const source of ['tar.gz (GNU tar --xattrs)', 'tar.zst', 'directory']) {
    it(`${source}: e2fsck -fn clean, debugfs shows the tree`, async () => {
      let input = src;
      if (source !== 'directory') {
        const tar = path.join(work, 'root.tar');
        execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--format=pax', '--sparse', '-cf', tar, '-C', src, '.']);
        input = path.join(work, source.startsWith('tar.gz') ? 'root.tgz' : 'root.tzst');
        fs.writeFileSync(input, execFileSync(source.startsWith('tar.gz') ? 'gzip' : 'zstd', ['-c', '-q', tar], { maxBuffer: 1 << 28 }));
      }
      const image = path.join(work, 'root.ext4');
      const tree = await openTree(input);
      try {
        await writeExt4(tree, image);
      } finally {
        tree.close();
      }
      const fsck = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
      expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);
      const ping = debugfs(image, 'stat /usr/bin/ping');
      expect(ping).toMatch(/Mode:\s+0755/);
      expect(debugfs(image, 'ea_get -x /usr/bin/ping security.capability')).toMatch(/^security.capability \(20\) = 01 00 00 02 00 20 00 00/m);
      expect(dumped(image, '/usr/bin/ping')).toBe(sha256(path.join(src, 'usr/bin/ping')));
      expect(dumped(image, '/usr/sparse')).toBe(sha256(path.join(src, 'usr/sparse')));
      expect(debugfs(image, 'stat /bin')).toMatch(/Fast link dest: "usr\/bin"/);
      if (isRoot) {
        expect(debugfs(image, 'stat /home/user/notes')).toMatch(/User:\s+1000\s+Group:\s+100/);
        expect(debugfs(image, 'stat /usr/null')).toMatch(/Device major\/minor number: 01:03/);
      }
    });
  }
});
