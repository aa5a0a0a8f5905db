/**
 * The writer thread: writes handed over in order land byte-exact, buffers outside shared memory
 * are copied first, failures come back as one-line WRITE errors (ToolError, and exit 9 from the
 * command), and a signal still interrupts a large file copy whose writes it is doing.
 */
import { writeBootFiles } from './fsmaker-fixtures.js';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ToolError } from '../src/errors.js';
import { allocAligned } from '../src/io/aligned.js';
import { WriterThread, prestartWriterThread } from '../src/io/writer-thread.js';
import { PositionalSink } from '../src/sparsecopy/positional-sink.js';
import { ROOT, SPARSECOPY, patternBytes, sparsecopy, tempLeftovers, useTempDir } from './helpers.js';

const MiB = 1 << 20;
let dir = '';
useTempDir('sc-writer-', (d) => (dir = d));

function sinkFor(fd: number, name: string): PositionalSink {
  return new PositionalSink({ fd, name, baseOffset: 0, checkLimit: 0, zeroPolicy: 'compare', blockSize: 512, syncEveryBytes: 0, writerThread: true });
}

describe('PositionalSink through a writer thread', () => {
  it('writes shared and unshared buffers, with holes between them, byte-exact and in order', async () => {
    await prestartWriterThread();
    const posts = vi.spyOn(WriterThread.prototype, 'post');
    const file = path.join(dir, 'out');
    const fd = fs.openSync(file, 'w');
    const expected = Buffer.alloc(40 * MiB);
    const sink = sinkFor(fd, file);
    let offset = 0;
    let released = 0;
    for (let i = 0; offset < expected.length; i++) {
      const length = Math.min(expected.length - offset, 300_000 + ((i * 7919) % 900_000));
      if (i % 5 === 4) {
        await sink.write({ offset, length }); // a hole
      } else {
        // Alternate pool-like shared buffers (handed over as they are) and plain ones (copied).
        const data = i % 2 === 0 ? allocAligned(length) : Buffer.alloc(length);
        patternBytes(length, i + 1).copy(data);
        data.copy(expected, offset);
        await sink.write({ offset, length, data, release: () => released++ });
      }
      offset += length;
    }
    const dataExtents = posts.mock.calls.length;
    await sink.close();
    fs.ftruncateSync(fd, expected.length);
    fs.closeSync(fd);
    posts.mockRestore();
    expect(dataExtents).toBeGreaterThan(10);
    expect(fs.readFileSync(file).equals(expected)).toBe(true);
    // Every data buffer was released once its write was done.
    expect(released).toBeGreaterThan(10);
  });

  it('writes a batch of more buffers than pwritev takes at once (IOV_MAX, 1024)', async () => {
    await prestartWriterThread();
    const posts = vi.spyOn(WriterThread.prototype, 'post');
    const file = path.join(dir, 'iov');
    const fd = fs.openSync(file, 'w');
    const sink = sinkFor(fd, file);
    const expected = Buffer.alloc(4000 * 256);
    for (let i = 0; i < 4000; i++) {
      const piece = allocAligned(256).fill((i % 251) + 1);
      piece.copy(expected, i * 256);
      await sink.write({ offset: i * 256, length: 256, data: piece }); // contiguous: one batch
    }
    await sink.close();
    fs.closeSync(fd);
    const largest = Math.max(...posts.mock.calls.map(([command]) => command.buffers.length));
    posts.mockRestore();
    expect(largest).toBeGreaterThan(1024);
    expect(fs.readFileSync(file).equals(expected)).toBe(true);
  });

  it('holds few buffers when data comes in many small pieces (a bounded number of queued writes)', async () => {
    await prestartWriterThread();
    const file = path.join(dir, 'pieces');
    const fd = fs.openSync(file, 'w');
    const sink = sinkFor(fd, file);
    let outstanding = 0;
    let most = 0;
    // 100 chunks of 2 MiB, each cut into 64 pieces of 4 KiB of data between 28 KiB of zeros.
    for (let chunk = 0; chunk < 100; chunk++) {
      const data = allocAligned(2 * MiB).fill(1);
      outstanding++;
      let pieces = 64;
      const release = (): void => void (--pieces === 0 && outstanding--);
      for (let p = 0; p < 64; p++) {
        const at = chunk * 2 * MiB + p * 32 * 1024;
        await sink.write({ offset: at, length: 4096, data: data.subarray(p * 32 * 1024, p * 32 * 1024 + 4096), release });
        await sink.write({ offset: at + 4096, length: 28 * 1024 });
        most = Math.max(most, outstanding);
      }
    }
    await sink.close();
    fs.closeSync(fd);
    expect(outstanding).toBe(0);
    // Bounded by the queue's batch count, not by its bytes (16 MiB of 4 KiB pieces is 4096 writes).
    expect(most).toBeLessThanOrEqual(4);
    expect(fs.statSync(file).size).toBe(99 * 2 * MiB + 63 * 32 * 1024 + 4096);
  });

  it('a failed write comes back as a ToolError WRITE naming the destination and the range', async () => {
    await prestartWriterThread();
    const file = path.join(dir, 'ro');
    fs.writeFileSync(file, '');
    const fd = fs.openSync(file, 'r'); // writes fail with EBADF
    const sink = sinkFor(fd, file);
    try {
      const err = await (async () => {
        for (let i = 0; i < 40; i++) await sink.write({ offset: i * MiB, length: MiB, data: allocAligned(MiB).fill(1) });
        await sink.close();
      })().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ToolError);
      expect((err as ToolError).code).toBe('WRITE');
      expect((err as ToolError).message).toBe(`${file}: write failed at bytes 0..${MiB}: bad file descriptor`);
    } finally {
      await sink.abort();
      fs.closeSync(fd);
    }
  });
});

