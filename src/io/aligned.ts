/**
 * Memory-aligned buffers, for O_DIRECT writes to block devices (the kernel wants the buffer's
 * address, the length and the offset aligned to the logical sector size).
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
  const backing = Buffer.allocUnsafeSlow(size + PAGE);
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
