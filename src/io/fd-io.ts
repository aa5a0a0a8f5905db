/**
 * Promise wrappers over the callback fd API: positional reads and writes on raw descriptors are
 * the cheapest way to keep several requests in flight on libuv's thread pool.
 *
 * Reads, writes and opens that can wait forever (a pipe nobody writes or reads, a FIFO nobody
 * opens) take an AbortSignal: on abort the promise rejects with the signal's reason at once. The
 * system call itself stays blocked on its pool thread; only ending the process (ffi.ts exitNow)
 * gets rid of it, which is what an interrupted command does next.
 */
import fs from 'node:fs';
import { BUFFERED_CALL_BYTES, firstCall } from './write-sync.js';

/** A non-blocking pipe (a parent may hand us one) answers EAGAIN: wait briefly and retry. */
const isWouldBlock = (err: NodeJS.ErrnoException): boolean => err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK';
const RETRY_MS = 2;

/**
 * A promise that `run` settles, or that rejects with `signal`'s reason once it aborts. `run` gets
 * `stopped()`, true once the caller has given up (a retry loop stops there).
 */
function abortable<T>(signal: AbortSignal | undefined, run: (resolve: (v: T) => void, reject: (e: unknown) => void, stopped: () => boolean) => void): Promise<T> {
  if (!signal) return new Promise((resolve, reject) => run(resolve, reject, () => false));
  return new Promise((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => finish(() => reject(signal.reason));
    const finish = (settle: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      settle();
    };
    if (signal.aborted) return void onAbort();
    signal.addEventListener('abort', onAbort);
    run(
      (v) => finish(() => resolve(v)),
      (e) => finish(() => reject(e)),
      () => settled,
    );
  });
}

/** Read up to `length` bytes at `position` (null: the current position), retrying short reads. */
export function readAt(fd: number, buffer: Buffer, length: number, position: number | null, signal?: AbortSignal): Promise<number> {
  return abortable(signal, (resolve, reject, stopped) => {
    let done = 0;
    const step = (): void => {
      fs.read(fd, buffer, done, length - done, position === null ? null : position + done, (err, n) => {
        if (stopped()) return;
        if (err && isWouldBlock(err)) return void setTimeout(step, RETRY_MS);
        if (err) return reject(err);
        done += n;
        if (n === 0 || done === length) return resolve(done);
        step();
      });
    };
    step();
  });
}

/**
 * Write all of `buffer` at `position` (null: the current position), retrying short writes. A
 * failure carries `bytesWritten`: how many bytes of `buffer` were accepted before it.
 */
export function writeAt(fd: number, buffer: Buffer, position: number | null, signal?: AbortSignal): Promise<void> {
  return abortable(signal, (resolve, reject, stopped) => {
    let done = 0;
    const step = (): void => {
      fs.write(fd, buffer, done, Math.min(buffer.length - done, BUFFERED_CALL_BYTES), position === null ? null : position + done, (err, n) => {
        if (stopped()) return;
        if (err && isWouldBlock(err)) return void setTimeout(step, RETRY_MS);
        if (err) return reject(Object.assign(err, { bytesWritten: done }));
        done += n;
        if (done === buffer.length) return resolve();
        step();
      });
    };
    step();
  });
}

/**
 * Write every byte of `buffers` at the current position (writev on the thread pool, at most
 * IOV_MAX buffers and BUFFERED_CALL_BYTES a call), riding out short writes and EAGAIN. A failure carries `bytesWritten`.
 */
export function writevAll(fd: number, buffers: Buffer[], signal?: AbortSignal): Promise<void> {
  return abortable(signal, (resolve, reject, stopped) => {
    let rest = buffers;
    let done = 0;
    const step = (): void => {
      if (rest.length === 0) return resolve();
      fs.writev(fd, firstCall(rest), (err, n) => {
        if (stopped()) return;
        if (err && isWouldBlock(err)) return void setTimeout(step, RETRY_MS);
        if (err) return reject(Object.assign(err, { bytesWritten: done }));
        done += n;
        let i = 0;
        while (i < rest.length && n >= rest[i]!.length) n -= rest[i++]!.length;
        rest = rest.slice(i);
        if (rest.length > 0 && n > 0) rest = [rest[0]!.subarray(n), ...rest.slice(1)];
        step();
      });
    };
    step();
  });
}

/**
 * open(2) on the thread pool: a FIFO's open waits for the other end (a writer for O_RDONLY, a
 * reader for O_WRONLY), which on the main thread would block signal handling too. A descriptor
 * that arrives after an abort is closed.
 */
export function openWaiting(path: string, flags: number, signal?: AbortSignal): Promise<number> {
  return abortable(signal, (resolve, reject, stopped) => {
    fs.open(path, flags, (err, fd) => {
      if (stopped()) {
        if (!err) fs.close(fd, () => undefined);
        return;
      }
      if (err) reject(err);
      else resolve(fd);
    });
  });
}

export function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export function ftruncate(fd: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, length, (err) => (err ? reject(err) : resolve())));
}
