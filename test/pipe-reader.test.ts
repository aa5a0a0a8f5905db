/**
 * readPipeHere: a pipe read on the calling thread into a few reused buffers: every byte in order,
 * full pieces but the last, buffers lent out no more than the pool holds (it waits for a release),
 * and recycled once released.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Extent } from '../src/extent/extent.js';
import { createPipe } from '../src/io/ffi.js';
import { readPipeHere } from '../src/io/pipe-reader.js';
import { patternBytes, useTempDir } from './helpers.js';

let dir = '';
useTempDir('pipe-reader-', (d) => (dir = d));

/**
 * A pipe that a child fills with `bytes` in small writes (dd bs=4096), then closes. The child
 * reads a file: the reader blocks this thread, so nothing here could feed it.
 */
function pipeOf(bytes: Buffer): number {
  const pipe = createPipe();
  if (!pipe) throw new Error('no FFI pipe');
  const file = path.join(dir, `in-${Math.random()}`);
  fs.writeFileSync(file, bytes);
  spawn('dd', [`if=${file}`, 'bs=4096', 'status=none'], { stdio: ['ignore', pipe.writeFd, 'inherit'] });
  fs.closeSync(pipe.writeFd);
  return pipe.readFd;
}

describe('readPipeHere', () => {
  const bytes = patternBytes((3 << 20) + 12345, 3);

  it('yields every byte in order, in full pieces but the last, released or not', async () => {
    const fd = pipeOf(bytes);
    const seen: Extent[] = [];
    const copies: Buffer[] = [];
    for await (const e of readPipeHere(fd, { pieceBytes: 64 << 10 })) {
      expect(e.offset).toBe(copies.reduce((n, b) => n + b.length, 0));
      copies.push(Buffer.from(e.data!));
      seen.push(e);
      e.release!();
    }
    fs.closeSync(fd);
    expect(Buffer.concat(copies).equals(bytes)).toBe(true);
    expect(seen.slice(0, -1).every((e) => e.length === 64 << 10)).toBe(true);
    expect(seen.at(-1)!.length).toBe(bytes.length % (64 << 10));
  });

  it('recycles a released buffer, and waits for one when all are lent out', async () => {
    const fd = pipeOf(bytes);
    const held: Extent[] = [];
    const buffers = new Set<ArrayBuffer>();
    const reader = readPipeHere(fd, { pieceBytes: 64 << 10 });
    // Hold every piece: the reader lends out its whole pool, then waits.
    for (let i = 0; i < 8; i++) {
      const next = await reader.next();
      held.push(next.value as Extent);
      buffers.add((next.value as Extent).data!.buffer as ArrayBuffer);
    }
    const ninth = reader.next();
    const raced = await Promise.race([ninth.then(() => 'read'), new Promise((r) => setTimeout(() => r('waiting'), 100))]);
    expect(raced).toBe('waiting');
    const firstCopy = Buffer.from(held[0]!.data!);
    held[0]!.release!();
    const got = (await ninth).value as Extent;
    // The released buffer is the one reused, now holding the ninth piece's bytes.
    expect(got.data!.buffer).toBe(held[0]!.data!.buffer);
    expect(Buffer.from(got.data!).equals(bytes.subarray(8 * (64 << 10), 9 * (64 << 10)))).toBe(true);
    expect(firstCopy.equals(bytes.subarray(0, 64 << 10))).toBe(true);
    for (const e of held.slice(1)) e.release!();
    got.release!();
    await reader.return(undefined);
    fs.closeSync(fd);
  });
});
