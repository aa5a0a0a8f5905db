/**
 * The zstd sink: what it writes decodes, with the zstd tool, to exactly the extents it was given;
 * long zero runs cost RLE frames, not compression.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ZstdSink } from '../src/codec/zstd-sink.js';
import type { Extent } from '../src/extent/extent.js';
import { patternBytes, prng, useTempDir } from './helpers.js';

let dir = '';
useTempDir('zstd-sink-', (d) => (dir = d));

async function writeAll(extents: Extent[], level?: number): Promise<{ file: string; size: number }> {
  const file = path.join(dir, `out-${Math.random()}.zst`);
  const fd = fs.openSync(file, 'w');
  const sink = new ZstdSink({ fd, name: file, level, position: 0 });
  for (const e of extents) await sink.write(e);
  await sink.close();
  fs.closeSync(fd);
  return { file, size: fs.statSync(file).size };
}

function unzstd(file: string): Buffer {
  const r = spawnSync('zstd', ['-d', '-c', '-q', file], { maxBuffer: 1 << 30 });
  expect(r.stderr.toString()).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

describe('ZstdSink', () => {
  it('round-trips random data and holes through zstd -d (every level class)', async () => {
    const random = prng(5);
    for (const level of [1, 3, 9]) {
      const extents: Extent[] = [];
      const parts: Buffer[] = [];
      let offset = 0;
      for (let i = 0; i < 40; i++) {
        const length = Math.floor(random() * (random() < 0.3 ? 9 << 20 : 200_000)) + 1;
        if (random() < 0.5) {
          const data = patternBytes(length, i + level);
          extents.push({ offset, length, data });
          parts.push(data);
        } else {
          extents.push({ offset, length });
          parts.push(Buffer.alloc(length));
        }
        offset += length;
      }
      const { file } = await writeAll(extents, level);
      expect(unzstd(file).equals(Buffer.concat(parts))).toBe(true);
    }
  });

  it('an empty input is an empty frame', async () => {
    const { file } = await writeAll([]);
    expect(unzstd(file).length).toBe(0);
  });

  it('4 GiB of holes cost about 128 KiB and decode to zeros', async () => {
    const length = 4 * 2 ** 30;
    const data = patternBytes(4096);
    const { file, size } = await writeAll([{ offset: 0, length: 4096, data }, { offset: 4096, length: length - 4096 }]);
    expect(size).toBeLessThan(160 << 10);
    const head = spawnSync('sh', ['-c', `zstd -d -c -q '${file}' | head -c 4096`]).stdout;
    expect(head.equals(data)).toBe(true);
    const rest = spawnSync('sh', ['-c', `zstd -d -c -q '${file}' | tail -c +4097 | cmp -n ${length - 4096} - /dev/zero && zstd -d -c -q '${file}' | wc -c`]);
    expect(rest.status).toBe(0);
    expect(Number(rest.stdout.toString().trim())).toBe(length);
  }, 120_000);
});
