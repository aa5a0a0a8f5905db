/**
 * An lseek(SEEK_DATA/SEEK_HOLE) that fails as a read would (EIO on a failing disk) ends the copy
 * as a read failure (SOURCE_READ, the offset and the system's reason), never a bare Error.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ToolError } from '../src/errors.js';
import { seekableSource } from '../src/io/sources.js';
import { openInput } from '../src/io/target.js';
import { patternBytes, useTempDir } from './helpers.js';

vi.mock('../src/io/ffi.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../src/io/ffi.js')>();
  const eio = () => {
    throw Object.assign(new Error('EIO: lseek failed (errno 5)'), { errno: 5, code: 'EIO' });
  };
  return { ...original, seekData: eio, seekHole: eio };
});

let dir = '';
useTempDir('lseek-', (d) => (dir = d));

describe('seekableSource', () => {
  it('turns a failing lseek into SOURCE_READ naming the file, the byte and the reason', async () => {
    const file = path.join(dir, 'disk.img');
    fs.writeFileSync(file, patternBytes(1 << 20, 2));
    const input = openInput(file);
    try {
      const reading = (async () => {
        for await (const e of seekableSource(input, { chunkBytes: 1 << 20 })) e.release?.();
      })();
      await expect(reading).rejects.toBeInstanceOf(ToolError);
      await expect(reading).rejects.toMatchObject({ code: 'SOURCE_READ', message: `${file}: read failed at byte 0: lseek failed (errno 5)` });
    } finally {
      input.close();
    }
  });
});
