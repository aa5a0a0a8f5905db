/**
 * The oracle for findSignatures: wipefs itself. What `wipefs -n -J` lists (type, offset, length,
 * usage) and what `wipefs -a -f` erases (its "N bytes were erased at offset X (TYPE)" lines and
 * the bytes that actually changed, by comparing the image before and after).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { findSignatures, type Signature } from '../src/partition/signatures.js';
import { copySparse } from './helpers.js';

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
  copySparse(file, copy);
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

/** Runs `body` with `file` on a loop device of `sectorSize`-byte sectors; detaches exactly that device. */
export function onLoop<T>(file: string, body: (device: string) => T, sectorSize = 512): T {
  const device = execFileSync('losetup', ['-b', String(sectorSize), '-f', '--show', file]).toString().trim();
  try {
    return body(device);
  } finally {
    execFileSync('losetup', ['-d', device]);
  }
}

export type MdVersion = '0.90' | '1.0' | '1.1' | '1.2';

const MD_MAGIC = 0xa92b4efc;

/** md's superblock checksum: 32-bit words summed in 64 bits, the carry folded in once. */
function mdChecksum(words: Buffer): number {
  let sum = 0n;
  for (let o = 0; o + 4 <= words.length; o += 4) sum += BigInt(words.readUInt32LE(o));
  return Number(((sum & 0xffffffffn) + (sum >> 32n)) & 0xffffffffn);
}

/**
 * Writes the superblock of a 2-disk RAID1 member into `file` (of `bytes`), as mdadm --create
 * would (md_p.h's layouts, checksums included: `mdadm --examine` accepts them). No md driver
 * here (no /proc/mdstat), so mdadm itself cannot create arrays on this machine.
 */
export function writeMdSuperblock(file: string, bytes: number, version: MdVersion): number {
  const fd = fs.openSync(file, 'r+');
  try {
    if (version === '0.90') {
      const offset = Math.floor(bytes / 65536) * 65536 - 65536;
      const sb = Buffer.alloc(4096);
      const w = (i: number, v: number): void => void sb.writeUInt32LE(v >>> 0, i * 4);
      [MD_MAGIC, 0, 90, 0].forEach((v, i) => w(i, v));
      w(5, 0x11223344), w(6, 1700000000), w(7, 1), w(8, offset / 1024), w(9, 2), w(10, 2);
      w(13, 0x55667788), w(14, 0x99aabbcc), w(15, 0xddeeff00);
      w(32, 1700000000), w(33, 1), w(34, 2), w(35, 2);
      w(38, mdChecksum(sb));
      fs.writeSync(fd, sb, 0, sb.length, offset);
      return offset;
    }
    const offset = version === '1.0' ? Math.floor(bytes / 4096) * 4096 - 8192 : version === '1.1' ? 0 : 4096;
    const sb = Buffer.alloc(260);
    sb.writeUInt32LE(MD_MAGIC, 0);
    sb.writeUInt32LE(1, 4); // major version
    Buffer.from('0123456789abcdef0123456789abcdef', 'hex').copy(sb, 16); // set uuid
    sb.write('sig:0', 32, 'latin1'); // set name
    sb.writeBigUInt64LE(1700000000n, 64); // ctime
    sb.writeUInt32LE(1, 72); // level 1
    const dataOffset = version === '1.0' ? 0 : 2048;
    const dataSectors = version === '1.0' ? offset / 512 : bytes / 512 - dataOffset;
    sb.writeBigUInt64LE(BigInt(dataSectors), 80); // size
    sb.writeUInt32LE(2, 92); // raid disks
    sb.writeBigUInt64LE(BigInt(dataOffset), 128);
    sb.writeBigUInt64LE(BigInt(dataSectors), 136);
    sb.writeBigUInt64LE(BigInt(offset / 512), 144); // super offset
    Buffer.from('fedcba9876543210fedcba9876543210', 'hex').copy(sb, 160); // device uuid
    sb.writeBigUInt64LE(1700000000n, 192); // utime
    sb.writeBigUInt64LE(1n, 200); // events
    sb.writeBigUInt64LE(0xffffffffffffffffn, 208); // resync offset: in sync
    sb.writeUInt32LE(2, 220); // max dev
    sb.writeUInt16LE(0, 256), sb.writeUInt16LE(1, 258); // dev roles
    sb.writeUInt32LE(mdChecksum(sb), 216);
    fs.writeSync(fd, sb, 0, sb.length, offset);
    return offset;
  } finally {
    fs.closeSync(fd);
  }
}
