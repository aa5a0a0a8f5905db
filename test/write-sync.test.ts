import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BUFFERED_CALL_BYTES, firstCall, writeBuffersFully } from '../src/io/write-sync.js';

/** A stand-in for node:fs that records each call's sizes and accepts at most `accept` bytes a call. */
function recordingFiles(accept: (call: number) => number) {
  const calls: number[][] = [];
  const written: number[] = [];
  const take = (views: Uint8Array[]): number => {
    calls.push(views.map((v) => v.length));
    let n = Math.min(accept(calls.length), views.reduce((a, v) => a + v.length, 0));
    const got = n;
    for (const v of views) {
      const k = Math.min(n, v.length);
      written.push(...v.subarray(0, k));
      n -= k;
    }
    return got;
  };
  const files = {
    writeSync: (_fd: number, b: Uint8Array, offset: number, length: number) => take([b.subarray(offset, offset + length)]),
    writevSync: (_fd: number, views: Uint8Array[]) => take(views),
  } as unknown as typeof fs;
  return { files, calls, written };
}

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

describe('writeBuffersFully', () => {
  it('cuts the calls at the limit, across buffers, and writes every byte in order', () => {
    const buffers = [bytes(300, 1), bytes(500, 2), bytes(50, 3), bytes(1200, 4)];
    const { files, calls, written } = recordingFiles(() => Infinity);
    expect(writeBuffersFully(files, 3, buffers, 0, 512)).toBe(2050);
    expect(calls.map((c) => c.reduce((a, b) => a + b, 0))).toEqual([512, 512, 512, 512, 2]);
    expect(calls[0]).toEqual([300, 212]);
    expect(calls[1]).toEqual([288, 50, 174]);
    expect(Buffer.from(written).equals(Buffer.concat(buffers))).toBe(true);
  });

  it('rides out short writes, including ones that end inside a buffer', () => {
    const buffers = [bytes(1000, 5), bytes(1000, 6), bytes(7, 7)];
    const { files, written } = recordingFiles((call) => (call % 2 ? 333 : 1));
    expect(writeBuffersFully(files, 3, buffers, 10, 0)).toBe(2007);
    expect(Buffer.from(written).equals(Buffer.concat(buffers))).toBe(true);
  });

  it('takes any amount a call with no limit, at most 1024 buffers, and skips empty buffers', () => {
    const buffers = [...Array.from({ length: 1500 }, (_, i) => bytes(3, i)), new Uint8Array(0)];
    const { files, calls } = recordingFiles(() => Infinity);
    expect(writeBuffersFully(files, 3, buffers, null, 0)).toBe(4500);
    expect(calls.map((c) => c.length)).toEqual([1024, 477]);
  });
});

describe('firstCall', () => {
  it('holds at most BUFFERED_CALL_BYTES, cutting the buffer that crosses it', () => {
    const big = Buffer.alloc(BUFFERED_CALL_BYTES);
    const call = firstCall([Buffer.alloc(100), big, Buffer.alloc(10)]);
    expect(call.map((b) => b.length)).toEqual([100, BUFFERED_CALL_BYTES - 100]);
  });
});
