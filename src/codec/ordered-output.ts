/**
 * Where a sink that writes its bytes strictly in order puts them (the gzip and streamOptimized
 * VMDK sinks): into a file at a position, synchronously (page-cache writes are cheap and need no
 * overlap), or onto a stream, one writev at a time on the pool, so that a slow reader holds up the
 * writes but not the compressing behind them. Bytes handed over and not yet written are counted
 * (`queuedBytes`) for the sink to bound. A failure is kept for the sink's next call to throw;
 * `change` is woken whenever the pool writer finishes.
 */
import { ToolError, describeSystemError } from '../errors.js';
import { writevAll } from '../io/fd-io.js';
import { writeAllSync } from '../io/write-sync.js';
import type { ChangeSignal } from './change-signal.js';

export interface OrderedOutputOptions {
  fd: number;
  /** Name used in messages. */
  name: string;
  /** Where the first byte goes (a file), or null (a stream: sequential writes). */
  position: number | null;
  signal?: AbortSignal;
  change: ChangeSignal;
  /** Called after each pool write: a sink waiting for room goes on. */
  afterWrite?: () => void;
}

export class OrderedOutput {
  /** Bytes written so far. */
  written = 0;
  /** Bytes handed to the pool writer and not yet written (a stream only). */
  queuedBytes = 0;
  /** The first failure, of the writes or (set by the sink) of its own work. */
  failure: Error | null = null;
  private readonly queue: Buffer[][] = [];
  private writing = false;
  private stopped = false;

  constructor(private readonly options: OrderedOutputOptions) {}

  /** Nothing handed over is still to be written. */
  get idle(): boolean {
    return !this.writing && this.queue.length === 0;
  }

  /** Writes `buffers` after everything before them; false once anything has failed. */
  write(buffers: Buffer[]): boolean {
    if (this.failure) return false;
    const { fd, position, name } = this.options;
    if (position === null) {
      this.queue.push(buffers);
      for (const b of buffers) this.queuedBytes += b.length;
      void this.writeQueued();
      return true;
    }
    try {
      this.written += writeAllSync(fd, buffers, position + this.written);
      return true;
    } catch (err) {
      this.failure = new ToolError('WRITE', `${name}: write failed at byte ${position + this.written}: ${describeSystemError(err)}`, { cause: err });
      return false;
    }
  }

  /** Drops what is queued; a write under way ends by itself (one to a pipe nobody reads may never). */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  private async writeQueued(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    const { fd, name, signal, change, afterWrite } = this.options;
    while (this.queue.length > 0 && !this.failure && !this.stopped) {
      const buffers = this.queue[0]!;
      let bytes = 0;
      for (const b of buffers) bytes += b.length;
      try {
        await writevAll(fd, buffers, signal);
      } catch (err) {
        const at = this.written + ((err as { bytesWritten?: number }).bytesWritten ?? 0);
        this.failure =
          signal?.aborted && err === signal.reason ? (err as Error) : new ToolError('WRITE', `${name}: write failed at byte ${at}: ${describeSystemError(err)}`, { cause: err });
      }
      if (this.stopped) break;
      this.queue.shift();
      this.queuedBytes -= bytes;
      if (!this.failure) this.written += bytes;
      afterWrite?.();
    }
    this.writing = false;
    change.wakeAll();
  }
}
