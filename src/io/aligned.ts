/**
 * Memory-aligned buffers in shared memory: the buffers a copy reads into and writes from.
 *
 * Aligned, because O_DIRECT writes to block devices want the buffer's address, the length and the
 * offset aligned to the logical sector size, and because the kernel copies into a buffer whose
 * address is not a multiple of 64 five times slower here (a 512 KiB read from the page cache
 * into Buffer.allocUnsafeSlow's memory, which malloc places 16 bytes into a page: 198 ms per
 * 512 MiB, against 39 ms into the same memory 64-byte aligned). Shared (a SharedArrayBuffer), so
 * that the writer thread (writer-thread.ts) can write them without a copy.
 *
 * JavaScript cannot see an address, so it is asked of libc through ffi-rs: memmove(p, p, 0) returns
 * p, and ffi-rs passes a Buffer as a pointer into its own memory. Over-allocating by one page then
 * gives a page-aligned view. Without FFI nothing is known to be aligned and callers use buffered I/O.
 */
import { bufferAddress } from './ffi.js';

export const PAGE = 4096;

/** Address of each ArrayBuffer's first byte modulo PAGE, for the buffers made here. */
const addressMod = new WeakMap<ArrayBufferLike, number>();

export function allocAligned(size: number): Buffer {
  const backing = Buffer.from(new SharedArrayBuffer(size + PAGE));
  const address = bufferAddress(backing);
  if (address === null) return backing.subarray(0, size);
  const mod = address % PAGE;
  addressMod.set(backing.buffer, (address - backing.byteOffset) % PAGE);
  const skip = (PAGE - mod) % PAGE;
  return backing.subarray(skip, skip + size);
}

/** True only when `buf` is known to start at a multiple of `alignment` (a divisor of PAGE). */
export function isAddressAligned(buf: Buffer, alignment: number): boolean {
  const base = addressMod.get(buf.buffer);
  return base !== undefined && (base + buf.byteOffset) % alignment === 0;
}
