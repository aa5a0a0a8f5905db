/**
 * GzipSink driven with extent sequences into temporary files, checked with the real gzip tools
 * (gzip -t, gzip -dc, gzip -l) and, for the multi-GiB case, node's own inflater.
 */
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32 } from '../src/codec/crc32.js';
import { ZERO_UNIT_BYTES } from '../src/codec/deflate-zeros.js';
import { FINAL_EMPTY_BLOCK, GZIP_FLAGS, gzipHeader, gzipTrailer, parseGzipHeader } from '../src/codec/gzip-format.js';
import { GzipSink, MAX_PIECES_IN_FLIGHT, PIECE_BYTES, zeroRunThreshold } from '../src/codec/gzip-sink.js';
import type { Extent } from '../src/extent/extent.js';
import { ToolError } from '../src/errors.js';
import { makeTempDir } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const MIN_ZERO_RUN_BYTES = zeroRunThreshold(6);

let dir: string;
beforeAll(() => {
  dir = makeTempDir('sc-gzip-sink-');
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A spec of the uncompressed stream: data buffers and zero runs (holes), in order. */
type Part = Buffer | number;

/** Text-like bytes: words from a small vocabulary, compressible about 3:1 like real text. */
function textBytes(length: number, seed = 1): Buffer {
  let x = seed >>> 0 || 1;
  const rnd = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  const words: string[] = [];
  for (let i = 0; i < 800; i++) {
    const len = 2 + Math.floor(rnd() * 9);
    let w = '';
    for (let j = 0; j < len; j++) w += String.fromCharCode(97 + Math.floor(rnd() * 26));
    words.push(w);
  }
  const parts: string[] = [];
  let size = 0;
  while (size < length) {
    const w = words[Math.floor(rnd() ** 2 * words.length)]!; // skewed: frequent words
    const s = rnd() < 0.08 ? `${w}.\n` : `${w} `;
    parts.push(s);
    size += s.length;
  }
  return Buffer.from(parts.join('').slice(0, length), 'latin1');
}

/** Extents for the parts, as a source makes them: offsets contiguous from 0. */
function extentsOf(parts: Part[], released?: { count: number }): Extent[] {
  const out: Extent[] = [];
  let offset = 0;
  for (const p of parts) {
    const length = typeof p === 'number' ? p : p.length;
    const e: Extent = typeof p === 'number' ? { offset, length } : { offset, length, data: p };
    if (released) e.release = () => void released.count++;
    out.push(e);
    offset += length;
  }
  return out;
}

function expectedBytes(parts: Part[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'number' ? Buffer.alloc(p) : p)));
}

let fileNumber = 0;

async function compress(extents: Extent[], options: { level?: number; position?: number | null; prefix?: Buffer } = {}) {
  const file = path.join(dir, `out-${++fileNumber}.gz`);
  if (options.prefix) fs.writeFileSync(file, options.prefix);
  const fd = fs.openSync(file, options.prefix ? 'r+' : 'w');
  const sink = new GzipSink({ fd, name: file, level: options.level, position: options.position });
  try {
    for (const e of extents) await sink.write(e);
    const counters = await sink.close();
    return { file, counters, sink, compressedBytes: sink.compressedBytes };
  } finally {
    fs.closeSync(fd);
  }
}

