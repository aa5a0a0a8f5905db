/**
 * Promise wrappers over the callback fd API: positional reads and writes on raw descriptors are
 * the cheapest way to keep several requests in flight on libuv's thread pool.
 */
import fs from 'node:fs';

/** A non-blocking pipe (a parent may hand us one) answers EAGAIN: wait briefly and retry. */
const isWouldBlock = (err: NodeJS.ErrnoException): boolean => err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK';
const RETRY_MS = 2;

/** Read up to `length` bytes at `position` (null: the current position), retrying short reads. */
export function readAt(fd: number, buffer: Buffer, length: number, position: number | null): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = (): void => {
      fs.read(fd, buffer, done, length - done, position === null ? null : position + done, (err, n) => {
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

/** Write all of `buffer` at `position` (null: the current position), retrying short writes. */
export function writeAt(fd: number, buffer: Buffer, position: number | null): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = (): void => {
      fs.write(fd, buffer, done, buffer.length - done, position === null ? null : position + done, (err, n) => {
        if (err && isWouldBlock(err)) return void setTimeout(step, RETRY_MS);
        if (err) return reject(err);
        done += n;
        if (done === buffer.length) return resolve();
        step();
      });
    };
    step();
  });
}

export function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export function ftruncate(fd: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, length, (err) => (err ? reject(err) : resolve())));
}
