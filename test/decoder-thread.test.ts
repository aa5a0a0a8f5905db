/**
 * The decoder thread: gzip and zstd decoded into reused shared slots, exactly, from files and
 * pipes, with corrupt input reported as a DecodeError (never a crash), and bounded memory however
 * slow the consumer.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DecodeError, type DecoderKind, SLOTS, SLOT_BYTES, decodeThread } from '../src/codec/decoder-thread.js';
import { crc32AppendZeros } from '../src/codec/crc32.js';
import { zeroRunPieces } from '../src/codec/deflate-zeros.js';
import { FINAL_EMPTY_BLOCK, gzipHeader, gzipTrailer } from '../src/codec/gzip-format.js';
import { patternBytes, useTempDir } from './helpers.js';

let dir = '';
useTempDir('decoder-', (d) => (dir = d));

const zstdCompress = (data: Buffer, args: string[] = []): Buffer => spawnSync('zstd', ['-q', '-c', ...args], { input: data, maxBuffer: 1 << 30 }).stdout;

/** Decodes a file through the thread; returns the bytes (or the error). */
async function decodeFile(kind: DecoderKind, bytes: Buffer): Promise<{ out: Buffer; error: DecodeError | null; chunks: number }> {
  const file = path.join(dir, `in-${Math.random()}`);
  fs.writeFileSync(file, bytes);
  const fd = fs.openSync(file, 'r');
  const parts: Buffer[] = [];
  let error: DecodeError | null = null;
  let expected = 0;
  try {
    const { extents } = decodeThread(kind, { fd, start: 0, end: bytes.length, pending: null });
    for await (const e of extents) {
      expect(e.offset).toBe(expected);
      expected += e.length;
      parts.push(Buffer.from(e.data!));
      e.release?.();
    }
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    error = err;
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file);
  }
  return { out: Buffer.concat(parts), error, chunks: parts.length };
}

/** A gzip member of `length` zeros made of precomputed deflate blocks (gzip -1 would take 15 s for 4 GiB). */
function gzipOfZeros(length: number): Buffer {
  const { unit, unitRepeats, remainder } = zeroRunPieces(length);
  const parts = [gzipHeader({ level: 1 }), ...new Array<Buffer>(unitRepeats).fill(unit), ...(remainder ? [remainder] : []), FINAL_EMPTY_BLOCK];
  parts.push(gzipTrailer(crc32AppendZeros(0, length), length));
  return Buffer.concat(parts);
}

const data = Buffer.concat([patternBytes(3 << 20), Buffer.alloc(5 << 20), patternBytes(700_001, 3)]);

describe('decoder thread: gzip', () => {
  const gz = zlib.gzipSync(data, { level: 1 });

  it('decodes a member exactly, in full slots but the last', async () => {
    const r = await decodeFile('gzip', gz);
    expect(r.error).toBeNull();
    expect(r.out.equals(data)).toBe(true);
    expect(r.chunks).toBe(Math.ceil(data.length / SLOT_BYTES));
  });

  it('follows concatenated members and accepts trailing zero padding', async () => {
    const r = await decodeFile('gzip', Buffer.concat([gz, zlib.gzipSync(Buffer.from('tail')), Buffer.alloc(100)]));
    expect(r.error).toBeNull();
    expect(r.out.equals(Buffer.concat([data, Buffer.from('tail')]))).toBe(true);
  });

  it.each([
    ['truncated data', () => gz.subarray(0, gz.length >> 1), /unexpected end/],
    ['a truncated trailer', () => gz.subarray(0, gz.length - 3), /unexpected end/],
    ['a bad CRC', () => { const b = Buffer.from(gz); b[b.length - 6]! ^= 1; return b; }, /incorrect data check/],
    ['a bad length', () => { const b = Buffer.from(gz); b[b.length - 2]! ^= 1; return b; }, /incorrect length check/],
    ['trailing garbage', () => Buffer.concat([gz, Buffer.from('garbage')]), /incorrect header check/],
    ['a corrupt block', () => { const b = Buffer.from(gz); for (let i = 100; i < 140; i++) b[i] = 0xff; return b; }, /invalid|incorrect|unexpected/],
  ])('reports %s as a DecodeError', async (_what, make, message) => {
    const r = await decodeFile('gzip', make());
    expect(r.error).toBeInstanceOf(DecodeError);
    expect(r.error!.failure.decoding).toBe(true);
    expect(r.error!.failure.message).toMatch(message);
    expect(r.error!.failure.consumedBytes).toBeLessThanOrEqual(r.error!.failure.readBytes);
  });
});

