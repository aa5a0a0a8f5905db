/**
 * A sink that compresses through a child process writing straight into the destination (xz -T0,
 * lbzip2): the Debian tools compress faster than any npm port here (bench/codec-choice.mjs: xz -6
 * -T0 against lzma-native's single-threaded liblzma), on every core, and their output needs no
 * pass through this process. The copy feeds the child's stdin: data as it arrives, and zeros from
 * one shared zero buffer.
 *
 * Long zero runs skip the compressor: both formats are valid as concatenated streams, so before a
 * run of at least ZERO_STREAM_MIN_BYTES the child is ended, copies of one precomputed stream of
 * ZERO_UNIT_BYTES zeros (made once by the tool itself, about 10 KiB for xz) are written after its
 * output, and a new child takes what follows. A 16 GiB hole then costs 256 small writes instead of
 * 90 s of xz. Shorter runs go through the child: restarting it costs its pipeline (xz -T0 finishes
 * its last block on one thread), which only a long run pays back.
 *
 * Each chunk is written before its buffer is given back (the write's own callback), so nothing is
 * copied and at most one chunk is in flight; the child is the bottleneck anyway.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { Writable } from 'node:stream';
import type { Extent } from '../extent/extent.js';
import { ToolError, describeSystemError } from '../errors.js';
import { killAtExit } from '../io/children.js';
import { writeAllSync } from '../io/write-sync.js';
import { type Sink, type SinkCounters, newCounters } from '../sparsecopy/sink.js';

const ZEROS = Buffer.alloc(1 << 20);
const STDERR_KEEP_BYTES = 4096;
export const ZERO_UNIT_BYTES = 64 << 20;
export const ZERO_STREAM_MIN_BYTES = 4 * ZERO_UNIT_BYTES;

export interface ChildEncoderOptions {
  /** The program and its arguments to compress stdin to stdout. */
  command: string;
  args: string[];
  /** Its arguments for the zero unit: its fastest level (zeros compress alike at any level). */
  zeroUnitArgs: string[];
  /** The destination's descriptor: the child's stdout. */
  fd: number;
  /** For messages. */
  name: string;
  /** The format, for messages ("xz"). */
  label: string;
}

/** One stream of ZERO_UNIT_BYTES zeros per program, made by it on first use. */
const zeroUnits = new Map<string, Buffer>();

function zeroUnit(options: ChildEncoderOptions): Buffer {
  const key = `${options.command} ${options.zeroUnitArgs.join(' ')}`;
  let unit = zeroUnits.get(key);
  if (!unit) {
    const r = spawnSync(options.command, options.zeroUnitArgs, { input: Buffer.alloc(ZERO_UNIT_BYTES), maxBuffer: 1 << 24 });
    if (r.error || r.status !== 0) throw new ToolError('WRITE', `${options.name}: ${options.command} could not compress zeros: ${r.error ? describeSystemError(r.error) : r.stderr.toString().trim()}`);
    unit = r.stdout;
    zeroUnits.set(key, unit);
  }
  return unit;
}

interface Running {
  child: ChildProcess;
  stdin: Writable;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: string;
  spawnError: Error | null;
}

export class ChildEncoderSink implements Sink {
  private readonly counters = newCounters();
  private running: Running | null = null;
  /** Streams written so far (the child's, and the zero units). */
  private streams = 0;
  private total = 0;
  private pendingZeros = 0;
  private failed: ToolError | null = null;

  constructor(private readonly options: ChildEncoderOptions) {}

  async write(extent: Extent): Promise<void> {
    try {
      if (this.failed) throw this.failed;
      if (extent.offset < this.total + this.pendingZeros) throw new Error(`ChildEncoderSink: extent at ${extent.offset} goes back`);
      this.pendingZeros += extent.offset - (this.total + this.pendingZeros);
      if (extent.data) {
        await this.placeZeros();
        await this.put(extent.data);
        this.counters.real += extent.length;
      } else {
        this.pendingZeros += extent.length;
      }
    } finally {
      extent.release?.();
    }
  }

