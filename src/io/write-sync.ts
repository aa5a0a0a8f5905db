/**
 * Writing whole buffers synchronously, positionally or at the current offset, riding out short
 * writes and a non-blocking descriptor's EAGAIN (a parent may hand us a non-blocking stdout).
 */
import fs from 'node:fs';

/**
 * The most one system call hands to the page cache. Measured here (Firecracker VM, Linux 6.18):
 * `dd bs=2M` of 750 MB into a file took 2.3 s in 1 run of 4 and 0.30 s in the others, Node's
 * pwrite of 2 MiB buffers 1.1-2.2 s in 6 runs of 10, against 0.16-0.18 s in every run at 512 KiB
 * or less. The time is all in the kernel's copy into the page cache; a larger write gets a larger
 * folio, most likely memory the host must fault in on its first touch. Writes through O_DIRECT
 * bypass the page cache and are not cut.
 */
export const BUFFERED_CALL_BYTES = 512 * 1024;

/**
 * Writes every byte of `buffers` in order from `position` (null: the descriptor's offset), at most
 * `maxCallBytes` (0 or less: any amount) and 1024 buffers per system call; returns the bytes written.
 * Self-contained (`files` is node:fs) so the writer thread runs this very function.
 */
export function writeBuffersFully(files: typeof fs, fd: number, buffers: Uint8Array[], position: number | null, maxCallBytes: number): number {
  const MAX_IOV = 1024;
  const limit = maxCallBytes > 0 ? maxCallBytes : Infinity;
  let total = 0;
  let index = 0;
  let head: Uint8Array | null = buffers.length > 0 ? buffers[0]! : null; // what is left of buffers[index]
  while (head !== null) {
    // One call's worth: whole buffers and a piece of the one that crosses the limit.
    const call: Uint8Array[] = [];
    let callBytes = 0;
    let i = index;
    let part: Uint8Array | null = head;
    while (part !== null && call.length < MAX_IOV && callBytes < limit) {
      const room = Math.min(part.length, limit - callBytes);
      call.push(room < part.length ? part.subarray(0, room) : part);
      callBytes += room;
      if (room < part.length) break;
      i++;
      part = i < buffers.length ? buffers[i]! : null;
    }
    let written: number;
    try {
      const at = position === null ? null : position + total;
      written = call.length === 1 ? files.writeSync(fd, call[0]!, 0, call[0]!.length, at) : files.writevSync(fd, call, at ?? undefined);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2); // the reader is behind: wait 2 ms
      continue;
    }
    total += written;
    // Step past what was written: whole buffers, then into the next one.
    while (head !== null && written >= head.length) {
      written -= head.length;
      index++;
      head = index < buffers.length ? buffers[index]! : null;
    }
    if (head !== null && written > 0) head = head.subarray(written);
  }
  return total;
}

/** The buffers of `rest` that one call writes: at most `maxCallBytes` and 1024 buffers (as writeBuffersFully cuts them). */
export function firstCall(rest: Buffer[], maxCallBytes = BUFFERED_CALL_BYTES): Buffer[] {
  const call: Buffer[] = [];
  let bytes = 0;
  for (const b of rest) {
    if (call.length === 1024 || bytes >= maxCallBytes) break;
    const room = Math.min(b.length, maxCallBytes - bytes);
    call.push(room < b.length ? b.subarray(0, room) : b);
    bytes += room;
  }
  return call;
}

/** Writes every byte of `buffers`, in order, at most BUFFERED_CALL_BYTES per call; returns the bytes written. */
export function writeAllSync(fd: number, buffers: Uint8Array[], position: number | null, maxCallBytes = BUFFERED_CALL_BYTES): number {
  return writeBuffersFully(fs, fd, buffers, position, maxCallBytes);
}
