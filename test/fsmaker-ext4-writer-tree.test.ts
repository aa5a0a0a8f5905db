/**
 * The ext4 writer behind the real tree sources (openTree): a directory made here with every kind
 * of node (setuid, owners, xattrs, a file capability, devices, a fifo, a sparse file, hard links,
 * symlinks), and a pax tar of it (GNU tar --xattrs). Each becomes an image that e2fsck -fn finds
 * clean and that the kernel mounts (as root) with every entry as in the source: lstat fields,
 * bytes, link targets and xattrs (getfattr).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { planExt4 } from '../src/fsmaker/ext4-writer.js';
import { openTree } from '../src/fsmaker/tree-open.js';
import { makeTempDir, patternBytes, withLoop } from './helpers.js';

const isRoot = process.getuid?.() === 0;
const haveTools = spawnSync('sh', ['-c', 'command -v e2fsck && command -v setfattr && command -v getfattr && command -v setcap && command -v tar'], { stdio: 'ignore' }).status === 0;
if (!isRoot || !haveTools) console.log('skipping the ext4 writer through openTree: needs root (mknod, chown, mount) and e2fsprogs, attr, libcap2-bin, tar');

const work = makeTempDir('ext4w-tree-');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function buildSource(root: string): void {
  const at = (p: string): string => path.join(root, p);
  for (const d of ['etc', 'usr/bin', 'dev', 'var/lib', 'tmp', 'home/user']) fs.mkdirSync(at(d), { recursive: true });
  fs.writeFileSync(at('etc/hostname'), 'test\n');
  fs.writeFileSync(at('usr/bin/ping'), patternBytes(80_000, 3));
  execFileSync('setcap', ['cap_net_raw=ep', at('usr/bin/ping')]);
  fs.writeFileSync(at('usr/bin/su'), patternBytes(5000, 4));
  fs.chmodSync(at('usr/bin/su'), 0o4755);
  fs.chmodSync(at('tmp'), 0o1777);
  fs.writeFileSync(at('home/user/notes'), 'mine');
  fs.chownSync(at('home/user/notes'), 1000, 100);
  fs.chownSync(at('home/user'), 1000, 100);
  execFileSync('setfattr', ['-n', 'user.colour', '-v', 'blue', at('home/user/notes')]);
  execFileSync('setfattr', ['-n', 'user.big', '-v', `0x${patternBytes(2000, 5).toString('hex')}`, at('etc/hostname')]);
  execFileSync('mknod', [at('dev/null'), 'c', '1', '3']);
  execFileSync('mknod', [at('dev/vda'), 'b', '254', '0']);
  execFileSync('mkfifo', [at('var/lib/fifo')]);
  fs.symlinkSync('../usr/bin/ping', at('etc/ping-link'));
  fs.symlinkSync('/' + 'long/'.repeat(30) + 'target', at('etc/slow-link'));
  fs.linkSync(at('usr/bin/su'), at('usr/bin/su-again'));
  const fd = fs.openSync(at('var/lib/sparse.db'), 'w');
  fs.writeSync(fd, patternBytes(10_000, 6), 0, 10_000, 1 << 20);
  fs.writeSync(fd, patternBytes(100, 7), 0, 100, 50 << 20);
  fs.closeSync(fd);
  fs.truncateSync(at('var/lib/sparse.db'), 64 << 20);
  // Times in ns, fixed (directories last, after their contents changed).
  const walk = (p: string): string[] => [p, ...(fs.lstatSync(at(p)).isDirectory() ? fs.readdirSync(at(p)).flatMap((n) => walk(p ? `${p}/${n}` : n)) : [])];
  for (const p of walk('').reverse()) spawnSync('touch', ['-h', '-d', '2023-11-14 22:13:20.123456789', at(p)]);
}

/**
 * What lstat, readlink, getfattr and the bytes say of each entry below `root`. Times to the
 * microsecond: TreeNode keeps seconds as a double, which holds 2023's times to about 0.24 us, so
 * the last digits of the nanoseconds are not the source's (the writer stores what the tree says).
 */
