/**
 * Shared test fixtures: temporary directories, sparse files built from an extent map, the CLI run
 * as a real process, and loop devices (attached and detached by exact name).
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import { readAt } from '../src/fsmaker/read-range.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SPARSECOPY = path.join(ROOT, 'dist/bin/sparsecopy.mjs');

export function makeTempDir(prefix = 'sc-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A piece of a fixture: data at an offset (holes elsewhere). */
export interface Piece {
  offset: number;
  data: Buffer;
}

/** Writes a sparse file of `size` bytes holding `pieces`; everything else is a hole. */
export function writeSparseFile(file: string, size: number, pieces: Piece[]): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (const p of pieces) fs.writeSync(fd, p.data, 0, p.data.length, p.offset);
    fs.ftruncateSync(fd, size);
  } finally {
    fs.closeSync(fd);
  }
}

/** Deterministic non-zero-heavy bytes (no byte is guaranteed zero, a few are). */
export function patternBytes(length: number, seed = 1): Buffer {
  const b = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = (x & 0xff) | 1; // never zero: a data block is never mistaken for a hole
  }
  return b;
}

/** Bytes actually allocated on disk (st_blocks * 512). */
export function allocatedBytes(file: string): number {
  return fs.statSync(file).blocks * 512;
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(script: string, args: string[], options: { input?: Buffer | string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const r: SpawnSyncReturns<Buffer> = spawnSync(process.execPath, [script, ...args], {
    input: options.input,
    env: { ...process.env, ...options.env },
    maxBuffer: 1 << 30,
  });
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

export const sparsecopy = (args: string[], options?: { input?: Buffer | string }): CliResult => runCli(SPARSECOPY, args, options);

/** The last line of stderr, where the summary lives. */
export function lastLine(text: string): string {
  const lines = text.trimEnd().split('\n');
  return lines[lines.length - 1] ?? '';
}

export function parseSummary(stderr: string): { total: number; real: number; sparse: number; nonzerodest: number } {
  const m = /^sparsecopy: total bytes = (\d+) \(real = (\d+), sparse = (\d+)\), nonzerodest = (\d+)$/.exec(lastLine(stderr));
  if (!m) throw new Error(`no summary line in: ${stderr}`);
  return { total: Number(m[1]), real: Number(m[2]), sparse: Number(m[3]), nonzerodest: Number(m[4]) };
}

/** Why loop-device tests cannot run here, or null when they can. */
export function loopUnavailableReason(): string | null {
  if (process.getuid?.() !== 0) return 'loop devices need root';
  if (!fs.existsSync('/dev/loop-control')) return 'no /dev/loop-control';
  try {
    execFileSync('losetup', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'losetup is not installed';
  }
  return null;
}

/** Attaches `file` to a free loop device and returns its exact name. */
export function attachLoop(file: string): string {
  return execFileSync('losetup', ['-f', '--show', file]).toString().trim();
}

export function detachLoop(device: string): void {
  execFileSync('losetup', ['-d', device]);
}

/** Runs `body` with `file` attached to a loop device, detaching that exact device afterwards. */
export async function withLoop<T>(file: string, body: (device: string) => Promise<T> | T): Promise<T> {
  const device = attachLoop(file);
  try {
    return await body(device);
  } finally {
    detachLoop(device);
  }
}

/** Like `sparsecopy()`, but stdout is kept as bytes (for DEST "-"). */
export function sparsecopyRaw(args: string[], options: { input?: Buffer | string } = {}): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [SPARSECOPY, ...args], { input: options.input, maxBuffer: 1 << 30 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Temporary files sparsecopy leaves in `dir` if it fails to clean up (".NAME.sparsecopy-PID-START-XXXX"). */
export function tempLeftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => /^\..*\.sparsecopy-/.test(n));
}

/** The lines of a stream's text, without the trailing empty line. */
export function linesOf(text: string): string[] {
  const t = text.trimEnd();
  return t === '' ? [] : t.split('\n');
}

/** Content and identity of a file, to show that a failed run left it alone. */
export interface FileSnapshot {
  bytes: Buffer;
  mtimeMs: number;
  ino: number;
  size: number;
}

export function snapshot(file: string): FileSnapshot {
  const st = fs.statSync(file);
  return { bytes: fs.readFileSync(file), mtimeMs: st.mtimeMs, ino: st.ino, size: st.size };
}

/** Reads `length` bytes at `offset` of a file or device. */
export function readRange(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    return readAt(fd, offset, length);
  } finally {
    fs.closeSync(fd);
  }
}

/** Small deterministic PRNG (mulberry32) for reproducible random tests. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const PTABLE = path.join(ROOT, 'dist/bin/ptable.mjs');

/** Runs ptable as a real process (stdin from `input`, for `ptable write`). */
export const ptable = (args: string[], options?: { input?: Buffer | string }): CliResult => runCli(PTABLE, args, options);

/** Runs an external tool (sfdisk, sgdisk, blkid, file...) in the C locale; never throws on failure. */
export function runTool(command: string, args: string[], options: { input?: Buffer | string } = {}): CliResult {
  const r = spawnSync(command, args, { input: options.input, env: { ...process.env, LC_ALL: 'C', LANG: 'C' }, maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** Offset of the first byte where two buffers differ (a length difference counts), or -1. */
export function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  const chunk = 1 << 16;
  for (let o = 0; o < n; o += chunk) {
    const end = Math.min(o + chunk, n);
    if (a.subarray(o, end).equals(b.subarray(o, end))) continue;
    for (let i = o; i < end; i++) if (a[i] !== b[i]) return i;
  }
  return a.length === b.length ? -1 : n;
}

const CRC32_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, as GPT uses), independent of the code under test. */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC32_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A new sparse image file of `bytes` in `dir` (replacing one of the same name). */
export function newImageIn(dir: string, name: string, bytes: number): string {
  const file = path.join(dir, name);
  fs.rmSync(file, { force: true });
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, bytes);
  fs.closeSync(fd);
  return file;
}

/** Runs sfdisk on `target` with `script` on stdin; throws with its output on failure. */
export function sfdiskWrite(target: string, script: string, extra: string[] = []): void {
  const r = spawnSync('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', ...extra, target], { input: script });
  if (r.status !== 0) throw new Error(`sfdisk failed (${r.status}): ${r.stderr.toString()}${r.stdout.toString()}`);
}

/**
 * A temporary directory for a test file: made before its tests, removed after them. `onReady`
 * receives the path (files keep it in a `dir` variable of their own).
 */
export function useTempDir(prefix: string, onReady: (dir: string) => void): void {
  let dir = '';
  beforeAll(() => {
    dir = makeTempDir(prefix);
    onReady(dir);
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
}

/** The partition number of a `sfdisk -J` node ("/x/a.img5" -> 5, "/dev/loop0p5" -> 5). */
export const nodeNumber = (device: string, node: string): number => Number(node.slice(device.length).replace(/^p/, ''));

/**
 * Copies an image keeping its holes (fs.copyFileSync writes every zero of a sparse file: 2 s for
 * a 512 MiB image of holes, where cp --sparse=always takes milliseconds). For byte comparisons
 * only: zero runs the source had allocated become holes too.
 */
export function copySparse(from: string, to: string): void {
  execFileSync('cp', ['--sparse=always', '--', from, to]);
}
