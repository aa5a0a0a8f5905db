/**
 * The oracle harness for ptable's write semantics: the same operation done by sfdisk (or sgdisk)
 * on one copy of an image and by ptable on another, on image files or on loop devices of 512- or
 * 4096-byte sectors, then the two images compared byte for byte with the random ids normalised
 * (the dos disk id, the GPT disk and partition GUIDs, and the CRCs that cover them). Independent
 * of the code under test: the normalisation works from the on-disk layout (table-edits.ts
 * offsets), not from ptable's readers.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { copySparse, PTABLE } from './helpers.js';
import { GPT_ENTRY_FIELD, GPT_HEADER_FIELD } from './table-edits.js';

export interface ToolRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The image after the run. */
  image: Buffer;
}

export interface ReplayCase {
  /** Image size in bytes (a sparse file). */
  bytes: number;
  sectorSize?: 512 | 4096;
  /** Prepares the blank image before either tool runs (the same bytes for both), e.g. sfdiskWrite. */
  setup?: (image: string) => void;
  /** The oracle's command and arguments; the word DISK is replaced by the image or device path. */
  oracle: { command: 'sfdisk' | 'sgdisk'; args: string[] };
  /** ptable's arguments; DISK as above. */
  ptable: string[];
  /** stdin for both (an sfdisk script). */
  input?: string;
  /** Run both on loop devices (`losetup -b sectorSize`) instead of the files; root only. */
  device?: boolean;
}

export interface Replay {
  oracle: ToolRun;
  ptable: ToolRun;
}

const C_LOCALE = { ...process.env, LC_ALL: 'C', LANG: 'C' };

function attachWithSectorSize(file: string, sectorSize: number): string {
  return execFileSync('losetup', ['-b', String(sectorSize), '-f', '--show', file]).toString().trim();
}

function runOn(file: string, c: ReplayCase, command: string, args: string[]): ToolRun {
  const device = c.device ? attachWithSectorSize(file, c.sectorSize ?? 512) : null;
  try {
    const target = device ?? file;
    const argv = args.map((a) => (a === 'DISK' ? target : a));
    const r = spawnSync(command, argv, { input: c.input ?? '', env: C_LOCALE, maxBuffer: 1 << 26 });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), image: Buffer.alloc(0) };
  } finally {
    if (device) execFileSync('losetup', ['-d', device]);
  }
}

/**
 * Runs the oracle on one copy and ptable on another (in `dir`, named after `name`) and returns
 * both results with the images read back. The image files are removed afterwards.
 */
export function replay(dir: string, name: string, c: ReplayCase): Replay {
  const base = path.join(dir, `${name.replace(/[^A-Za-z0-9_.-]+/g, '_')}`);
  const files = { oracle: `${base}.oracle.img`, ptable: `${base}.ptable.img` };
  try {
    fs.rmSync(files.oracle, { force: true });
    fs.writeFileSync(files.oracle, '');
    fs.truncateSync(files.oracle, c.bytes);
    c.setup?.(files.oracle);
    copySparse(files.oracle, files.ptable);
    const sectorArgs = c.sectorSize && !c.device ? ['--sector-size', String(c.sectorSize)] : [];
    const oracle = runOn(files.oracle, c, c.oracle.command, c.oracle.args);
    const ours = runOn(files.ptable, c, process.execPath, [PTABLE, ...sectorArgs, ...c.ptable]);
    oracle.image = fs.readFileSync(files.oracle);
    ours.image = fs.readFileSync(files.ptable);
    return { oracle, ptable: ours };
  } finally {
    fs.rmSync(files.oracle, { force: true });
    fs.rmSync(files.ptable, { force: true });
  }
}

const EFI_PART = Buffer.from('EFI PART', 'latin1');

/**
 * The sectors of `image` that hold random ids, each as a copy with those ids zeroed: sector 0
 * (the dos disk id, bytes 440-443), and in each GPT header found (LBA 1, the last LBA, and where
 * the primary says the backup is) the disk GUID and both CRCs, and in its entry array the unique
 * GUID of every entry. Only these sectors are copied: images are compared in place otherwise.
 */
