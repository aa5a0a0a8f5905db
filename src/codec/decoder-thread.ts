/**
 * A thread that reads a compressed input and decodes it into a ring of shared, page-aligned
 * slots, which the copy hands on as extents without copying them (the writer thread writes them
 * straight from shared memory).
 *
 * Why a thread of its own and reused slots rather than node:zlib's stream API: the stream API
 * returns every output chunk in a fresh 1 MiB Buffer. They become garbage at decompression speed,
 * faster than V8 collects external memory, and a gz -> file copy of a 2 GiB image peaked at
 * 356-536 MB RSS (176 MB when a collection was forced every 20 ms: garbage, not data). Here the
 * decoder writes into the slots themselves, and waits when none is free: memory is the ring,
 * whatever the image size and however slow the consumer.
 *
 * Decoders, all synchronous inside the thread:
 *  - gzip: zlib's own handle (the one zlib.gunzipSync drives: `_handle.writeSync` into a buffer
 *    we own); concatenated members are followed by zlib, trailing zero bytes are padding, anything
 *    else after a member is an error;
 *  - zstd: zstd-napi's DCtx.decompressStream, frames and skippable frames;
 *  - copy: the bytes as they are, read into the slots (a pipe, or a decompressor child's output).
 *
 * Reading a pipe blocks this thread, never the main one, so signals are handled at once.
 */
import { createRequire } from 'node:module';
import type { Worker } from 'node:worker_threads';
import { workerThreads } from '../builtins.js';
import type { Extent } from '../extent/extent.js';
import { allocAligned } from '../io/aligned.js';

export type DecoderKind = 'gzip' | 'zstd' | 'copy';

/** Output slot by default: the chunk size of the copy's other sources (a multiple of the block size is asked for otherwise). */
export const SLOT_BYTES = 2 << 20;
/**
 * Slots in the ring: the decoder runs up to this many chunks ahead of the consumer. Consumers give
 * slots back once done with them, without waiting for more input (the positional sink as its
 * writer thread finishes each write), or source and sink would wait for each other.
 */
export const SLOTS = 8;
/** Compressed bytes read per read call. */
const INPUT_BYTES = 1 << 20;

/** Shared counters (Int32Array indices). */
const FILLED = 0; // slots published by the decoder, counted from 0
const FREED = 1; // slots given back by the consumer, counted from 0
const STATE = 2; // RUNNING, ENDED, FAILED
const STOP = 3; // 1: the consumer wants no more
const EVENTS = 4; // bumped at every slot published and at the end: what the consumer waits on
const CONTROL_SLOTS = 5;
const RUNNING = 0;
const ENDED = 1;
const FAILED = 2;
/** Float64Array indices: compressed bytes read, consumed by the decoder, and handed to it. */
const READ_BYTES = 0;
const CONSUMED_BYTES = 1;
const FED_BYTES = 2;

