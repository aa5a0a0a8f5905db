/**
 * Writing whole buffers synchronously, positionally or at the current offset, riding out short
 * writes and a non-blocking descriptor's EAGAIN (a parent may hand us a non-blocking stdout).
 */
import fs from 'node:fs';

const MAX_IOV = 1024;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function writeOnce(fd: number, buffers: Buffer[], position: number | null): number {
  for (;;) {
    try {
      return buffers.length === 1 ? fs.writeSync(fd, buffers[0]!, 0, buffers[0]!.length, position) : fs.writevSync(fd, buffers, position ?? undefined);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') throw err;
      Atomics.wait(sleeper, 0, 0, 2); // the reader is behind: wait 2 ms
    }
  }
}

/** Writes every byte of `buffers`, in order; returns the bytes written. */
export function writeAllSync(fd: number, buffers: Buffer[], position: number | null): number {
  let total = 0;
  for (let start = 0; start < buffers.length; start += MAX_IOV) {
    let batch = buffers.slice(start, start + MAX_IOV);
    while (batch.length > 0) {
      let written = writeOnce(fd, batch, position === null ? null : position + total);
      total += written;
      let i = 0;
      while (i < batch.length && written >= batch[i]!.length) written -= batch[i++]!.length;
      batch = batch.slice(i);
      if (batch.length > 0 && written > 0) batch[0] = batch[0]!.subarray(written);
    }
  }
  return total;
}