function gzipTest(file: string): void {
  const r = spawnSync('gzip', ['-t', file], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
}

function gzipDecompress(file: string, tool = 'gzip'): Buffer {
  const r = spawnSync(tool, ['-dc', file], { maxBuffer: 1 << 30 });
  expect(r.stderr.toString()).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

/** gzip -l's uncompressed size (ISIZE). */
function gzipListedSize(file: string): number {
  const r = spawnSync('gzip', ['-l', file], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  const fields = r.stdout.trim().split('\n')[1]!.trim().split(/\s+/);
  return Number(fields[1]);
}

/** Every check for a case small enough to hold in memory. */
async function checkCase(parts: Part[], options: { level?: number } = {}) {
  const expected = expectedBytes(parts);
  const released = { count: 0 };
  const extents = extentsOf(parts, released);
  const result = await compress(extents, options);
  expect(released.count).toBe(extents.length);
  gzipTest(result.file);
  const out = gzipDecompress(result.file);
  expect(out.length).toBe(expected.length);
  expect(out.equals(expected)).toBe(true);
  expect(spawnSync('zcat', [result.file], { maxBuffer: 1 << 30 }).stdout.equals(expected)).toBe(true);
  expect(gzipListedSize(result.file)).toBe(expected.length);
  expect(result.sink.crc).toBe(crc32(expected));
  expect(result.sink.compressedBytes).toBe(fs.statSync(result.file).size);
  expect(result.counters.real + result.counters.sparse).toBe(expected.length);
  expect(result.counters.nonzerodest).toBe(0);
  expect(result.counters.checkedBytes).toBe(0);
  return result;
}

describe('gzip framing', () => {
  it('writes the header and trailer fields', () => {
    const h = gzipHeader({ level: 6, mtime: 0x01020304 });
    expect([...h]).toEqual([0x1f, 0x8b, 8, 0, 4, 3, 2, 1, 0, 3]);
    expect(gzipHeader({ level: 9 })[8]).toBe(2);
    expect(gzipHeader({ level: 1 })[8]).toBe(4);
    expect(gzipHeader({ level: 5 })[8]).toBe(0);
    expect(gzipHeader({ level: 9 }).readUInt32LE(4)).toBe(0);
    const t = gzipTrailer(0xdeadbeef, 6 * GiB + 5);
    expect(t.readUInt32LE(0)).toBe(0xdeadbeef);
    expect(t.readUInt32LE(4)).toBe((6 * GiB + 5) % 2 ** 32);
    expect(gzipTrailer(1, 2 ** 32).readUInt32LE(4)).toBe(0);
    expect(gzipTrailer(1, 2 ** 53 - 1).readUInt32LE(4)).toBe(0xffffffff);
  });

  it('header + final empty block + trailer is a valid empty gzip file', () => {
    const gz = Buffer.concat([gzipHeader({ level: 6 }), FINAL_EMPTY_BLOCK, gzipTrailer(0, 0)]);
    expect(zlib.gunzipSync(gz).length).toBe(0);
  });

  it('parses headers written by gzip, with every optional field', () => {
    expect(parseGzipHeader(gzipHeader({ level: 9, mtime: 77 }))).toMatchObject({ ok: true, headerLength: 10, flags: 0, mtime: 77, xfl: 2, os: 3 });
    // gzip with a name (FNAME).
    const file = path.join(dir, 'named.txt');
    fs.writeFileSync(file, 'hello\n');
    const named = spawnSync('gzip', ['-c', '-N', file]).stdout;
    const p = parseGzipHeader(named);
    expect(p).toMatchObject({ ok: true, flags: GZIP_FLAGS.FNAME, name: 'named.txt', headerLength: 10 + 'named.txt'.length + 1 });
    expect(zlib.inflateRawSync(named.subarray(p.ok ? p.headerLength : 0)).toString()).toBe('hello\n');

    // Hand-made: FEXTRA + FNAME + FCOMMENT + FHCRC.
    const fixed = Buffer.from([0x1f, 0x8b, 8, GZIP_FLAGS.FEXTRA | GZIP_FLAGS.FNAME | GZIP_FLAGS.FCOMMENT | GZIP_FLAGS.FHCRC, 1, 0, 0, 0, 0, 3]);
    const extra = Buffer.from([4, 0, 0xaa, 0xbb, 0xcc, 0xdd]);
    const body = Buffer.concat([fixed, extra, Buffer.from('n\u00e9.img\0', 'latin1'), Buffer.from('a comment\0')]);
    const hcrc = Buffer.alloc(2);
    hcrc.writeUInt16LE(crc32(body) & 0xffff);
    const full = Buffer.concat([body, hcrc, Buffer.from([0x03, 0x00]), gzipTrailer(0, 0)]);
    expect(zlib.gunzipSync(full).length).toBe(0); // zlib agrees the header is valid
    const q = parseGzipHeader(full);
    expect(q).toMatchObject({ ok: true, headerLength: body.length + 2, mtime: 1, name: 'n\u00e9.img', comment: 'a comment' });
    expect(q.ok && q.extra?.equals(Buffer.from([0xaa, 0xbb, 0xcc, 0xdd]))).toBe(true);
    // Every proper prefix of the header is "truncated", never a wrong answer.
    for (let n = 0; n < body.length + 2; n++) expect(parseGzipHeader(full.subarray(0, n)), `prefix ${n}`).toMatchObject({ ok: false, reason: 'truncated' });

    const badCrc = Buffer.from(full);
    badCrc[body.length] = badCrc[body.length]! ^ 1;
    expect(parseGzipHeader(badCrc)).toMatchObject({ ok: false, reason: 'header-crc-mismatch' });
  });

  it('fails typed on other input', () => {
    expect(parseGzipHeader(Buffer.from('hello world'))).toMatchObject({ ok: false, reason: 'not-gzip' });
    expect(parseGzipHeader(Buffer.from([0x1f, 0x8c, 8]))).toMatchObject({ ok: false, reason: 'not-gzip' });
    expect(parseGzipHeader(Buffer.from([0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 3]))).toMatchObject({ ok: false, reason: 'unsupported-method' });
    expect(parseGzipHeader(Buffer.from([0x1f, 0x8b, 8, 0x20, 0, 0, 0, 0, 0, 3]))).toMatchObject({ ok: false, reason: 'reserved-flags' });
    expect(parseGzipHeader(Buffer.from([0x1f]))).toMatchObject({ ok: false, reason: 'truncated' });
    expect(parseGzipHeader(Buffer.alloc(0))).toMatchObject({ ok: false, reason: 'truncated' });
  });
});

describe('GzipSink', () => {
  it('empty input', async () => {
    const r = await checkCase([]);
    expect(r.counters).toMatchObject({ real: 0, sparse: 0 });
  });

  it('only zeros: long, short, and exactly at the threshold', async () => {
    for (const n of [1, 5, 7, MIN_ZERO_RUN_BYTES - 1, MIN_ZERO_RUN_BYTES, 1_000_003, ZERO_UNIT_BYTES, 3 * ZERO_UNIT_BYTES + 12_345]) {
      const r = await checkCase([n]);
      if (n >= MIN_ZERO_RUN_BYTES) expect(r.counters).toMatchObject({ real: 0, sparse: n });
      else expect(r.counters).toMatchObject({ real: n, sparse: 0 });
    }
  });

  it('a single 1-byte data extent, and 1 byte between holes', async () => {
    await checkCase([Buffer.from([0x42])]);
    await checkCase([2 * MiB + 1, Buffer.from([0xff]), 3 * MiB + 7]);
  });

  it('holes at the start, middle and end with odd lengths', async () => {
    const parts: Part[] = [1_000_003, textBytes(12_345, 2), 5 * MiB + 3, pseudoRandom(700_001, 3), 129 * KiB + 1, textBytes(3 * MiB + 17, 4), 65 * KiB + 1, textBytes(5, 4), 7 * MiB + 13];
    const r = await checkCase(parts);
    const long = [1_000_003, 5 * MiB + 3, 129 * KiB + 1, 7 * MiB + 13].reduce((a, b) => a + b, 0);
    expect(r.counters.sparse).toBe(long);
    expect(r.compressedBytes).toBeLessThan(expectedBytes(parts).length / 2);
  });

  it('short zero runs between data are compressed with it', async () => {
    const parts: Part[] = [];
    for (let i = 0; i < 40; i++) parts.push(textBytes(4096 + i * 97, 10 + i), i % 3 === 0 ? 4096 : 512 + i);
    const r = await checkCase(parts);
    expect(r.counters.sparse).toBe(0);
  });

  it('consecutive zero extents are one run (a hole, then zeros found in the next chunk)', async () => {
    const half = MIN_ZERO_RUN_BYTES / 2 + 1;
    const r = await checkCase([textBytes(5000, 1), half, half, textBytes(5000, 2), half, textBytes(3, 3)]);
    expect(r.counters.sparse).toBe(2 * half);
    expect(r.counters.real).toBe(10_003 + half);
  });

  it('data larger than several pieces, in extents not aligned to pieces', async () => {
    const big = textBytes(7 * PIECE_BYTES + 12_345, 5);
    const parts: Part[] = [];
    for (let at = 0; at < big.length; ) {
      const n = Math.min(big.length - at, 333_333);
      parts.push(big.subarray(at, at + n));
      at += n;
    }
    await checkCase(parts);
    await checkCase([pseudoRandom(5 * PIECE_BYTES + 1, 6)]); // one extent spanning many pieces
  });

  it('random (incompressible) and text-like data mixed with holes', async () => {
    await checkCase([pseudoRandom(3 * MiB, 7), 2 * MiB, textBytes(2 * MiB + 1, 8), 100, pseudoRandom(5, 9), MIN_ZERO_RUN_BYTES]);
  });

  it('offset gaps are zeros', async () => {
    const a = textBytes(1000, 1);
    const b = textBytes(2000, 2);
    const released = { count: 0 };
    const extents: Extent[] = [
      { offset: 3 * MiB, length: a.length, data: a, release: () => void released.count++ },
      { offset: 3 * MiB + a.length + 10, length: b.length, data: b },
      { offset: 4 * MiB, length: 5 },
    ];
    const r = await compress(extents);
    gzipTest(r.file);
    expect(gzipDecompress(r.file).equals(Buffer.concat([Buffer.alloc(3 * MiB), a, Buffer.alloc(10), b, Buffer.alloc(4 * MiB + 5 - (3 * MiB + a.length + 10 + b.length))]))).toBe(true);
    expect(released.count).toBe(1);
    const bad = new GzipSink({ fd: -1, name: 'x', position: null });
    await expect(bad.write({ offset: 0, length: 0 }).then(() => bad.close())).rejects.toThrow(/^x: write failed at byte 0: /); // a bad descriptor, found on the header
  });

  it('levels 1 and 9 produce valid output; 9 is smaller; XFL records them', async () => {
    const parts: Part[] = [textBytes(4 * MiB, 11), 2 * MiB, textBytes(MiB, 12)];
    const fast = await checkCase(parts, { level: 1 });
    const best = await checkCase(parts, { level: 9 });
    expect(fs.readFileSync(fast.file)[8]).toBe(4);
    expect(fs.readFileSync(best.file)[8]).toBe(2);
    expect(best.compressedBytes).toBeLessThan(fast.compressedBytes);
    // The zero-run threshold follows the level: 200 KiB is compressed at level 1, a block at 6.
    expect((await checkCase([textBytes(1000, 1), 200 * KiB, textBytes(1000, 2)], { level: 1 })).counters.sparse).toBe(0);
    expect((await checkCase([textBytes(1000, 1), 200 * KiB, textBytes(1000, 2)], { level: 6 })).counters.sparse).toBe(200 * KiB);
    await checkCase(parts, { level: 0 }); // stored blocks: still a valid stream
  });

  it('pieces use the 32 KiB dictionary: text within 3% of gzip -6', async () => {
    const text = textBytes(8 * MiB, 13);
    const r = await checkCase(extentsChunks(text, 512 * KiB));
    const gzipSize = spawnSync('gzip', ['-6', '-c'], { input: text, maxBuffer: 1 << 30 }).stdout.length;
    expect(r.compressedBytes / gzipSize).toBeLessThan(1.03);
    expect(r.compressedBytes / gzipSize).toBeGreaterThan(0.97);
  });

  it('pieces use the dictionary: a repeated 20 KiB block costs once, not once per piece', async () => {
    const block = pseudoRandom(20 * KiB, 14);
    const data = Buffer.concat(new Array<Buffer>(8 * 52).fill(block)); // 8.1 MiB: 9 pieces
    const r = await checkCase([data]);
    const gzipSize = spawnSync('gzip', ['-6', '-c'], { input: data, maxBuffer: 1 << 30 }).stdout.length;
    // Without a dictionary every piece would have to spell the random block out again.
    let withoutDictionary = 0;
    for (let at = 0; at < data.length; at += PIECE_BYTES) withoutDictionary += zlib.deflateRawSync(data.subarray(at, at + PIECE_BYTES)).length;
    expect(withoutDictionary).toBeGreaterThan(9 * 20 * KiB);
    expect(r.compressedBytes).toBeLessThan(gzipSize * 1.03 + 1024);
    expect(r.compressedBytes).toBeLessThan(withoutDictionary / 2.5); // measured: 83 KB vs 250 KB
  });

  it('writes at a position in the file, leaving what is before it', async () => {
    const prefix = Buffer.from('not part of the member: 4096 bytes'.padEnd(4096, '.'));
    const parts: Part[] = [MiB, textBytes(100_000, 15), 3];
    const r = await compress(extentsOf(parts), { position: prefix.length, prefix });
    const all = fs.readFileSync(r.file);
    expect(all.subarray(0, prefix.length).equals(prefix)).toBe(true);
    expect(zlib.gunzipSync(all.subarray(prefix.length)).equals(expectedBytes(parts))).toBe(true);
    expect(r.compressedBytes).toBe(all.length - prefix.length);
  });

  it('writes sequentially (position null) into a pipe read by gzip -dc', async () => {
    const parts: Part[] = [textBytes(3 * MiB, 16), 10 * MiB, pseudoRandom(MiB, 17), 9];
    const expected = expectedBytes(parts);
    const fifo = path.join(dir, 'pipe');
    spawnSync('mkfifo', [fifo]);
    const child = spawn('sh', ['-c', `gzip -dc < '${fifo}' | sha256sum`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const fd = fs.openSync(fifo, 'w'); // blocks until the reader opens it (the child is running)
    const sink = new GzipSink({ fd, name: 'pipe', position: null });
    for (const e of extentsOf(parts)) await sink.write(e);
    await sink.close();
    fs.closeSync(fd);
    expect(await exited).toBe(0);
    expect(stdout.split(' ')[0]).toBe(crypto.createHash('sha256').update(expected).digest('hex'));
  });

  it('bounds the pieces in flight (backpressure)', async () => {
    const fd = fs.openSync(path.join(dir, 'bp.gz'), 'w');
    const sink = new GzipSink({ fd, name: 'bp.gz' });
    const inFlight = (): number => (sink as unknown as { piecesQueued: number }).piecesQueued;
    let max = 0;
    for (const e of extentsOf(extentsChunks(textBytes(16 * MiB, 18), 256 * KiB))) {
      await sink.write(e);
      max = Math.max(max, inFlight());
    }
    await sink.close();
    fs.closeSync(fd);
    expect(max).toBeGreaterThan(1); // several compress at once
    expect(max).toBeLessThanOrEqual(MAX_PIECES_IN_FLIGHT);
    gzipTest(path.join(dir, 'bp.gz'));
  });

  it('reports a failed write as a ToolError WRITE', async () => {
    const fd = fs.openSync('/dev/full', 'w');
    const sink = new GzipSink({ fd, name: '/dev/full', position: null });
    try {
      const err = await sink
        .write({ offset: 0, length: 10, data: Buffer.alloc(10, 1) })
        .then(() => sink.close())
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(ToolError);
      expect((err as ToolError).code).toBe('WRITE');
      expect((err as ToolError).message).toBe('/dev/full: write failed at byte 0: no space left on device');
    } finally {
      await sink.abort();
      fs.closeSync(fd);
    }
  });

  it('abort while pieces compress: waits for them and never throws', async () => {
    const fd = fs.openSync(path.join(dir, 'abort.gz'), 'w');
    const sink = new GzipSink({ fd, name: 'abort.gz', level: 9 });
    let released = 0;
    for (const e of extentsOf(extentsChunks(pseudoRandom(4 * MiB, 19), MiB))) await sink.write({ ...e, release: () => void released++ });
    await expect(sink.abort()).resolves.toBeUndefined();
    expect((sink as unknown as { compressing: number }).compressing).toBe(0);
    expect(released).toBe(4);
    await expect(sink.write({ offset: 4 * MiB, length: 1, data: Buffer.from([1]) })).resolves.toBeUndefined();
    fs.closeSync(fd);
  });

  it('6 GiB of zeros around 1 MiB of data: small, fast, exact (node inflater, CRC and ISIZE checked)', async () => {
    const data = textBytes(MiB, 20);
    const before = 3 * GiB + 12_345;
    const after = 3 * GiB + 7;
    const total = before + data.length + after;
    const t0 = performance.now();
    const r = await compress(extentsOf([before, data, after]));
    const seconds = (performance.now() - t0) / 1000;
    expect(seconds).toBeLessThan(1);
    expect(r.compressedBytes).toBeLessThan(10e6);
    expect(r.counters).toMatchObject({ real: data.length, sparse: before + after });
    const gz = fs.readFileSync(r.file);
    expect(gz.readUInt32LE(gz.length - 4)).toBe(total % 2 ** 32);
    // Inflate as a stream and compare every chunk with what it must hold; zlib checks CRC and ISIZE.
    const zeros = Buffer.alloc(4 * MiB);
    let at = 0;
    let mismatches = 0;
    await new Promise<void>((resolve, reject) => {
      fs.createReadStream(r.file)
        .pipe(zlib.createGunzip({ chunkSize: MiB }))
        .on('data', (chunk: Buffer) => {
          for (let i = 0; i < chunk.length; ) {
            // Split the chunk where the expected content changes (zeros / data / zeros).
            const end = at + i < before ? Math.min(chunk.length, i + before - (at + i)) : at + i < before + data.length ? Math.min(chunk.length, i + before + data.length - (at + i)) : chunk.length;
            const piece = chunk.subarray(i, end);
            const inData = at + i >= before && at + i < before + data.length;
            const want = inData ? data.subarray(at + i - before, at + i - before + piece.length) : zeros.subarray(0, piece.length);
            if (piece.length > zeros.length || !piece.equals(want)) mismatches++;
            i = end;
          }
          at += chunk.length;
        })
        .on('end', resolve)
        .on('error', reject);
    });
    expect(mismatches).toBe(0);
    expect(at).toBe(total);
  });
});

/** Deterministic incompressible bytes (AES-CTR keystream of a seed). */
function pseudoRandom(n: number, seed: number): Buffer {
  const key = crypto.createHash('sha256').update(`seed ${seed}`).digest();
  const cipher = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(n)), cipher.final()]);
}

/** A buffer cut into consecutive parts of `size` bytes. */
function extentsChunks(data: Buffer, size: number): Part[] {
  const parts: Part[] = [];
  for (let at = 0; at < data.length; at += size) parts.push(data.subarray(at, at + size));
  return parts;
}