const WORKER_SOURCE = `
const fs = require('node:fs');
const { parentPort } = require('node:worker_threads');
const [FILLED, FREED, STATE, STOP, EVENTS] = [0, 1, 2, 3, 4];
// A read of a stream below this found the pipe nearly empty (see the 'copy' decoder).
const BATCH_BYTES = 64 * 1024;
const signal = (control) => { Atomics.add(control, EVENTS, 1); Atomics.notify(control, EVENTS); };
const [RUNNING, ENDED, FAILED] = [0, 1, 2];
// One job after another: a job is one input decoded into its ring.
parentPort.on('message', (job) => run(job));
function run({ id, kind, fd, start, end, pending, ring, ringOffset, slotBytes, slots, control, lengths, order, freeQueue, bytes, zstdPath, inputBytes, batchReads }) {
const slot = (i) => Buffer.from(ring, ringOffset + i * slotBytes, slotBytes);
// Slots come back in any order (a sink may hold one while later ones are written): the consumer
// queues each one it gives back in freeQueue, counted by FREED; the thread takes them in turn.
let fresh = 0; // slots never used yet
let taken = 0; // entries of freeQueue taken
const stopped = () => Atomics.load(control, STOP) === 1;

let position = start; // null for a stream
let head = pending && pending.length > 0 ? Buffer.from(pending) : null;
/** Reads the next input bytes into buf (up to max); 0 at the end. */
function readInput(buf, offset, max) {
  if (head) {
    const n = Math.min(max, head.length);
    head.copy(buf, offset, 0, n);
    head = n < head.length ? head.subarray(n) : null;
    bytes[0] += n;
    return n;
  }
  const want = end === null ? max : Math.min(max, end - position);
  if (want <= 0) return 0;
  for (;;) {
    try {
      const n = fs.readSync(fd, buf, offset, want, position);
      if (position !== null) position += n;
      bytes[0] += n;
      return n;
    } catch (err) {
      if (err.code === 'EAGAIN') { Atomics.wait(control, STOP, 0, 2); continue; }
      throw Object.assign(err, { reading: true });
    }
  }
}

/** A free slot's index, waiting for one; -1 when the consumer stopped. */
function freeSlot() {
  if (fresh < slots) return fresh++;
  for (;;) {
    if (stopped()) return -1;
    const freed = Atomics.load(control, FREED);
    if (freed > taken) return freeQueue[taken++ % slots];
    Atomics.wait(control, FREED, freed, 200);
  }
}
function publish(seq, index, length) {
  order[seq % slots] = index;
  lengths[seq % slots] = length;
  Atomics.store(control, FILLED, seq + 1);
  signal(control);
}

/** The decoder: fill(out) writes into out and returns the bytes produced, 0 at the end. */
function makeDecoder() {
  if (kind === 'copy') {
    return (out) => {
      let n = 0;
      while (n < out.length) {
        const got = readInput(out, n, out.length - n);
        if (got === 0) break;
        n += got;
        // A pipe of ours (1 MiB) that gave little had been drained: let the child fill it for a
        // millisecond rather than waking for every piece (xz writes 8 KiB at a time: 244,000
        // reads for 2 GiB, 21,600 so). Not for a pipe someone else made: at 64 KiB, such a pause
        // would hold a fast writer to 64 MB/s.
        if (batchReads && got < BATCH_BYTES && n < out.length) Atomics.wait(control, STOP, 0, 1);
      }
      bytes[1] = bytes[0];
      return n;
    };
  }
  const input = Buffer.allocUnsafe(inputBytes);
  let inOff = 0, inLen = 0, eof = false;
  // Whole pieces of inputBytes at multiples of it from the input's start, for a file and a pipe
  // alike (a pipe's sniffed head is completed to a whole piece): the decoder sees the same pieces
  // either way, and a corrupt stream is reported at the same offsets.
  const refill = () => {
    if (inOff < inLen || eof) return;
    inOff = 0;
    inLen = 0;
    while (inLen < input.length) {
      const n = readInput(input, inLen, input.length - inLen);
      if (n === 0) break;
      inLen += n;
    }
    if (inLen === 0) eof = true;
    bytes[2] = bytes[1] + inLen;
  };
  if (kind === 'gzip') {
    const zlib = require('node:zlib');
    const gunzip = zlib.createGunzip();
    const handle = gunzip._handle;
    if (!handle || typeof handle.writeSync !== 'function') throw new Error('this Node.js has no zlib handle writeSync');
    let failure = null;
    handle.onerror = (message, errno) => { failure = { message, errno }; };
    const state = gunzip._writeState;
    let ended = false;
    let padding = false;
    return (out) => {
      let n = 0;
      while (n < out.length && !ended) {
        refill();
        if (padding && !eof) {
          // After zero padding, only zeros: zlib would silently stop at them and drop the rest.
          const nonZero = input.subarray(inOff, inLen).findIndex((x) => x !== 0);
          if (nonZero >= 0) throw Object.assign(new Error('trailing garbage after zero padding'), { decoding: true, at: bytes[1] + nonZero });
          bytes[1] += inLen - inOff;
          inOff = inLen;
          continue;
        }
        const availIn = inLen - inOff;
        handle.writeSync(eof ? zlib.constants.Z_FINISH : zlib.constants.Z_NO_FLUSH, input, inOff, availIn, out, n, out.length - n);
        if (failure) throw Object.assign(new Error(failure.message), { decoding: true, zlibErrno: failure.errno });
        const consumed = availIn - state[1];
        const produced = out.length - n - state[0];
        inOff += consumed;
        bytes[1] += consumed;
        n += produced;
        if (consumed === 0 && produced === 0) {
          if (eof) ended = true;
          else {
            // Stuck on what follows a member: zero bytes are padding (as gzip takes them).
            const nonZero = input.subarray(inOff, inLen).findIndex((x) => x !== 0);
            if (nonZero > 0) throw Object.assign(new Error('trailing garbage after zero padding'), { decoding: true, at: bytes[1] + nonZero });
            if (nonZero === 0) throw Object.assign(new Error('incorrect header check'), { decoding: true });
            bytes[1] += inLen - inOff;
            inOff = inLen;
            padding = true;
          }
        }
      }
      return n;
    };
  }
  if (kind === 'zstd') {
    const { DCtx } = require(zstdPath);
    const dctx = new DCtx();
    let inFrame = false;
    let ended = false;
    return (out) => {
      let n = 0;
      while (n < out.length && !ended) {
        refill();
        if (eof && inOff === inLen) {
          if (inFrame) throw Object.assign(new Error('unexpected end of input inside a frame'), { decoding: true, truncated: true });
          ended = true;
          break;
        }
        let result;
        try {
          result = dctx.decompressStream(out.subarray(n), input.subarray(inOff, inLen));
        } catch (err) {
          throw Object.assign(err, { decoding: true });
        }
        const [hint, produced, consumed] = result;
        inFrame = hint !== 0;
        inOff += consumed;
        bytes[1] += consumed;
        n += produced;
      }
      return n;
    };
  }
  throw new Error('unknown decoder ' + kind);
}

try {
  const fill = makeDecoder();
  for (let seq = 0; ; seq++) {
    if (stopped()) break;
    const index = freeSlot();
    if (index < 0) break;
    const n = fill(slot(index));
    if (n === 0) break;
    publish(seq, index, n);
    if (n < slotBytes && kind === 'copy') break; // a short read: the input ended
  }
  Atomics.store(control, STATE, ENDED);
} catch (err) {
  parentPort.postMessage({ id, message: String(err && err.message), code: err && err.code, decoding: !!(err && err.decoding), reading: !!(err && err.reading), truncated: !!(err && (err.truncated || err.zlibErrno === -5)), at: err && typeof err.at === 'number' ? err.at : undefined });
  Atomics.store(control, STATE, FAILED);
}
signal(control);
}
`;

