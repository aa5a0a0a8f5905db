/**
 * Decompression by a child process (xz, lbzip2): the fastest decoders here are the Debian tools,
 * multi-threaded, against single-threaded npm ports (bench/codecs-compressed.mjs: 2 GiB image,
 * `xz -dc -T0` 6.8 s against lzma-native's 23.6 s and xz-decompress's 20.0 s; lbzip2 17.7 s
 * against bzip2's 30.8 s).
 *
 * The child reads the compressed input from a pipe we feed (the sniffed head first, then the rest
 * of the file or stream). It writes into a raw pipe whose other end the decoder thread reads
 * into reused shared slots (decoder-thread.ts, kind 'copy'), so the decoded bytes reach the sink
 * without garbage. Its exit status and its stderr tell whether the data was sound.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Extent } from '../extent/extent.js';
import { killAtExit } from '../io/children.js';
import { createPipe } from '../io/ffi.js';
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
  // Fed by us, from a file as from a pipe: progress counts what the child has taken, and the
  // compressed bytes cost one more copy, small next to what they decompress to.
  let child: ChildProcess;
  try {
    child = spawn(tool.command, tool.args, { stdio: ['pipe', pipe.writeFd, 'pipe'] });
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

  let fed = 0;
  const feeding = feed(child, input, (n) => (fed += n));
  const reader = decodeThread('copy', { fd: pipe.readFd, start: null, end: null, pending: null }, { ...options, batchReads: pipe.enlarged });
  const compressedBytesRead = (): number => fed;

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
    }
  }
  // Done with the input's descriptor once the feeding is over (it stops when the child does).
  return { extents: extents(), compressedBytesRead, jobEnded: () => feeding };
}

/** Copies the sniffed head, then the rest of the stream, into the child's stdin. */
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
