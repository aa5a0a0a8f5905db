/**
 * --backing BASE (issue 11): a qcow2 layer holding only the clusters that differ from BASE (raw or
 * qcow2), zeros over BASE's data as zero clusters, the backing file named as given and found from
 * the layer's directory; judged by qemu-img (check, info, compare, map), against the clusters
 * `qemu-img convert -B` allocates for the same layer, by our own reader, through a 3-layer build
 * flattened back, on a 1 TiB mostly empty BASE, and the refusals, each before anything is written.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BackingComparison } from '../src/format/qcow2-backing-diff.js';
import { SPARSECOPY, patternBytes, prng, sparsecopy, tempLeftovers, useTempDir, writeSparseFile } from './helpers.js';
import { runHostile } from './hostile.js';
import { expectCheckedClean, expectIdentical, qemu } from './qemu-img.js';

let dir = '';
useTempDir('sc-qcow2-backing-', (d) => (dir = d));

const KiB = 1024;
const CLUSTER = 64 * KiB;
const CLUSTERS = 40;
const SIZE = CLUSTERS * CLUSTER;
const at = (name: string): string => path.join(dir, name);

interface MapEntry {
  start: number;
  length: number;
  depth: number;
  zero: boolean;
  data: boolean;
}

/** What the top layer itself holds, cluster by cluster: 'data' or 'zero' (a zero cluster); unlisted clusters read through. */
function topLayerClusters(image: string): Map<number, 'data' | 'zero'> {
  const entries = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', image], { encoding: 'utf8' })) as MapEntry[];
  const clusters = new Map<number, 'data' | 'zero'>();
  for (const e of entries) {
    if (e.depth !== 0) continue;
    for (let c = e.start / CLUSTER; c < (e.start + e.length) / CLUSTER; c++) clusters.set(c, e.data ? 'data' : 'zero');
  }
  return clusters;
}

/**
 * BASE: data in clusters 0-19 (a distinct pattern each), holes after. The layer over it, written
 * by qemu-io: new data in clusters 2 and 7, zeros over BASE's data in 5 and 11-12, data beyond
 * BASE's data in 30. `flat` is the layer's virtual disk as a raw file.
 */
