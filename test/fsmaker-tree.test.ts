/**
 * File trees from archives and directories against what the system's own tools say: a fixture
 * directory (long names, UTF-8, hard links, symlinks, devices, a fifo, a sparse file, owners,
 * setuid, xattrs including security.capability) archived by GNU tar (pax with --xattrs, gnu,
 * ustar, --sparse), bsdtar and Python's tarfile, each plain and gzip/xz/zstd/bzip2-compressed;
 * every tree's nodes compared with lstat and getfattr of the directory, every file's bytes
 * (sha256) with the file's.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import type { FileTree, TreeNode } from '../src/fsmaker/tree.js';
import type { DirectoryTree } from '../src/fsmaker/tree-dir.js';
import { openTree } from '../src/fsmaker/tree-open.js';
import { ROOT, makeTempDir, patternBytes } from './helpers.js';

const MiB = 1 << 20;
const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const isRoot = process.getuid?.() === 0;

let work = '';
let src = '';
const LONG_DIR = `${'d'.repeat(120)}/${'e'.repeat(120)}`;
const LONG_FILE = `${LONG_DIR}/${'f'.repeat(150)}.txt`;

beforeAll(() => {
  work = makeTempDir('fsmaker-tree-');
  src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, 'etc/sub'), { recursive: true });
  fs.mkdirSync(path.join(src, 'usr/bin'), { recursive: true });
  fs.mkdirSync(path.join(src, LONG_DIR), { recursive: true });
  fs.writeFileSync(path.join(src, 'etc/hostname'), 'tree\n');
  fs.writeFileSync(path.join(src, 'etc/empty'), '');
  fs.writeFileSync(path.join(src, 'usr/bin/big'), patternBytes(3 * MiB + 123, 7));
  fs.writeFileSync(path.join(src, 'usr/bin/ping'), patternBytes(4000, 3));
  fs.chmodSync(path.join(src, 'usr/bin/ping'), 0o4755);
  fs.writeFileSync(path.join(src, LONG_FILE), 'long\n');
  fs.writeFileSync(path.join(src, 'etc/sub/naïve ünïcode'), 'utf8\n');
  fs.symlinkSync('../usr/bin/ping', path.join(src, 'etc/link'));
  fs.symlinkSync(`/${'t'.repeat(200)}/target`, path.join(src, 'etc/longlink'));
  fs.linkSync(path.join(src, 'usr/bin/big'), path.join(src, 'usr/bin/big-hardlink'));
  execFileSync('mkfifo', [path.join(src, 'etc/fifo')]);
  // A sparse file: data at 0, a hole, data at 5 MB, a hole to its 12 MiB end.
  const sparse = path.join(src, 'usr/sparse');
  const fd = fs.openSync(sparse, 'w');
  fs.writeSync(fd, patternBytes(8192, 11), 0, 8192, 0);
  fs.writeSync(fd, patternBytes(70000, 12), 0, 70000, 5_000_000);
  fs.ftruncateSync(fd, 12 * MiB);
  fs.closeSync(fd);
  execFileSync('setfattr', ['-n', 'user.comment', '-v', 'hello xattr', path.join(src, 'etc/hostname')]);
  execFileSync('setcap', ['cap_net_raw+ep', path.join(src, 'usr/bin/ping')]);
  if (isRoot) {
    execFileSync('mknod', [path.join(src, 'etc/null'), 'c', '1', '3']);
    execFileSync('mknod', [path.join(src, 'etc/loop9'), 'b', '7', '9']);
    execFileSync('chown', ['-h', '1000:100', path.join(src, 'etc/hostname'), path.join(src, 'etc/link')]);
    execFileSync('chown', ['123:456', path.join(src, 'etc/sub')]);
  }
  // Fixed times (fractions included) so the archives' copies can be compared.
  execFileSync('find', [src, '-exec', 'touch', '-h', '-d', '2024-03-05 06:07:08.123456789', '{}', '+']);
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

interface Expected {
  type: TreeNode['type'];
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  target?: string;
  rdev?: { major: number; minor: number };
  xattrs: Record<string, string>;
}

/** What lstat and getfattr say of every entry below `root` (the oracle, independent of tree-dir.ts). */
function expectedOf(root: string): Map<string, Expected> {
  const out = new Map<string, Expected>();
  const attrs = getfattrAll(root);
  const walk = (rel: string): void => {
    const full = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(full, { bigint: true });
    const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'socket';
    const e: Expected = { type, mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid), size: type === 'file' ? Number(st.size) : 0, mtime: Number(st.mtimeNs) / 1e9, xattrs: attrs.get(rel) ?? {} };
    if (type === 'symlink') e.target = fs.readlinkSync(full);
    if (type === 'char' || type === 'block') e.rdev = { major: Number(st.rdev >> 8n) & 0xfff, minor: Number(st.rdev & 0xffn) };
    out.set(rel, e);
    if (type === 'dir') for (const name of fs.readdirSync(full)) walk(rel === '' ? name : `${rel}/${name}`);
  };
  walk('');
  return out;
}

