/**
 * Decompression by xz and lbzip2 child processes: exact output from files and from pipes (with
 * sniffed bytes put back), and corrupt, truncated or trailing-garbage input reported as a
 * DecodeError with the tool's own words.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type DecoderTool, childDecoder, findOnPath } from '../src/codec/child-decoder.js';
import { DecodeError } from '../src/codec/decoder-thread.js';
import { patternBytes, useTempDir } from './helpers.js';

let dir = '';
useTempDir('child-decoder-', (d) => (dir = d));

const XZ: DecoderTool = { command: 'xz', args: ['-dc', '-T0'], debianPackage: 'xz-utils' };
const LBZIP2: DecoderTool = { command: 'lbzip2', args: ['-dc'], debianPackage: 'lbzip2' };
const data = Buffer.concat([patternBytes(3 << 20), Buffer.alloc(4 << 20), patternBytes(123_457, 5)]);
const compress = (tool: string, args: string[], input: Buffer): Buffer => spawnSync(tool, args, { input, maxBuffer: 1 << 30 }).stdout;

async function decode(tool: DecoderTool, bytes: Buffer, viaPipe = false): Promise<{ out: Buffer; error: DecodeError | null }> {
  const file = path.join(dir, `in-${Math.random()}`);
  let fd: number;
  let writer: ReturnType<typeof spawn> | null = null;
  let pending: Buffer | null = null;
  if (viaPipe) {
    fs.writeFileSync(file, bytes.subarray(100));
    const fifo = `${file}.fifo`;
    spawnSync('mkfifo', [fifo]);
    writer = spawn('sh', ['-c', `cat '${file}' > '${fifo}'`]);
    fd = fs.openSync(fifo, 'r');
    pending = bytes.subarray(0, 100);
  } else {
    fs.writeFileSync(file, bytes);
    fd = fs.openSync(file, 'r');
  }
  const parts: Buffer[] = [];
  let error: DecodeError | null = null;
  try {
    const { extents } = childDecoder(tool, { fd, start: viaPipe ? null : 0, end: viaPipe ? null : bytes.length, pending });
    for await (const e of extents) {
      parts.push(Buffer.from(e.data!));
      e.release?.();
    }
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    error = err;
  } finally {
    fs.closeSync(fd);
    writer?.kill();
  }
  return { out: Buffer.concat(parts), error };
}

describe.each([
  ['xz', XZ, ['-c', '-T0', '--block-size=1MiB']],
  ['lbzip2', LBZIP2, ['-c']],
] as const)('%s child decoder', (name, tool, compressArgs) => {
  const packed = compress(name === 'xz' ? 'xz' : 'lbzip2', [...compressArgs], data);

  it('decodes a file exactly', async () => {
    const r = await decode(tool, packed);
    expect(r.error).toBeNull();
    expect(r.out.equals(data)).toBe(true);
  });

  it('decodes concatenated streams from a pipe, sniffed bytes first', async () => {
    const r = await decode(tool, Buffer.concat([packed, packed]), true);
    expect(r.error).toBeNull();
    expect(r.out.equals(Buffer.concat([data, data]))).toBe(true);
  });

  it.each([
    ['truncated', () => packed.subarray(0, packed.length >> 1)],
    ['corrupt', () => { const b = Buffer.from(packed); for (let i = 300; i < 400; i++) b[i] = 0x33; return b; }],
    ...(name === 'xz' ? [['followed by garbage', () => Buffer.concat([packed, Buffer.from('not compressed at all')])] as const] : []),
  ])('reports %s input as a DecodeError with the tool\'s message', async (_what, make) => {
    const r = await decode(tool, make());
    expect(r.error).toBeInstanceOf(DecodeError);
    expect(r.error!.failure.decoding).toBe(true);
    expect(r.error!.failure.message.length).toBeGreaterThan(0);
  });
});

it('lbzip2 ignores garbage after the last bzip2 stream, as bzip2 and pbzip2 also do', async () => {
  const packed = compress('lbzip2', ['-c'], data);
  const r = await decode(LBZIP2, Buffer.concat([packed, Buffer.from('not compressed at all')]));
  expect(r.error).toBeNull();
  expect(r.out.equals(data)).toBe(true);
});

describe('findOnPath', () => {
  it('finds installed tools and not missing ones', () => {
    expect(findOnPath('xz')).toMatch(/\/xz$/);
    expect(findOnPath('no-such-decompressor-here')).toBeNull();
  });
});

describe('a child reading the file itself', () => {
  const packed = compress('xz', ['-c', '-T0', '--block-size=1MiB'], data);

  it('starts where the stream starts inside the file, and reports the compressed bytes it took', async () => {
    const prefix = patternBytes(4097, 9);
    const file = path.join(dir, 'prefixed.xz');
    fs.writeFileSync(file, Buffer.concat([prefix, packed]));
    const fd = fs.openSync(file, 'r');
    try {
      const decoder = childDecoder(XZ, { fd, start: prefix.length, end: prefix.length + packed.length, pending: null });
      const parts: Buffer[] = [];
      for await (const e of decoder.extents) {
        parts.push(Buffer.from(e.data!));
        e.release?.();
      }
      expect(Buffer.concat(parts).equals(data)).toBe(true);
      expect(decoder.compressedBytesRead()).toBe(packed.length);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('bounds a truncation by what the child had read of the file', async () => {
    const half = packed.subarray(0, packed.length >> 1);
    const r = await decode(XZ, half);
    expect(r.error).toBeInstanceOf(DecodeError);
    expect(r.error!.failure.truncated).toBe(true);
    expect(r.error!.failure.fedBytes).toBe(half.length);
  });

  it('leaves no descriptor open behind it', async () => {
    const before = fs.readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 5; i++) expect((await decode(XZ, packed)).error).toBeNull();
    expect(fs.readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(before);
  });
});
