/**
 * The oracle for findSignatures: wipefs itself. What `wipefs -n -J` lists (type, offset, length,
 * usage) and what `wipefs -a -f` erases (its "N bytes were erased at offset X (TYPE)" lines and
 * the bytes that actually changed, by comparing the image before and after).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { findSignatures, type Signature } from '../src/partition/signatures.js';

const C_LOCALE = { ...process.env, LC_ALL: 'C', LANG: 'C' };

export interface Listed {
  type: string;
  offset: number;
  length: number;
  usage: string;
}

/** `wipefs -n -J` of a file or device. */
export function wipefsList(target: string): Listed[] {
  const r = spawnSync('wipefs', ['-n', '-J', '-O', 'OFFSET,TYPE,LENGTH,USAGE', target], { env: C_LOCALE });
  if (r.status !== 0) throw new Error(`wipefs -n ${target} failed (${r.status}): ${r.stderr}`);
  const text = r.stdout.toString().trim();
  if (!text) return [];
  const parsed = JSON.parse(text) as { signatures: { offset: string; type: string; length: number; usage: string }[] };
  return parsed.signatures.map((s) => ({ type: s.type, offset: Number(s.offset), length: s.length, usage: s.usage }));
}

export interface Erased {
  /** wipefs's own account, in its order. */
  reported: { type: string; offset: number; length: number }[];
  /** Offsets of the bytes that changed. */
  changed: number[];
}

/** Runs `wipefs -a -f` on a copy of `file` and says what it erased. */
export function wipefsErase(file: string, copy: string): Erased {
  fs.copyFileSync(file, copy);
  const r = spawnSync('wipefs', ['-a', '-f', copy], { env: C_LOCALE });
  if (r.status !== 0) throw new Error(`wipefs -a ${copy} failed (${r.status}): ${r.stderr}`);
  const reported = [...r.stdout.toString().matchAll(/(\d+) bytes? (?:was|were) erased at offset 0x([0-9a-f]+) \(([^)]+)\)/g)].map((m) => ({
    length: Number(m[1]),
    offset: Number.parseInt(m[2]!, 16),
    type: m[3]!,
  }));
  const cmp = spawnSync('cmp', ['-l', file, copy]);
  const changed = cmp.stdout
    .toString()
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => Number(line.trim().split(/\s+/)[0]) - 1);
  fs.rmSync(copy);
  return { reported, changed };
}

/** findSignatures over `[start, start + bytes)` of a file. */
export function signaturesOf(file: string, options: { start?: number; bytes?: number; sectorSize?: number } = {}): Signature[] {
  const start = options.start ?? 0;
  const bytes = options.bytes ?? fs.statSync(file).size - start;
  const fd = fs.openSync(file, 'r');
  try {
    const read = (offset: number, length: number): Buffer => {
      const buffer = Buffer.alloc(length);
      const got = fs.readSync(fd, buffer, 0, length, start + offset);
      return buffer.subarray(0, got);
    };
    return findSignatures(read, bytes, { sectorSize: options.sectorSize });
  } finally {
    fs.closeSync(fd);
  }
}

/** The bytes `[start, start + bytes)` of `file` as a file of their own (what a partition's device shows). */
export function extract(file: string, start: number, bytes: number, out: string): string {
  execFileSync('dd', [`if=${file}`, `of=${out}`, 'bs=64K', `skip=${start}`, `count=${bytes}`, 'iflag=skip_bytes,count_bytes', 'conv=sparse', 'status=none']);
  return out;
}

/** Writes `src` into `file` at `offset` without truncating it (a filesystem put into a partition). */
export function implant(src: string, file: string, offset: number): void {
  execFileSync('dd', [`if=${src}`, `of=${file}`, 'bs=64K', `seek=${offset}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
}

export const hasTool = (name: string): boolean => spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
