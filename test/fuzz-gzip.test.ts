/**
 * Seeded fuzzing of gzip input: thousands of corruptions (bit flips, random bytes, zero or 0xff
 * runs, 16/32/64-bit field edits) of real gzip files (single and multi-member, FEXTRA/FNAME/
 * FCOMMENT/FHCRC headers, stored and compressed blocks, pigz output) through the in-process
 * gzip source (the decoder thread), from a file and as a stream: every case ends in the original bytes (a harmless
 * edit, e.g. in FNAME) or in CORRUPT_INPUT, with the same message from both, in bounded time
 * and memory. Then a few dozen through the command, to a file, stdout and a loop device:
 * documented exit codes, nothing touched but the destination, a failed file destination left
 * as it was with no temporary file. And a table of bad options and special files.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identifyImage } from '../src/format/identify.js';
import { openSourceOn } from '../src/sparsecopy/source.js';
import { ToolError } from '../src/errors.js';
import { openInput } from '../src/io/target.js';
import { crc32, loopUnavailableReason, patternBytes, prng, readRange, tempLeftovers, useTempDir, withLoop } from './helpers.js';
import { mutants, runHostile } from './hostile.js';

const KiB = 1024;
let dir = '';
useTempDir('sc-fuzz-gz-', (d) => (dir = d));

/** Text-like bytes with zero runs: compressible, and zero detection has work to do. */
function imageBytes(length: number, seed: number): Buffer {
  const random = prng(seed);
  const b = Buffer.alloc(length);
  for (let at = 0; at < length; ) {
    const run = 256 + Math.floor(random() * 4096);
    if (random() < 0.6) Buffer.from(patternBytes(run, seed + at).toString('base64')).copy(b, at, 0, Math.min(run, length - at));
    at += run;
  }
  return b;
}

/** A member with every optional header field (RFC 1952 2.3): FEXTRA, FNAME, FCOMMENT, FHCRC. */
function memberWithHeaders(data: Buffer, level: number): Buffer {
  const extra = Buffer.concat([Buffer.from('Ap'), Buffer.from([6, 0]), Buffer.from('abcdef')]);
  const head = Buffer.concat([
    Buffer.from([0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 1, 2, 3, 4, 0, 3]),
    Buffer.from([extra.length & 0xff, extra.length >> 8]),
    extra,
    Buffer.from('image.img\0', 'latin1'),
    Buffer.from('a comment\0', 'latin1'),
  ]);
  const hcrc = Buffer.alloc(2);
  hcrc.writeUInt16LE(crc32(head) & 0xffff);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(data), 0);
  trailer.writeUInt32LE(data.length % 2 ** 32, 4);
  return Buffer.concat([head, hcrc, zlib.deflateRawSync(data, { level }), trailer]);
}

interface Sample {
  name: string;
  gz: Buffer;
  raw: Buffer;
  /** Where members meet: mutated more often (a member after a zeroed header byte must not vanish). */
  joints?: number[];
}

function samples(): Sample[] {
  const a = imageBytes(48 * KiB, 1);
  const b = imageBytes(24 * KiB, 2);
  const list: Sample[] = [
    { name: 'single member', gz: zlib.gzipSync(a), raw: a },
    { name: 'two members', gz: Buffer.concat([zlib.gzipSync(a, { level: 9 }), zlib.gzipSync(b, { level: 1 })]), raw: Buffer.concat([a, b]), joints: [zlib.gzipSync(a, { level: 9 }).length] },
    { name: 'FEXTRA FNAME FCOMMENT FHCRC', gz: memberWithHeaders(b, 6), raw: b },
    { name: 'stored blocks', gz: zlib.gzipSync(b.subarray(0, 12 * KiB), { level: 0 }), raw: b.subarray(0, 12 * KiB) },
  ];
  const pigz = spawnSync('pigz', ['-c', '-b', '32', '-p', '2'], { input: a });
  if (pigz.status === 0) list.push({ name: 'pigz', gz: pigz.stdout, raw: a });
  else console.warn('pigz not installed: its output is not among the fuzzed samples');
  return list;
}

type Outcome = { ok: true } | { ok: false; message: string };

/**
 * Runs the source chain over `file`, comparing its output with `raw` as it comes (nothing is
 * kept); as a stream when `stream` (sequential reads, size unknown), else as a seekable file.
 */
