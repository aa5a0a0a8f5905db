/**
 * qcow2 to stdout or a pipe (issue 11): two passes over a source that can be read twice, metadata
 * first (as qemu's scripts/qcow2-to-stdout.py writes one), judged by qemu-img check and compare,
 * for two cluster sizes, stdout redirected to a file and through a real pipe, a 1 TiB sparse
 * source (fast, bounded memory), with --backing, with --from-partition, the digest of the virtual
 * disk; the refusals (stdin, a .gz source, --compress, a terminal) before anything is written; and a source
 * that changes between the passes failing rather than writing a wrong image (in-process).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Qcow2StreamSink, mapClusters } from '../src/codec/qcow2-stream-sink.js';
import type { Extent } from '../src/extent/extent.js';
import { ToolError } from '../src/errors.js';
import { SPARSECOPY, patternBytes, readRange, sfdiskWrite, useTempDir, writeSparseFile } from './helpers.js';
import { runHostile } from './hostile.js';
import { expectCheckedClean, expectIdentical, qemu as qemuTool } from './qemu-img.js';

const qemu = (args: string[]) => qemuTool('qemu-img', args);

let dir = '';
useTempDir('sc-qcow2-stream-', (d) => (dir = d));

const KiB = 1024;
const MiB = 1 << 20;
const at = (name: string): string => path.join(dir, name);


/** sparsecopy with stdout redirected to `out` (a regular file, not seekable to the sink). */
function toStdoutFile(args: string[], out: string): { status: number | null; stderr: string } {
  const fd = fs.openSync(out, 'w');
  try {
    const r = spawnSync(process.execPath, [SPARSECOPY, ...args], { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  } finally {
    fs.closeSync(fd);
  }
}

/** sparsecopy ... - | cat > out: a real pipe. */
function throughPipe(args: string[], out: string): { status: number | null; stderr: string } {
  const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', `'${process.execPath}' '${SPARSECOPY}' ${quoted} | cat > '${out}'`], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

/** A disk with data, a zero cluster inside data, holes, data across an L2 boundary (4 KiB clusters) and a partial last sector. */
function disk(name: string, size = 8 * MiB + 3000): string {
  const file = at(name);
  const head = patternBytes(256 * KiB, 1);
  head.fill(0, 64 * KiB, 128 * KiB);
  writeSparseFile(file, size, [
    { offset: 0, data: head },
    { offset: 2 * MiB - 5000, data: patternBytes(10_000, 2) },
    { offset: size - 1000, data: patternBytes(1000, 3) },
  ]);
  return file;
}

describe('qcow2 to stdout and through a pipe: two passes, metadata first', () => {
  for (const clusterSize of [4 * KiB, 64 * KiB]) {
    it(`${clusterSize}-byte clusters: stdout to a file, and | cat >: check clean, identical, the same bytes as written to a file`, () => {
      const source = disk(`disk-${clusterSize}.raw`);
      const viaStdout = at(`stdout-${clusterSize}.qcow2`);
      const a = toStdoutFile(['-q', source, '-', '--format', 'qcow2', '--cluster-size', `${clusterSize}B`], viaStdout);
      expect(a.status, a.stderr).toBe(0);
      expect(a.stderr).toBe('');
      expectCheckedClean(viaStdout);
      expectIdentical(source, viaStdout);

      const viaPipe = at(`pipe-${clusterSize}.qcow2`);
      const b = throughPipe(['-q', source, '-', '--format', 'qcow2', '--cluster-size', `${clusterSize}B`], viaPipe);
      expect(b.status, b.stderr).toBe(0);
      expectCheckedClean(viaPipe);
      expectIdentical(source, viaPipe);
      expect(fs.readFileSync(viaPipe).equals(fs.readFileSync(viaStdout))).toBe(true);

      // Our own reader gives the disk back.
      const back = at(`back-${clusterSize}.raw`);
      const r = spawnSync(process.execPath, [SPARSECOPY, '-q', viaPipe, back], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(readRange(back, 0, 2 * MiB + 10_000).equals(readRange(source, 0, 2 * MiB + 10_000))).toBe(true);
    });
  }

  it('--md5 is of the virtual disk, computed once', () => {
    const source = disk('digest.raw');
    const out = at('digest.qcow2');
    const r = toStdoutFile(['-q', '--md5', source, '-', '--format', 'qcow2'], out);
    expect(r.status, r.stderr).toBe(0);
    const md5 = crypto.createHash('md5').update(fs.readFileSync(source)).digest('hex');
    expect(r.stderr.trim().split('\n')).toEqual([`${md5}  -`]);
    expectIdentical(source, out);
  });

  it('a 1 TiB sparse source through a pipe: fast, bounded memory, clean and identical', () => {
    const TiB = 2 ** 40;
    const source = at('tib.raw');
    writeSparseFile(source, TiB, [
      { offset: 0, data: patternBytes(MiB, 4) },
      { offset: TiB / 2, data: patternBytes(MiB, 5) },
      { offset: TiB - 4096, data: patternBytes(4096, 6) },
    ]);
    const r = runHostile('sparsecopy', ['-q', source, '-', '--format', 'qcow2'], { codes: [0], timeoutMs: 60_000 });
    expect(r.ms).toBeLessThan(30_000);
    const out = at('tib.qcow2');
    fs.writeFileSync(out, r.stdout);
    expectCheckedClean(out);
    expectIdentical(source, out);
    expect(r.stdout.length).toBeLessThan(4 * MiB); // data and metadata only
  });

  it('with --backing: the same layer as written to a file', () => {
    const base = at('base.raw');
    writeSparseFile(base, 4 * MiB, [{ offset: 0, data: patternBytes(2 * MiB, 7) }]);
    const source = at('layer-source.raw');
    fs.copyFileSync(base, source);
    const fd = fs.openSync(source, 'r+');
    fs.writeSync(fd, Buffer.alloc(64 * KiB, 0x11), 0, 64 * KiB, 128 * KiB); // new data
    fs.writeSync(fd, Buffer.alloc(64 * KiB), 0, 64 * KiB, MiB); // zeros over BASE's data
    fs.writeSync(fd, Buffer.alloc(64 * KiB, 0x22), 0, 64 * KiB, 3 * MiB); // data past BASE's
    fs.closeSync(fd);
    const streamed = at('layer-streamed.qcow2'); // beside BASE: the relative name resolves there
    const r = throughPipe(['-q', source, '-', '--format', 'qcow2', '--backing', base], streamed);
    expect(r.status, r.stderr).toBe(0);
    expectCheckedClean(streamed);
    expectIdentical(source, streamed);
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', streamed], { encoding: 'utf8' })) as { start: number; length: number; depth: number; data: boolean; zero: boolean }[];
    const top = map.filter((e) => e.depth === 0).map((e) => [e.start, e.length, e.data ? 'data' : 'zero']);
    expect(top).toEqual([
      [128 * KiB, 64 * KiB, 'data'],
      [MiB, 64 * KiB, 'zero'],
      [3 * MiB, 64 * KiB, 'data'],
    ]);
  });

  it('with --from-partition: the partition as the virtual disk', () => {
    const image = at('parted.img');
    writeSparseFile(image, 16 * MiB, [{ offset: 2 * MiB, data: patternBytes(3 * MiB, 8) }]);
    sfdiskWrite(image, 'label: dos\nstart=2048, size=8192, type=83\n');
    const out = at('partition.qcow2');
    const r = toStdoutFile(['-q', '--from-partition', '1', image, '-', '--format', 'qcow2'], out);
    expect(r.status, r.stderr).toBe(0);
    expectCheckedClean(out);
    const partition = at('partition.raw');
    fs.writeFileSync(partition, readRange(image, MiB, 4 * MiB));
    expectIdentical(partition, out);
  });
});

describe('qcow2 to a stream: refused before anything is written where it cannot be done', () => {
  const source = (): string => disk('refused.raw', MiB);
  const cases: { what: string; args: () => string[]; input?: () => Buffer; message: RegExp }[] = [
    { what: 'stdin as the source', args: () => ['-', '-', '--format', 'qcow2'], input: () => fs.readFileSync(source()), message: /^sparsecopy: stdout: a qcow2 is written to a stream in two passes over the source, and stdin \(a stream\) cannot be read twice/ },
    {
      what: 'a .gz source',
      args: () => {
        fs.writeFileSync(at('refused.raw.gz'), zlib.gzipSync(fs.readFileSync(source())));
        return [at('refused.raw.gz'), '-', '--format', 'qcow2'];
      },
      message: /^sparsecopy: stdout: .*refused\.raw\.gz \(gzip data, decompressed as it is read\) cannot be read twice/,
    },
    { what: '--compress', args: () => [source(), '-', '--format', 'qcow2', '--compress'], message: /^sparsecopy: stdout: --compress cannot write a qcow2 to a stream: .*compressed clusters' sizes and offsets it holds are unknown before compressing/ },
  ];
  it('a terminal (a pty from script(1)): exit 28, one line, and not a byte of the image on it', () => {
    const src = source();
    const r = spawnSync('script', ['-qec', `'${process.execPath}' '${SPARSECOPY}' '${src}' - --format qcow2; echo "exit=$?"`, '/dev/null'], { encoding: 'utf8' });
    const lines = r.stdout.replace(/\r/g, '').trimEnd().split('\n');
    expect(lines).toEqual(['sparsecopy: stdout: is a terminal; a qcow2 image is binary: redirect it to a file or a pipe; nothing written', 'exit=28']);
  });

  for (const c of cases) {
    it(`${c.what}: exit 28, one line, nothing on stdout`, () => {
      const args = c.args();
      const r = runHostile('sparsecopy', args, { codes: [28], input: c.input?.() });
      expect(r.stdout.length).toBe(0);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(c.message);
    });
  }
});

describe('a source that changes between the passes fails (exit 16), never a wrong image', () => {
  const clusterBits = 12;
  const cluster = 1 << clusterBits;
  async function* extentsOf(pieces: { offset: number; data?: Buffer; length?: number }[]): AsyncGenerator<Extent> {
    for (const p of pieces) yield { offset: p.offset, length: p.data?.length ?? p.length!, ...(p.data ? { data: p.data } : {}) };
  }
  const first = [{ offset: 0, data: Buffer.alloc(cluster, 1) }, { offset: cluster, length: 3 * cluster }];

  async function secondPass(pieces: { offset: number; data?: Buffer; length?: number }[]): Promise<{ error: unknown; bytes: number }> {
    const map = await mapClusters(extentsOf(first), clusterBits, null);
    const file = at(`changed-${Math.random().toString(36).slice(2)}.qcow2`);
    const fd = fs.openSync(file, 'w');
    try {
      const sink = new Qcow2StreamSink({ fd, name: 'stdout', sourceName: 'disk.img', clusterBits, map });
      for await (const e of extentsOf(pieces)) await sink.write(e);
      await sink.close();
      return { error: null, bytes: fs.fstatSync(fd).size };
    } catch (error) {
      return { error, bytes: fs.fstatSync(fd).size };
    } finally {
      fs.closeSync(fd);
    }
  }

  it('the same extents again: no error, the image the layout promised', async () => {
    const { error, bytes } = await secondPass(first);
    expect(error).toBeNull();
    expect(bytes).toBe(6 * cluster); // header, refcount table, refcount block, L1, one L2, one data cluster
  });

  it('data where the first pass saw zeros', async () => {
    const { error } = await secondPass([{ offset: 0, data: Buffer.alloc(cluster, 1) }, { offset: 2 * cluster, data: Buffer.alloc(cluster, 2) }, { offset: 3 * cluster, length: cluster }]);
    expect(error).toBeInstanceOf(ToolError);
    expect((error as ToolError).exitCode).toBe(16);
    expect((error as ToolError).message).toBe(
      `disk.img: changed while a qcow2 was written from it to stdout in two passes: guest cluster 2 (bytes ${2 * cluster} to ${3 * cluster}) was zeros (unallocated) in the first pass and is data in the second; the output sent is incomplete and must be discarded`,
    );
  });

  it('zeros where the first pass saw data', async () => {
    const { error } = await secondPass([{ offset: 0, length: 4 * cluster }]);
    expect((error as ToolError).code).toBe('SOURCE_READ');
    expect((error as ToolError).message).toMatch(/guest cluster 0 \(bytes 0 to 4096\) was data in the first pass and is zeros \(unallocated\) in the second/);
  });

  it('a disk that grew', async () => {
    const { error } = await secondPass([...first, { offset: 4 * cluster, length: cluster }]);
    expect((error as ToolError).code).toBe('SOURCE_READ');
    expect((error as ToolError).message).toMatch(/it ended at byte 20480 with 1 data clusters, the first pass at byte 16384 with 1/);
  });
});
