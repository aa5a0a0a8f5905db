/**
 * SIGINT/SIGTERM end every copy within a second, whatever it waits on (an idle pipe, a FIFO with
 * no writer or no reader, a stdout nobody reads), with 130/143, the destination as it was and no
 * temporary file; a signal that arrives before the copy is committed aborts it, even in its last
 * moments. A closed stdout is an error, not a silent success.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DigestSet } from '../src/codec/digest.js';
import { ToolError } from '../src/errors.js';
import { sparseCopy } from '../src/sparsecopy/copy.js';
import { SPARSECOPY, linesOf, patternBytes, snapshot, tempLeftovers, useTempDir } from './helpers.js';

/** The final ftruncate of a file copy, made observable: a test can act right after it returns. */
const afterFinalTruncate = vi.hoisted(() => ({ hook: null as (() => void) | null }));
vi.mock('../src/io/fd-io.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../src/io/fd-io.js')>();
  return {
    ...original,
    ftruncate: async (fd: number, length: number) => {
      await original.ftruncate(fd, length);
      afterFinalTruncate.hook?.();
    },
  };
});

const MiB = 1 << 20;
let dir = '';
useTempDir('sc-sig-', (d) => (dir = d));
let n = 0;
const fresh = (name: string): string => path.join(dir, `${name}-${++n}`);
function existing(name: string, bytes: Buffer): string {
  const p = fresh(name);
  fs.writeFileSync(p, bytes);
  return p;
}

interface Running {
  child: ChildProcess;
  stderr: () => string;
  /** Resolves with the exit code and when it came. */
  exited: Promise<{ code: number | null; at: number }>;
}

function start(args: string[], stdio: ('pipe' | 'ignore' | number)[] = ['pipe', 'pipe', 'pipe']): Running {
  const child = spawn(process.execPath, [SPARSECOPY, ...args], { stdio: stdio as ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin?.on('error', () => undefined);
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: performance.now() })));
  return { child, stderr: () => stderr, exited };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await sleep(10);
  expect(condition(), what).toBe(true);
}

/** Sends `signal` and returns the exit code and how long the exit took after it. */
async function signalled(run: Running, signal: 'SIGINT' | 'SIGTERM'): Promise<{ code: number | null; ms: number; stderr: string }> {
  const sent = performance.now();
  run.child.kill(signal);
  const timeout = sleep(5000).then(() => ({ code: -1, at: performance.now() }));
  const { code, at } = await Promise.race([run.exited, timeout]);
  if (code === -1) run.child.kill('SIGKILL');
  return { code, ms: at - sent, stderr: run.stderr() };
}

const expectInterrupted = (r: { code: number | null; ms: number; stderr: string }, code: number): void => {
  expect(r.code, r.stderr).toBe(code);
  expect(r.ms, `exit ${Math.round(r.ms)} ms after the signal`).toBeLessThan(1000);
  const lines = linesOf(r.stderr);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^sparsecopy: .*interrupted by SIG(INT|TERM)/);
};

