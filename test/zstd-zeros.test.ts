/** Hand-built zstd frames of zeros decode, with the zstd tool, to exactly that many zeros. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { RLE_BLOCK_BYTES, zstdZeroFrame } from '../src/codec/zstd-zeros.js';

function zstdDecode(frames: Buffer): { status: number | null; out: Buffer; err: string } {
  const r = spawnSync('zstd', ['-d', '-c', '-q'], { input: frames, maxBuffer: 1 << 30 });
  return { status: r.status, out: r.stdout, err: r.stderr.toString() };
}

describe('zstdZeroFrame', () => {
  it.each([1, 2, RLE_BLOCK_BYTES - 1, RLE_BLOCK_BYTES, RLE_BLOCK_BYTES + 1, 5 * RLE_BLOCK_BYTES + 77, 3 << 20])('decodes to %i zeros', (length) => {
    const r = zstdDecode(Buffer.concat(zstdZeroFrame(length)));
    expect(r.err).toBe('');
    expect(r.status).toBe(0);
    expect(r.out.length).toBe(length);
    expect(r.out.equals(Buffer.alloc(length))).toBe(true);
  });

  it('costs about 4 bytes per 128 KiB, sharing one buffer for each GiB', () => {
    const parts = zstdZeroFrame(3 * 2 ** 30 + 5);
    const shared = parts.filter((p) => p === parts[1]);
    expect(shared.length).toBe(3);
    const bytes = parts.reduce((n, p) => n + p.length, 0);
    expect(bytes).toBeLessThan(((3 * 2 ** 30) / RLE_BLOCK_BYTES + 2) * 4 + 20);
  });

  it('a 1 GiB frame decodes (window stays 128 KiB: no "requires too much memory")', () => {
    const r = spawnSync('sh', ['-c', 'zstd -d -c -q | wc -c'], { input: Buffer.concat(zstdZeroFrame(2 ** 30 + 3)) });
    expect(r.stderr.toString()).toBe('');
    expect(Number(r.stdout.toString().trim())).toBe(2 ** 30 + 3);
  });

  it('concatenates with other frames into one stream', () => {
    const data = spawnSync('zstd', ['-c', '-q'], { input: Buffer.from('hello') }).stdout;
    const r = zstdDecode(Buffer.concat([data, ...zstdZeroFrame(1000), data]));
    expect(r.out.equals(Buffer.concat([Buffer.from('hello'), Buffer.alloc(1000), Buffer.from('hello')]))).toBe(true);
  });

  it('refuses an empty or fractional length', () => {
    expect(() => zstdZeroFrame(0)).toThrow(RangeError);
    expect(() => zstdZeroFrame(1.5)).toThrow(RangeError);
  });
});
