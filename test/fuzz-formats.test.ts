/**
 * The formats that joined gzip in issue 10, fuzzed the way gzip is: seeded corruptions of real
 * xz, zstd, bzip2 and Android sparse images (also an Android sparse image inside xz) through the
 * whole source chain, from a file and as a stream. Every case ends in the original bytes, other
 * bytes that really are what the corrupted file now says (it lost its signature and is copied as
 * raw), or one CORRUPT_INPUT error (or UNSUPPORTED_FORMAT when the bytes now look like another
 * format), the same from a file and a stream, within time and memory bounds.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import { identifyImage } from '../src/format/identify.js';
import { openInput } from '../src/io/target.js';
import { openSourceOn } from '../src/sparsecopy/source.js';
import { patternBytes, prng, useTempDir } from './helpers.js';
import { mutants } from './hostile.js';

// A real collection, to tell buffers still held from garbage not yet collected.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

let dir = '';
useTempDir('fuzz-formats-', (d) => (dir = d));

/** A small disk: runs of text-like data (compressible), zeros, incompressible bytes. */
function diskBytes(length: number, seed: number): Buffer {
  const random = prng(seed);
  const b = Buffer.alloc(length);
  for (let at = 0; at < length; ) {
    const run = 512 + Math.floor(random() * 8192);
    const kind = random();
    if (kind < 0.4) Buffer.from(patternBytes(run, seed + at).toString('base64')).copy(b, at, 0, Math.min(run, length - at));
    else if (kind < 0.6) patternBytes(Math.min(run, length - at), seed + at).copy(b, at);
    at += run;
  }
  return b;
}

type Outcome = { kind: 'ok'; bytes: string } | { kind: 'error'; code: string; message: string };

/** Reads `file` through the source chain (as a stream when asked), and sums up how it ended. */
async function readChain(file: string, stream: boolean): Promise<Outcome> {
  const input = openInput(file);
  if (stream) Object.assign(input, { seekable: false, size: null, kind: 'pipe' });
  let source: Awaited<ReturnType<typeof openSourceOn>> | null = null;
  try {
    source = await openSourceOn(input, { chunkBytes: 1 << 20 });
    // A digest of what came out (holes by their length: a corrupt header may declare terabytes).
    const hash = createHash('sha256');
    let expected = 0;
    for await (const e of source.layer.extents({ start: 0, end: null })) {
      expect(e.offset).toBe(expected);
      expected += e.length;
      hash.update(e.data ?? `hole ${e.length}`);
      e.release?.();
    }
    return { kind: 'ok', bytes: hash.digest('hex') };
  } catch (err) {
    if (!(err instanceof ToolError)) throw err;
    // xz and lbzip2 do not say where their input went wrong, only that it was in what they were
    // fed, which depends on how far the feeding got; and lbzip2's threads find one of several
    // faults first: the count and the tool's own words are not compared.
    const message = err.message
      .replace(input.name, 'SOURCE')
      .replace(/within its first \d+ compressed bytes/, 'within its first N compressed bytes')
      .replace(/\((xz|lbzip2): [^)]*\)/, '($1: ...)')
      .replace(/^(SOURCE: )(truncated|corrupt) (xz|bzip2) data/, '$1damaged $3 data');
    return { kind: 'error', code: err.code, message };
  } finally {
    if (source) await source.close();
  }
}

const raw = diskBytes(300_000, 7);
const make = (command: string, args: string[], input: Buffer): Buffer => execFileSync(command, args, { input, maxBuffer: 1 << 28 });

const SAMPLES: { name: string; bytes: () => Buffer; cases: number; minErrors?: number }[] = [
  { name: 'xz (two blocks, CRC64)', bytes: () => make('xz', ['-c', '--block-size=128KiB', '-T1'], raw), cases: 160 },
  { name: 'zstd (two frames with checksums)', bytes: () => Buffer.concat([make('zstd', ['-q', '-c'], raw.subarray(0, 100_000)), make('zstd', ['-q', '-c', '-19'], raw.subarray(100_000))]), cases: 900 },
  { name: 'bzip2', bytes: () => make('bzip2', ['-c', '-1'], raw), cases: 160 },
  // Most of an Android sparse image is RAW data nothing checks: most of its mutants are harmless.
  { name: 'Android sparse', bytes: () => simgOf(raw), cases: 600, minErrors: 60 },
  { name: 'Android sparse inside xz', bytes: () => make('xz', ['-c', '-T1'], simgOf(raw)), cases: 100 },
];

function simgOf(bytes: Buffer): Buffer {
  const img = path.join(dir, 'raw-for-simg.img');
  const padded = Buffer.alloc(Math.ceil(bytes.length / 4096) * 4096);
  bytes.copy(padded);
  fs.writeFileSync(img, padded);
  execFileSync('img2simg', [img, `${img}.simg`]);
  return fs.readFileSync(`${img}.simg`);
}

describe.each(SAMPLES)('$name: seeded corruptions through the source chain', ({ name, bytes, cases, minErrors }) => {
  it(`${cases} mutants: original bytes, raw bytes of a file that is no longer ${name}, or one clean error; alike from a file and a stream`, async () => {
    const good = bytes();
    const original = await readChain(writeCase(good), false);
    expect(original.kind).toBe('ok');
    const format = identifyImage(good);
    const tally = { same: 0, raw: 0, error: 0 };
    let slowest = 0;
    collectGarbage();
    const heapStart = process.memoryUsage().arrayBuffers;
    let mostMemory = 0;
    // One mutant at a time (a list of them all would be what is held).
    const all = function* () {
      yield* mutants(good, 77, Math.floor(cases * 0.7));
      yield* mutants(good, 78, Math.ceil(cases * 0.3), { to: 64 });
    };
    for (const m of all()) {
      const file = writeCase(m.bytes);
      const started = performance.now();
      const fromFile = await readChain(file, false);
      const fromStream = await readChain(file, true);
      slowest = Math.max(slowest, performance.now() - started);
      mostMemory = Math.max(mostMemory, process.memoryUsage().arrayBuffers - heapStart);
      expect(fromStream, `${name}, ${m.description}: file and stream disagree`).toEqual(fromFile);
      if (fromFile.kind === 'ok') {
        if (identifyImage(m.bytes) === format) {
          // Still the format: a harmless change (a header field nobody checks) gives the same disk.
          expect(fromFile.bytes === original.bytes || format === 'android-sparse', `${name}, ${m.description}: success with other bytes`).toBe(true);
          tally.same++;
        } else tally.raw++;
      } else {
        expect(['CORRUPT_INPUT', 'UNSUPPORTED_FORMAT'], `${name}, ${m.description}: ${fromFile.code} ${fromFile.message}`).toContain(fromFile.code);
        expect(fromFile.message, m.description).toMatch(/^SOURCE: /);
        tally.error++;
      }
    }
    expect(slowest, 'slowest case, ms').toBeLessThan(3000);
    // Garbage is not a leak: collected first (what remains is held).
    collectGarbage();
    expect(process.memoryUsage().arrayBuffers - heapStart, 'buffers still held after the cases').toBeLessThan(64 << 20);
    expect(mostMemory, 'buffers held at once, garbage included').toBeLessThan(2 * 2 ** 30);
    expect(tally.error, JSON.stringify(tally)).toBeGreaterThan(minErrors ?? cases / 3);
  }, 120_000);
});

let counter = 0;
function writeCase(bytes: Buffer): string {
  const file = path.join(dir, `case-${counter++ % 4}`);
  fs.writeFileSync(file, bytes);
  return file;
}