describe('decoder thread: zstd', () => {
  it('decodes frames, multi-threaded output and skippable frames exactly', async () => {
    const skippable = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
    const input = Buffer.concat([skippable, zstdCompress(data), zstdCompress(data, ['-T2', '--long']), skippable]);
    const r = await decodeFile('zstd', input);
    expect(r.error).toBeNull();
    expect(r.out.equals(Buffer.concat([data, data]))).toBe(true);
  });

  it('reports a truncated frame and corrupt data', async () => {
    const z = zstdCompress(data);
    const truncated = await decodeFile('zstd', z.subarray(0, z.length - 10));
    expect(truncated.error?.failure.truncated).toBe(true);
    const corrupt = Buffer.from(z);
    for (let i = 200; i < 260; i++) corrupt[i] = 0x55;
    const bad = await decodeFile('zstd', corrupt);
    expect(bad.error?.failure.decoding).toBe(true);
    const garbage = await decodeFile('zstd', Buffer.concat([z, Buffer.from('garbage!')]));
    expect(garbage.error?.failure.decoding).toBe(true);
  });
});

describe('decoder thread: streams and memory', () => {
  it('reads a pipe, with bytes a sniffer already took first', async () => {
    const gz = zlib.gzipSync(data);
    const file = path.join(dir, 'pipe.gz');
    fs.writeFileSync(file, gz.subarray(1000));
    const fifo = path.join(dir, 'fifo');
    spawnSync('mkfifo', [fifo]);
    const writer = spawn('sh', ['-c', `cat '${file}' > '${fifo}'`]);
    const fd = fs.openSync(fifo, 'r');
    const { extents } = decodeThread('gzip', { fd, start: null, end: null, pending: gz.subarray(0, 1000) });
    const parts: Buffer[] = [];
    for await (const e of extents) {
      parts.push(Buffer.from(e.data!));
      e.release?.();
    }
    fs.closeSync(fd);
    writer.kill();
    expect(Buffer.concat(parts).equals(data)).toBe(true);
  });

  it('runs at most a ring ahead of a slow consumer (a 4 GiB gzip of zeros)', async () => {
    const file = path.join(dir, 'zeros.gz');
    fs.writeFileSync(file, gzipOfZeros(4 * 2 ** 30));
    const fd = fs.openSync(file, 'r');
    const { extents } = decodeThread('gzip', { fd, start: 0, end: fs.fstatSync(fd).size, pending: null });
    let total = 0;
    let held: (() => void)[] = [];
    let peakArrayBuffers = 0;
    let chunks = 0;
    for await (const e of extents) {
      total += e.length;
      // Hold up to SLOTS - 1 slots at a time, as a slow writer would.
      held.push(e.release!);
      if (held.length === SLOTS - 1) {
        for (const release of held) release();
        held = [];
      }
      if (++chunks % 64 === 0) peakArrayBuffers = Math.max(peakArrayBuffers, process.memoryUsage().arrayBuffers);
    }
    for (const release of held) release();
    fs.closeSync(fd);
    expect(total).toBe(4 * 2 ** 30);
    expect(peakArrayBuffers).toBeLessThan(100 << 20);
  }, 120_000);

  it('stops when the consumer stops', async () => {
    const gz = zlib.gzipSync(data);
    const file = path.join(dir, 'stop.gz');
    fs.writeFileSync(file, gz);
    const fd = fs.openSync(file, 'r');
    const { extents } = decodeThread('gzip', { fd, start: 0, end: gz.length, pending: null });
    for await (const e of extents) {
      e.release?.();
      break;
    }
    fs.closeSync(fd);
  });
});
