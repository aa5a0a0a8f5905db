/**
 * Seeded mutants of real archives (GNU tar pax with xattrs and a 1.0 sparse map, old-GNU with an
 * 'S' sparse header and long names, bsdtar, Python tarfile; plain, gzip, zstd, a few xz/bzip2)
 * through openTree and a whole contents pass, in-process: each one a ToolError of the reader's
 * codes with a one-line message naming the archive, or a valid tree whose chunks stay inside its
 * files; each within a time and heap bound. Header mutants get their checksum repaired half the
 * time so that they reach the field parsers. Then property checks: random trees built member by
 * member read back as built.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import type { FileTree } from '../src/fsmaker/tree.js';
import { openTree } from '../src/fsmaker/tree-open.js';
import { makeTempDir, patternBytes, prng } from './helpers.js';
import { mutants } from './hostile.js';
import { archive, member, pax, setChecksum } from './tar-build.js';

let work = '';
const seeds = new Map<string, Buffer>();

beforeAll(() => {
  work = makeTempDir('fuzz-tar-');
  const src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, `${'long'.repeat(30)}/sub`), { recursive: true });
  fs.writeFileSync(path.join(src, 'small'), 'hello\n');
  fs.writeFileSync(path.join(src, `${'long'.repeat(30)}/sub/${'name'.repeat(30)}`), patternBytes(3000, 2));
  fs.linkSync(path.join(src, 'small'), path.join(src, 'hard'));
  fs.symlinkSync('small', path.join(src, 'sym'));
  const fd = fs.openSync(path.join(src, 'sparse'), 'w');
  fs.writeSync(fd, patternBytes(1000, 3), 0, 1000, 40000);
  fs.writeSync(fd, patternBytes(700, 4), 0, 700, 90000);
  fs.ftruncateSync(fd, 200000);
  fs.closeSync(fd);
  execFileSync('setfattr', ['-n', 'user.k', '-v', 'value', path.join(src, 'small')]);
  const tarOf = (args: string[]): Buffer => execFileSync(args[0]!, [...args.slice(1), '-cf', '-', '-C', src, '.'], { maxBuffer: 1 << 26 });
  seeds.set('pax', tarOf(['tar', '--format=pax', '--xattrs', '--sparse', '--mtime=@1700000000.25']));
  seeds.set('gnu', tarOf(['tar', '--format=gnu', '--sparse', '--mtime=@1700000000']));
  seeds.set('bsdtar', tarOf(['bsdtar', '--format=pax', '--xattrs']));
  seeds.set('python', execFileSync('python3', ['-c', `import tarfile, sys, io\nb = io.BytesIO()\nwith tarfile.open(fileobj=b, mode='w', format=tarfile.GNU_FORMAT) as t: t.add(sys.argv[1], arcname='.')\nsys.stdout.buffer.write(b.getvalue())`, src]));
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Where the headers are: blocks whose checksum holds. */
function headerOffsets(tar: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at + 512 <= tar.length; at += 512) {
    const block = tar.subarray(at, at + 512);
    if (block.every((b) => b === 0)) continue;
    const copy = Buffer.from(block);
    const stored = copy.toString('latin1', 148, 156);
    setChecksum(copy);
    if (copy.toString('latin1', 148, 156).replace(/\D/g, '') === stored.replace(/\D/g, '') && block.toString('latin1', 257, 262) === 'ustar') out.push(at);
  }
  return out;
}

const TIME_BOUND_MS = 3000;
const HEAP_BOUND = 96 << 20;