async function inflate(file: string, raw: Buffer, stream: boolean): Promise<{ outcome: Outcome; matches: boolean }> {
  const input = openInput(file);
  // As stdin from a pipe: sequential reads, size unknown, the head sniffed for the format first.
  if (stream) Object.assign(input, { seekable: false, size: null, kind: 'pipe' });
  let matches = true;
  let total = 0;
  let source: Awaited<ReturnType<typeof openSourceOn>> | null = null;
  try {
    source = await openSourceOn(input, { chunkBytes: 2 << 20 });
    for await (const e of source.layer.extents({ start: 0, end: null })) {
      if (e.data && (e.offset + e.length > raw.length || !e.data.equals(raw.subarray(e.offset, e.offset + e.length)))) matches = false;
      total = e.offset + e.length;
      e.release?.();
    }
    return { outcome: { ok: true }, matches: matches && total === raw.length };
  } catch (err) {
    if (!(err instanceof ToolError) || err.code !== 'CORRUPT_INPUT') throw err;
    return { outcome: { ok: false, message: err.message.replace(input.name, 'SOURCE') }, matches: false };
  } finally {
    // A source that failed to open has closed its transport already.
    if (source) await source.close();
  }
}

describe('gzip source on seeded mutants (in process)', () => {
  const PER_SAMPLE = 700;
  it(`${PER_SAMPLE} mutants of each sample, header and trailer regions included: original bytes or CORRUPT_INPUT, alike from a file and a stream`, async () => {
    const counts = { cases: 0, harmless: 0, corrupt: 0 };
    const file = path.join(dir, 'mutant.gz');
    let slowest = 0;
    let mostHeap = 0;
    for (const [index, sample] of samples().entries()) {
      const headerEnd = 40;
      const all = [
        ...mutants(sample.gz, 1000 + index, PER_SAMPLE - 200),
        ...mutants(sample.gz, 2000 + index, 100, { to: headerEnd }),
        ...mutants(sample.gz, 3000 + index, 100, { from: sample.gz.length - 16 }),
        ...(sample.joints ?? []).flatMap((joint) => [...mutants(sample.gz, 4000 + joint, 100, { from: joint - 12, to: joint + 12 })]),
      ];
      for (const mutant of all) {
        fs.writeFileSync(file, mutant.bytes);
        const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
        const started = performance.now();
        // A mutant that lost the gzip signature is no longer gzip: it is copied as the raw bytes it is.
        const expected = identifyImage(mutant.bytes) === 'gzip' ? sample.raw : mutant.bytes;
        const fromFile = await inflate(file, expected, false);
        const fromStream = await inflate(file, expected, true);
        slowest = Math.max(slowest, performance.now() - started);
        mostHeap = Math.max(mostHeap, process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heapBefore);
        const what = `${sample.name}, ${mutant.description}`;
        if (fromFile.outcome.ok) {
          expect(fromFile.matches, `${what}: success with other bytes`).toBe(true);
          counts.harmless++;
        } else {
          counts.corrupt++;
        }
        expect(fromStream.outcome, `${what}: file and stream disagree`).toEqual(fromFile.outcome);
        expect(fromStream.matches, what).toBe(fromFile.matches);
        counts.cases++;
      }
    }
    expect(slowest, 'slowest case, ms').toBeLessThan(2000);
    expect(mostHeap, 'largest heap growth of a case').toBeLessThan(64 << 20);
    // Both outcomes occur: the corpus is neither all harmless nor all fatal.
    expect(counts.harmless).toBeGreaterThan(20);
    expect(counts.corrupt).toBeGreaterThan(counts.cases / 2);
  });
});

/** Every file in `d` with its bytes' CRC and mtime: what a run must leave alone. */
function listing(d: string, except: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(d).sort()) {
    const p = path.join(d, name);
    if (except.includes(p)) continue;
    const st = fs.lstatSync(p);
    out[name] = st.isFile() ? `${crc32(fs.readFileSync(p))} ${st.mtimeMs}` : st.isSymbolicLink() ? 'link' : 'other';
  }
  return out;
}

describe('sparsecopy on mutants (processes): documented codes, nothing touched but the destination', () => {
  let sample: Sample;
  let cases: { description: string; file: string }[] = [];
  let work = '';
  beforeAll(() => {
    sample = samples()[1]!; // two members
    work = path.join(dir, 'cli');
    fs.mkdirSync(work);
    cases = [...mutants(sample.gz, 77, 24)].map((m, i) => {
      const file = path.join(work, `m${i}.gz`);
      fs.writeFileSync(file, m.bytes);
      return { description: m.description, file };
    });
  });

  it('to a file: success is the original; a failure leaves the old file and no temporary file', () => {
    for (const c of cases) {
      const dst = path.join(work, 'dst.img');
      fs.writeFileSync(dst, 'the old destination');
      const before = listing(work, [dst]);
      const r = runHostile('sparsecopy', ['-q', c.file, dst], { what: c.description, codes: [0, 18] });
      if (r.status === 0) expect(fs.readFileSync(dst).equals(sample.raw), c.description).toBe(true);
      else expect(fs.readFileSync(dst, 'utf8'), c.description).toBe('the old destination');
      expect(tempLeftovers(work)).toEqual([]);
      expect(listing(work, [dst]), c.description).toEqual(before);
    }
  });

  it('to stdout: success is the original bytes', () => {
    for (const c of cases.slice(0, 12)) {
      const before = listing(work);
      const r = runHostile('sparsecopy', ['-q', c.file, '-'], { what: c.description, codes: [0, 18] });
      if (r.status === 0) expect(r.stdout.equals(sample.raw), c.description).toBe(true);
      expect(listing(work), c.description).toEqual(before);
    }
  });

  const noLoop = loopUnavailableReason();
  it.skipIf(noLoop !== null)('to a loop device: success writes the original; nothing else changes', async () => {
    const backing = path.join(dir, 'loop-backing.img');
    fs.writeFileSync(backing, Buffer.alloc(256 * KiB, 0xee));
    await withLoop(backing, (device) => {
      for (const c of cases.slice(0, 12)) {
        const before = listing(work);
        const r = runHostile('sparsecopy', ['-q', c.file, device], { what: c.description, codes: [0, 18] });
        if (r.status === 0) expect(readRange(device, 0, sample.raw.length).equals(sample.raw), c.description).toBe(true);
        expect(listing(work), c.description).toEqual(before);
      }
    });
  });
});

