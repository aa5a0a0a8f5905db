/**
 * The archive reader's rules, on archives built member by member (test/tar-build.ts): tar x's
 * path and replacement semantics, missing parents, pax and GNU extensions, GNU sparse 0.0/0.1/1.0,
 * and every refusal (one line: the archive, the header's offset, the problem). Then
 * rootViewOfTree: stat, list, readFiles in one pass, maxBytes.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import type { FileTree } from '../src/fsmaker/tree.js';
import { openTree } from '../src/fsmaker/tree-open.js';
import { passesStarted } from '../src/fsmaker/tree-stream.js';
import { rootViewOfTree } from '../src/fsmaker/tree-view.js';
import { makeTempDir, patternBytes } from './helpers.js';
import { archive, longName, member, pax } from './tar-build.js';

let work = '';
let counter = 0;
beforeAll(() => {
  work = makeTempDir('fsmaker-tree-tar-');
});
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function write(bytes: Buffer): string {
  const file = path.join(work, `a${++counter}.tar`);
  fs.writeFileSync(file, bytes);
  return file;
}

async function open(bytes: Buffer): Promise<FileTree> {
  return openTree(write(bytes));
}

async function refusal(bytes: Buffer): Promise<{ file: string; error: ToolError }> {
  const file = write(bytes);
  let error: unknown = null;
  try {
    const tree = await openTree(file);
    for await (const _ of tree.contents()) void _;
    tree.close();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(ToolError);
  expect((error as ToolError).message).not.toContain('\n');
  return { file, error: error as ToolError };
}

async function contentsOf(tree: FileTree): Promise<Map<string, string>> {
  const out = new Map<string, Buffer[]>();
  for await (const c of tree.contents()) {
    const p = tree.nodes[c.node]!.path;
    out.set(p, [...(out.get(p) ?? []), Buffer.from(c.data)]);
  }
  return new Map([...out].map(([p, parts]) => [p, Buffer.concat(parts).toString()]));
}

describe('paths and replacements, as tar x', () => {
  it('strips ./ and /, collapses // and ., and makes missing parents 0755 root:root with the newest mtime', async () => {
    const tree = await open(archive(member({ name: './/usr/./bin//x', data: 'x', mtime: 1_600_000_000, uid: 3 }), member({ name: '/etc/y', data: 'yy', mtime: 1_700_000_123 })));
    expect(tree.nodes.map((n) => n.path)).toEqual(['', 'usr', 'usr/bin', 'usr/bin/x', 'etc', 'etc/y']);
    for (const p of ['', 'usr', 'usr/bin', 'etc']) {
      const n = tree.nodes.find((x) => x.path === p)!;
      expect([n.type, n.mode, n.uid, n.gid, n.mtime]).toEqual(['dir', 0o755, 0, 0, 1_700_000_123]);
    }
    expect(await contentsOf(tree)).toEqual(new Map([['usr/bin/x', 'x'], ['etc/y', 'yy']]));
  });

  it('a later entry replaces an earlier one (its bytes, and its place after it); a directory entry after its children only updates the directory', async () => {
    const tree = await open(
      archive(
        pax([['SCHILY.xattr.user.old', 'x']]),
        member({ name: 'd/', type: '5', mode: 0o755 }),
        member({ name: 'd/f', data: 'one' }),
        member({ name: 'g', data: 'gee' }),
        member({ name: 'd/f', data: 'two!', mode: 0o600 }),
        member({ name: 'd', type: '5', mode: 0o700, uid: 5, gid: 6 }),
      ),
    );
    expect(tree.nodes.map((n) => n.path)).toEqual(['', 'd', 'g', 'd/f']);
    expect(tree.nodes[1]).toMatchObject({ type: 'dir', mode: 0o700, uid: 5, gid: 6 });
    expect(tree.nodes[1]!.xattrs).toBeUndefined();
    expect(tree.nodes[3]).toMatchObject({ size: 4, mode: 0o600 });
    expect(await contentsOf(tree)).toEqual(new Map([['g', 'gee'], ['d/f', 'two!']]));
  });

  it('hard links: resolved to the first name, sharing its metadata, without contents of their own', async () => {
    const tree = await open(archive(member({ name: 'a', data: 'abc', mode: 0o4711, uid: 7 }), member({ name: 'b', type: '1', linkname: 'a' }), member({ name: 'c', type: '1', linkname: './b' })));
    expect(tree.nodes.slice(1).map((n) => [n.path, n.linkTo, n.mode, n.uid, n.size])).toEqual([
      ['a', undefined, 0o4711, 7, 3],
      ['b', 'a', 0o4711, 7, 3],
      ['c', 'a', 0o4711, 7, 3],
    ]);
    expect(await contentsOf(tree)).toEqual(new Map([['a', 'abc']]));
  });

  it('refuses a hard link to a path not (yet) in the archive, naming both', async () => {
    const { file, error } = await refusal(archive(member({ name: 'b', type: '1', linkname: 'a' }), member({ name: 'a', data: 'abc' })));
    expect(error.message).toBe(`${file}: tar header at byte 0: hard link 'b' names 'a', which is not in the archive before it`);
    expect(error.code).toBe('ROOTFS_UNKNOWN');
  });

  it("refuses '..' components, a NUL in a pax path, non-UTF-8 names, a file as a parent", async () => {
    const dots = await refusal(archive(member({ name: 'a', data: 'x' }), member({ name: 'b/../../etc/passwd', data: 'x' })));
    expect(dots.error.message).toBe(`${dots.file}: tar header at byte 1024: path 'b/../../etc/passwd' has a '..' component`);
    const nul = await refusal(archive(pax([['path', 'a\0b']]), member({ name: 'x', data: '' })));
    expect(nul.error.message).toMatch(/tar header at byte 1024: path "a\\u0000b" holds a NUL byte$/);
    const latin = await refusal(archive(member({ name: 'x', edit: (h) => (h[0] = 0xe9) })));
    expect(latin.error.message).toBe(`${latin.file}: tar header at byte 0: path "é" is not UTF-8`);
    const parent = await refusal(archive(member({ name: 'f', data: 'x' }), member({ name: 'f/g', data: 'y' })));
    expect(parent.error.message).toBe(`${parent.file}: tar header at byte 1024: 'f/g': its parent 'f' is a file, not a directory`);
  });

  it("mmdebstrap's tarball: its hand-made old-GNU ./dev entries first, then GNU tar's pax stream with the root after them", async () => {
    const dir = path.join(work, 'mmdebstrap-root');
    fs.mkdirSync(path.join(dir, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'etc/hostname'), 'debian\n');
    // The entries as mmdebstrap packs them (its @devfiles and pack template, shortened).
    const devtar = execFileSync('perl', ['-e', `
      for my $f (["", 0755, 5, "", undef, undef], ["null", 0666, 3, "", 1, 3], ["fd", 0777, 2, "/proc/self/fd", undef, undef], ["pts/", 0755, 5, "", undef, undef]) {
        my ($fname, $mode, $type, $linkname, $devmajor, $devminor) = @{$f};
        my $entry = pack('a100 a8 a8 a8 a12 a12 A8 a1 a100 a8 a32 a32 a8 a8 a155 x12', "./dev/$fname", sprintf('%07o', $mode), sprintf('%07o', 0), sprintf('%07o', 0), sprintf('%011o', 0), sprintf('%011o', 1700000000), '', $type, $linkname, "ustar  ", '', '', defined($devmajor) ? sprintf('%07o', $devmajor) : '', defined($devminor) ? sprintf('%07o', $devminor) : '', '');
        substr($entry, 148, 7) = sprintf("%06o\\0", unpack("%16C*", $entry));
        print $entry;
      }`]);
    expect(devtar.length).toBe(4 * 512);
    const rest = execFileSync('tar', ['--sort=name', '--mtime=@1700000000', '--clamp-mtime', '--numeric-owner', '--one-file-system', '--format=pax', '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime', '-c', '--exclude=./dev', '--xattrs', '-C', dir, '.']);
    const tree = await open(Buffer.concat([devtar, rest]));
    expect(tree.nodes.map((n) => n.path)).toEqual(['', 'dev', 'dev/null', 'dev/fd', 'dev/pts', 'etc', 'etc/hostname']);
    expect(tree.nodes.find((n) => n.path === 'dev/null')).toMatchObject({ type: 'char', mode: 0o666, rdev: { major: 1, minor: 3 }, uid: 0 });
    expect(tree.nodes.find((n) => n.path === 'dev/fd')).toMatchObject({ type: 'symlink', target: '/proc/self/fd' });
    // The root's own entry came after ./dev's: its metadata is the directory's, not a made-up one.
    expect(tree.nodes[0]!.mode).toBe(fs.statSync(dir).mode & 0o7777);
    expect(await contentsOf(tree)).toEqual(new Map([['etc/hostname', 'debian\n']]));
  });

  it('refuses a docker save / OCI image layout by name, saying to use docker export', async () => {
    const { file, error } = await refusal(archive(member({ name: 'oci-layout', data: '{}' }), member({ name: 'index.json', data: '{}' }), member({ name: 'manifest.json', data: '[]' }), member({ name: 'blobs/', type: '5' })));
    expect(error.message).toBe(`${file}: a container image (docker save / OCI image layout: manifest.json, oci-layout), not a root filesystem; use 'docker export' of a container for one`);
  });
});

describe('pax and GNU extensions', () => {
  it('pax path, linkpath, size, uid, gid, times with fractions, SCHILY and LIBARCHIVE xattrs; g applies to what follows', async () => {
    const longPath = `${'p'.repeat(300)}/file`;
    const tree = await open(
      archive(
        pax([['uid', '4242']], 'g'),
        pax([['path', longPath], ['mtime', '1700000000.123456789'], ['atime', '1700000001.5'], ['gid', '3000000'], ['SCHILY.xattr.security.capability', Buffer.from([1, 0, 0, 2, 0, 32, 0, 0])], ['LIBARCHIVE.xattr.user.a%3Db', Buffer.from('aGVsbG8=')]]),
        member({ name: 'truncated-name', data: 'data' }),
        pax([['linkpath', `/${'t'.repeat(200)}`]]),
        member({ name: 's', type: '2', linkname: 'short' }),
        member({ name: 'n', data: 'n', uid: 1 }),
      ),
    );
    const [f, s, n] = [tree.nodes.find((x) => x.path === longPath)!, tree.nodes.find((x) => x.path === 's')!, tree.nodes.find((x) => x.path === 'n')!];
    expect(f).toMatchObject({ uid: 4242, gid: 3000000, size: 4, atime: 1700000001.5 });
    expect(Math.abs(f.mtime - 1700000000.123456789)).toBeLessThan(1e-6);
    expect(f.xattrs!.get('security.capability')).toEqual(Buffer.from([1, 0, 0, 2, 0, 32, 0, 0]));
    expect(f.xattrs!.get('user.a=b')).toEqual(Buffer.from('hello'));
    expect(s).toMatchObject({ type: 'symlink', target: `/${'t'.repeat(200)}`, uid: 4242 });
    expect(n.uid).toBe(4242); // the global record wins over the header, as in GNU tar
  });

  it('GNU long names and links, base-256 numbers, old-GNU atime/ctime', async () => {
    const big = (h: Buffer): void => {
      h.fill(0, 108, 116);
      h[108] = 0x80;
      h.writeUInt32BE(5_000_000, 112); // uid past 7 octal digits
    };
    const tree = await open(archive(longName(`${'L'.repeat(200)}/x`), member({ name: 'cut', data: 'x', magic: 'gnu', edit: big }), longName(`${'K'.repeat(150)}`, 'K'), member({ name: 'l', type: '2', magic: 'gnu' })));
    const x = tree.nodes.find((n) => n.path === `${'L'.repeat(200)}/x`)!;
    expect(x.uid).toBe(5_000_000);
    expect(tree.nodes.find((n) => n.path === 'l')!.target).toBe('K'.repeat(150));
  });

  for (const version of ['0.0', '0.1', '1.0', 'old GNU']) {
    it(`GNU tar --sparse ${version}: the data ranges and the bytes (10 ranges: old GNU's extension blocks)`, async () => {
      const dir = path.join(work, `sparse-${version}`);
      fs.mkdirSync(dir);
      const file = path.join(dir, 'holes');
      const fd = fs.openSync(file, 'w');
      for (let i = 0; i < 10; i++) {
        const piece = patternBytes(100 + i * 997, i + 1);
        fs.writeSync(fd, piece, 0, piece.length, (1 + 3 * i) << 20);
      }
      fs.ftruncateSync(fd, 32 << 20);
      fs.closeSync(fd);
      const tar = path.join(work, `sparse-${version}.tar`);
      const format = version === 'old GNU' ? ['--format=gnu'] : [`--sparse-version=${version}`, '--format=pax'];
      execFileSync('tar', ['--sparse', ...format, '-cf', tar, '-C', dir, 'holes']);
      const tree = await openTree(tar);
      const node = tree.nodes.find((n) => n.path === 'holes')!;
      expect(node.size).toBe(32 << 20);
      expect(node.dataRanges!.length).toBeGreaterThanOrEqual(10);
      expect(node.dataRanges!.reduce((s, r) => s + r.length, 0)).toBeLessThanOrEqual(128 << 10);
      const whole = Buffer.alloc(node.size);
      for await (const c of tree.contents()) c.data.copy(whole, c.offset);
      expect(crypto.createHash('sha256').update(whole).digest('hex')).toBe(crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex'));
      tree.close();
    });
  }
});

describe('refusals: one line naming the archive, the header offset and the problem', () => {
  const good = (): Buffer => archive(member({ name: 'a', data: 'hello' }), member({ name: 'b', data: 'world' }));

  it('a bad checksum', async () => {
    const bytes = good();
    bytes[1024 + 10] = 0x41;
    const { file, error } = await refusal(bytes);
    expect(error.message).toMatch(new RegExp(`^${file}: tar header at byte 1024: checksum mismatch: expected \\d+, found \\d+$`));
  });

  it('a truncated archive: inside a file, at a header, without end blocks', async () => {
    const bytes = good();
    const cut = await refusal(bytes.subarray(0, 1024 + 512 + 3));
    expect(cut.error.message).toBe(`${cut.file}: tar header at byte 1024: the entry's data is cut short: the archive ends at byte 1539, 509 bytes early`);
    const header = await refusal(bytes.subarray(0, 1024 + 100));
    expect(header.error.message).toBe(`${header.file}: tar header at byte 1024: cut short: 100 of 512 bytes`);
    const noEnd = await refusal(bytes.subarray(0, 2048));
    expect(noEnd.error.message).toBe(`${noEnd.file}: tar header at byte 2048: the archive ends without its end-of-archive blocks (truncated?)`);
  });

  it('a size field past the end', async () => {
    const { file, error } = await refusal(archive(member({ name: 'a', data: 'x', size: 1 << 30 })));
    expect(error.message).toMatch(new RegExp(`^${file}: tar header at byte 0: the entry's data is cut short: the archive ends at byte \\d+, \\d+ bytes early$`));
  });

  it("an unknown typeflag, naming it; 'V' volume labels skipped", async () => {
    const { file, error } = await refusal(archive(member({ name: 'a', data: 'x' }), member({ name: 'q', type: 'Q' })));
    expect(error.message).toBe(`${file}: tar header at byte 1024: unknown typeflag "Q"`);
    const tree = await open(archive(member({ name: 'label', type: 'V', magic: 'gnu' }), member({ name: 'a', data: 'x' })));
    expect(tree.nodes.map((n) => n.path)).toEqual(['', 'a']);
  });

  it('bounds: a pax header over 1 MiB, a name over 4096 bytes, an xattr value over 64 KiB', async () => {
    const bigPax = await refusal(archive(member({ name: 'p', type: 'x', data: Buffer.alloc((1 << 20) + 512, 0x20) }), member({ name: 'a' })));
    expect(bigPax.error.message).toBe(`${bigPax.file}: tar header at byte 0: extended header ('x') of ${(1 << 20) + 512} bytes, more than ${1 << 20}`);
    const longPath = await refusal(archive(pax([['path', 'n'.repeat(4097)]]), member({ name: 'a' })));
    expect(longPath.error.message).toBe(`${longPath.file}: tar header at byte 5120: a path longer than 4096 bytes`);
    const bigXattr = await refusal(archive(pax([['SCHILY.xattr.user.big', Buffer.alloc(65537, 1)]]), member({ name: 'a' })));
    expect(bigXattr.error.message).toBe(`${bigXattr.file}: tar header at byte 66560: extended attribute user.big of 65537 bytes, more than 65536`);
  });

  it('bounds: extended headers that add up to more than 1 MiB (x and g alike)', async () => {
    // Distinct keys: a 'g' record replaces an earlier one of the same key.
    const record = (type: string, key: string): Buffer => {
      const data = Buffer.concat([Buffer.from(`600000 ${key}=`), Buffer.alloc(600000 - 9 - key.length, 0x61), Buffer.from('\n')]);
      return member({ name: 'p', type, data });
    };
    for (const type of ['x', 'g']) {
      const { file, error } = await refusal(archive(record(type, 'comment'), record(type, 'commen2'), member({ name: 'a' })));
      expect(error.message).toBe(`${file}: tar header at byte ${512 + 600064}: extended headers of more than ${1 << 20} bytes in all`);
    }
  });

  it('a bad pax record, a bad number', async () => {
    const record = await refusal(archive(member({ name: 'p', type: 'x', data: '99 path=x\n' }), member({ name: 'a' })));
    expect(record.error.message).toBe(`${record.file}: tar extended header at byte 512: bad record`);
    const octal = await refusal(archive(member({ name: 'a', edit: (h) => h.write('12x4567\0', 100, 'latin1') })));
    expect(octal.error.message).toBe(`${octal.file}: not a tar archive: tar header at byte 0: mode field is not an octal number: "12x4567"`);
  });

  it("a plain tar whose bytes hold another format's magic where identify looks is still a tar", async () => {
    const iso = Buffer.alloc(40000);
    iso.write('\x01CD001', 32768 - 512, 'latin1'); // byte 32769 of the archive
    const tree = await open(archive(member({ name: 'cd.iso', data: iso })));
    expect(tree.nodes.map((n) => n.path)).toEqual(['', 'cd.iso']);
  });

  it('entries after a lone zero block, or a second archive appended, are refused, not dropped', async () => {
    const first = archive(member({ name: 'a', data: 'x' }));
    const lone = await refusal(Buffer.concat([member({ name: 'a', data: 'x' }), Buffer.alloc(512), member({ name: 'b', data: 'y' }), Buffer.alloc(1024)]));
    expect(lone.error.message).toBe(`${lone.file}: tar header at byte 1024: data after the end-of-archive block, at byte 1536`);
    const appended = await refusal(Buffer.concat([first, archive(member({ name: 'b', data: 'y' }))]));
    expect(appended.error.message).toBe(`${appended.file}: tar header at byte 1024: data after the end-of-archive block, at byte 2048`);
    // Zeros after the end (GNU tar pads to 10 KiB records) are fine.
    const padded = await open(Buffer.concat([first, Buffer.alloc(8192)]));
    expect(padded.nodes.map((n) => n.path)).toEqual(['', 'a']);
  });

  it('an empty archive is zeros to its end; zeros then data (an ext4 image) is not an archive', async () => {
    const empty = path.join(work, 'empty.tar');
    execFileSync('tar', ['-cf', empty, '--files-from', '/dev/null']);
    expect((await openTree(empty)).nodes.map((n) => n.path)).toEqual(['']);
    const image = path.join(work, 'fs.img');
    fs.writeFileSync(image, Buffer.alloc(8 << 20));
    execFileSync('mkfs.ext4', ['-q', '-F', image]);
    await expect(openTree(image)).rejects.toThrow(`${image}: not a tar archive: its first block is zeros and data follows (a filesystem image?)`);
  });

  it('not an archive, a pipe, standard input', async () => {
    const notTar = path.join(work, 'not.tar');
    fs.writeFileSync(notTar, Buffer.alloc(4096, 0x41));
    await expect(openTree(notTar)).rejects.toThrow(`${notTar}: not a tar archive (plain, gzip, xz, zstd or bzip2) nor a directory`);
    const gzNotTar = path.join(work, 'not.gz');
    fs.writeFileSync(gzNotTar, execFileSync('gzip', ['-c'], { input: Buffer.alloc(4096, 0x41) }));
    await expect(openTree(gzNotTar)).rejects.toThrow(/not\.gz: not a tar archive: tar header at byte 0: /);
    const fifo = path.join(work, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(openTree(fifo)).rejects.toThrow(`${fifo}: is a pipe, not a directory or an archive file (an archive is read twice; save it to a file first)`);
    await expect(openTree('-')).rejects.toThrow('-: an archive on standard input cannot be read: it is read twice; save it to a file first');
    await expect(openTree(path.join(work, 'missing'))).rejects.toMatchObject({ code: 'ROOTFS_OPEN' });
  });

  it('corrupt compressed data, naming the compression', async () => {
    const gz = execFileSync('gzip', ['-c'], { input: good() });
    gz[gz.length - 6] ^= 0xff; // the CRC
    const { file, error } = await refusal(gz);
    expect(error.message).toMatch(new RegExp(`^${file}: corrupt gzip data: `));
    const xz = execFileSync('xz', ['-c'], { input: archive(member({ name: 'big', data: patternBytes(100000, 5) })) });
    const cut = await refusal(xz.subarray(0, xz.length - 40));
    expect(cut.error.message).toMatch(new RegExp(`^${cut.file}: corrupt xz data: `));
  });

  it('an archive that changed between the passes', async () => {
    const file = write(good());
    const tree = await openTree(file);
    fs.writeFileSync(file, archive(member({ name: 'a', data: 'HELLO' }), member({ name: 'b', data: 'worlds' })));
    await expect(contentsOf(tree)).rejects.toThrow(`${file}: the archive changed since it was first read`);
  });
});

describe('rootViewOfTree', () => {
  it.each([
    ['compressed: one pass over the archive for all files', true],
    ['plain: no pass, each file read where it is', false],
  ])('stat, list, and readFiles (%s), hard links and sparse files included', async (_what, compressed) => {
    const kernel = patternBytes(300000, 9);
    const tree = await (compressed ? (bytes: Buffer) => open(gzipSync(bytes)) : open)(
      archive(
        member({ name: 'boot/', type: '5' }),
        member({ name: 'boot/vmlinuz-6.1.0-50-amd64', data: kernel }),
        member({ name: 'boot/initrd.img-6.1.0-50-amd64', data: 'initrd' }),
        member({ name: 'vmlinuz', type: '2', linkname: 'boot/vmlinuz-6.1.0-50-amd64' }),
        member({ name: 'boot/vmlinuz.hard', type: '1', linkname: 'boot/vmlinuz-6.1.0-50-amd64' }),
        member({ name: 'empty', data: '' }),
      ),
    );
    const view = rootViewOfTree(tree);
    expect(view.name).toBe(tree.name);
    expect(view.stat('/vmlinuz')).toEqual({ type: 'symlink', size: 0, target: 'boot/vmlinuz-6.1.0-50-amd64' });
    expect(view.stat('/boot/vmlinuz-6.1.0-50-amd64')).toEqual({ type: 'file', size: 300000 });
    expect(view.stat('/')).toEqual({ type: 'dir', size: 0 });
    expect(view.stat('/nothing')).toBeNull();
    expect(view.list('/boot')).toEqual(['vmlinuz-6.1.0-50-amd64', 'initrd.img-6.1.0-50-amd64', 'vmlinuz.hard']);
    expect(view.list('/')).toEqual(['boot', 'vmlinuz', 'empty']);
    expect(view.list('/vmlinuz')).toBeNull();
    const before = passesStarted.count;
    const files = await view.readFiles(['/boot/vmlinuz.hard', '/boot/initrd.img-6.1.0-50-amd64', '/empty', '/vmlinuz', '/nothing'], 1 << 20);
    expect(passesStarted.count - before).toBe(compressed ? 1 : 0);
    expect([...files.keys()].sort()).toEqual(['/boot/initrd.img-6.1.0-50-amd64', '/boot/vmlinuz.hard', '/empty']);
    expect(files.get('/boot/vmlinuz.hard')).toEqual(kernel);
    expect(files.get('/boot/initrd.img-6.1.0-50-amd64')!.toString()).toBe('initrd');
    expect(files.get('/empty')!.length).toBe(0);
    await expect(view.readFiles(['/boot/vmlinuz-6.1.0-50-amd64', '/boot/initrd.img-6.1.0-50-amd64'], 300005)).rejects.toMatchObject({
      code: 'BOOT_FILE_UNUSABLE',
      message: `${tree.name}: the files asked for (boot/vmlinuz-6.1.0-50-amd64, boot/initrd.img-6.1.0-50-amd64) hold more than 300005 bytes`,
    });
    expect(passesStarted.count - before).toBe(compressed ? 1 : 0); // refused before reading
  });

  it('over a directory too', async () => {
    const dir = path.join(work, 'viewdir');
    fs.mkdirSync(path.join(dir, 'boot'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'boot/config'), 'CONFIG_X=y\n');
    const view = rootViewOfTree(await openTree(dir));
    expect(view.list('/')).toEqual(['boot']);
    expect((await view.readFiles(['/boot/config'], 100)).get('/boot/config')!.toString()).toBe('CONFIG_X=y\n');
  });
});
