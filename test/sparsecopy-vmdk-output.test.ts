/**
 * VMDK as an output of sparsecopy (issue 12): every subformat, from a disk with data, zero grains,
 * holes, data across a grain table's 32 MiB region and a partial last sector, judged by qemu-img
 * (compare: identical; check; info: virtual size, format, create type), every streamOptimized
 * output by the independent structure check (test/vmdk-structure.ts) and by libvmdk's vmdkmount (a
 * second reader, not qemu's); the split flat one past 2 GiB; to a pipe and stdout the bytes of the
 * file; a source of unknown length; a 1 TiB virtual disk in bounded memory; a signal mid-copy; and
 * every refusal, refused before anything is created.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SPARSECOPY, allocatedBytes, loopUnavailableReason, patternBytes, sparsecopy, sparsecopyRaw, tempLeftovers, useTempDir, withLoop, writeSparseFile } from './helpers.js';
import { runBounded, runHostile } from './hostile.js';
import { qemu } from './qemu-img.js';
import { checkStreamOptimized } from './vmdk-structure.js';

let dir = '';
useTempDir('sc-vmdk-out-', (d) => (dir = d));

const KiB = 1024;
const MiB = 1 << 20;
const GRAIN = 64 * KiB;
const REGION = 32 * MiB;
const at = (name: string): string => path.join(dir, name);
const roundUp = (n: number, unit: number): number => Math.ceil(n / unit) * unit;
const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };

/**
 * 70 MiB and 1234 bytes: data, a whole zero grain inside it, a hole, data across the first 32 MiB
 * region boundary, and data in the partial last sector.
 */
function testDisk(name = 'disk.img'): { file: string; size: number } {
  const file = at(name);
  const size = 2 * REGION + 6 * MiB + 1234;
  const head = patternBytes(4 * GRAIN, 1);
  head.fill(0, GRAIN, 2 * GRAIN);
  writeSparseFile(file, size, [
    { offset: 0, data: head },
    { offset: REGION - 3 * GRAIN - 100, data: patternBytes(6 * GRAIN, 2) },
    { offset: size - 5000, data: patternBytes(5000, 3) },
  ]);
  return { file, size };
}

function info(image: string): { format: string; 'virtual-size': number; 'format-specific': { data: { 'create-type': string; extents: { filename: string }[] } } } {
  return JSON.parse(execFileSync('qemu-img', ['info', '--output=json', image], { encoding: 'utf8' }));
}

function expectIdentical(raw: string, vmdk: string): void {
  const r = qemu('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', raw, vmdk]);
  expect(r.status, r.out).toBe(0);
  expect(r.out).toMatch(/Images are identical/);
}

