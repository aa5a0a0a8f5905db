/**
 * Hostile-input helpers shared by the fuzz and hardening tests: run a command on bad input and
 * insist that it ends the way the README documents (an exit code from its table, one line on
 * stderr naming the program, no stack trace), within a time bound and a memory bound; and make
 * seeded random corruptions of a good input.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { FSMAKER_EXIT_CODES, PTABLE_EXIT_CODES, SPARSECOPY_EXIT_CODES } from '../src/errors.js';
import { ROOT, prng } from './helpers.js';

export type Program = 'sparsecopy' | 'ptable' | 'fsmaker';

const SIGNAL_EXITS = [130, 143];

/** Every exit code each command documents (0 included). fsmaker's output is sparsecopy's sink. */
export const DOCUMENTED_EXIT_CODES: Record<Program, ReadonlySet<number>> = {
  sparsecopy: new Set([0, ...Object.values(SPARSECOPY_EXIT_CODES), ...SIGNAL_EXITS]),
  ptable: new Set([0, ...Object.values(PTABLE_EXIT_CODES), ...SIGNAL_EXITS]),
  fsmaker: new Set([0, ...Object.values(SPARSECOPY_EXIT_CODES), ...Object.values(FSMAKER_EXIT_CODES), ...SIGNAL_EXITS]),
};

export const commandPath = (program: Program): string => path.join(ROOT, `dist/bin/${program}.mjs`);

export interface BoundedResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** Wall-clock time of the run. */
  ms: number;
  /** Peak resident set of the process in bytes (from GNU time), or null when time is missing. */
  peakRssBytes: number | null;
  timedOut: boolean;
}

const GNU_TIME = '/usr/bin/time';
const hasGnuTime = fs.existsSync(GNU_TIME);

/**
 * Runs a command as a real process with a wall-clock limit, measuring its peak RSS with GNU time
 * (its report goes to a file of its own, so stderr stays the command's).
 */