function fixture(name: string): { base: string; layer: string; flat: string } {
  const base = at(`${name}-base.raw`);
  writeSparseFile(base, SIZE, [{ offset: 0, data: patternBytes(20 * CLUSTER, 3) }]);
  const layer = at(`${name}-layer.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', path.basename(base), '-F', 'raw', layer]);
  const writes = [`write -P 0x55 ${2 * CLUSTER} ${CLUSTER}`, `write -P 0x66 ${7 * CLUSTER} ${CLUSTER}`, `write -z ${5 * CLUSTER} ${CLUSTER}`, `write -z ${11 * CLUSTER} ${2 * CLUSTER}`, `write -P 0x77 ${30 * CLUSTER} ${CLUSTER}`];
  const io = qemu('qemu-io', ['-f', 'qcow2', ...writes.flatMap((c) => ['-c', c]), layer]);
  expect(io.status, io.out).toBe(0);
  const flat = at(`${name}-flat.raw`);
  execFileSync('qemu-img', ['convert', '-O', 'raw', layer, flat]);
  return { base, layer, flat };
}

const EXPECTED = new Map<number, 'data' | 'zero'>([
  [2, 'data'],
  [5, 'zero'],
  [7, 'data'],
  [11, 'zero'],
  [12, 'zero'],
  [30, 'data'],
]);

describe('--backing BASE writes only what differs from BASE', () => {
  for (const baseFormat of ['raw', 'qcow2'] as const) {
    it(`over a ${baseFormat} BASE: check clean, backing named, identical, only the differing clusters allocated, as qemu-img convert -B`, () => {
      const f = fixture(baseFormat);
      let base = f.base;
      if (baseFormat === 'qcow2') {
        base = at('qcow2-base.qcow2');
        execFileSync('qemu-img', ['convert', '-O', 'qcow2', f.base, base]);
      }
      const out = at(`out-${baseFormat}.qcow2`);
      const r = sparsecopy(['-q', f.flat, out, '--backing', path.basename(base)]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toBe('');

      expectCheckedClean(out);
      const shown = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', out], { encoding: 'utf8' })) as Record<string, unknown>;
      expect(shown['backing-filename']).toBe(path.basename(base)); // as given
      expect(shown['backing-filename-format']).toBe(baseFormat); // probed
      expect(shown['virtual-size']).toBe(SIZE);
      expectIdentical(f.flat, out);
      expect(topLayerClusters(out)).toEqual(EXPECTED);

      // qemu-img convert -B of the qemu-io layer allocates the same clusters, data and zero.
      const theirs = at(`theirs-${baseFormat}.qcow2`);
      execFileSync('qemu-img', ['convert', '-O', 'qcow2', '-B', path.basename(base), '-F', baseFormat, f.layer, theirs]);
      expect(topLayerClusters(out)).toEqual(topLayerClusters(theirs));

      // The same layer from the qcow2 layer as the source (read through its own chain).
      const fromLayer = at(`from-layer-${baseFormat}.qcow2`);
      const l = sparsecopy(['-q', f.layer, fromLayer, '--backing', path.basename(base)]);
      expect(l.status, l.stderr).toBe(0);
      expect(topLayerClusters(fromLayer)).toEqual(EXPECTED);

      // Our own reader flattens it back to the source.
      const back = at(`back-${baseFormat}.raw`);
      const b = sparsecopy(['-q', out, back]);
      expect(b.status, b.stderr).toBe(0);
      expect(fs.readFileSync(back).equals(fs.readFileSync(f.flat))).toBe(true);
    });
  }

  it('with --compress, with 4 KiB clusters, with 512-byte ones (no room for the feature table): check clean and identical', () => {
    const f = fixture('variants');
    for (const extra of [['--compress'], ['--cluster-size', '4096B'], ['--cluster-size', '512B', '--compress']]) {
      const out = at(`variant${extra.join('')}.qcow2`);
      const r = sparsecopy(['-q', f.flat, out, '--backing', path.basename(f.base), ...extra]);
      expect(r.status, r.stderr).toBe(0);
      expectCheckedClean(out);
      expectIdentical(f.flat, out);
    }
  });

  it('a source equal to BASE gives a layer with no cluster of its own; zeros over a hole of BASE stay unallocated', () => {
    const base = at('same-base.raw');
    writeSparseFile(base, SIZE, [{ offset: 3 * CLUSTER, data: patternBytes(4 * CLUSTER, 9) }]);
    const copy = at('same-source.raw');
    fs.copyFileSync(base, copy);
    const out = at('same.qcow2');
    const r = sparsecopy(['-q', copy, out, '--backing', path.basename(base)]);
    expect(r.status, r.stderr).toBe(0);
    expectCheckedClean(out);
    expectIdentical(copy, out);
    expect(topLayerClusters(out).size).toBe(0);
  });

  it('a 3-layer build (base -> layer1 -> layer2, each with --backing) flattens back with sparsecopy layer2.qcow2 flat.img', () => {
    const base = at('b3-base.raw');
    writeSparseFile(base, SIZE, [{ offset: 0, data: patternBytes(10 * CLUSTER, 4) }]);
    const step1 = at('b3-step1.raw');
    writeSparseFile(step1, SIZE, [
      { offset: 0, data: patternBytes(10 * CLUSTER, 4) },
      { offset: 4 * CLUSTER, data: Buffer.alloc(CLUSTER) }, // zeroes BASE's data
      { offset: 20 * CLUSTER + 100, data: patternBytes(5000, 5) },
    ]);
    const step2 = at('b3-step2.raw');
    fs.copyFileSync(step1, step2);
    const fd = fs.openSync(step2, 'r+');
    fs.writeSync(fd, patternBytes(CLUSTER, 6), 0, CLUSTER, 4 * CLUSTER); // data again where layer1 has a zero cluster
    fs.writeSync(fd, Buffer.alloc(5000), 0, 5000, 20 * CLUSTER + 100); // zeroes layer1's data
    fs.writeSync(fd, patternBytes(777, 7), 0, 777, SIZE - 777);
    fs.closeSync(fd);

    const layer1 = at('b3-layer1.qcow2');
    const layer2 = at('b3-layer2.qcow2');
    for (const [source, layer, below] of [
      [step1, layer1, base],
      [step2, layer2, layer1],
    ] as const) {
      const r = sparsecopy(['-q', source, layer, '--backing', path.basename(below)]);
      expect(r.status, r.stderr).toBe(0);
      expectCheckedClean(layer);
      expectIdentical(source, layer);
    }
    expect(topLayerClusters(layer1)).toEqual(new Map([[4, 'zero'], [20, 'data']]));
    expect(topLayerClusters(layer2)).toEqual(new Map([[4, 'data'], [20, 'zero'], [CLUSTERS - 1, 'data']]));
    const flat = at('b3-flat.img');
    const r = sparsecopy(['-q', layer2, flat]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(flat).equals(fs.readFileSync(step2))).toBe(true);
  });

  it('a relative BASE is stored as given and found from the layer directory, as qemu finds it (not from the current one)', () => {
    const f = fixture('relative');
    const sub = at('sub');
    fs.mkdirSync(sub);
    const out = path.join(sub, 'layer.qcow2');
    const r = sparsecopy(['-q', f.flat, out, '--backing', `../${path.basename(f.base)}`]);
    expect(r.status, r.stderr).toBe(0);
    const shown = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', out], { encoding: 'utf8' })) as Record<string, unknown>;
    expect(shown['backing-filename']).toBe(`../${path.basename(f.base)}`);
    expectIdentical(f.flat, out);

    // The name alone exists from the test's directory, not from sub/: refused, naming both.
    const missing = path.join(sub, 'missing.qcow2');
    const m = runHostile('sparsecopy', [f.flat, missing, '--backing', path.basename(f.base)], { codes: [2] });
    expect(m.stderr).toMatch(new RegExp(`^sparsecopy: --backing ${path.basename(f.base)} \\(${sub}/${path.basename(f.base)}, from the directory of .*\\): cannot open the backing file: no such file or directory; nothing written\\n$`, 'i'));
    expect(fs.existsSync(missing)).toBe(false);
  });

  it('a 1 TiB BASE with a few clusters of data costs nothing where it has holes: fast, memory bounded, identical', () => {
    const TiB = 2 ** 40;
    const base = at('tib-base.raw');
    writeSparseFile(base, TiB, [{ offset: 0, data: patternBytes(CLUSTER, 1) }, { offset: TiB / 2, data: patternBytes(2 * CLUSTER, 2) }]);
    const source = at('tib-source.raw');
    writeSparseFile(source, TiB, [{ offset: TiB / 2 + CLUSTER, data: patternBytes(CLUSTER, 8) }, { offset: TiB - CLUSTER, data: patternBytes(CLUSTER, 9) }]);
    const out = at('tib.qcow2');
    const r = runHostile('sparsecopy', ['-q', source, out, '--backing', path.basename(base)], { codes: [0], timeoutMs: 60_000 });
    expect(r.ms).toBeLessThan(30_000);
    expectCheckedClean(out);
    expectIdentical(source, out);
    // Cluster 0 and the first of BASE's middle pair become zero clusters, the second data, the last data.
    const map = topLayerClusters(out);
    const middle = TiB / 2 / CLUSTER;
    expect(map).toEqual(new Map([[0, 'zero'], [middle, 'zero'], [middle + 1, 'data'], [TiB / CLUSTER - 1, 'data']]));
  });
});

describe('--backing refusals, before anything is written', () => {
  const refusals: { what: string; code: number; message: RegExp; args: (f: { base: string; flat: string; out: string }) => string[]; setup?: (f: { base: string; flat: string }) => void }[] = [
    { what: 'BASE missing', code: 2, message: /--backing nope\.raw .*cannot open the backing file: no such file or directory; nothing written$/i, args: (f) => [f.flat, f.out, '--backing', 'nope.raw'] },
    { what: 'BASE of another size', code: 30, message: new RegExp(`is a disk of ${SIZE + CLUSTER} bytes, the source one of ${SIZE} bytes`), args: (f) => [f.flat, f.out, '--backing', 'bigger.raw'], setup: () => writeSparseFile(at('bigger.raw'), SIZE + CLUSTER, []) },
    { what: 'BASE is the destination', code: 13, message: /a qcow2 cannot replace its own backing file; nothing written$/, args: (f) => [f.flat, f.base, '--format', 'qcow2', '--backing', path.basename(f.base)] },
    { what: 'raw output', code: 1, message: /--backing is for qcow2 output, not raw/, args: (f) => [f.flat, at('out.raw'), '--backing', path.basename(f.base)] },
    { what: 'gzip output', code: 1, message: /--backing is for qcow2 output, not gzip/, args: (f) => [f.flat, at('out.raw.gz'), '--backing', path.basename(f.base)] },
    { what: 'BASE compressed', code: 28, message: /--backing base\.raw\.gz.*gzip data; a qcow2's backing file must be a raw or qcow2 image/, args: (f) => [f.flat, f.out, '--backing', 'base.raw.gz'], setup: (f) => fs.writeFileSync(at('base.raw.gz'), zlib.gzipSync(fs.readFileSync(f.base))) },
  ];
  for (const refusal of refusals) {
    it(`${refusal.what}: exit ${refusal.code}, one line, nothing written`, () => {
      const f = fixture(`refusal-${refusal.code}`);
      const out = at(`refused-${refusal.code}.qcow2`);
      refusal.setup?.(f);
      const before = fs.readFileSync(f.base);
      const r = runHostile('sparsecopy', refusal.args({ ...f, out }), { codes: [refusal.code] });
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(refusal.message);
      expect(fs.existsSync(out)).toBe(false);
      expect(fs.existsSync(at('out.raw')) || fs.existsSync(at('out.raw.gz'))).toBe(false);
      expect(fs.readFileSync(f.base).equals(before)).toBe(true);
      expect(tempLeftovers(dir)).toEqual([]);
    });
  }
});

describe('seeded CLI cases: --backing with other options, to files and to stdout', () => {
  it('a documented ending, nothing but DEST touched, BASE unchanged, and on success a clean layer identical to the source', () => {
    const random = prng(1111);
    const work = at('cli-cases');
    fs.mkdirSync(work);
    const f = fixture('cases');
    const bases = { raw: path.join(work, 'base.raw'), qcow2: path.join(work, 'base.qcow2'), small: path.join(work, 'small.raw'), gz: path.join(work, 'base.raw.gz') };
    fs.copyFileSync(f.base, bases.raw);
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', f.base, bases.qcow2]);
    writeSparseFile(bases.small, SIZE / 2, []);
    fs.writeFileSync(bases.gz, zlib.gzipSync(fs.readFileSync(f.base)));
    const fixed = new Set(fs.readdirSync(work));
    const snapshot = Object.fromEntries(Object.values(bases).map((b) => [b, fs.readFileSync(b)]));
    const choices = [...Object.values(bases).map((b) => path.basename(b)), 'missing.raw'];
    let succeeded = 0;
    for (let n = 0; n < 24; n++) {
      const base = choices[Math.floor(random() * choices.length)]!;
      const args = ['-q', '--backing', base];
      if (random() < 0.4) args.push('--cluster-size', ['512B', '4K', '64K', '2M'][Math.floor(random() * 4)]!);
      if (random() < 0.3) args.push('--compress');
      const toStdout = random() < 0.3;
      const dest = path.join(work, random() < 0.9 ? `out-${n}.qcow2` : `out-${n}.raw`);
      let r;
      if (toStdout) {
        // stdout is the file, and BASE is found from the current directory.
        const fd = fs.openSync(dest, 'w');
        const p = spawnSync(process.execPath, [SPARSECOPY, ...args, f.flat, '-', '--format', 'qcow2'], { cwd: work, stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
        fs.closeSync(fd);
        r = { status: p.status, stderr: p.stderr };
        expect([0, 2, 28, 30], `case ${n}: ${args.join(' ')}: ${r.stderr}`).toContain(r.status);
        if (r.status !== 0) expect(fs.statSync(dest).size, `case ${n}`).toBe(0);
      } else {
        r = runHostile('sparsecopy', [...args, f.flat, dest], { timeoutMs: 20_000 });
      }
      const listing = fs.readdirSync(work).filter((name) => !fixed.has(name));
      if (r.status === 0) {
        expect(listing, `case ${n}: ${args.join(' ')}`).toEqual([path.basename(dest)]);
        expectCheckedClean(dest);
        expectIdentical(f.flat, dest);
        succeeded++;
      } else {
        expect(listing, `case ${n}: ${args.join(' ')}`).toEqual(toStdout ? [path.basename(dest)] : []);
        expect(r.stderr.trimEnd().split('\n'), `case ${n}`).toHaveLength(1);
      }
      for (const [b, bytes] of Object.entries(snapshot)) expect(fs.readFileSync(b).equals(bytes), `case ${n}: ${b} changed`).toBe(true);
      fs.rmSync(dest, { force: true });
    }
    expect(succeeded).toBeGreaterThan(3);
  });
});

describe('BackingComparison reads BASE only where it may hold data', () => {
  it('judges each cluster and reads nothing of BASE outside its data ranges', () => {
    const size = 4096;
    const baseBytes = Buffer.alloc(64 * size);
    patternBytes(2 * size, 1).copy(baseBytes, 10 * size);
    const reads: number[] = [];
    const disk = {
      readAt: (offset: number, length: number) => {
        reads.push(offset / size);
        return Buffer.from(baseBytes.subarray(offset, offset + length));
      },
      *mayHoldData() {
        yield { offset: 10 * size, length: 2 * size };
      },
    };
    const comparison = new BackingComparison(disk, size);
    expect([...comparison.zeroClustersBefore(3)]).toEqual([]);
    expect(comparison.verdict(3, Buffer.alloc(size))).toBe('unallocated'); // zeros over a hole
    expect(comparison.verdict(4, Buffer.alloc(size, 1))).toBe('data'); // data over a hole
    expect([...comparison.zeroClustersBefore(11)]).toEqual([10]); // a source hole over BASE's data
    expect(comparison.verdict(11, baseBytes.subarray(11 * size, 12 * size))).toBe('unallocated'); // equal to BASE
    expect([...comparison.zeroClustersBefore(64)]).toEqual([]);
    expect(reads).toEqual([10, 11]);
  });
});
