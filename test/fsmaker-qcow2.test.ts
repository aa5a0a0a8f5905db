/**
 * fsmaker writes qcow2 straight from the composite disk (issue 11): the qcow2 holds the same
 * virtual disk as the raw image of the same --seed (qemu-img compare), passes qemu-img check, has
 * the raw disk's size as its virtual size, takes --format, --cluster-size and --compress as
 * sparsecopy does, and no raw image of the disk is ever written on the way (the output and TMPDIR
 * are watched during the run). What a qcow2 cannot be written to is refused before anything is
 * built; seeded option combinations end as documented; a signal mid-copy leaves nothing. Stand-in
 * kernel and initrd: nothing boots here (fsmaker-boot.test.ts boots qcow2 disks).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, allocatedBytes, loopUnavailableReason, makeTempDir, patternBytes, prng, runCli, snapshot, withLoop } from './helpers.js';
import { writeBootFiles } from './fsmaker-fixtures.js';
import { runHostile } from './hostile.js';

const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
const ENV = { SOURCE_DATE_EPOCH: '1700000000' }; // the FAT's timestamps: raw and qcow2 runs byte-identical
const fsmaker = (args: string[]) => runCli(FSMAKER, args, { env: ENV });
const DATA_BYTES = 24 << 20;
let dir: string;
let inputs: string;
let rootfs: string;
let stand: string[];

beforeAll(() => {
  dir = makeTempDir('fsm-qcow2-');
  // The inputs live apart from the outputs, so that watching the output directory sees outputs only.
  inputs = path.join(dir, 'inputs');
  fs.mkdirSync(path.join(inputs, 'tree'), { recursive: true });
  // Incompressible data: a raw copy of the disk would cost as much again as the qcow2.
  fs.writeFileSync(path.join(inputs, 'tree', 'data.bin'), patternBytes(DATA_BYTES, 11));
  rootfs = path.join(inputs, 'root.ext4');
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'qroot', '-d', path.join(inputs, 'tree'), rootfs, '48M']);
  const { kernel, initrd } = writeBootFiles(inputs);
  stand = ['-k', kernel, '-i', initrd, '--seed', 'qcow2'];
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function outputDir(name: string): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

const qemuImg = (args: string[]) => spawnSync('qemu-img', args, { encoding: 'utf8' });

interface Qcow2Info {
  format: string;
  'virtual-size': number;
  'cluster-size': number;
}
const infoOf = (image: string): Qcow2Info => JSON.parse(execFileSync('qemu-img', ['info', '--output=json', image]).toString()) as Qcow2Info;

/** qemu-img check's counts: clean means no corruptions and no leaks. */
function expectCheckClean(image: string): { allocated: number; compressed: number } {
  const r = qemuImg(['check', '--output=json', image]);
  expect(r.status, r.stdout + r.stderr).toBe(0);
  const check = JSON.parse(r.stdout) as { corruptions?: number; leaks?: number; 'allocated-clusters': number; 'compressed-clusters'?: number };
  expect(check.corruptions ?? 0).toBe(0);
  expect(check.leaks ?? 0).toBe(0);
  return { allocated: check['allocated-clusters'], compressed: check['compressed-clusters'] ?? 0 };
}

function expectSameDisk(rawImage: string, qcow2: string): void {
  const r = qemuImg(['compare', '-f', 'raw', '-F', 'qcow2', rawImage, qcow2]);
  expect(r.status, r.stdout + r.stderr).toBe(0);
  expect(r.stdout).toMatch(/Images are identical/);
}