export function runBounded(program: Program, args: string[], options: { input?: Buffer | string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): BoundedResult {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const rssFile = hasGnuTime ? path.join(fs.mkdtempSync('/tmp/hostile-rss-'), 'rss') : null;
  // GNU time's child is the command: a timeout must kill it, not time (which would leave it running).
  const argv = [process.execPath, commandPath(program), ...args];
  const limited = ['timeout', '-s', 'KILL', `${Math.ceil(timeoutMs / 1000)}`, ...argv];
  const [cmd, ...rest] = rssFile ? [GNU_TIME, '-f', '%M', '-o', rssFile, ...limited] : argv;
  const started = performance.now();
  const r = spawnSync(cmd!, rest, {
    input: options.input,
    env: { ...process.env, ...options.env },
    timeout: timeoutMs + 2000,
    killSignal: 'SIGKILL',
    maxBuffer: 1 << 30,
  });
  const ms = performance.now() - started;
  let peakRssBytes: number | null = null;
  if (rssFile) {
    const text = fs.existsSync(rssFile) ? fs.readFileSync(rssFile, 'utf8') : '';
    const kib = /(\d+)\s*$/.exec(text.trim())?.[1];
    peakRssBytes = kib === undefined ? null : Number(kib) * 1024;
    fs.rmSync(path.dirname(rssFile), { recursive: true, force: true });
  }
  // GNU time reports a signalled child as "Command terminated by signal N" and exits 128+N:
  // timeout's SIGKILL shows as 137.
  const timedOut = (r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') || (rssFile !== null && r.status === 137 && ms >= timeoutMs);
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? Buffer.alloc(0), stderr: r.stderr?.toString() ?? '', ms, peakRssBytes, timedOut };
}

export interface EndingExpectation {
  /** Exit codes this case may end with; default: any the command documents. */
  codes?: readonly number[];
  /** Peak RSS limit; default 200 MB. */
  maxRssBytes?: number;
  /** What the case was, for the failure message. */
  what?: string;
}

/**
 * The ending every hostile case must have: no hang, no crash (exit 70, a signal, a stack trace),
 * a documented exit code, and on failure one line per error naming the program.
 */
export function expectCleanEnding(program: Program, r: BoundedResult, expectation: EndingExpectation = {}): void {
  const what = expectation.what ?? '';
  const context = `${program} ${what}: exit ${r.status} (signal ${r.signal}), stderr:\n${r.stderr}`;
  expect(r.timedOut, `hung: ${context}`).toBe(false);
  expect(r.signal, `killed by a signal: ${context}`).toBeNull();
  expect(r.stderr, `stack trace: ${context}`).not.toMatch(/^\s+at /m);
  expect(r.status, `internal error: ${context}`).not.toBe(70);
  const allowed = expectation.codes ? new Set(expectation.codes) : DOCUMENTED_EXIT_CODES[program];
  expect(allowed.has(r.status ?? -1), `undocumented or unexpected exit code: ${context}`).toBe(true);
  if (r.status !== 0) {
    const errorLines = r.stderr.split('\n').filter((l) => l.startsWith(`${program}: `));
    expect(errorLines.length, `no "${program}: " error line: ${context}`).toBeGreaterThan(0);
  }
  if (r.peakRssBytes !== null) {
    expect(r.peakRssBytes, `peak RSS ${r.peakRssBytes} bytes: ${context}`).toBeLessThan(expectation.maxRssBytes ?? 200e6);
  }
}

/** Runs a command on a hostile case and checks its ending; returns the result for further checks. */
export function runHostile(program: Program, args: string[], expectation: EndingExpectation & { input?: Buffer | string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): BoundedResult {
  const r = runBounded(program, args, { input: expectation.input, timeoutMs: expectation.timeoutMs, env: expectation.env });
  expectCleanEnding(program, r, { ...expectation, what: expectation.what ?? args.join(' ') });
  return r;
}

/** A seeded corruption of a good input: what was changed (for the failure message) and the bytes. */
export interface Mutant {
  description: string;
  bytes: Buffer;
}

/**
 * Seeded random corruptions of `good` inside [from, to): single bit flips, random bytes, runs of
 * 0x00 or 0xff, and 16/32/64-bit little-endian fields set to 0, 1, all ones or a random value
 * (the values parsers trip over). Reproducible from `seed`.
 */
export function* mutants(good: Buffer, seed: number, count: number, region: { from?: number; to?: number } = {}): Generator<Mutant> {
  const random = prng(seed);
  const from = region.from ?? 0;
  const to = Math.min(region.to ?? good.length, good.length);
  const span = Math.max(1, to - from);
  const at = (width = 1): number => from + Math.floor(random() * Math.max(1, span - width + 1));
  for (let i = 0; i < count; i++) {
    const bytes = Buffer.from(good);
    const kind = Math.floor(random() * 5);
    let description: string;
    if (kind === 0) {
      const o = at();
      const bit = Math.floor(random() * 8);
      bytes[o]! ^= 1 << bit;
      description = `bit ${bit} of byte ${o} flipped`;
    } else if (kind === 1) {
      const n = 1 + Math.floor(random() * 8);
      const o = at(n);
      for (let k = 0; k < n && o + k < to; k++) bytes[o + k] = Math.floor(random() * 256);
      description = `${n} random bytes at ${o}`;
    } else if (kind === 2) {
      const n = 1 + Math.floor(random() * 64);
      const o = at(n);
      const v = random() < 0.5 ? 0 : 0xff;
      bytes.fill(v, o, Math.min(to, o + n));
      description = `${n} bytes of 0x${v.toString(16)} at ${o}`;
    } else {
      const width = [2, 4, 8][Math.floor(random() * 3)]!;
      const o = at(width);
      const choice = Math.floor(random() * 4);
      const value = [0n, 1n, (1n << BigInt(8 * width)) - 1n, BigInt(Math.floor(random() * 2 ** 32)) * BigInt(Math.floor(random() * 2 ** 32))][choice]! & ((1n << BigInt(8 * width)) - 1n);
      for (let k = 0; k < width && o + k < bytes.length; k++) bytes[o + k] = Number((value >> BigInt(8 * k)) & 0xffn);
      description = `${width * 8}-bit field at ${o} set to ${value}`;
    }
    yield { description: `seed ${seed} case ${i}: ${description}`, bytes };
  }
}

/**
 * Runs `body` and returns how long it took and how much the heap grew: in-process fuzzing of a
 * pure parser checks its time and allocation bounds this way (a process per case would cost
 * 100 ms each).
 */
export function measured<T>(body: () => T): { value: T | undefined; error: unknown; ms: number; heapGrowthBytes: number } {
  const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const started = performance.now();
  let value: T | undefined;
  let error: unknown;
  try {
    value = body();
  } catch (err) {
    error = err;
  }
  const ms = performance.now() - started;
  const heapGrowthBytes = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heapBefore;
  return { value, error, ms, heapGrowthBytes };
}
