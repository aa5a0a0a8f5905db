/**
 * A dedicated thread that performs a copy's writes, in the order they are handed over.
 *
 * Copying into the page cache (fresh pages, at memory speed) is most of what a large copy costs,
 * and it is serial: one file's buffered writes hold its inode lock. Done on the main thread it
 * adds to the reading and zero scanning; handed to libuv's pool it costs a thread hand-off per
 * write, which on a virtual machine is a cross-CPU wake-up of 100-300 µs each way, and several
 * pool threads reading and writing at once made the kernel's own work slower (2 cores). One
 * thread that only writes, looping without sleeping while there is work, overlaps the writes
 * with everything else for the price of starting it (about 25 ms, on the other core).
 *
 * Buffers are handed over, not copied: they must live in shared memory (allocAligned makes them
 * so). Commands go through a MessageChannel that the writer reads synchronously, and progress
 * comes back through a shared counter, so neither side waits on the other's event loop.
 *
 * Besides writes, the thread compares: reads the destination under a range of zeros and writes
 * zeros where it holds data (compare-zeros.ts, v0.10's check), in order with the writes, so that a
 * device's zero ranges are read back while the copy reads and decompresses what follows. Its
 * counters come back through shared memory too.
 */
import type { MessageChannel, Worker } from 'node:worker_threads';
import { workerThreads } from '../builtins.js';
import { writeBuffersFully } from './write-sync.js';
import { COMPARE_COUNTER_SLOTS, type CompareScratch, type CompareZeros, type CountZeroBlocks, compareAndZero, countZeroBlocks } from './compare-zeros.js';

/** Shared counters, as indices into an Int32Array. */
const POSTED = 0; // commands posted by the main thread
const DONE = 1; // commands finished by the writer
const READY = 2; // 1 once the writer runs
const FAILED = 3; // 1 once a command failed (its error is then waiting on the channel)
const CONTROL_SLOTS = 4;

/** The writer, as CommonJS source (evaluated: nothing to locate next to a bundled command). */
const WORKER_SOURCE = `
const fs = require('node:fs');
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { control, port, compareCounters } = workerData;
const compareAndZero = (${compareAndZero.toString()});
const countZeroBlocks = (${countZeroBlocks.toString()});
const scratchOf = (command) => ({ read: asBuffer(command.scratch.read), zeros: asBuffer(command.scratch.zeros) });
const asBuffer = (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const [POSTED, DONE, READY, FAILED] = [0, 1, 2, 3];
const writeBuffersFully = (${writeBuffersFully.toString()});
Atomics.store(control, READY, 1);
Atomics.notify(control, READY);
for (let seq = 0; ; ) {
  while (Atomics.load(control, POSTED) <= seq) Atomics.wait(control, POSTED, seq);
  const command = receiveMessageOnPort(port).message;
  if (command.exit) break;
  if (Atomics.load(control, FAILED) === 0) {
    try {
      if (command.compare) {
        compareAndZero(fs, command.compare, scratchOf(command), compareCounters);
      } else {
        // Zero blocks written with this data: the destination under them is judged before it is overwritten.
        if (command.count) countZeroBlocks(fs, command.count, scratchOf(command), compareCounters);
        if (command.buffers.length > 0) writeBuffersFully(fs, command.fd, command.buffers.map(asBuffer), command.position, command.maxCallBytes ?? 0);
        if (command.sync) fs.fdatasyncSync(command.fd);
      }
    } catch (thrown) {
      // A compare says what failed and where; its cause is the system error.
      const err = thrown && thrown.phase ? thrown.cause : thrown;
      const where = thrown && thrown.phase ? { phase: thrown.phase, at: thrown.at } : {};
      port.postMessage({ seq, code: err && err.code, message: String(err && err.message), syncing: command.sync === true, ...where });
      Atomics.store(control, FAILED, 1);
    }
  }
  seq++;
  Atomics.store(control, DONE, seq);
  Atomics.notify(control, DONE);
}
`;

export interface WriteCommand {
  fd: number;
  /** Views of shared memory, written in order from `position`. */
  buffers: Uint8Array[];
  position: number;
  /** The most one system call writes (write-sync.ts: BUFFERED_CALL_BYTES for the page cache); by default any amount. */
  maxCallBytes?: number;
  /** fdatasync the descriptor once the buffers are written. */
  sync?: boolean;
  /** Zero blocks among the buffers, counted as v0.10 would (compare-zeros.ts) before they are written, in `scratch`. */
  count?: CountZeroBlocks;
  scratch?: CompareScratch;
}

export interface WriteFailure {
  /** The failed command's sequence number. */
  seq: number;
  /** A system error as Node reports it (code, message). */
  error: { code?: string; message: string };
  /** The fdatasync after the write failed, not the write. */
  syncing: boolean;
  /** A compare failed: in its read of the destination or its write of zeros, at this destination byte. */
  phase?: 'read' | 'write';
  at?: number;
}