export function normalisedSectors(image: Buffer, sectorSize: number): Map<number, Buffer> {
  const patched = new Map<number, Buffer>();
  const sector = (lba: number): Buffer | null => {
    if (lba < 0 || (lba + 1) * sectorSize > image.length) return null;
    let copy = patched.get(lba);
    if (!copy) {
      copy = Buffer.from(image.subarray(lba * sectorSize, (lba + 1) * sectorSize));
      patched.set(lba, copy);
    }
    return copy;
  };
  /** Zeroes `length` bytes at byte `offset` of the image, in the patched copies. */
  const zero = (offset: number, length: number): void => {
    for (let at = offset; at < offset + length; ) {
      const lba = Math.floor(at / sectorSize);
      const copy = sector(lba);
      const end = Math.min(offset + length, (lba + 1) * sectorSize);
      copy?.fill(0, at - lba * sectorSize, end - lba * sectorSize);
      at = end;
    }
  };
  if (image.length >= 512) zero(440, 4);
  const last = image.length / sectorSize - 1;
  const lbas = new Set([1, last]);
  const primary = sectorSize;
  if (image.length >= primary + 512 && image.subarray(primary, primary + 8).equals(EFI_PART)) lbas.add(Number(image.readBigUInt64LE(primary + GPT_HEADER_FIELD.alternateLba)));
  for (const lba of lbas) {
    const at = lba * sectorSize;
    if (at < 0 || at + sectorSize > image.length || !image.subarray(at, at + 8).equals(EFI_PART)) continue;
    const entriesLba = Number(image.readBigUInt64LE(at + GPT_HEADER_FIELD.entriesLba));
    const count = image.readUInt32LE(at + GPT_HEADER_FIELD.entryCount);
    const size = image.readUInt32LE(at + GPT_HEADER_FIELD.entrySize);
    zero(at + GPT_HEADER_FIELD.headerCrc, 4);
    zero(at + 56, 16); // disk GUID
    zero(at + GPT_HEADER_FIELD.entriesCrc, 4);
    if (size < 128 || count > 4096) continue;
    for (let i = 0; i < count; i++) {
      const e = entriesLba * sectorSize + i * size;
      if (e + size > image.length) break;
      zero(e + GPT_ENTRY_FIELD.unique, 16);
    }
  }
  return patched;
}

/** A copy of `image` with every random id zeroed (see normalisedSectors). */
export function normalisedImage(image: Buffer, sectorSize: number): Buffer {
  const copy = Buffer.from(image);
  for (const [lba, data] of normalisedSectors(image, sectorSize)) data.copy(copy, lba * sectorSize);
  return copy;
}

/**
 * Where two images differ, as "byte N (sector S): oracle X, ptable Y", or null when equal. With
 * `normalise`, the random ids are ignored (see normalisedSectors).
 */
export function imageDifference(oracle: Buffer, ours: Buffer, sectorSize: number, normalise = true): string | null {
  if (oracle.length !== ours.length) return `sizes differ: oracle ${oracle.length} bytes, ptable ${ours.length}`;
  const none = new Map<number, Buffer>();
  const patchA = normalise ? normalisedSectors(oracle, sectorSize) : none;
  const patchB = normalise ? normalisedSectors(ours, sectorSize) : none;
  const byteAt = (image: Buffer, patch: Map<number, Buffer>, i: number): number => {
    const p = patch.get(Math.floor(i / sectorSize));
    return p ? p[i % sectorSize]! : image[i]!;
  };
  const chunk = 1 << 16; // a multiple of both sector sizes
  for (let o = 0; o < oracle.length; o += chunk) {
    const end = Math.min(o + chunk, oracle.length);
    let patchedHere = false;
    for (let lba = o / sectorSize; lba < end / sectorSize && !patchedHere; lba++) patchedHere = patchA.has(lba) || patchB.has(lba);
    if (!patchedHere && oracle.subarray(o, end).equals(ours.subarray(o, end))) continue;
    for (let i = o; i < end; i++) {
      const a = byteAt(oracle, patchA, i);
      const b = byteAt(ours, patchB, i);
      if (a !== b) return `byte ${i} (sector ${Math.floor(i / sectorSize)}, +${i % sectorSize}): oracle 0x${a.toString(16)}, ptable 0x${b.toString(16)}`;
    }
  }
  return null;
}