describe('a signal ends the copy within a second, whatever it waits on', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`${signal} while reading an idle pipe, mid-copy: ${code}, the temporary file removed, the old file kept`, async () => {
      const dst = existing('dst', patternBytes(40_000, 1));
      const before = snapshot(dst);
      const run = start(['-', dst]);
      children.push(run.child);
      run.child.stdin!.write(patternBytes(300_000, 2)); // then the pipe stays open and idle
      await waitFor(() => tempLeftovers(dir).length === 1, 'the copy is under way');
      await sleep(100);
      expectInterrupted(await signalled(run, signal), code);
      expect(snapshot(dst)).toEqual(before);
      expect(tempLeftovers(dir)).toEqual([]);
    });
  }

  it('SIGINT while stdin is an idle pipe that sent nothing yet: 130 within a second', async () => {
    const dst = fresh('dst');
    const run = start(['-', dst]);
    children.push(run.child);
    await sleep(400);
    expectInterrupted(await signalled(run, 'SIGINT'), 130);
    expect(fs.existsSync(dst)).toBe(false);
  });

  it('a FIFO source that no one opens for writing: SIGTERM ends it (143), nothing created', async () => {
    const fifo = fresh('fifo');
    spawnSync('mkfifo', [fifo]);
    const dst = fresh('dst');
    const run = start([fifo, dst]);
    children.push(run.child);
    await sleep(400);
    expectInterrupted(await signalled(run, 'SIGTERM'), 143);
    expect(fs.existsSync(dst)).toBe(false);
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('a FIFO destination that no one opens for reading: SIGINT ends it (130)', async () => {
    const src = existing('src', patternBytes(100_000, 3));
    const fifo = fresh('fifo');
    spawnSync('mkfifo', [fifo]);
    const run = start([src, fifo]);
    children.push(run.child);
    await sleep(400);
    expectInterrupted(await signalled(run, 'SIGINT'), 130);
  });

  it('SIGTERM while xz decodes a file (its output read on the main thread): 143 within a second, the child gone', async () => {
    // 3 GiB of zeros: seconds of decoding, while the copy reads the child's pipe in blocking reads.
    const src = fresh('zeros.xz');
    expect(spawnSync('sh', ['-c', `head -c 3G /dev/zero | xz -1 -T0 -c > '${src}'`]).status).toBe(0);
    const dst = fresh('dst');
    const run = start([src, dst]);
    children.push(run.child);
    await waitFor(() => tempLeftovers(dir).length === 1, 'the copy is under way');
    await sleep(300);
    const readers = (): number[] => fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((pid) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/0`) === src;
      } catch {
        return false;
      }
    }).map(Number);
    expect(readers(), 'xz reads the file itself').toHaveLength(1);
    expectInterrupted(await signalled(run, 'SIGTERM'), 143);
    expect(fs.existsSync(dst)).toBe(false);
    expect(tempLeftovers(dir)).toEqual([]);
    await waitFor(() => readers().length === 0, 'the decompressor is gone');
  });

  for (const gzip of [false, true]) {
    it(`stdout a pipe that no one reads${gzip ? ' (gzip output)' : ''}: SIGTERM ends it (143)`, async () => {
      const src = existing('src', patternBytes(8 * MiB, 4));
      const run = start([...(gzip ? ['--gzip=1'] : []), src, '-']);
      children.push(run.child);
      await sleep(600); // the pipe (64 KiB) is full long before: the copy waits to write
      expectInterrupted(await signalled(run, 'SIGTERM'), 143);
    });
  }
});

describe('a signal just before the commit aborts the copy; the old file is kept', () => {
  afterEach(() => {
    afterFinalTruncate.hook = null;
    vi.restoreAllMocks();
  });

  /** A copy whose controller a real signal aborts, as the command's handler does. */
  async function copyWithSignal(options: { md5?: boolean; raise: 'after-truncate' | 'in-digest' }): Promise<{ result: unknown; dst: string; before: Buffer }> {
    const src = existing('src', patternBytes(3 * MiB, 5));
    const dst = existing('dst', patternBytes(MiB, 6));
    const before = fs.readFileSync(dst);
    const controller = new AbortController();
    const onSignal = (): void => controller.abort(new ToolError('INTERRUPTED', 'interrupted by SIGUSR2', { exitCode: 140 }));
    process.on('SIGUSR2', onSignal);
    // The signal is delivered to the process right after the copy's last write call returned,
    // before the copy decides to commit: it must be seen.
    const raise = (): void => void process.kill(process.pid, 'SIGUSR2');
    if (options.raise === 'after-truncate') afterFinalTruncate.hook = raise;
    else {
      const digest = DigestSet.prototype.digest;
      vi.spyOn(DigestSet.prototype, 'digest').mockImplementation(function (this: DigestSet) {
        raise();
        return digest.call(this);
      });
    }
    try {
      const result = await sparseCopy({ source: src, destination: dst, signal: controller.signal, digests: options.md5 ? ['md5'] : [] }).then(
        (summary) => summary,
        (err: unknown) => err,
      );
      return { result, dst, before };
    } finally {
      process.off('SIGUSR2', onSignal);
    }
  }

  it('delivered as the final truncate returns: interrupted, the destination as it was', async () => {
    const { result, dst, before } = await copyWithSignal({ raise: 'after-truncate' });
    expect(result).toBeInstanceOf(ToolError);
    expect((result as ToolError).exitCode).toBe(140);
    expect((result as ToolError).message).toBe(`${dst}: interrupted by SIGUSR2; left as it was`);
    expect(fs.readFileSync(dst).equals(before)).toBe(true);
    expect(tempLeftovers(dir)).toEqual([]);
  });

  it('delivered while the digest is finished (--md5): interrupted, the destination as it was', async () => {
    const { result, dst, before } = await copyWithSignal({ md5: true, raise: 'in-digest' });
    expect(result).toBeInstanceOf(ToolError);
    expect((result as ToolError).code).toBe('INTERRUPTED');
    expect(fs.readFileSync(dst).equals(before)).toBe(true);
    expect(tempLeftovers(dir)).toEqual([]);
  });
});

describe('a closed stdout (exit 9)', () => {
  it('sparsecopy FILE - with stdout closed: exit 9, one line, no success', () => {
    const src = existing('src', patternBytes(100_000, 7));
    const r = spawnSync('sh', ['-c', `exec "${process.execPath}" "${SPARSECOPY}" "${src}" - >&-`], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(9);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^sparsecopy: stdout: .*closed/);
  });

  it('stdout open read-only: exit 9', () => {
    const src = existing('src', patternBytes(100_000, 8));
    const other = existing("other", Buffer.from("read-only"));
    const r = spawnSync("sh", ["-c", `exec "${process.execPath}" "${SPARSECOPY}" "${src}" - 1<"${other}"`], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(9);
    expect(r.stderr).toMatch(/^sparsecopy: stdout: /);
  });

  it('stdout redirected to /dev/null by the shell is an open stdout: exit 0', () => {
    const src = existing('src', patternBytes(100_000, 9));
    const r = spawnSync('sh', ['-c', `exec "${process.execPath}" "${SPARSECOPY}" -q "${src}" - >/dev/null`], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });
});