export class WriterThread {
  private readonly control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4));
  /** What the compares done so far counted (COMPARE_COUNTER slots); read once they are done. */
  readonly compareCounters = new Float64Array(new SharedArrayBuffer(COMPARE_COUNTER_SLOTS * 8));
  private readonly channel: MessageChannel = new (workerThreads().MessageChannel)();
  private readonly worker: Worker;
  private posted = 0;
  private exited = false;
  private failed: WriteFailure | null = null;

  constructor() {
    this.worker = new (workerThreads().Worker)(WORKER_SOURCE, {
      eval: true,
      workerData: { control: this.control, port: this.channel.port2, compareCounters: this.compareCounters },
      transferList: [this.channel.port2],
    });
    this.worker.unref();
    this.channel.port1.unref();
    // A writer that dies (it should not) is reported as a failed write of what was pending.
    this.worker.on('error', (err) => this.markFailed(err));
  }

  /** True once the thread runs: before that, callers write themselves. */
  get ready(): boolean {
    return Atomics.load(this.control, READY) === 1;
  }

  /** Resolves once the thread runs. */
  async whenReady(): Promise<void> {
    while (!this.ready) await this.changeOf(READY, 0);
  }

  /** Commands finished (written or skipped after a failure), counted from 0. */
  get done(): number {
    return Atomics.load(this.control, DONE);
  }

  /** The first failure, if any: later commands are skipped, not written. */
  get failure(): WriteFailure | null {
    if (this.failed || Atomics.load(this.control, FAILED) === 0) return this.failed;
    const report = workerThreads().receiveMessageOnPort(this.channel.port1)?.message as
      | { seq: number; code?: string; message: string; syncing: boolean; phase?: 'read' | 'write'; at?: number }
      | undefined;
    this.failed = {
      seq: report?.seq ?? this.done,
      error: { code: report?.code, message: report?.message ?? 'the writer thread stopped' },
      syncing: report?.syncing ?? false,
      phase: report?.phase,
      at: report?.at,
    };
    return this.failed;
  }

  /** Queues a write; returns its sequence number. Every buffer must view a SharedArrayBuffer. */
  post(command: WriteCommand): number {
    return this.send(command);
  }

  /**
   * Queues a compare (compare-zeros.ts); returns its sequence number. Its counts are added to
   * `compareCounters`; `scratch` must be shared memory that nothing else uses meanwhile.
   */
  postCompare(compare: CompareZeros, scratch: CompareScratch): number {
    return this.send({ compare, scratch });
  }

  private send(command: object): number {
    this.channel.port1.postMessage(command);
    const seq = this.posted++;
    Atomics.store(this.control, POSTED, this.posted);
    Atomics.notify(this.control, POSTED);
    return seq;
  }

  /**
   * Resolves once at least `count` commands are done. Waits without blocking the event loop, so
   * signals are still handled while the writer catches up.
   */
  async waitUntilDone(count: number): Promise<void> {
    for (;;) {
      const done = this.done;
      if (done >= count || this.exited) return;
      await this.changeOf(DONE, done);
    }
  }

  /** Resolves when the counter at `index` may no longer hold `value`, without blocking the event loop. */
  private async changeOf(index: number, value: number): Promise<void> {
    const wait = Atomics.waitAsync(this.control, index, value);
    if (!wait.async) return;
    // A pending waitAsync does not keep the process alive: a counted hold does, for every wait at
    // once (fsmaker's start-up wait and the copy's first wait for a write overlap).
    const release = holdProcessOpen();
    try {
      await wait.value;
    } finally {
      release();
    }
  }

  /** Stops the thread once everything posted is done (it exits by itself). */
  async close(): Promise<void> {
    if (this.exited) return;
    await this.waitUntilDone(this.posted);
    this.exited = true;
    this.channel.port1.postMessage({ exit: true });
    Atomics.store(this.control, POSTED, this.posted + 1);
    Atomics.notify(this.control, POSTED);
    this.channel.port1.close();
  }

  private markFailed(err: Error): void {
    this.failed ??= { seq: this.done, error: { message: `writer thread failed: ${err.message}` }, syncing: false };
    Atomics.store(this.control, FAILED, 1);
    this.exited = true;
    Atomics.store(this.control, DONE, this.posted);
    Atomics.notify(this.control, DONE);
  }
}

/**
 * Keeps the event loop alive while any wait is pending, counting the waits. worker.ref() and
 * unref() are not counted: with two waits pending, the first to finish unref'd the thread under
 * the second, the loop emptied, and Node ended the process with exit 13 (an unsettled top-level
 * await) and no message. One long timer, ref'd while the count is above zero, costs nothing.
 */
let pendingWaits = 0;
let keepAlive: ReturnType<typeof setInterval> | null = null;

function holdProcessOpen(): () => void {
  keepAlive ??= setInterval(() => undefined, 2 ** 30).unref();
  if (pendingWaits++ === 0) keepAlive.ref();
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--pendingWaits === 0) keepAlive?.unref();
  };
}

let spare: WriterThread | null = null;

/**
 * Starts a writer thread ahead of need (fsmaker, while it prepares the boot pieces; tests), so
 * the next copy finds it running. Resolves when it runs.
 */
export function prestartWriterThread(): Promise<void> {
  spare ??= new WriterThread();
  return spare.whenReady();
}

/** The prestarted writer thread, or a new one. */
export function takeWriterThread(): WriterThread {
  const writer = spare ?? new WriterThread();
  spare = null;
  return writer;
}

/** True when every buffer lives in shared memory, so the writer thread can see it. */
export function allShared(buffers: readonly Uint8Array[]): boolean {
  return buffers.every((b) => b.buffer instanceof SharedArrayBuffer);
}