function listing(root: string, options: { nanoseconds: boolean }): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (rel: string): void => {
    const full = path.join(root, rel);
    const st = fs.lstatSync(full, { bigint: true });
    const fields: Record<string, unknown> = { mode: st.mode.toString(8), uid: st.uid, gid: st.gid, mtime: options.nanoseconds ? (st.mtimeNs + 500n) / 1000n : st.mtimeMs / 1000n };
    if (!st.isDirectory()) fields.nlink = st.nlink;
    if (st.isFile()) {
      fields.size = st.size;
      fields.sha256 = createHash('sha256').update(fs.readFileSync(full)).digest('hex');
    }
    if (st.isSymbolicLink()) fields.target = fs.readlinkSync(full);
    if (st.isCharacterDevice() || st.isBlockDevice()) fields.rdev = st.rdev;
    const xattrs = spawnSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', full], { encoding: 'utf8' }).stdout;
    fields.xattrs = xattrs.split('\n').filter((l) => l.includes('=')).sort();
    out.set(rel, JSON.stringify(fields, (_, v) => (typeof v === 'bigint' ? v.toString() : v)));
    if (st.isDirectory()) for (const name of fs.readdirSync(full).sort()) if (!(rel === '' && name === 'lost+found')) visit(rel ? `${rel}/${name}` : name);
  };
  visit('');
  return out;
}

async function imageOf(source: string, image: string): Promise<void> {
  const tree = await openTree(source);
  try {
    const plan = await planExt4({ tree, seed: 'tree', timestamp: 1_700_000_000 });
    const fd = fs.openSync(image, 'w');
    for await (const e of plan.extents()) if (e.data) fs.writeSync(fd, e.data, 0, e.length, e.offset);
    fs.ftruncateSync(fd, plan.sizeBytes);
    fs.closeSync(fd);
  } finally {
    tree.close();
  }
  const fsck = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
  expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);
  expect(fsck.stdout.split('\n').filter((l) => l && !/^(Pass [1-5]: |.*: \d+\/\d+ files)/.test(l)), fsck.stdout).toEqual([]);
}

async function mountedListing(image: string, options: { nanoseconds: boolean }): Promise<Map<string, string>> {
  const mnt = path.join(work, 'mnt');
  fs.mkdirSync(mnt, { recursive: true });
  return withLoop(image, (device) => {
    execFileSync('mount', ['-o', 'ro', device, mnt]);
    try {
      return listing(mnt, options);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
}

describe.skipIf(!isRoot || !haveTools)('ext4 writer through openTree', () => {
  const source = path.join(work, 'src');
  it('a directory: mounted, every entry as in the source (ns times, xattrs, capability, devices, holes)', async () => {
    buildSource(source);
    const image = path.join(work, 'dir.img');
    await imageOf(source, image);
    const want = listing(source, { nanoseconds: true });
    const got = await mountedListing(image, { nanoseconds: true });
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [p, v] of want) expect(got.get(p), p).toBe(v);
    expect(want.get('usr/bin/ping')).toContain('security.capability=');
    // The sparse file's holes stay holes: 64 MiB apparent, three blocks of data allocated.
    const [stat] = [execFileSync('debugfs', ['-R', 'stat /var/lib/sparse.db', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })];
    expect(stat).toMatch(/Blockcount: 32\b/);
  }, 120_000);

  it('a pax tar of it (GNU tar --xattrs): the same entries', async () => {
    const tarFile = path.join(work, 'root.tar');
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--format=posix', '-cf', tarFile, '-C', source, '.']);
    const image = path.join(work, 'tar.img');
    await imageOf(tarFile, image);
    const want = listing(source, { nanoseconds: false });
    const got = await mountedListing(image, { nanoseconds: false });
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [p, v] of want) expect(got.get(p), p).toBe(v);
  }, 120_000);
});