/** Why a tmpfs cannot be mounted here, or null. */
function mountUnavailableReason(): string | null {
  if (process.getuid?.() !== 0) return 'not root: cannot mount a small tmpfs';
  return null;
}

describe('sparsecopy with a writer thread (a source of 64 MiB or more)', () => {
  const noMount = mountUnavailableReason();
  if (noMount) console.warn(`skipping the full-filesystem test: ${noMount}`);

  it.skipIf(noMount !== null)('a full filesystem: exit 9, one line naming the destination, nothing left behind', () => {
    const mnt = fs.mkdtempSync(path.join(dir, 'mnt-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mnt]);
    try {
      const src = path.join(dir, 'big');
      const fd = fs.openSync(src, 'w');
      for (let i = 0; i < 80; i++) fs.writeSync(fd, patternBytes(MiB, i + 1));
      fs.closeSync(fd);
      const dst = path.join(mnt, 'out.img');
      const r = sparsecopy([src, dst]);
      expect(r.status).toBe(9);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`^sparsecopy: ${dst}: write failed at bytes \\d+\\.\\.\\d+: no space left on device\\n$`));
      expect(fs.existsSync(dst)).toBe(false);
      expect(tempLeftovers(mnt)).toEqual([]);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it('SIGINT during a large file copy: exit 130, nothing left behind', async () => {
    const src = path.join(dir, 'big-src');
    const fd = fs.openSync(src, 'w');
    for (let i = 0; i < 256; i++) fs.writeSync(fd, patternBytes(MiB, i + 3));
    fs.closeSync(fd);
    const dst = path.join(dir, 'big-dst');
    // --syncevery makes every megabyte reach the disk, so the copy is still running when signalled.
    const child = spawn(process.execPath, [SPARSECOPY, '-y', '1M', src, dst], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    for (let i = 0; i < 1000 && tempLeftovers(dir).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(tempLeftovers(dir)).toHaveLength(1);
    child.kill('SIGINT');
    const status = await exited;
    expect(status, stderr).toBe(130);
    expect(stderr).toContain('interrupted');
    expect(fs.existsSync(dst)).toBe(false);
    expect(tempLeftovers(dir)).toEqual([]);
  });
});

/**
 * The writer thread's waits keep the process alive on their own. A pending Atomics.waitAsync does
 * not, and worker.ref()/unref() are not counted: when two waits overlapped (fsmaker prestarts the
 * thread and its start-up wait was still pending when the copy's first wait for a write began),
 * the first to finish unref'd the thread under the other, the event loop emptied, and Node ended
 * the process with exit 13 (an unsettled top-level await) and no message, leaving the temporary
 * output behind. Seen mostly while another process writes buffered data: the copy's writes are
 * throttled, so the second wait is still pending when the first one's wake-up is delivered.
 */
describe('waits that overlap (a prestarted writer thread) under load', () => {
  /**
   * fsmaker's order, made deterministic: the thread is prestarted, the copy sees it ready before
   * the event loop has turned (its start-up wake-up still queued), hands it a write that takes a
   * while (64 MiB and an fdatasync, under a concurrent buffered writer) and waits for it.
   */
  const RACE_SCRIPT = `
import fs from 'node:fs';
import { prestartWriterThread, takeWriterThread } from ${JSON.stringify(path.join(ROOT, 'dist/io/writer-thread.js'))};
import { allocAligned } from ${JSON.stringify(path.join(ROOT, 'dist/io/aligned.js'))};
void prestartWriterThread();
const writer = takeWriterThread();
while (!writer.ready); // synchronous: the start-up wait's wake-up stays queued
const fd = fs.openSync(process.argv[2], 'w');
const data = allocAligned(16 << 20).fill(7);
writer.post({ fd, buffers: [data, data, data, data], position: 0, sync: true });
await writer.waitUntilDone(1);
await writer.close();
fs.closeSync(fd);
process.stdout.write('written\\n');
`;

  /** Runs `body` while dd writes buffered data to a file in `dir` (the load the issue saw). */
  async function underBufferedWriteLoad<T>(body: () => Promise<T> | T): Promise<T> {
    const loadFile = path.join(dir, 'dd-load');
    const dd = spawn('dd', ['if=/dev/zero', `of=${loadFile}`, 'bs=1M', 'count=2000', 'conv=fsync', 'status=none'], { stdio: 'ignore' });
    const ended = new Promise((resolve) => dd.on('exit', resolve));
    await new Promise((r) => setTimeout(r, 300)); // let it fill the page cache (a delay, not an assertion)
    try {
      return await body();
    } finally {
      dd.kill('SIGKILL');
      await ended;
      fs.rmSync(loadFile, { force: true });
    }
  }

  it('a wait that began before the start-up wake-up was delivered keeps the process alive (10 runs)', async () => {
    const script = path.join(dir, 'race.mjs');
    fs.writeFileSync(script, RACE_SCRIPT);
    const outcomes = await underBufferedWriteLoad(() =>
      Array.from({ length: 10 }, (_, i) => {
        const out = path.join(dir, `race-${i}.out`);
        const r = spawnSync(process.execPath, [script, out], { encoding: 'utf8', timeout: 30_000 });
        const size = fs.existsSync(out) ? fs.statSync(out).size : -1;
        fs.rmSync(out, { force: true });
        return `exit ${r.status}, ${r.stdout.trim() || 'no output'}, ${size} bytes`;
      }),
    );
    expect(outcomes).toEqual(Array.from({ length: 10 }, () => `exit 0, written, ${64 << 20} bytes`));
  });

  it('fsmaker and sparsecopy writing disk images under the same load: every run exits 0, nothing left behind', async () => {
    const tree = path.join(dir, 'tree');
    fs.mkdirSync(tree, { recursive: true });
    fs.writeFileSync(path.join(tree, 'blob'), patternBytes(40 * MiB, 11));
    const rootfs = path.join(dir, 'root.ext4');
    execFileSync('truncate', ['-s', '64M', rootfs]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, rootfs]);
    const { kernel, initrd } = writeBootFiles(dir);
    const workDirs = (): string[] => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`fsmaker-`));
    const before = workDirs();
    const out = path.join(dir, 'disk.img');
    const runs = await underBufferedWriteLoad(() => [
      ...Array.from({ length: 8 }, () => spawnSync(process.execPath, [path.join(ROOT, 'dist/bin/fsmaker.mjs'), '-q', '-k', kernel, '-i', initrd, '--seed', 'load', rootfs, out], { encoding: 'utf8' })),
      ...Array.from({ length: 8 }, () => spawnSync(process.execPath, [SPARSECOPY, '-q', rootfs, out], { encoding: 'utf8' })),
    ]);
    expect(runs.map((r) => `exit ${r.status}${r.stderr}`)).toEqual(runs.map(() => 'exit 0'));
    expect(tempLeftovers(dir)).toEqual([]);
    expect(workDirs()).toEqual(before);
  });
});