/** libvmdk (Debian's libvmdk-utils) reads the disk through FUSE: its bytes must be the raw disk's. */
function expectLibvmdkReads(raw: string, vmdk: string): void {
  const mount = fs.mkdtempSync(path.join(dir, 'mnt-'));
  const child = spawn('vmdkmount', ['-X', 'allow_root', vmdk, mount], { stdio: 'ignore' });
  try {
    const disk = path.join(mount, 'vmdk1');
    for (let i = 0; i < 200 && !fs.existsSync(disk); i++) spawnSync('sleep', ['0.02']);
    const size = fs.statSync(raw).size;
    expect(fs.statSync(disk).size).toBe(roundUp(size, 512));
    const r = spawnSync('cmp', ['-n', String(size), raw, disk], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  } finally {
    spawnSync('umount', [mount]);
    child.kill();
    fs.rmSync(mount, { recursive: true, force: true });
  }
}

const listing = (): string[] => fs.readdirSync(dir).sort();
let cases = 0;
/** A directory of its own for a case that looks at everything in it. */
function caseDir(): string {
  const d = at(`case${++cases}`);
  fs.mkdirSync(d);
  return d;
}

describe('each subformat reads back as the source', () => {
  it('streamOptimized (the default): qemu-img compare, check and info, the structure check, libvmdk', () => {
    const { file, size } = testDisk();
    const out = at('stream.vmdk');
    const r = sparsecopy(['-q', file, out]);
    expect(r.status, r.stderr).toBe(0);
    expectIdentical(file, out);
    expect(qemu('qemu-img', ['check', out]).status).toBe(0);
    const i = info(out);
    expect(i.format).toBe('vmdk');
    expect(i['virtual-size']).toBe(roundUp(size, 512));
    expect(i['format-specific'].data['create-type']).toBe('streamOptimized');
    const s = checkStreamOptimized(out, { fileName: 'stream.vmdk' });
    expect(s.fields['ddb.adapterType']).toBe('lsilogic');
    expect(s.fields['ddb.toolsVersion']).toBe('2147483647');
    expect(s.fields['ddb.virtualHWVersion']).toBe('4');
    expect(s.gdEntries.map((e) => e !== 0)).toEqual([true, true, true]);
    expectLibvmdkReads(file, out);
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('--adapter-type ide: the descriptor says ide, with 16 heads', () => {
    const { file } = testDisk();
    const out = at('ide.vmdk');
    expect(sparsecopy(['-q', '--adapter-type', 'ide', file, out]).status).toBe(0);
    const s = checkStreamOptimized(out);
    expect([s.fields['ddb.adapterType'], s.fields['ddb.geometry.heads']]).toEqual(['ide', '16']);
    expectIdentical(file, out);
  });

  it('monolithicSparse: qemu-img compare, check and info; compact (no more than the data grains and the tables)', () => {
    const { file, size } = testDisk();
    const out = at('sparse.vmdk');
    const r = sparsecopy(['-q', '--vmdk-subformat', 'monolithicSparse', file, out]);
    expect(r.status, r.stderr).toBe(0);
    expectIdentical(file, out);
    const check = qemu('qemu-img', ['check', out]);
    expect(check.status, check.out).toBe(0);
    expect(check.out).toMatch(/No errors were found/);
    const i = info(out);
    expect([i['virtual-size'], i['format-specific'].data['create-type']]).toEqual([roundUp(size, 512), 'monolithicSparse']);
    // The tables in the first 64 KiB, then the grains with data: 3 of the head, 7 across the region boundary, 2 at the end.
    expect(fs.statSync(out).size).toBe(64 * KiB + 12 * GRAIN);
  });

  it.each([
    ['monolithicFlat', ['flat-flat.vmdk']],
    ['twoGbMaxExtentFlat', ['flat-f001.vmdk']],
  ])('%s: a descriptor and sparse raw extents beside it, named as qemu names them', (subformat, extents) => {
    const { file, size } = testDisk();
    const out = at('flat.vmdk');
    const r = sparsecopy(['-q', '--vmdk-subformat', subformat, file, out]);
    expect(r.status, r.stderr).toBe(0);
    expectIdentical(file, out);
    expect(qemu('qemu-img', ['check', out]).status).toBe(0);
    const i = info(out);
    expect([i['virtual-size'], i['format-specific'].data['create-type']]).toEqual([roundUp(size, 512), subformat]);
    expect(fs.readFileSync(out, 'utf8')).toMatch(new RegExp(`\\nRW ${roundUp(size, 512) / 512} FLAT "${extents[0]}" 0\\n`));
    expect(fs.statSync(at(extents[0]!)).size).toBe(roundUp(size, 512));
    expect(allocatedBytes(at(extents[0]!))).toBeLessThan(2 * MiB); // the holes stayed holes
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('twoGbMaxExtentFlat past 2 GiB: extents of 0x80000000 bytes, data across their boundaries', () => {
    const file = at('big.img');
    const size = 2 * 0x80000000 + 3 * MiB + 512;
    writeSparseFile(file, size, [
      { offset: 0x80000000 - 1000, data: patternBytes(5000, 4) },
      { offset: 2 * 0x80000000 - 300, data: patternBytes(3 * MiB, 5) },
    ]);
    const out = at('big.vmdk');
    const r = sparsecopy(['-q', '--vmdk-subformat', 'twoGbMaxExtentFlat', file, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(['big-f001.vmdk', 'big-f002.vmdk', 'big-f003.vmdk'].map((n) => fs.statSync(at(n)).size)).toEqual([0x80000000, 0x80000000, 3 * MiB + 512]);
    expectIdentical(file, out);
  }, 60_000);
});

describe('streams', () => {
  it('stdout gives the bytes of a file named disk.vmdk (SOURCE_DATE_EPOCH set: the same CID)', () => {
    const { file } = testDisk('src.img');
    fs.mkdirSync(at('stdout'));
    const out = at('stdout/disk.vmdk');
    expect(spawnSync(process.execPath, [SPARSECOPY, '-q', file, out], { env: { ...process.env, ...EPOCH } }).status).toBe(0);
    const piped = spawnSync(process.execPath, [SPARSECOPY, '-q', '--format', 'vmdk', file, '-'], { env: { ...process.env, ...EPOCH }, maxBuffer: 1 << 28 });
    expect(piped.status, piped.stderr.toString()).toBe(0);
    expect(piped.stdout.equals(fs.readFileSync(out))).toBe(true);
    checkStreamOptimized(piped.stdout, { fileName: 'disk.vmdk' });
  });

  it('a FIFO named x.vmdk gives the bytes of a file x.vmdk (sparsecopy img fifo & cat fifo > copy)', () => {
    const { file } = testDisk('src.img');
    fs.mkdirSync(at('p'));
    fs.mkdirSync(at('f'));
    execFileSync('mkfifo', [at('p/x.vmdk')]);
    // A FIFO named .vmdk chooses VMDK output, as a file of that name does.
    const r = spawnSync('sh', ['-c', `node "${SPARSECOPY}" -q "${file}" "${at('p/x.vmdk')}" & cat "${at('p/x.vmdk')}" > "${at('piped.vmdk')}"; wait $!`], { env: { ...process.env, ...EPOCH }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(spawnSync(process.execPath, [SPARSECOPY, '-q', file, at('f/x.vmdk')], { env: { ...process.env, ...EPOCH } }).status).toBe(0);
    expect(fs.readFileSync(at('piped.vmdk')).equals(fs.readFileSync(at('f/x.vmdk')))).toBe(true);
    expectIdentical(file, at('piped.vmdk'));
  });

  it('a source of unknown length (stdin): to a file, the header and descriptor are rewritten at the end; to stdout refused (28), nothing sent', () => {
    const { file, size } = testDisk('src.img');
    const input = fs.readFileSync(file);
    const out = at('from-stdin.vmdk');
    const r = sparsecopy(['-q', '-', out], { input });
    expect(r.status, r.stderr).toBe(0);
    expect(checkStreamOptimized(out).capacitySectors).toBe(roundUp(size, 512) / 512);
    expectIdentical(file, out);
    const piped = sparsecopyRaw(['-q', '--format', 'vmdk', '-', '-'], { input });
    expect(piped.status).toBe(28);
    expect(piped.stderr).toMatch(/^sparsecopy: stdout: a streamOptimized VMDK states the disk's size in its first sector.*nothing written\n$/);
    expect(piped.stdout.length).toBe(0);
    const sparse = sparsecopy(['-q', '--vmdk-subformat', 'monolithicSparse', '-', at('ms.vmdk')], { input });
    expect(sparse.status).toBe(28);
    expect(sparse.stderr).toMatch(/ms\.vmdk: a monolithicSparse VMDK preallocates its grain tables/);
    expect(fs.existsSync(at('ms.vmdk'))).toBe(false);
  });
});

describe('size and memory', () => {
  it('1 TiB virtual with 4 MiB of data: seconds, peak RSS far under 200 MB', () => {
    const file = at('tib.img');
    writeSparseFile(file, 2 ** 40, [
      { offset: 0, data: patternBytes(2 * MiB, 6) },
      { offset: 2 ** 40 - 2 * MiB, data: patternBytes(2 * MiB, 7) },
    ]);
    const out = at('tib.vmdk');
    const r = runHostile('sparsecopy', ['-q', file, out], { codes: [0], timeoutMs: 30_000, maxRssBytes: 150e6 });
    expect(r.status).toBe(0);
    const s = checkStreamOptimized(out);
    expect([s.gdEntries.length, s.grains.size, s.grainTables]).toEqual([32768, 64, 2]);
    expect(info(out)['virtual-size']).toBe(2 ** 40);
  }, 60_000);

  it('monolithicSparse past 2 TiB is refused (15): its offsets are 32-bit sectors', () => {
    const file = at('huge.img');
    writeSparseFile(file, 3 * 2 ** 40, [{ offset: 0, data: patternBytes(512, 1) }]);
    const r = runHostile('sparsecopy', ['--vmdk-subformat', 'monolithicSparse', file, at('huge.vmdk')], { codes: [15] });
    expect(r.stderr).toMatch(/huge\.vmdk: a virtual disk of 3298534883328 bytes is larger than a monolithicSparse VMDK's 32-bit sector offsets address/);
    expect(fs.existsSync(at('huge.vmdk'))).toBe(false);
  });
});

describe('refusals: one line, a documented code, nothing created', () => {
  it.each([
    ['monolithicSparse to stdout', ['--format', 'vmdk', '--vmdk-subformat', 'monolithicSparse', 'SRC', '-'], 28, /^sparsecopy: stdout: a monolithicSparse VMDK needs a new regular file; only streamOptimized \(the default\) is written to a stream; nothing written$/],
    ['monolithicFlat to stdout', ['--format', 'vmdk', '--vmdk-subformat', 'monolithicFlat', 'SRC', '-'], 28, /^sparsecopy: stdout: a monolithicFlat VMDK needs a new regular file/],
    ['--vmdk-subformat with a .qcow2', ['--vmdk-subformat', 'monolithicSparse', 'SRC', 'DIR/x.qcow2'], 1, /^sparsecopy: --vmdk-subformat is for VMDK output, not qcow2 \(--format vmdk, or a \.vmdk destination\)$/],
    ['--adapter-type with a raw destination', ['--adapter-type', 'ide', 'SRC', 'DIR/x.img'], 1, /^sparsecopy: --adapter-type is for VMDK output, not raw/],
    ['--adapter-type bogus', ['--adapter-type', 'bogus', 'SRC', 'DIR/x.vmdk'], 1, /^sparsecopy: bad --adapter-type 'bogus': expected ide, buslogic, lsilogic or legacyESX$/],
    ['--vmdk-subformat bogus', ['--vmdk-subformat', 'twoGbMaxExtentSparse', 'SRC', 'DIR/x.vmdk'], 1, /^sparsecopy: bad --vmdk-subformat 'twoGbMaxExtentSparse': expected streamOptimized, monolithicSparse, monolithicFlat or twoGbMaxExtentFlat$/],
    ['-o', ['-o', 'SRC', 'DIR/x.vmdk'], 1, /^sparsecopy: DIR\/x\.vmdk: --overlay cannot be used with VMDK output \(a new VMDK stream is written\)$/],
    ['--seek', ['-s', '1M', '--vmdk-subformat', 'monolithicFlat', 'SRC', 'DIR/x.vmdk'], 1, /^sparsecopy: DIR\/x\.vmdk: --seek cannot be used with VMDK output \(a new VMDK image is written\)$/],
    ['--backing', ['--backing', 'SRC', 'SRC', 'DIR/x.vmdk'], 1, /^sparsecopy: --backing is for qcow2 output, not VMDK/],
  ])('%s', (_what, args, code, message) => {
    const { file } = testDisk('src.img');
    const before = listing();
    const argv = args.map((a) => (a === 'SRC' ? file : a.replace('DIR', dir)));
    const r = runHostile('sparsecopy', argv, { codes: [code] });
    expect(r.stdout.length).toBe(0);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr.replaceAll(dir, 'DIR').trimEnd()).toMatch(message);
    expect(listing()).toEqual(before);
  });

  it.skipIf(loopUnavailableReason() !== null)('monolithicSparse and flat onto a block device: 28, the device untouched', async () => {
    const { file } = testDisk('src.img');
    const backing = at('dev.img');
    fs.writeFileSync(backing, Buffer.alloc(4 * MiB, 0xaa));
    await withLoop(backing, (device) => {
      for (const subformat of ['monolithicSparse', 'twoGbMaxExtentFlat']) {
        const r = runHostile('sparsecopy', ['--format', 'vmdk', '--vmdk-subformat', subformat, file, device], { codes: [28] });
        expect(r.stderr).toBe(`sparsecopy: ${device} (a block device): a ${subformat} VMDK needs a new regular file; only streamOptimized (the default) is written to a stream; nothing written\n`);
      }
    });
    expect(fs.readFileSync(backing).equals(Buffer.alloc(4 * MiB, 0xaa))).toBe(true);
  });
});

describe('interrupted', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  it.each(['twoGbMaxExtentFlat', 'streamOptimized'])('%s: SIGTERM mid-copy (stdin idle) ends it (143), the descriptor and its extents removed', async (subformat) => {
    const d = caseDir();
    const out = path.join(d, 'cut.vmdk');
    const child = spawn(process.execPath, [SPARSECOPY, '--vmdk-subformat', subformat, '-', out], { stdio: ['pipe', 'ignore', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.stdin!.on('error', () => undefined);
    child.stdin!.write(patternBytes(3 * MiB, 8));
    const expected = subformat === 'streamOptimized' ? 1 : 2; // the descriptor's temporary file, and f001's
    for (let i = 0; i < 500 && tempLeftovers(d).length < expected; i++) await new Promise((r) => setTimeout(r, 10));
    expect(tempLeftovers(d).length).toBe(expected);
    child.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(stderr).toMatch(/^sparsecopy: .*cut\.vmdk: interrupted by SIGTERM/);
    expect(fs.readdirSync(d)).toEqual([]);
  });
});