/** openTree and a whole contents pass: a ToolError naming the file, or a tree that holds together. */
async function survives(file: string, description: string): Promise<'refused' | 'read'> {
  const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const started = performance.now();
  let tree: FileTree | null = null;
  let outcome: 'refused' | 'read';
  try {
    tree = await openTree(file);
    checkTree(tree, description);
    const at = new Map<number, number>();
    for await (const c of tree.contents()) {
      const node = tree.nodes[c.node]!;
      expect(node.type, description).toBe('file');
      expect(c.offset, description).toBeGreaterThanOrEqual(at.get(c.node) ?? 0);
      expect(c.offset + c.data.length, description).toBeLessThanOrEqual(node.size);
      at.set(c.node, c.offset + c.data.length);
    }
    outcome = 'read';
  } catch (err) {
    if (!(err instanceof ToolError)) throw new Error(`${description}: not a ToolError: ${(err as Error).stack}`);
    expect(['ROOTFS_UNKNOWN', 'ROOTFS_OPEN'], `${description}: ${err.message}`).toContain(err.code);
    expect(err.message.startsWith(`${file}: `), `${description}: ${err.message}`).toBe(true);
    expect(err.message, description).not.toMatch(/\n|fsmaker/);
    outcome = 'refused';
  } finally {
    tree?.close();
  }
  const ms = performance.now() - started;
  expect(ms, `${description}: ${ms} ms`).toBeLessThan(TIME_BOUND_MS);
  expect(process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heapBefore, description).toBeLessThan(HEAP_BOUND);
  return outcome;
}

function checkTree(tree: FileTree, description: string): void {
  expect(tree.nodes[0]?.path, description).toBe('');
  const seen = new Map<string, string>();
  for (const n of tree.nodes) {
    expect(seen.has(n.path), `${description}: ${n.path} twice`).toBe(false);
    if (n.path !== '') {
      expect(n.path.split('/').every((p) => p !== '' && p !== '.' && p !== '..'), `${description}: ${n.path}`).toBe(true);
      const parent = n.path.includes('/') ? n.path.slice(0, n.path.lastIndexOf('/')) : '';
      expect(seen.get(parent), `${description}: parent of ${n.path}`).toBe('dir');
    }
    if (n.linkTo !== undefined) expect(seen.has(n.linkTo) && seen.get(n.linkTo) !== 'dir', `${description}: ${n.path} -> ${n.linkTo}`).toBe(true);
    let end = 0;
    for (const r of n.dataRanges ?? []) {
      expect(r.offset >= end && r.length > 0 && r.offset + r.length <= n.size, `${description}: ranges of ${n.path}`).toBe(true);
      end = r.offset + r.length;
    }
    seen.set(n.path, n.type);
  }
}

const compress: Record<string, (b: Buffer) => Buffer> = {
  gzip: (b) => execFileSync('gzip', ['-c', '-n'], { input: b }),
  zstd: (b) => execFileSync('zstd', ['-q', '-c'], { input: b }),
  xz: (b) => execFileSync('xz', ['-c'], { input: b }),
  bzip2: (b) => execFileSync('bzip2', ['-c'], { input: b }),
};

describe('mutants of real archives', () => {
  let n = 0;
  const fileFor = (bytes: Buffer): string => {
    const file = path.join(work, `m${++n % 4}.tar`);
    fs.writeFileSync(file, bytes);
    return file;
  };

  for (const [name, seed] of [['pax', 1], ['gnu', 2], ['bsdtar', 3], ['python', 4]] as const) {
    it(`${name}: 600 header mutants (half with checksums repaired) and 150 anywhere`, async () => {
      const good = seeds.get(name)!;
      expect(await survives(fileFor(good), `${name} unmutated`)).toBe('read');
      const headers = headerOffsets(good);
      expect(headers.length).toBeGreaterThan(5);
      const random = prng(seed);
      const outcomes = { refused: 0, read: 0 };
      for (let i = 0; i < 600; i++) {
        const h = headers[Math.floor(random() * headers.length)]!;
        const m = mutants(good, seed * 1000 + i, 1, { from: h, to: h + 512 }).next().value!;
        const repaired = random() < 0.5;
        if (repaired) setChecksum(m.bytes.subarray(h, h + 512));
        outcomes[await survives(fileFor(m.bytes), `${name} header at ${h}${repaired ? ' (checksum repaired)' : ''}: ${m.description}`)]++;
      }
      for (const m of mutants(good, seed * 7777, 150)) outcomes[await survives(fileFor(m.bytes), `${name}: ${m.description}`)]++;
      // Both kinds happen: the mutants reach past the checksum.
      expect(outcomes.refused).toBeGreaterThan(50);
      expect(outcomes.read).toBeGreaterThan(20);
    });
  }

  it('pax records and the GNU 1.0 sparse map: 400 mutants of their bytes, checksums repaired', async () => {
    const good = seeds.get('pax')!;
    const headers = headerOffsets(good).filter((h) => good[h + 156] === 0x78 /* x */ || good.toString('latin1', h + 512, h + 1024).startsWith('2\n'));
    expect(headers.length).toBeGreaterThan(0);
    const random = prng(99);
    for (let i = 0; i < 400; i++) {
      const h = headers[Math.floor(random() * headers.length)]!;
      const m = mutants(good, 50_000 + i, 1, { from: h + 512, to: h + 1024 }).next().value!;
      await survives(fileFor(m.bytes), `pax body after ${h}: ${m.description}`);
    }
  });

  for (const [how, count] of [['gzip', 300], ['zstd', 150], ['xz', 25], ['bzip2', 25]] as const) {
    it(`${how}: ${count} mutants of the compressed stream`, async () => {
      const good = compress[how]!(seeds.get('pax')!);
      expect(await survives(fileFor(good), `${how} unmutated`)).toBe('read');
      for (const m of mutants(good, 4242 + count, count)) await survives(fileFor(m.bytes), `${how}: ${m.description}`);
    });
  }
});

