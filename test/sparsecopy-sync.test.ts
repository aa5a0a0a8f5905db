/**
 * --syncevery through the library: fdatasync is observed by spying on node:fs, which the sink
 * calls synchronously between batches of writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeTempDir, patternBytes, writeSparseFile } from './helpers.js';

const fdatasync = vi.spyOn(fs, 'fdatasyncSync');
const { sparseCopy } = await import('../src/sparsecopy/copy.js');

const KiB = 1024;

let dir: string;
let src: string;
let data: Buffer;
beforeAll(() => {
  dir = makeTempDir('sc-sync-');
  src = path.join(dir, 'src');
  // Four 8 KiB data regions separated by holes: at least four separate writes.
  const pieces = [0, 1, 2, 3].map((i) => ({ offset: i * 64 * KiB, data: patternBytes(8 * KiB, 40 + i) }));
  writeSparseFile(src, 256 * KiB, pieces);
  data = fs.readFileSync(src);
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  fdatasync.mockClear();
});

describe('syncEveryBytes (-y)', () => {
  it('never syncs a file destination without it', async () => {
    const dst = path.join(dir, 'plain');
    await sparseCopy({ source: src, destination: dst });
    expect(fs.readFileSync(dst).equals(data)).toBe(true);
    expect(fdatasync).not.toHaveBeenCalled();
  });

  it('syncs after every 4 KiB written', async () => {
    const dst = path.join(dir, 'synced');
    const summary = await sparseCopy({ source: src, destination: dst, syncEveryBytes: 4 * KiB });
    expect(fs.readFileSync(dst).equals(data)).toBe(true);
    expect(summary.real).toBe(32 * KiB);
    expect(fdatasync.mock.calls.length).toBeGreaterThanOrEqual(4);
  });

  it('syncs at most once with an interval larger than the data', async () => {
    const dst = path.join(dir, 'synced-rarely');
    await sparseCopy({ source: src, destination: dst, syncEveryBytes: 1024 * KiB });
    expect(fs.readFileSync(dst).equals(data)).toBe(true);
    expect(fdatasync.mock.calls.length).toBeLessThanOrEqual(1);
  });
});