  async close(): Promise<SinkCounters> {
    if (this.failed) throw this.failed;
    await this.placeZeros();
    // An empty input is still one valid (empty) stream, as the tool writes it.
    if (!this.running && this.streams === 0) this.start();
    await this.endChild();
    return { ...this.counters };
  }

  async abort(): Promise<void> {
    const r = this.running;
    this.running = null;
    if (!r) return;
    r.child.kill('SIGKILL');
    await r.exited;
  }

  /** Compressed bytes written: the destination file's size (null for a stream: not seen here). */
  compressedBytes(): number | null {
    try {
      const st = fs.fstatSync(this.options.fd);
      return st.isFile() ? st.size : null;
    } catch {
      return null;
    }
  }

  /** The pending zeros: whole units as precomputed streams when the run is long, the rest through the child. */
  private async placeZeros(): Promise<void> {
    let length = this.pendingZeros;
    this.pendingZeros = 0;
    if (length >= ZERO_STREAM_MIN_BYTES) {
      const unit = zeroUnit(this.options);
      const units = Math.floor(length / ZERO_UNIT_BYTES);
      await this.endChild();
      const batch = new Array<Buffer>(Math.min(units, 1024)).fill(unit);
      try {
        for (let left = units; left > 0; left -= batch.length) writeAllSync(this.options.fd, left >= batch.length ? batch : batch.slice(0, left), null);
      } catch (err) {
        throw (this.failed = new ToolError('WRITE', `${this.options.name}: write failed: ${describeSystemError(err)}`, { cause: err }));
      }
      this.streams += units;
      this.total += units * ZERO_UNIT_BYTES;
      this.counters.sparse += units * ZERO_UNIT_BYTES;
      length -= units * ZERO_UNIT_BYTES;
    }
    for (let left = length; left > 0; left -= ZEROS.length) await this.put(ZEROS.subarray(0, Math.min(left, ZEROS.length)));
    this.counters.real += length;
  }

  private start(): Running {
    const child = spawn(this.options.command, this.options.args, { stdio: ['pipe', this.options.fd, 'pipe'] });
    const r: Running = {
      child,
      stdin: child.stdin!,
      exited: new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal }))),
      stderr: '',
      spawnError: null,
    };
    r.stdin.on('error', () => undefined); // the child stopped reading: its exit status says why
    child.stderr!.on('data', (b: Buffer) => (r.stderr = (r.stderr + b.toString()).slice(-STDERR_KEEP_BYTES)));
    child.once('error', (err) => (r.spawnError = err));
    killAtExit(child);
    this.running = r;
    return r;
  }

  /** Resolves once the child's pipe has taken all of `data`. */
  private put(data: Buffer): Promise<void> {
    const r = this.running ?? this.start();
    return new Promise((resolve, reject) => {
      r.stdin.write(data, (err) => {
        if (!err) {
          this.total += data.length;
          resolve();
          return;
        }
        // The child is gone: its exit status and stderr explain more than EPIPE.
        void r.exited.then((status) => reject((this.failed = this.failure(r, status, err))));
      });
    });
  }

  /** Ends the running child and waits until its output is all written. */
  private async endChild(): Promise<void> {
    const r = this.running;
    if (!r) return;
    this.running = null;
    await new Promise<void>((resolve) => r.stdin.end(resolve));
    const status = await r.exited;
    if (r.spawnError || status.code !== 0) throw (this.failed = this.failure(r, status));
    this.streams++;
  }

  private failure(r: Running, status: { code: number | null; signal: NodeJS.Signals | null }, err?: Error | null): ToolError {
    const said = r.stderr.trim().split('\n').filter(Boolean).pop();
    const why = r.spawnError ? describeSystemError(r.spawnError) : (said ?? (status.signal ? `killed by ${status.signal}` : err ? describeSystemError(err) : `exit status ${status.code}`));
    return new ToolError('WRITE', `${this.options.name}: ${this.options.label} compression (${this.options.command}) failed after ${this.total} bytes of input: ${why}`);
  }
}