export interface DecoderInput {
  /** The descriptor to read: a file, a device, a pipe. */
  fd: number;
  /** Where reading starts for positional reads; null reads sequentially (a pipe). */
  start: number | null;
  /** Where positional reading ends (exclusive); null: at the end of the input. */
  end: number | null;
  /** Bytes already taken from a stream (a format sniffer's): they come first. */
  pending: Buffer | null;
}

/** How a decode failed, for the caller to phrase (it knows the format and the path). */
export interface DecodeFailure {
  message: string;
  /** A system error code when reading failed (EIO...). */
  code?: string;
  /** The data is corrupt (not a read failure). */
  decoding: boolean;
  /** The input ended inside the compressed data. */
  truncated: boolean;
  /** The compressed byte where the problem is, when the decoder knows it exactly. */
  at?: number;
  /** The decoder (a child process) says only that the problem lies in the bytes it was fed. */
  withinFed?: boolean;
  /** Compressed bytes read, consumed by the decoder, and handed to it when it failed. */
  readBytes: number;
  consumedBytes: number;
  fedBytes: number;
  /** Decoded bytes delivered before the failure. */
  outputBytes: number;
}

export class DecodeError extends Error {
  constructor(readonly failure: DecodeFailure) {
    super(failure.message);
    this.name = 'DecodeError';
  }
}

/**
 * Threads and rings between jobs: a thread costs about 25 ms to start, and a test or a fuzzer
 * decodes thousands of inputs. A thread whose job was stopped while it may still be blocked in a
 * read (an idle pipe) is not reused; it is unref'd and does not keep the process alive.
 */
const idleWorkers: Worker[] = [];
const idleRings: Buffer[] = [];
let jobs = 0;

