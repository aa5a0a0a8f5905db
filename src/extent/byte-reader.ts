/**
 * Reading a container format (an Android sparse image, later a streamOptimized VMDK) from the
 * extents of the layer below it, in order: small headers are copied out, large data is handed on
 * as views of the buffers it arrived in (no copy), and those buffers are given back to their
 * source only when every view of them has been released.
 */
import type { Extent } from './extent.js';

/** A buffer from below with a count of who still holds it: the reader, and each view handed on. */
interface Held {
  offset: number;
  data: Buffer | null; // null: a hole (zeros) below
  length: number;
  holders: number;
  release?: () => void;
}

function letGo(h: Held): void {
  if (--h.holders === 0) h.release?.();
}

export class ExtentByteReader {
  private readonly iterator: AsyncIterator<Extent>;
  private current: Held | null = null;
  /** Bytes of the layer below consumed so far. */
  position = 0;
  private ended = false;

  constructor(source: AsyncIterable<Extent>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** The extent holding `position`, or null at the end. */
  private async at(): Promise<Held | null> {
    while (!this.current || this.position >= this.current.offset + this.current.length) {
      if (this.current) letGo(this.current);
      this.current = null;
      if (this.ended) return null;
      const next = await this.iterator.next();
      if (next.done) {
        this.ended = true;
        return null;
      }
      const e = next.value;
      // The layers below are contiguous (a hole is an extent without data, not a gap).
      if (e.offset > this.position) throw new Error(`byte reader: a gap at ${this.position} in the source`);
      this.current = { offset: e.offset, data: e.data ?? null, length: e.length, holders: 1, release: e.release };
    }
    return this.current;
  }

  /** Exactly `length` bytes copied out (a header); fewer only at the end of the input. */
  async read(length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const h = await this.at();
      if (!h) return out.subarray(0, done);
      const from = this.position - h.offset;
      const n = Math.min(length - done, h.length - from);
      if (h.data) h.data.copy(out, done, from, from + n);
      done += n;
      this.position += n;
    }
    return out;
  }

  /** Skips `length` bytes; returns how many there were. */
  async skip(length: number): Promise<number> {
    let done = 0;
    while (done < length) {
      const h = await this.at();
      if (!h) break;
      const n = Math.min(length - done, h.offset + h.length - this.position);
      done += n;
      this.position += n;
    }
    return done;
  }

  /**
   * The next `length` bytes as views, each with a `release` that must be called; holes below come
   * out as holes. Ends early only at the end of the input (the caller checks the total).
   */
  async *take(length: number): AsyncGenerator<{ data: Buffer | null; length: number; release: () => void }> {
    let left = length;
    while (left > 0) {
      const h = await this.at();
      if (!h) return;
      const from = this.position - h.offset;
      const n = Math.min(left, h.length - from);
      h.holders++;
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        letGo(h);
      };
      this.position += n;
      left -= n;
      yield { data: h.data ? h.data.subarray(from, from + n) : null, length: n, release };
    }
  }

  /** True when nothing is left below. */
  async atEnd(): Promise<boolean> {
    return (await this.at()) === null;
  }

  /** Gives back what is held and stops the source. */
  async close(): Promise<void> {
    if (this.current) letGo(this.current);
    this.current = null;
    if (!this.ended) await this.iterator.return?.();
    this.ended = true;
  }
}