describe('properties', () => {
  it('random trees built member by member read back as built (paths, types, modes, owners, times, bytes)', async () => {
    const random = prng(31337);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    for (let round = 0; round < 60; round++) {
      const dirs = [''];
      const parts: Buffer[] = [];
      const expected = new Map<string, { type: string; mode: number; uid: number; gid: number; mtime: number; data?: Buffer; target?: string }>();
      const count = 1 + Math.floor(random() * 25);
      for (let i = 0; i < count; i++) {
        const parent = pick(dirs);
        const base = `${pick(['a', 'bin', 'é', 'x y', 'long'.repeat(1 + Math.floor(random() * 40))])}${i}`;
        const p = parent === '' ? base : `${parent}/${base}`;
        const meta = { mode: Math.floor(random() * 0o7777), uid: Math.floor(random() * 70000), gid: Math.floor(random() * 70000), mtime: Math.floor(random() * 2 ** 33) };
        const kind = pick(['file', 'dir', 'symlink'] as const);
        const records: [string, string][] = Buffer.byteLength(p) > 99 ? [['path', p]] : [];
        if (kind === 'file') {
          const data = patternBytes(Math.floor(random() * 5000), i + 1);
          expected.set(p, { type: 'file', ...meta, data });
          if (records.length) parts.push(pax(records));
          parts.push(member({ name: records.length ? 'x' : p, data, ...meta }));
        } else if (kind === 'dir') {
          dirs.push(p);
          expected.set(p, { type: 'dir', ...meta });
          if (records.length) parts.push(pax(records));
          parts.push(member({ name: records.length ? 'x' : `${p}/`, type: '5', ...meta }));
        } else {
          const target = pick(['../etc', '/abs/target', 'é']);
          expected.set(p, { type: 'symlink', ...meta, target });
          if (records.length) parts.push(pax(records));
          parts.push(member({ name: records.length ? 'x' : p, type: '2', linkname: target, ...meta }));
        }
      }
      const file = path.join(work, `prop${round % 3}.tar`);
      fs.writeFileSync(file, archive(...parts));
      const tree = await openTree(file);
      const data = new Map<string, Buffer[]>();
      for await (const c of tree.contents()) {
        const p = tree.nodes[c.node]!.path;
        data.set(p, [...(data.get(p) ?? []), Buffer.from(c.data)]);
      }
      expect(tree.nodes.length).toBe(expected.size + 1);
      for (const [p, e] of expected) {
        const n = tree.nodes.find((x) => x.path === p)!;
        expect({ type: n.type, mode: n.mode, uid: n.uid, gid: n.gid, mtime: n.mtime, target: n.target }, p).toEqual({ type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime, target: e.target });
        if (e.data) expect(Buffer.concat(data.get(p) ?? []).equals(e.data), p).toBe(true);
      }
      tree.close();
    }
  });
});
