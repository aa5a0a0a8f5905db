/** Positional reads of the files fsmaker's inputs live in (boot files, --bootdir files, the rootfs). */
import fs from 'node:fs';

/** Up to `length` bytes at `offset` of descriptor `fd` (fewer only at the end of the file). */
export function readAt(fd: number, offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, b, done, length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  return b.subarray(0, done);
}

/** Exactly `length` bytes at `offset` of `file` (zeros past its end: a FAT file keeps its planned size). */
export function readFileRange(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(length);
    readAt(fd, offset, length).copy(b);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}
