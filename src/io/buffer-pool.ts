import { allocAligned } from './aligned.js';

/**
 * Reusable chunk buffers, page-aligned so that a block device opened with O_DIRECT can take them. Allocating a fresh 1 MiB buffer per chunk leaves the garbage collector
 * hundreds of megabytes behind (RSS over 400 MB on a 2 GiB copy); recycling keeps memory at
 * (read-ahead + writes in flight) chunks.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly bufferBytes: number,
    private readonly maxFree = 64,
  ) {}

  acquire(): Buffer {
    // Last in, first out: the most recently released buffer is likeliest still in the CPU cache.
    return this.free.pop() ?? allocAligned(this.bufferBytes);
  }

  release(buffer: Buffer): void {
    if (buffer.length === this.bufferBytes && this.free.length < this.maxFree) this.free.push(buffer);
  }
}
