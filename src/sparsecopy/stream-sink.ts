/**
 * The sink for pipes, stdout and character devices: bytes in order, zeros written as zeros.
 */
import type { Extent } from '../extent/extent.js';
import { ToolError, describeSystemError } from '../errors.js';
import { writeAt } from '../io/fd-io.js';
import { type Sink, type SinkCounters, newCounters } from './sink.js';

const ZERO_CHUNK = Buffer.alloc(1 << 20);

export class StreamSink implements Sink {
  private readonly counters = newCounters();
  private position = 0;

  constructor(
    private readonly fd: number,
    private readonly name: string,
    /** Gives up a write that waits on a pipe nobody reads. */
    private readonly signal?: AbortSignal,
  ) {}

  async write(extent: Extent): Promise<void> {
    if (extent.offset !== this.position) await this.writeZeros(extent.offset - this.position);
    if (extent.data) await this.put(extent.data);
    else await this.writeZeros(extent.length);
    extent.release?.();
  }

  private async writeZeros(length: number): Promise<void> {
    for (let left = length; left > 0; left -= ZERO_CHUNK.length) {
      await this.put(ZERO_CHUNK.subarray(0, Math.min(left, ZERO_CHUNK.length)));
    }
  }

  private async put(data: Buffer): Promise<void> {
    try {
      await writeAt(this.fd, data, null, this.signal);
    } catch (err) {
      if (this.signal?.aborted && err === this.signal.reason) throw err;
      // The first byte not accepted: a pipe closed after 1000 bytes took the first 1000.
      const at = this.position + ((err as { bytesWritten?: number }).bytesWritten ?? 0);
      throw new ToolError('WRITE', `${this.name}: write failed at byte ${at}: ${describeSystemError(err)}`, {
        cause: err,
      });
    }
    this.position += data.length;
    this.counters.real += data.length;
    this.counters.written += data.length;
  }

  async close(): Promise<SinkCounters> {
    return { ...this.counters };
  }

  async abort(): Promise<void> {}
}
