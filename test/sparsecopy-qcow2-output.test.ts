/**
 * qcow2 as an output of sparsecopy (issue 11): every cluster size, with and without --compress,
 * judged by qemu-img (check: no errors, no leaks; compare: identical; info: size, format, cluster
 * size) and qemu-io, for compactness (no holes, no more than data plus metadata), read back by our
 * own reader; a 1 TiB virtual disk in bounded memory; a .gz source of unknown length; and every
 * destination and option qcow2 output refuses, refused before anything is written.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { allocatedBytes, loopUnavailableReason, patternBytes, prng, sparsecopy, tempLeftovers, useTempDir, withLoop, writeSparseFile } from './helpers.js';
import { expectCleanEnding, runBounded, runHostile } from './hostile.js';
import { expectCheckedClean, expectIdentical, qemu } from './qemu-img.js';

let dir = '';
useTempDir('sc-qcow2-out-', (d) => (dir = d));

const KiB = 1024;
const MiB = 1 << 20;
const at = (name: string): string => path.join(dir, name);
const roundUp = (n: number, unit: number): number => Math.ceil(n / unit) * unit;

function info(image: string): { format: string; 'virtual-size': number; 'cluster-size': number } {
  return JSON.parse(execFileSync('qemu-img', ['info', '--output=json', image], { encoding: 'utf8' }));
}

/** Guest clusters of `file` holding a non-zero byte (only those under its data pieces are read: the file may be 512 GiB). */
function dataClusters(file: string, clusterSize: number): number {
  const fd = fs.openSync(file, 'r');
  const buffer = Buffer.alloc(clusterSize);
  const seen = new Set<number>();
  let count = 0;
  try {
    for (const { offset, length } of knownPieces.get(file)!) {
      for (let c = Math.floor(offset / clusterSize); c * clusterSize < offset + length; c++) {
        if (seen.has(c)) continue;
        seen.add(c);
        buffer.fill(0);
        fs.readSync(fd, buffer, 0, clusterSize, c * clusterSize);
        if (buffer.some((b) => b !== 0)) count++;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return count;
}
const knownPieces = new Map<string, { offset: number; length: number }[]>();

/**
 * A raw disk for `clusterSize`: data clusters with a zero cluster and a hole between them, a run of
 * one repeated byte (for qemu-io's pattern reads), data crossing the first L2 table's boundary, and
 * a partial last cluster that is not a whole 512-byte sector either.
 */
function diskFor(clusterSize: number): { file: string; size: number; l2Span: number; constantAt: number } {
  const l2Span = (clusterSize / 8) * clusterSize;
  const size = l2Span + 3 * clusterSize + 1234;
  const head = patternBytes(4 * clusterSize, clusterSize);
  head.fill(0, clusterSize, 2 * clusterSize); // a whole zero cluster inside the data
  const constantAt = 6 * clusterSize + 100;
  const pieces = [
    { offset: 0, data: head },
    { offset: constantAt, data: Buffer.alloc(clusterSize + 777, 0xab) },
    { offset: l2Span - clusterSize / 2 - 10, data: patternBytes(clusterSize + 300, 7) },
    { offset: size - 700, data: patternBytes(700, 8) },
  ];
  const file = at(`disk-${clusterSize}.raw`);
  writeSparseFile(file, size, pieces);
  knownPieces.set(
    file,
    pieces.map((p) => ({ offset: p.offset, length: p.data.length })),
  );
  return { file, size, l2Span, constantAt };
}

describe('qcow2 output passes qemu-img check and compare, in every cluster size', () => {
  for (const clusterSize of [512, 4 * KiB, 64 * KiB, 2 * MiB]) {
    for (const compress of [false, true]) {
      it(`${clusterSize}-byte clusters${compress ? ', --compress' : ''}`, () => {
        const disk = diskFor(clusterSize);
        const out = at(`out-${clusterSize}${compress ? 'c' : ''}.qcow2`);
        const r = sparsecopy(['-q', '--cluster-size', `${clusterSize}B`, ...(compress ? ['--compress'] : []), disk.file, out]);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr).toBe('');

        expectCheckedClean(out);
        expectIdentical(disk.file, out);
        const shown = info(out);
        expect(shown.format).toBe('qcow2');
        expect(shown['virtual-size']).toBe(roundUp(disk.size, 512)); // qemu counts whole sectors
        expect(shown['cluster-size']).toBe(clusterSize);

        // Compact: every byte of the file allocated, and no more than data plus metadata.
        const length = fs.statSync(out).size;
        expect(allocatedBytes(out)).toBe(roundUp(length, 4096));
        const data = dataClusters(disk.file, clusterSize);
        const l2Tables = 2; // the data crosses from the first L2 table's range into the second's
        const l1 = Math.ceil((Math.ceil(shown['virtual-size'] / disk.l2Span) * 8) / clusterSize);
        const referenced = 1 + data + l2Tables + l1; // header, data, L2 tables, L1 table
        const refcountMetadata = Math.ceil((referenced + 2) / (clusterSize / 2)) + 1; // blocks of 16-bit counts, and one table cluster
        expect(length).toBeLessThanOrEqual((referenced + refcountMetadata) * clusterSize);

        // A second oracle: qemu-io's pattern reads of the repeated byte, a hole and the zero cluster.
        const reads = [`read -P 0xab ${disk.constantAt} ${clusterSize + 777}`, `read -P 0 ${clusterSize} ${clusterSize}`, `read -P 0 ${12 * clusterSize} ${clusterSize}`];
        const io = qemu('qemu-io', ['-r', '-f', 'qcow2', ...reads.flatMap((c) => ['-c', c]), out]);
        expect(io.status, io.out).toBe(0);
        expect(io.out).not.toMatch(/Pattern verification failed|error/i);
        expect(io.out.match(/^read /gm)?.length).toBe(3);

        // Our own reader gives the source back, padded with zeros to the whole last sector.
        const back = at(`back-${clusterSize}${compress ? 'c' : ''}.raw`);
        const b = sparsecopy(['-q', out, back]);
        expect(b.status, b.stderr).toBe(0);
        expect(fs.statSync(back).size).toBe(roundUp(disk.size, 512));
        const same = qemu('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', disk.file, back]); // block status: the raw files may be 512 GiB
        expect(same.status, same.out).toBe(0);
        fs.rmSync(back);
      });
    }
  }

  it('--compress stores fewer bytes than the data it compresses, as compressed clusters', () => {
    const source = at('text.raw');
    writeSparseFile(source, 8 * MiB, [{ offset: MiB, data: Buffer.from('compressible text '.repeat(200_000)) }]);
    const out = at('text.qcow2');
    expect(sparsecopy(['-q', '--compress', source, out]).status).toBe(0);
    expectCheckedClean(out);
    expectIdentical(source, out);
    const check = qemu('qemu-img', ['check', out]).out;
    expect(check).toMatch(/100\.00% compressed clusters/);
    expect(fs.statSync(out).size).toBeLessThan(MiB);
  });
});

describe('qcow2 output of large and streamed sources', () => {
  it('a 1 TiB virtual disk with a few MiB of data: fast, clean, memory bounded', () => {
    const source = at('tera.raw');
    writeSparseFile(source, 2 ** 40, [
      { offset: 0, data: patternBytes(MiB, 21) },
      { offset: 2 ** 39 + 12345, data: patternBytes(3 * MiB, 22) },
      { offset: 2 ** 40 - MiB, data: patternBytes(MiB, 23) },
    ]);
    const out = at('tera.qcow2');
    const r = runBounded('sparsecopy', ['-q', source, out], { timeoutMs: 20_000 });
    expectCleanEnding('sparsecopy', r, { exitCode: 0 });
    expect(r.ms).toBeLessThan(10_000);
    if (r.peakRssBytes !== null) expect(r.peakRssBytes).toBeLessThan(200 * MiB);
    expectCheckedClean(out);
    expectIdentical(source, out);
    expect(info(out)['virtual-size']).toBe(2 ** 40);
    expect(fs.statSync(out).size).toBeLessThan(8 * MiB);
    fs.rmSync(source);
    fs.rmSync(out);
  });

  it('from a .gz source (length unknown until its end): the virtual size is the data’s', () => {
    const disk = diskFor(4 * KiB);
    const gz = at('disk.raw.gz');
    fs.writeFileSync(gz, execFileSync('gzip', ['-c', disk.file], { maxBuffer: 64 * MiB }));
    const out = at('from-gz.qcow2');
    const r = sparsecopy(['-q', '--cluster-size', '4K', gz, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(info(out)['virtual-size']).toBe(roundUp(disk.size, 512));
    expectCheckedClean(out);
    expectIdentical(disk.file, out);
  });

  it('--format qcow2 writes qcow2 whatever the name, and --json says so', () => {
    const disk = diskFor(64 * KiB);
    const out = at('named.img');
    const r = sparsecopy(['-q', '--json', '--format', 'qcow2', disk.file, out]);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { outputFormat: string; compressed: boolean; bytesWritten: number };
    expect(summary.outputFormat).toBe('qcow2');
    expect(summary.compressed).toBe(false);
    expect(summary.bytesWritten).toBe(fs.statSync(out).size);
    expect(info(out).format).toBe('qcow2');
  });
});

describe('what qcow2 output refuses, before anything is written', () => {
  const refused = (args: string[], code: number, message: RegExp, created: string[] = []): void => {
    const before = fs.readdirSync(dir).sort();
    const r = runHostile('sparsecopy', args, { codes: [code], timeoutMs: 10_000 });
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(r.stdout.length).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual(before);
    for (const name of created) expect(fs.existsSync(name)).toBe(false);
    expect(tempLeftovers(dir)).toEqual([]);
  };
  const source = (): string => diskFor(512).file;

  // A stream is written in two passes (sparsecopy-qcow2-stream.test.ts), but not compressed.
  it('stdout with --compress', () => refused(['--format', 'qcow2', '--compress', source(), '-'], 28, /^sparsecopy: stdout: --compress cannot write a qcow2 to a stream/));

  it('a FIFO with --compress (no reader: refused without waiting for one)', () => {
    const fifo = at('fifo');
    fs.rmSync(fifo, { force: true });
    execFileSync('mkfifo', [fifo]);
    try {
      refused(['--format', 'qcow2', '--compress', source(), fifo], 28, /fifo: --compress cannot write a qcow2 to a stream/);
    } finally {
      fs.rmSync(fifo);
    }
  });

  it('a .qcow2 name that is a symlink to /dev/null (a character device) with --compress', () => {
    const link = at('null.qcow2');
    fs.rmSync(link, { force: true });
    fs.symlinkSync('/dev/null', link);
    try {
      refused(['--compress', source(), link], 28, /null\.qcow2: --compress cannot write a qcow2 to a stream/);
    } finally {
      fs.rmSync(link);
    }
  });

  it.skipIf(loopUnavailableReason() !== null)('a block device (a loop device), left as it was', async () => {
    const backing = at('loop-backing.img');
    writeSparseFile(backing, 4 * MiB, [{ offset: 0, data: patternBytes(64 * KiB, 5) }]);
    const before = fs.readFileSync(backing);
    await withLoop(backing, (device) => {
      refused(['--format', 'qcow2', source(), device], 28, new RegExp(`${device} \\(a block device\\): qcow2 output needs a regular file or a stream`));
    });
    expect(fs.readFileSync(backing).equals(before)).toBe(true);
  });

  it('--overlay and --seek (a new image is written)', () => {
    const existing = at('existing.qcow2');
    fs.writeFileSync(existing, 'old');
    refused(['-o', source(), existing], 1, /existing\.qcow2: --overlay cannot be used with qcow2 output \(a new qcow2 image is written\)/);
    refused(['-s', '1M', source(), existing], 1, /--seek cannot be used with qcow2 output/);
    expect(fs.readFileSync(existing, 'utf8')).toBe('old');
    fs.rmSync(existing);
  });

  it('--cluster-size that is not a power of two from 512 B to 2 MiB, or not for qcow2', () => {
    refused(['--cluster-size', '3000B', source(), at('a.qcow2')], 1, /bad --cluster-size 3000 bytes: expected a power of two from 512 bytes to 2 MiB/, [at('a.qcow2')]);
    refused(['--cluster-size', '4M', source(), at('a.qcow2')], 1, /bad --cluster-size 4194304 bytes/, [at('a.qcow2')]);
    refused(['--cluster-size', '256B', source(), at('a.qcow2')], 1, /bad --cluster-size 256 bytes/, [at('a.qcow2')]);
    refused(['--cluster-size', '64K', source(), at('a.gz')], 1, /--cluster-size is for qcow2 output, not gzip/, [at('a.gz')]);
  });

  it('a bare --cluster-size is bytes, as qemu-img and fsmaker count it (not -b blocks)', () => {
    const out = at('bare.qcow2');
    const r = sparsecopy(['-q', '-b', '4096', '--cluster-size', '4096', source(), out]);
    expect(r.status, r.stderr).toBe(0);
    expect(info(out)['cluster-size']).toBe(4096);
    fs.rmSync(out);
  });

  it('--compress with raw output', () => refused(['--compress', source(), at('a.img')], 1, /--compress is for qcow2 output, not raw/, [at('a.img')]));

  it('a virtual disk larger than the cluster size can map (qemu’s L1 limit)', () => {
    const huge = at('huge.raw');
    writeSparseFile(huge, 2 ** 40, [{ offset: 0, data: patternBytes(4096, 3) }]);
    refused(['--cluster-size', '512B', huge, at('huge.qcow2')], 15, /a virtual disk of 1099511627776 bytes is larger than a qcow2 with 512-byte clusters can map .*use a larger --cluster-size; nothing written/, [at('huge.qcow2')]);
    fs.rmSync(huge);
  });
});

describe('seeded CLI cases: qcow2 options through real processes', () => {
  it('random cluster sizes, --compress, and destinations: a documented ending, nothing but DEST touched, a clean image on success', () => {
    const random = prng(1101);
    const disk = diskFor(4 * KiB);
    const sizes = ['512B', '1K', '4K', '64K', '2M', '4M', '3000B', '256B', '8', '0', 'x', '128'];
    const work = at('cli-cases');
    fs.mkdirSync(work, { recursive: true });
    let succeeded = 0;
    for (let n = 0; n < 24; n++) {
      const args = ['-q'];
      const size = random() < 0.8 ? sizes[Math.floor(random() * sizes.length)]! : null;
      if (size !== null) args.push('--cluster-size', size);
      if (random() < 0.5) args.push('--compress');
      const dest = path.join(work, random() < 0.8 ? `out-${n}.qcow2` : `out-${n}.gz`);
      const r = runHostile('sparsecopy', [...args, disk.file, dest], { timeoutMs: 10_000 });
      const listing = fs.readdirSync(work);
      if (r.status === 0) {
        expect(listing, `case ${n}: ${args.join(' ')}`).toEqual([path.basename(dest)]);
        if (dest.endsWith('.qcow2')) {
          expectCheckedClean(dest);
          expectIdentical(disk.file, dest);
          succeeded++;
        }
      } else {
        expect(listing, `case ${n}: ${args.join(' ')}`).toEqual([]);
        expect(r.stderr.trimEnd().split('\n'), `case ${n}`).toHaveLength(1);
      }
      fs.rmSync(dest, { force: true });
    }
    expect(succeeded).toBeGreaterThan(3);
  });
});