describe('bad options and special files (processes): a documented code, never a stack trace or exit 70', () => {
  let src = '';
  let socketServer: net.Server | null = null;
  let socketPath = '';
  beforeAll(async () => {
    src = path.join(dir, 'opt-src.img');
    fs.writeFileSync(src, Buffer.concat([imageBytes(40 * KiB, 9), Buffer.alloc(24 * KiB)]));
    socketPath = path.join(dir, 'socket');
    socketServer = net.createServer();
    await new Promise<void>((resolve) => socketServer!.listen(socketPath, resolve));
  });
  afterAll(() => socketServer?.close());

  const dst = (): string => path.join(dir, `opt-dst-${Math.floor(Math.random() * 1e9)}`);
  const valueCases: [string, string][] = [
    ['-b', '0'], ['-b', '1B'], ['-b', '7B'], ['-b', '3'], ['-b', '4G'], ['-b', '4P'], ['-b', '1E'], ['-b', '-1'], ['-b', '1.5'],
    ['-m', '0'], ['-m', '1B'], ['-m', '99999999999E'], ['-m', 'x'],
    ['-s', '1'], ['-s', '4P'], ['-s', '1E'], ['-s', '-3'],
    ['-f', '0'], ['-f', '1P'], ['-f', '9E'],
    ['-y', '1B'], ['-y', '0'], ['-y', 'K'],
    ['--pad', '0'], ['--pad', '1B'], ['--pad', '3B'], ['--pad', '4P'], ['--pad', '1E'],
    ['--gzip-level', '0'], ['--zero', 'sometimes'], ['--from-partition', '0'], ['--to-partition', 'x'],
  ];
  it.each(valueCases)('%s %s', (option, value) => {
    const out = dst();
    runHostile('sparsecopy', ['-q', option, value, src, out]);
    runHostile('sparsecopy', ['-q', '-o', option, value, src, out]);
    fs.rmSync(out, { force: true });
  });

  it('special files as source and destination', () => {
    const d = path.join(dir, 'a-directory');
    fs.mkdirSync(d, { recursive: true });
    const table: [string[], number[]][] = [
      [['/dev/null', dst()], [0]],
      [['-m', '1M', '/dev/zero', dst()], [0]],
      [['-m', '1M', '/dev/zero', '/dev/null'], [0]],
      [[src, '/dev/null'], [0]],
      [[src, '/dev/zero'], [0]],
      [[src, '/dev/full'], [9]],
      [['-m', '1M', '/dev/zero', '/dev/full'], [9]],
      [[src, '--gzip', '/dev/full'], [9]],
      [[d, dst()], [2]],
      [[src, d], [3]],
      [[socketPath, dst()], [2]],
      [[src, socketPath], [3]],
      [['/dev/full', '-m', '1K', dst()], [0, 16]],
      [['-o', '/dev/null', '/dev/null'], [0]],
    ];
    for (const [args, codes] of table) runHostile('sparsecopy', ['-q', ...args], { codes });
  });

  it('a FIFO as source (fed by a writer) and as destination (drained by a reader)', async () => {
    const fifo = path.join(dir, 'fifo');
    spawnSync('mkfifo', [fifo]);
    const writer = spawn('sh', ['-c', `head -c 300000 /dev/urandom > '${fifo}'`]);
    const out = dst();
    runHostile('sparsecopy', ['-q', fifo, out], { codes: [0] });
    await new Promise((r) => writer.on('exit', r));
    expect(fs.statSync(out).size).toBe(300000);
    const reader = spawn('sh', ['-c', `wc -c < '${fifo}'`]);
    let counted = '';
    reader.stdout.on('data', (b: Buffer) => (counted += b.toString()));
    const done = new Promise((r) => reader.on('close', r)); // after its output is read
    runHostile('sparsecopy', ['-q', src, fifo], { codes: [0] });
    await done;
    expect(Number(counted.trim())).toBe(fs.statSync(src).size);
  });
});
