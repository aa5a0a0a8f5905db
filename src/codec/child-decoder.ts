/**
 * Decompression by a child process (xz, lbzip2): the fastest decoders here are the Debian tools,
 * multi-threaded, against single-threaded npm ports (bench/codecs-compressed.mjs: 2 GiB image,
 * `xz -dc -T0` 6.8 s against lzma-native's 23.6 s and xz-decompress's 20.0 s; lbzip2 17.7 s
 * against bzip2's 30.8 s).
 *
 * From a file, the child reads the file itself (its stdin is the file, positioned where the
 * stream starts) and writes into a raw pipe of ours that this thread reads in small pieces
 * (io/pipe-reader.ts: read, scanned and written on one core, as dd does). From a stream, we feed
 * the child (the sniffed head first, then the rest), so the event loop must stay free: the pipe
 * is then read by the decoder thread into reused shared slots (decoder-thread.ts, kind 'copy').
 * Either way the decoded bytes reach the sink without garbage, and the child's exit status and
 * stderr tell whether the data was sound.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Extent } from '../extent/extent.js';
import { killAtExit } from '../io/children.js';
import { createPipe, seekSet } from '../io/ffi.js';
import { readPipeHere } from '../io/pipe-reader.js';
import { DecodeError, type DecoderInput, decodeThread } from './decoder-thread.js';

export interface DecoderTool {
  /** The program and its arguments to decompress stdin to stdout. */
  command: string;
  args: string[];
  /** The Debian package that provides it, for the "missing" message. */
  debianPackage: string;
}

/** Kept from a failing child's stderr: its last lines say why. */
const STDERR_KEEP_BYTES = 4096;
const FEED_BYTES = 1 << 20;

/** Whether `command` is an executable on PATH (checked before anything is written). */
export function findOnPath(command: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const candidate = `${dir || '.'}/${command}`;
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      /* not here */
    }
  }
  return null;
}

/**
 * The decoded bytes of `input` as extents (see decodeThread), decompressed by `tool`. A DecodeError
 * when the child fails (corrupt or truncated data: its stderr's last line is the message) or
 * cannot be started.
 */
export function childDecoder(
  tool: DecoderTool,
  input: DecoderInput,
  options: { slotBytes?: number } = {},
): { extents: AsyncGenerator<Extent>; compressedBytesRead: () => number; jobEnded: () => Promise<void> } {
  const created = createPipe();
  if (!created) throw new DecodeError({ message: 'no pipe for the decompressor (ffi unavailable)', decoding: false, truncated: false, readBytes: 0, consumedBytes: 0, fedBytes: 0, outputBytes: 0 });
  const pipe = created;
  const fileInput = ownFileDescription(input);
  let child: ChildProcess;
  try {
    child = spawn(tool.command, tool.args, { stdio: [fileInput ? fileInput.fd : 'pipe', pipe.writeFd, 'pipe'] });
  } finally {
    fs.closeSync(pipe.writeFd); // the child holds its copy: our reader sees the end when it exits
  }
  killAtExit(child);
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-STDERR_KEEP_BYTES)));
  let spawnError: Error | null = null;
  child.once('error', (err) => (spawnError = err));
  const status = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );

  const fed = fileInput ? fedFromFile(fileInput.fd, input.start!, child) : fedByUs(child, input);
  const reader = fileInput
    ? { extents: readPipeHere(pipe.readFd), jobEnded: async () => undefined }
    : decodeThread('copy', { fd: pipe.readFd, start: null, end: null, pending: null }, { ...options, batchReads: pipe.enlarged });
  const compressedBytesRead = (): number => fed.bytes();

  async function* extents(): AsyncGenerator<Extent> {
    let outputBytes = 0;
    let finished = false;
    try {
      for await (const e of reader.extents) {
        outputBytes = e.offset + e.length;
        yield e;
      }
      const { code, signal } = await status;
      finished = true;
      if (spawnError || code !== 0) {
        const why = spawnError ? (spawnError as Error).message : (lastLine(stderr) ?? (signal ? `killed by ${signal}` : `exit status ${code}`));
        const read = compressedBytesRead();
        // The tool does not say where its input went wrong: somewhere in what it had been given.
        throw new DecodeError({ message: why, decoding: !spawnError, truncated: /unexpected end|truncated|premature/i.test(why), readBytes: read, consumedBytes: 0, fedBytes: read, outputBytes, withinFed: true });
      }
    } finally {
      if (!finished) child.kill('SIGKILL');
      // The thread may still be in a read of the pipe: closed only once it is done (the child's
      // end closes with it), so the descriptor's number is never reused under that read.
      await reader.jobEnded();
      fs.closeSync(pipe.readFd);
      fed.close();
    }
  }
  // Done with the input's descriptor once the feeding is over (it stops when the child does).
  return { extents: extents(), compressedBytesRead, jobEnded: fed.done };
}