describe('fsmaker writes qcow2', () => {
  for (const label of ['mbr', 'gpt'] as const) {
    it(`disk.qcow2 (${label.toUpperCase()}) holds the raw disk of the same --seed, passes qemu-img check, has its virtual size`, () => {
      const out = outputDir(`named-${label}`);
      const rawImage = path.join(out, 'disk.img');
      const qcow2 = path.join(out, 'disk.qcow2');
      expect(fsmaker(['-q', ...stand, '--label', label, rootfs, rawImage]).status).toBe(0);
      const r = fsmaker([...stand, '--label', label, rootfs, qcow2]);
      expect(r.status, r.stderr).toBe(0);
      const info = infoOf(qcow2);
      expect(info.format).toBe('qcow2');
      expect(info['virtual-size']).toBe(fs.statSync(rawImage).size);
      expect(info['cluster-size']).toBe(65536);
      expectCheckClean(qcow2);
      expectSameDisk(rawImage, qcow2);
      // The summary names the qcow2 as it names a .gz: its path, and the bytes of the file written.
      expect(r.stderr.trim()).toBe(
        `fsmaker: ${qcow2}: ${label === 'mbr' ? 'MBR' : 'GPT'} disk of ${info['virtual-size']} bytes, rootfs ext4 on partition 1, ${fs.statSync(qcow2).size} bytes written in ${/in ([\d.]+) s$/.exec(r.stderr.trim())?.[1]} s`,
      );
      expect(fs.readdirSync(out).sort()).toEqual(['disk.img', 'disk.qcow2']);
    });
  }

  it('--format qcow2 under any name, --cluster-size and --compress as sparsecopy takes them; digests of the virtual disk', () => {
    const out = outputDir('options');
    const rawImage = path.join(out, 'disk.img');
    expect(fsmaker(['-q', ...stand, rootfs, rawImage]).status).toBe(0);
    const rawMd5 = execFileSync('md5sum', [rawImage]).toString().split(' ')[0];

    const named = path.join(out, 'cloud.img'); // Ubuntu's cloud images are qcow2 named .img
    const r = fsmaker(['-q', '--md5', '--format', 'qcow2', ...stand, rootfs, named]);
    expect(r.status, r.stderr).toBe(0);
    expect(infoOf(named).format).toBe('qcow2');
    expect(r.stdout.split(' ')[0]).toBe(rawMd5);
    expectSameDisk(rawImage, named);

    const small = path.join(out, 'small.qcow2');
    expect(fsmaker(['-q', '--cluster-size', '4K', ...stand, rootfs, small]).status).toBe(0);
    expect(infoOf(small)['cluster-size']).toBe(4096);
    expectCheckClean(small);
    expectSameDisk(rawImage, small);

    const bare = path.join(out, 'bare.qcow2'); // fsmaker's sizes: a bare number is bytes
    expect(fsmaker(['-q', '--cluster-size', '1048576', ...stand, rootfs, bare]).status).toBe(0);
    expect(infoOf(bare)['cluster-size']).toBe(1 << 20);
    expectSameDisk(rawImage, bare);

    const packed = path.join(out, 'packed.qcow2');
    expect(fsmaker(['-q', '--compress', ...stand, rootfs, packed]).status).toBe(0);
    const counts = expectCheckClean(packed);
    expect(counts.compressed).toBeGreaterThan(0);
    expectSameDisk(rawImage, packed);
  });

  it('never writes a raw image of the disk: the output directory and TMPDIR stay within the qcow2 during the run', async () => {
    const out = outputDir('watched');
    const tmp = outputDir('watched-tmp');
    const qcow2 = path.join(out, 'disk.qcow2');
    const child = spawn(process.execPath, [FSMAKER, '-q', '--compress', ...stand, rootfs, qcow2], { env: { ...process.env, ...ENV, TMPDIR: tmp }, stdio: 'ignore' });
    const ended = new Promise<number | null>((resolve) => child.on('exit', resolve));
    let running = true;
    void ended.then(() => (running = false));
    let peakAllocated = 0;
    let largestApparent = 0;
    const seen = new Set<string>();
    const walk = (d: string): { allocated: number; files: { name: string; size: number }[] } => {
      let allocated = 0;
      const files: { name: string; size: number }[] = [];
      for (const entry of fs.readdirSync(d, { recursive: true, withFileTypes: true })) {
        if (!entry.isFile()) continue;
        try {
          const st = fs.statSync(path.join(entry.parentPath, entry.name));
          allocated += st.blocks * 512;
          files.push({ name: entry.name, size: st.size });
        } catch {
          // gone between readdir and stat
        }
      }
      return { allocated, files };
    };
    while (running) {
      let allocated = 0;
      for (const d of [out, tmp]) {
        const w = walk(d);
        allocated += w.allocated;
        for (const f of w.files) {
          seen.add(f.name);
          largestApparent = Math.max(largestApparent, f.size);
        }
      }
      peakAllocated = Math.max(peakAllocated, allocated);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(await ended).toBe(0);
    const virtualSize = infoOf(qcow2)['virtual-size'];
    const final = allocatedBytes(qcow2);
    // --compress makes the qcow2 smaller than the data, so a raw copy could not hide in the margin.
    expect(final).toBeLessThan(DATA_BYTES + (4 << 20));
    expect(peakAllocated, `files seen: ${[...seen].join(', ')}`).toBeLessThan(final + (4 << 20));
    expect(largestApparent, `files seen: ${[...seen].join(', ')}`).toBeLessThan(virtualSize);
    expect(seen.size).toBeGreaterThan(0); // the watch saw the run's files at all
    expect(fs.readdirSync(out)).toEqual(['disk.qcow2']);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});

describe('fsmaker refuses qcow2 where it cannot be written, before anything is built', () => {
  // With -s and -t nosuchfs, anything that reached the spare partition's mkfs would end with 26:
  // a refusal from the copy's plan instead would come only after GRUB and the spare were built.
  const late = ['-s', '256M', '-t', 'nosuchfs'];

  it('stdout: exit 28 before any work (a qcow2 stream takes two passes, the disk is built once), nothing on stdout', () => {
    const r = runHostile('fsmaker', ['--format', 'qcow2', ...stand, ...late, rootfs, '-'], { codes: [28], env: ENV });
    expect(r.stderr.trim()).toBe('fsmaker: stdout: a qcow2 is written to a stream in two passes over the source, and a disk built as it is written cannot be read twice; write to a file, or copy the source to a file first; nothing written');
    expect(r.stdout.length).toBe(0);
  });

  it('a pipe and a character device: exit 28, neither opened', () => {
    const out = outputDir('refused');
    const fifo = path.join(out, 'fifo.qcow2');
    execFileSync('mkfifo', [fifo]);
    // A FIFO opened for writing would wait for a reader: a refusal after opening would hang (and time out).
    const r = runHostile('fsmaker', [...stand, ...late, rootfs, fifo], { codes: [28], env: ENV, timeoutMs: 10_000 });
    expect(r.stderr.trim()).toBe(`fsmaker: ${fifo}: a qcow2 is written to a stream in two passes over the source, and a disk built as it is written cannot be read twice; write to a file, or copy the source to a file first; nothing written`);
    const nul = runHostile('fsmaker', ['--format', 'qcow2', ...stand, ...late, rootfs, '/dev/null'], { codes: [28], env: ENV });
    expect(nul.stderr).toMatch(/^fsmaker: \/dev\/null: a qcow2 is written to a stream in two passes/);
    expect(fs.readdirSync(out)).toEqual(['fifo.qcow2']);
  });

  it('a block device: exit 28, the device unchanged', async (ctx) => {
    const why = loopUnavailableReason();
    if (why) return ctx.skip();
    const backing = path.join(outputDir('device'), 'backing.img');
    fs.writeFileSync(backing, patternBytes(4 << 20, 5));
    const before = snapshot(backing);
    await withLoop(backing, (device) => {
      const r = runHostile('fsmaker', ['--format', 'qcow2', ...stand, ...late, rootfs, device], { codes: [28], env: ENV });
      expect(r.stderr.trim()).toBe(`fsmaker: ${device} (a block device): qcow2 output needs a regular file or a stream; nothing written`);
    });
    const after = snapshot(backing);
    expect(after.bytes.equals(before.bytes)).toBe(true); // Buffer.equals: toEqual walks bytes one by one
    expect(after.mtimeMs).toBe(before.mtimeMs);
  });

  it('a disk larger than a qcow2 of its --cluster-size maps: exit 15, naming both sizes', () => {
    const out = outputDir('too-large');
    const huge = path.join(out, 'huge.qcow2');
    // 512-byte clusters map 128 GiB (qemu's L1 limit); the spare makes the disk 300 GiB.
    const r = runHostile('fsmaker', ['--label', 'gpt', '--cluster-size', '512', ...stand, '-s', '300G', '-t', 'nosuchfs', rootfs, huge], { codes: [15], env: ENV });
    expect(r.stderr.trim()).toBe(
      `fsmaker: ${huge}: a virtual disk of ${300 * 2 ** 30} bytes is larger than a qcow2 with 512-byte clusters can map (${128 * 2 ** 30} bytes, qemu's L1 limit); use a larger --cluster-size; nothing written`,
    );
    expect(fs.readdirSync(out)).toEqual([]);
  });

  it('qcow2 options on another format, bad cluster sizes, --gzip against --format: exit 1, nothing written', () => {
    const out = outputDir('usage');
    const cases: Array<[string[], string, RegExp]> = [
      [['--compress'], 'disk.img', /^fsmaker: --compress is for qcow2 output, not raw \(--format qcow2, or a \.qcow2 destination\)$/],
      [['--cluster-size', '64K'], 'disk.img.gz', /^fsmaker: --cluster-size is for qcow2 output, not gzip/],
      [['--cluster-size', '3K'], 'disk.qcow2', /^fsmaker: bad --cluster-size 3072 bytes: expected a power of two from 512 bytes to 2 MiB$/],
      [['--cluster-size', '4M'], 'disk.qcow2', /^fsmaker: bad --cluster-size 4194304 bytes/],
      [['--cluster-size', 'big'], 'disk.qcow2', /^fsmaker: bad cluster size 'big'/],
      [['--gzip', '--format', 'qcow2'], 'disk.qcow2', /^fsmaker: --gzip contradicts --format qcow2$/],
      [['--format', 'vhd'], 'disk.img', /^fsmaker: --format vhd: not an output format/],
    ];
    for (const [options, name, message] of cases) {
      const r = runHostile('fsmaker', [...options, ...stand, ...late, rootfs, path.join(out, name)], { codes: [1], env: ENV });
      expect(r.stderr.trim(), options.join(' ')).toMatch(message);
    }
    expect(fs.readdirSync(out)).toEqual([]);
  });
});

describe('fsmaker output options, seeded through real processes', () => {
  const FORMATS = [undefined, undefined, 'qcow2', 'QCOW2', 'raw', 'gzip', 'vhd'] as const;
  const NAMES = ['d.qcow2', 'd.qcow2', 'd.img', 'd.img.gz', '-', '/dev/null'] as const;
  const CLUSTERS = ['512', '4K', '64K', '2M', '3K', '0', '4M', 'x'] as const;
  const VALID_CLUSTERS = new Set(['512', '4K', '64K', '2M']);

  /** What the options ask for, as the documentation says: the format written, or the exit code of a refusal. */
  function expected(c: { format?: string; name: string; cluster?: string; compress: boolean; gzip: boolean }): { format: string } | { code: number } {
    if (c.gzip && c.format !== undefined && c.format !== 'gzip') return { code: 1 };
    const format = c.gzip ? 'gzip' : c.format?.toLowerCase() ?? (c.name.endsWith('.qcow2') ? 'qcow2' : c.name.endsWith('.gz') ? 'gzip' : 'raw');
    if (format === 'vhd') return { code: 1 }; // --format names no format fsmaker writes
    if (c.cluster === 'x') return { code: 1 };
    if (format !== 'qcow2') return c.cluster !== undefined || c.compress ? { code: 1 } : { format };
    if (c.cluster !== undefined && !VALID_CLUSTERS.has(c.cluster)) return { code: 1 };
    return c.name === '-' || c.name === '/dev/null' ? { code: 28 } : { format };
  }

  it('30 cases: the documented outcome, a valid qcow2 equal to the raw disk, nothing else touched', () => {
    const inputsDir = outputDir('fuzz-inputs');
    const small = path.join(inputsDir, 'small.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', small, '16M']);
    const twin = path.join(inputsDir, 'twin.img');
    expect(fsmaker(['-q', ...stand, small, twin]).status).toBe(0);
    const twinMd5 = execFileSync('md5sum', [twin]).toString().split(' ')[0];
    const random = prng(20261201);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    const outcomes = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const c = { format: pick(FORMATS), name: pick(NAMES), cluster: random() < 0.4 ? pick(CLUSTERS) : undefined, compress: random() < 0.25, gzip: random() < 0.15 };
      const want = expected(c);
      if ('format' in want && want.format === 'raw' && c.name === '-') c.name = '/dev/null'; // 180 MB of raw disk on stdout: nothing to learn
      const out = outputDir(`fuzz-${i}`);
      const dest = c.name.startsWith('/') || c.name === '-' ? c.name : path.join(out, c.name);
      const args = [
        '-q',
        ...(c.format !== undefined ? ['--format', c.format] : []),
        ...(c.cluster !== undefined ? ['--cluster-size', c.cluster] : []),
        ...(c.compress ? ['--compress'] : []),
        ...(c.gzip ? ['--gzip'] : []),
        ...stand,
        small,
        dest,
      ];
      const what = JSON.stringify(c);
      const r = runHostile('fsmaker', args, { env: ENV, what });
      outcomes.add('code' in want ? `exit ${want.code}` : want.format);
      if ('code' in want) {
        expect(r.status, what + r.stderr).toBe(want.code);
        expect(r.stderr.trim().split('\n'), what).toHaveLength(1);
        expect(r.stdout.length, what).toBe(0);
        expect(fs.readdirSync(out), what).toEqual([]);
        continue;
      }
      expect(r.status, what + r.stderr).toBe(0);
      if (dest === '/dev/null' || dest === '-') continue;
      expect(fs.readdirSync(out), what).toEqual([c.name]);
      if (want.format === 'qcow2') {
        expect(infoOf(dest)['cluster-size'], what).toBe(c.cluster === undefined ? 65536 : { '512': 512, '4K': 4096, '64K': 65536, '2M': 2 << 20 }[c.cluster]);
        const counts = expectCheckClean(dest);
        if (c.compress) expect(counts.compressed, what).toBeGreaterThan(0);
        expectSameDisk(twin, dest);
      } else if (want.format === 'gzip') {
        expect(execFileSync('sh', ['-c', 'gzip -dc "$1" | md5sum', 'sh', dest]).toString().split(' ')[0], what).toBe(twinMd5);
      } else {
        expect(fs.readFileSync(dest).equals(fs.readFileSync(twin)), what).toBe(true);
      }
      fs.rmSync(out, { recursive: true });
    }
    // The seed reaches every outcome: qcow2, the other formats, and both kinds of refusal.
    expect([...outcomes].sort()).toEqual(['exit 1', 'exit 28', 'gzip', 'qcow2', 'raw']);
  });
});

describe('fsmaker stopped while it writes a qcow2', () => {
  it('SIGTERM and SIGINT mid-copy: 143/130 within a second, the old output kept, no temporary file, TMPDIR empty', async () => {
    const big = path.join(inputs, 'big.ext4');
    const tree = path.join(inputs, 'big-tree');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'data.bin'), patternBytes(96 << 20, 12)); // --compress on it takes seconds
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, big, '160M']);
    fs.rmSync(tree, { recursive: true });
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const out = outputDir(`signal-${signal}`);
      const tmp = outputDir(`signal-${signal}-tmp`);
      const output = path.join(out, 'disk.qcow2');
      fs.writeFileSync(output, 'the output as it was before\n');
      const before = snapshot(output);
      const child = spawn(process.execPath, [FSMAKER, '-q', '--compress', ...stand, big, output], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      const copying = (): boolean => fs.readdirSync(out).some((n) => n.startsWith('.disk.qcow2.sparsecopy-') && fs.statSync(path.join(out, n)).size > 4 << 20);
      const until = Date.now() + 20_000;
      while (!copying() && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      expect(copying(), `never saw the qcow2 being written: ${stderr}`).toBe(true);
      const sent = performance.now();
      child.kill(signal);
      expect(await exited, stderr).toBe(signal === 'SIGTERM' ? 143 : 130);
      expect(performance.now() - sent).toBeLessThan(1_000);
      expect(stderr.trim()).toBe(`fsmaker: ${output}: interrupted by ${signal}; left as it was`);
      const after = snapshot(output);
      expect(after.bytes.equals(before.bytes) && after.ino === before.ino).toBe(true);
      expect(fs.readdirSync(out)).toEqual(['disk.qcow2']);
      expect(fs.readdirSync(tmp)).toEqual([]);
    }
    fs.rmSync(big);
  });
});