/** getfattr -R -d -m - -e hex, by relative path (symlinks' own attributes, -h). */
function getfattrAll(root: string): Map<string, Record<string, string>> {
  const text = execFileSync('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { encoding: 'utf8' });
  const out = new Map<string, Record<string, string>>();
  let current: Record<string, string> | null = null;
  for (const line of text.split('\n')) {
    const file = /^# file: (.*)$/.exec(line);
    if (file) {
      const rel = path.relative(root, file[1]!.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
      current = {};
      out.set(Buffer.from(rel, 'latin1').toString('utf8'), current);
      continue;
    }
    const attr = /^([^=]+)=0x([0-9a-f]*)$/.exec(line);
    if (attr && current) current[attr[1]!] = attr[2]!;
  }
  return out;
}

async function contentHashes(tree: FileTree): Promise<Map<string, string>> {
  const hashes = new Map<number, crypto.Hash>();
  const last = new Map<number, number>();
  for await (const chunk of tree.contents()) {
    const node = tree.nodes[chunk.node]!;
    // Each file's chunks come in order, within its data ranges; holes read as zeros.
    const at = last.get(chunk.node) ?? 0;
    expect(chunk.offset).toBeGreaterThanOrEqual(at);
    let h = hashes.get(chunk.node);
    if (!h) hashes.set(chunk.node, (h = crypto.createHash('sha256')));
    if (chunk.offset > at) h.update(Buffer.alloc(chunk.offset - at));
    h.update(chunk.data);
    last.set(chunk.node, chunk.offset + chunk.data.length);
    expect(chunk.offset + chunk.data.length).toBeLessThanOrEqual(node.size);
  }
  const out = new Map<string, string>();
  for (const [i, h] of hashes) {
    const node = tree.nodes[i]!;
    const end = last.get(i)!;
    if (end < node.size) h.update(Buffer.alloc(node.size - end));
    out.set(node.path, h.digest('hex'));
  }
  return out;
}

const sha256 = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

interface Check {
  /** Fractions of a second kept (pax, directories). */
  fractions: boolean;
  /** xattrs kept (pax with --xattrs, bsdtar, a directory). */
  xattrs: boolean;
  /** Names not to expect (what a format cannot hold). */
  skip?: (rel: string) => boolean;
}

async function expectTreeMatches(tree: FileTree, root: string, check: Check): Promise<void> {
  const expected = expectedOf(root);
  const byPath = new Map(tree.nodes.map((n) => [n.path, n]));
  expect(tree.nodes[0]!.path).toBe('');
  const seen = new Set<string>();
  for (const [i, n] of tree.nodes.entries()) {
    // Parents first, each path once, hard links after their target.
    expect(seen.has(n.path)).toBe(false);
    if (n.path !== '') expect(seen.has(n.path.includes('/') ? n.path.slice(0, n.path.lastIndexOf('/')) : '')).toBe(true);
    if (n.linkTo !== undefined) expect(seen.has(n.linkTo), `${n.path} -> ${n.linkTo} at ${i}`).toBe(true);
    seen.add(n.path);
  }
  for (const [rel, e] of expected) {
    if (check.skip?.(rel)) continue;
    const n = byPath.get(rel);
    expect(n, `${rel} in the tree`).toBeDefined();
    const got = { type: n!.type, mode: n!.mode, uid: n!.uid, gid: n!.gid, size: n!.size, target: n!.target, rdev: n!.rdev };
    expect(got, rel).toEqual({ type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, target: e.target, rdev: e.rdev });
    if (check.fractions) expect(Math.abs(n!.mtime - e.mtime), `${rel} mtime ${n!.mtime} vs ${e.mtime}`).toBeLessThan(1e-6);
    else expect(n!.mtime, rel).toBe(Math.floor(e.mtime));
    if (check.xattrs) {
      const xattrs = Object.fromEntries([...(n!.xattrs ?? new Map())].map(([k, v]) => [k, v.toString('hex')]));
      expect(xattrs, `${rel} xattrs`).toEqual(e.xattrs);
    }
  }
  expect(tree.nodes.filter((n) => !check.skip?.(n.path)).length).toBe([...expected.keys()].filter((p) => !check.skip?.(p)).length);
  // The hard link: one more name of the big file, no contents of its own.
  const link = byPath.get('usr/bin/big-hardlink')!;
  const big = byPath.get('usr/bin/big')!;
  expect([link.linkTo, big.linkTo].filter((x) => x !== undefined).length).toBe(1);
  const hashes = await contentHashes(tree);
  for (const [rel, e] of expected) {
    if (e.type !== 'file' || check.skip?.(rel) || byPath.get(rel)!.linkTo !== undefined) continue;
    if (e.size === 0) expect(hashes.has(rel)).toBe(false);
    else expect(hashes.get(rel), rel).toBe(sha256(path.join(root, rel)));
  }
}

const COMPRESSORS: Record<string, string[] | null> = { none: null, gzip: ['gzip', '-c'], xz: ['xz', '-c', '-T1'], zstd: ['zstd', '-q', '-c'], bzip2: ['bzip2', '-c'] };

function compressed(tar: string, how: string): string {
  const cmd = COMPRESSORS[how];
  if (!cmd) return tar;
  const out = `${tar}.${how}`;
  // Named .bin: the reader goes by content, not by name.
  const bytes = execFileSync(cmd[0]!, [...cmd.slice(1), tar], { maxBuffer: 1 << 30 });
  fs.writeFileSync(`${out}.bin`, bytes);
  return `${out}.bin`;
}

describe('archives written by GNU tar, bsdtar and Python tarfile', () => {
  const cases: { name: string; make: (out: string) => void; check: Check; when?: () => string | null }[] = [
    { name: 'GNU tar --format=pax --xattrs --sparse', make: (out) => execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--sparse', '--format=pax', '-cf', out, '-C', src, '.']), check: { fractions: true, xattrs: true } },
    {
      // mmdebstrap's own tar call for `mmdebstrap ... out.tar` (its tar-in-chroot path).
      name: "GNU tar as mmdebstrap calls it",
      make: (out) =>
        execFileSync('tar', ['--sort=name', '--mtime=@1800000000', '--clamp-mtime', '--numeric-owner', '--one-file-system', '--xattrs', '--format=pax', '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime', '-cf', out, '-C', src, '.']),
      check: { fractions: true, xattrs: true },
    },
    { name: 'GNU tar --format=gnu --sparse', make: (out) => execFileSync('tar', ['--sparse', '--format=gnu', '-cf', out, '-C', src, '.']), check: { fractions: false, xattrs: false } },
    {
      name: 'GNU tar --format=ustar (names that fit)',
      make: (out) => execFileSync('tar', ['--format=ustar', '--exclude=./dddd*', '--exclude=./etc/longlink', '-cf', out, '-C', src, '.'], { stdio: ['ignore', 'ignore', 'ignore'] }),
      check: { fractions: false, xattrs: false, skip: (rel) => rel.startsWith('dddd') || rel === 'etc/longlink' },
    },
    {
      name: 'bsdtar (pax, xattrs)',
      when: () => (have('bsdtar') ? null : 'bsdtar is not installed (Debian package libarchive-tools)'),
      make: (out) => execFileSync('bsdtar', ['--format=pax', '--xattrs', '-cf', out, '-C', src, '.']),
      check: { fractions: true, xattrs: true },
    },
    {
      name: 'Python tarfile (pax, no ./ prefix)',
      when: () => (have('python3') ? null : 'python3 is not installed'),
      make: (out) =>
        execFileSync('python3', ['-c', `import tarfile, os, sys\nwith tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:\n  for name in sorted(os.listdir(sys.argv[2])): t.add(os.path.join(sys.argv[2], name), arcname=name)`, out, src]),
      // tarfile keeps no xattrs; its root is not in the archive (made 0755 root:root).
      check: { fractions: true, xattrs: false, skip: (rel) => rel === '' },
    },
  ];
  for (const c of cases) {
    for (const how of Object.keys(COMPRESSORS)) {
      it(`${c.name}, ${how}: nodes as lstat/getfattr say, bytes as sha256 says`, async () => {
        const skip = c.when?.();
        if (skip) return console.log(`skipping ${c.name}: ${skip}`);
        const tar = path.join(work, `${c.name.replace(/\W+/g, '_')}.tar`);
        if (!fs.existsSync(tar)) c.make(tar);
        const tree = await openTree(compressed(tar, how));
        try {
          await expectTreeMatches(tree, src, c.check);
          if (c.name.startsWith('GNU tar --format=pax') || c.name.startsWith('GNU tar --format=gnu')) {
            const sparse = tree.nodes.find((n) => n.path === 'usr/sparse')!;
            expect(sparse.dataRanges).toBeDefined();
            expect(sparse.dataRanges!.reduce((s, r) => s + r.length, 0)).toBeLessThan(1 * MiB);
          }
        } finally {
          tree.close();
        }
      });
    }
  }

  it('GNU tar -tv lists the same paths, types and sizes as the tree', async () => {
    const tar = path.join(work, 'tv.tar');
    execFileSync('tar', ['--format=pax', '-cf', tar, '-C', src, '.']);
    const listing = execFileSync('tar', ['-tvf', tar, '--numeric-owner', '--quoting-style=literal'], { encoding: 'utf8' }).trim().split('\n');
    const tree = await openTree(tar);
    try {
      const byPath = new Map(tree.nodes.map((n) => [n.path, n]));
      for (const line of listing) {
        const m = /^(\S)(\S{9}) (\d+)\/(\d+)\s+(\S+) \S+ \S+ (.*)$/.exec(line)!;
        expect(m, line).not.toBeNull();
        const name = m[6]!.replace(/ (->|link to) .*$/, '').replace(/^\.\/?/, '').replace(/\/$/, '');
        const n = byPath.get(name)!;
        expect(n, name).toBeDefined();
        const type = { '-': n.linkTo ? 'h' : 'file', d: 'dir', l: 'symlink', h: 'h', c: 'char', b: 'block', p: 'fifo' }[m[1]!];
        expect(n.linkTo ? 'h' : n.type, line).toBe(type);
        expect([n.uid, n.gid], line).toEqual([Number(m[3]), Number(m[4])]);
        if (n.type === 'file' && !n.linkTo) expect(Number(m[5]), line).toBe(n.size);
      }
      expect(tree.nodes.length).toBe(listing.length);
    } finally {
      tree.close();
    }
  });
});

describe('a directory', () => {
  it('gives the nodes lstat/getfattr give and the bytes the files hold, names in byte order', async () => {
    const tree = (await openTree(src)) as DirectoryTree;
    await expectTreeMatches(tree, src, { fractions: true, xattrs: true });
    const sparse = tree.nodes.find((n) => n.path === 'usr/sparse')!;
    expect(sparse.dataRanges?.[0]).toEqual({ offset: 0, length: 8192 });
    expect(sparse.dataRanges!.some((r) => r.offset <= 5_000_000 && r.offset + r.length >= 5_070_000)).toBe(true);
    const names = tree.nodes.map((n) => n.path);
    const again = (await openTree(src)).nodes.map((n) => n.path);
    expect(again).toEqual(names);
    // Siblings in byte order.
    const siblings = tree.nodes.filter((n) => n.path.startsWith('etc/') && !n.path.slice(4).includes('/')).map((n) => Buffer.from(n.path));
    expect([...siblings].sort(Buffer.compare)).toEqual(siblings);
    expect(tree.mountPoints).toEqual([]);
  });

  it('keeps sockets and fifos', async () => {
    const dir = path.join(work, 'sockets');
    fs.mkdirSync(dir);
    execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path.join(dir, 'sock')]);
    execFileSync('mkfifo', [path.join(dir, 'pipe')]);
    const tree = await openTree(dir);
    expect(tree.nodes.map((n) => [n.path, n.type])).toEqual([['', 'dir'], ['pipe', 'fifo'], ['sock', 'socket']]);
  });

  it('refuses a file it cannot read, naming it, before the contents pass', async () => {
    if (!isRoot) return console.log('skipping: needs root to run as another user');
    const dir = path.join(work, 'unreadable');
    fs.mkdirSync(path.join(dir, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'etc/shadow'), 'secret', { mode: 0o600 });
    fs.chmodSync(work, 0o755);
    // As an unprivileged user, through the compiled module (npm run build).
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', `
      const { openTree } = await import(${JSON.stringify(path.join(ROOT, 'dist/fsmaker/tree-open.js'))});
      try { await openTree(${JSON.stringify(dir)}); console.log('opened'); } catch (e) { console.log(e.code + ': ' + e.message); }
    `], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe(`ROOTFS_OPEN: ${dir}/etc/shadow: cannot read it: permission denied`);
  });

  it('refuses a file that changed size between the passes, naming it', async () => {
    const dir = path.join(work, 'changing');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'a'), 'first');
    fs.writeFileSync(path.join(dir, 'b'), 'second');
    const tree = await openTree(dir);
    fs.appendFileSync(path.join(dir, 'b'), ' and more');
    const err = await contentHashes(tree).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolError);
    expect((err as ToolError).code).toBe('ROOTFS_OPEN');
    expect((err as ToolError).message).toBe(`${dir}/b: changed while being read (6 bytes when first seen, 15 now)`);
  });

  it('keeps a mount point below the root as an empty directory and lists it', async () => {
    if (!isRoot) return console.log('skipping: needs root to mount');
    const dir = path.join(work, 'mounted');
    fs.mkdirSync(path.join(dir, 'proc'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    const mounted = spawnSync('mount', ['-t', 'tmpfs', 'none', path.join(dir, 'proc')]).status === 0;
    if (!mounted) return console.log('skipping: tmpfs cannot be mounted here');
    try {
      fs.writeFileSync(path.join(dir, 'proc/inside'), 'y');
      const tree = (await openTree(dir)) as DirectoryTree;
      expect(tree.nodes.map((n) => n.path)).toEqual(['', 'file', 'proc']);
      expect(tree.mountPoints).toEqual(['proc']);
    } finally {
      execFileSync('umount', [path.join(dir, 'proc')]);
    }
  });
});