/** Counted keep-alives of a thread (ref and unref are not counted: overlapping waits would undo each other). */
const holds = new Map<Worker, number>();
function holdOpen(worker: Worker): () => void {
  const n = holds.get(worker) ?? 0;
  if (n === 0) worker.ref();
  holds.set(worker, n + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const left = holds.get(worker)! - 1;
    holds.set(worker, left);
    if (left === 0) worker.unref();
  };
}

function takeWorker(): Worker {
  const idle = idleWorkers.pop();
  if (idle) return idle;
  const worker: Worker = new (workerThreads().Worker)(WORKER_SOURCE, { eval: true });
  worker.unref();
  // A thread that died (it should not) is never handed out again; its job's own listener reports it.
  worker.on('error', () => undefined);
  worker.once('exit', () => {
    const i = idleWorkers.indexOf(worker);
    if (i >= 0) idleWorkers.splice(i, 1);
  });
  return worker;
}

function takeRing(bytes: number): Buffer {
  const i = idleRings.findIndex((r) => r.length === bytes);
  return i >= 0 ? idleRings.splice(i, 1)[0]! : allocAligned(bytes);
}

/** `wait`, or less if `signal` aborts first (its listener removed either way: waits are many). */
async function untilAborted(wait: Promise<unknown>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return void (await wait);
  if (signal.aborted) return;
  let onAbort: () => void = () => undefined;
  const abort = new Promise<void>((resolve) => (onAbort = resolve));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.race([wait, abort]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

const zstdPath = (): string => createRequire(import.meta.url).resolve('zstd-napi/binding');

/**
 * The decoded bytes as extents at increasing offsets from 0, each a view of a slot: `release`
 * gives it back (in any order; the ring advances past the oldest released slot). Throws a
 * DecodeError when the input is corrupt or cannot be read. `progress()` of the returned object
 * tells compressed bytes read so far.
 */
export function decodeThread(
  kind: DecoderKind,
  input: DecoderInput,
  options: { slotBytes?: number; signal?: AbortSignal; batchReads?: boolean } = {},
): { extents: AsyncGenerator<Extent>; compressedBytesRead: () => number; jobEnded: () => Promise<void> } {
  const slotBytes = options.slotBytes ?? SLOT_BYTES;
  const control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4));
  // By sequence number modulo SLOTS: each published slot's length and index; and the slots given back, in turn.
  const lengths = new Int32Array(new SharedArrayBuffer(SLOTS * 4));
  const order = new Int32Array(new SharedArrayBuffer(SLOTS * 4));
  const freeQueue = new Int32Array(new SharedArrayBuffer(SLOTS * 4));
  const bytes = new Float64Array(new SharedArrayBuffer(3 * 8));
  const ring = takeRing(SLOTS * slotBytes);
  const pending = input.pending && input.pending.length > 0 ? new Uint8Array(input.pending) : null;
  const worker = takeWorker();
  const id = ++jobs;
  let failure: Omit<DecodeFailure, 'readBytes' | 'consumedBytes' | 'fedBytes' | 'outputBytes'> | null = null;
  let settle: () => void = () => undefined;
  // The failure's message comes through the port, after the thread has flagged FAILED: awaited.
  const failed = new Promise<void>((resolve) => (settle = resolve));
  const onMessage = (m: { id: number } & NonNullable<typeof failure>): void => {
    if (m.id !== id) return;
    failure ??= m;
    settle();
  };
  const onError = (err: Error): void => {
    failure ??= { message: `decoder thread failed: ${err.message}`, decoding: false, truncated: false };
    Atomics.store(control, STATE, FAILED);
    Atomics.add(control, EVENTS, 1);
    Atomics.notify(control, EVENTS);
    settle();
  };
  const onExit = (): void => onError(new Error('it stopped'));
  worker.on('message', onMessage);
  worker.once('error', onError);
  worker.once('exit', onExit);
  worker.postMessage({
    id,
    kind,
    fd: input.fd,
    start: input.start,
    end: input.end,
    pending,
    ring: ring.buffer,
    ringOffset: ring.byteOffset,
    slotBytes,
    slots: SLOTS,
    control,
    lengths,
    order,
    freeQueue,
    bytes,
    zstdPath: kind === 'zstd' ? zstdPath() : null,
    inputBytes: INPUT_BYTES,
    batchReads: options.batchReads === true,
  });
  /** The job is over: the thread and the ring serve the next one, unless the thread may still be reading. */
  // Slots handed on and not given back yet: the ring serves another job only once none is left.
  let outstanding = 0;
  let ended = false;
  const recycleRing = (): void => {
    if (ended && outstanding === 0 && Atomics.load(control, STATE) !== RUNNING) idleRings.push(ring);
  };
  const finish = (): void => {
    ended = true;
    worker.off('message', onMessage);
    worker.off('error', onError);
    worker.off('exit', onExit);
    if (Atomics.load(control, STATE) !== RUNNING) {
      idleWorkers.push(worker);
      recycleRing();
      return;
    }
    // Stopped early: the thread sees STOP at its next slot (or when its read returns) and ends the
    // job; it serves the next one then. One blocked for ever in a read of an idle pipe is left.
    void jobEnded(false).then(() => {
      idleWorkers.push(worker);
      recycleRing();
    });
  };

  async function* extents(): AsyncGenerator<Extent> {
    let freed = 0; // slots given back, counted from 0
    let offset = 0;
    const giveBack = (index: number): void => {
      freeQueue[freed % SLOTS] = index;
      freed++;
      Atomics.store(control, FREED, freed);
      Atomics.notify(control, FREED);
    };
    try {
      for (let seq = 0; ; seq++) {
        // The event count is read before what it guards: a slot or an end that comes after the
        // checks below changes it, so the wait cannot miss it.
        let events = Atomics.load(control, EVENTS);
        let filled = Atomics.load(control, FILLED);
        while (filled <= seq) {
          const state = Atomics.load(control, STATE);
          if (state !== RUNNING) {
            filled = Atomics.load(control, FILLED);
            if (filled > seq) break;
            if (state === FAILED) {
              const release = holdOpen(worker); // the message on its way keeps nothing alive by itself
              await failed;
              release();
              throw new DecodeError({ ...(failure ?? { message: 'decoder failed', decoding: false, truncated: false }), readBytes: bytes[READ_BYTES]!, consumedBytes: bytes[CONSUMED_BYTES]!, fedBytes: bytes[FED_BYTES]!, outputBytes: offset });
            }
            return;
          }
          const release = holdOpen(worker); // a pending waitAsync alone does not keep the process alive
          const wait = Atomics.waitAsync(control, EVENTS, events);
          // An idle pipe may never fill a slot: an abort ends the wait (the thread is left blocked in its read).
          try {
            if (wait.async) await untilAborted(wait.value, options.signal);
          } finally {
            release();
          }
          options.signal?.throwIfAborted();
          events = Atomics.load(control, EVENTS);
          filled = Atomics.load(control, FILLED);
        }
        const length = lengths[seq % SLOTS]!;
        const index = order[seq % SLOTS]!;
        const start = index * slotBytes;
        let done = false;
        outstanding++; // before the yield: the consumer may give it back before this resumes
        yield {
          offset,
          length,
          data: ring.subarray(start, start + length),
          release: () => {
            if (done) return;
            done = true;
            outstanding--;
            giveBack(index);
            recycleRing();
          },
        };
        offset += length;
      }
    } finally {
      Atomics.store(control, STOP, 1);
      Atomics.notify(control, FREED);
      finish();
    }
  }
  /** Resolves once the thread is done with the job (its reads over): then its input may be closed. */
  const jobEnded = async (keepAlive = true): Promise<void> => {
    for (let events = Atomics.load(control, EVENTS); Atomics.load(control, STATE) === RUNNING; events = Atomics.load(control, EVENTS)) {
      const wait = Atomics.waitAsync(control, EVENTS, events);
      if (!wait.async) continue;
      // A pending waitAsync alone does not keep the process alive; a caller that awaits this does.
      const release = keepAlive ? holdOpen(worker) : () => undefined;
      try {
        await wait.value;
      } finally {
        release();
      }
    }
  };
  return { extents: extents(), compressedBytesRead: () => bytes[READ_BYTES]!, jobEnded };
}