/**
 * A descriptor of its own (its own file position) on the input file, at the stream's start, for
 * the child's stdin: when the stream runs from `start` to the end of a regular file. Null
 * otherwise (a pipe, a stream that ends before the file does, no FFI to position it).
 */
function ownFileDescription(input: DecoderInput): { fd: number } | null {
  if (input.start === null || input.end === null) return null;
  const stat = fs.fstatSync(input.fd);
  if (!stat.isFile() || stat.size !== input.end) return null;
  const fd = fs.openSync(`/proc/self/fd/${input.fd}`, 'r');
  if (input.start === 0 || seekSet(fd, input.start)) return { fd };
  fs.closeSync(fd);
  return null;
}

interface Fed {
  /** Compressed bytes the child has taken so far. */
  bytes: () => number;
  /** Resolves once nothing more is read from the input's descriptor. */
  done: () => Promise<void>;
  /** Once the child is gone: what it took stays known, and what was opened for it is closed. */
  close: () => void;
}

/**
 * How far a child reading the file itself has got: the position of the file description it shares
 * with `fd` (so it is known after the child's exit too), looked up at most every LOOK_EVERY_MS
 * while it runs, since the copy asks for it at every extent.
 */
function fedFromFile(fd: number, start: number, child: ChildProcess): Fed {
  const LOOK_EVERY_MS = 100;
  let known = 0;
  let lookedAt = 0;
  let running = true;
  let open = true;
  child.once('exit', () => (running = false));
  const look = (): void => {
    const pos = /^pos:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
    if (pos) known = Math.max(known, Number(pos[1]) - start);
  };
  return {
    bytes: () => {
      const now = Date.now();
      if (open && (!running || now - lookedAt >= LOOK_EVERY_MS)) {
        lookedAt = now;
        look();
      }
      return known;
    },
    done: async () => undefined,
    close: () => {
      if (!open) return;
      look();
      open = false;
      fs.closeSync(fd);
    },
  };
}

function fedByUs(child: ChildProcess, input: DecoderInput): Fed {
  let fed = 0;
  const feeding = feed(child, input, (n) => (fed += n));
  return { bytes: () => fed, done: () => feeding, close: () => undefined };
}

/**
 * Copies the sniffed head, then the rest of the stream, into the child's stdin: the compressed
 * bytes cost one more copy, small next to what they decompress to.
 */
async function feed(child: ChildProcess, input: DecoderInput, onFed: (n: number) => void): Promise<void> {
  const stdin = child.stdin!;
  stdin.on('error', () => undefined); // the child stopped reading: its exit status tells why
  // Resolved by the write's own callback, which also comes when the child is gone (EPIPE): a
  // 'drain' that never comes would leave this copy, and its buffers, waiting for ever.
  const write = (b: Buffer): Promise<void> => new Promise((resolve) => stdin.write(b, () => resolve()));
  try {
    if (input.pending && input.pending.length > 0) {
      await write(input.pending);
      onFed(input.pending.length);
    }
    let position = input.start;
    for (;;) {
      const want = input.end === null || position === null ? FEED_BYTES : Math.min(FEED_BYTES, input.end - position);
      if (want <= 0) break;
      const buffer = Buffer.allocUnsafe(want);
      const n = await new Promise<number>((resolve, reject) => fs.read(input.fd, buffer, 0, want, position, (err, got) => (err ? reject(err) : resolve(got))));
      if (n === 0 || stdin.destroyed) break;
      if (position !== null) position += n;
      await write(buffer.subarray(0, n));
      if (stdin.destroyed) break;
      onFed(n);
    }
  } catch {
    /* a read failure ends the input: the child reports it truncated */
  } finally {
    stdin.end();
  }
}

function lastLine(text: string): string | null {
  const lines = text.trim().split('\n').filter((l) => l.trim() !== '');
  return lines.length > 0 ? lines[lines.length - 1]!.trim() : null;
}
