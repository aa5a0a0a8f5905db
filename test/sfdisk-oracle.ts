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
import { PTABLE } from './helpers.js';
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
    fs.copyFileSync(files.oracle, files.ptable);
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

/** Zeroes a GPT header's random GUIDs and CRCs, and its entries' unique GUIDs, in place. */
function normaliseGptAt(image: Buffer, lba: number, sectorSize: number): void {
  const at = lba * sectorSize;
  if (at < 0 || at + sectorSize > image.length || !image.subarray(at, at + 8).equals(EFI_PART)) return;
  const entriesLba = Number(image.readBigUInt64LE(at + GPT_HEADER_FIELD.entriesLba));
  const count = image.readUInt32LE(at + GPT_HEADER_FIELD.entryCount);
  const size = image.readUInt32LE(at + GPT_HEADER_FIELD.entrySize);
  image.fill(0, at + GPT_HEADER_FIELD.headerCrc, at + GPT_HEADER_FIELD.headerCrc + 4);
  image.fill(0, at + 56, at + 72); // disk GUID
  image.fill(0, at + GPT_HEADER_FIELD.entriesCrc, at + GPT_HEADER_FIELD.entriesCrc + 4);
  if (size < 128 || count > 4096) return;
  for (let i = 0; i < count; i++) {
    const e = entriesLba * sectorSize + i * size;
    if (e + size > image.length) break;
    const unique = e + GPT_ENTRY_FIELD.unique;
    image.fill(0, unique, unique + 16);
  }
}

/**
 * A copy of `image` with every id that sfdisk and ptable choose at random set to zero: the dos
 * disk id (bytes 440-443 of sector 0), and in each GPT header found (LBA 1, the last LBA, and
 * where the primary says the backup is) the disk GUID, both CRCs, and the unique GUID of every
 * entry.
 */
export function normalisedImage(image: Buffer, sectorSize: number): Buffer {
  const copy = Buffer.from(image);
  copy.fill(0, 440, 444);
  const last = copy.length / sectorSize - 1;
  const lbas = new Set([1, last]);
  const primary = sectorSize;
  if (copy.subarray(primary, primary + 8).equals(EFI_PART)) lbas.add(Number(copy.readBigUInt64LE(primary + GPT_HEADER_FIELD.alternateLba)));
  for (const lba of lbas) normaliseGptAt(copy, lba, sectorSize);
  return copy;
}

/**
 * Where two images differ, as "byte N (sector S): oracle X, ptable Y", or null when equal. With
 * `normalise`, the random ids are ignored (see normalisedImage).
 */
export function imageDifference(oracle: Buffer, ours: Buffer, sectorSize: number, normalise = true): string | null {
  const a = normalise ? normalisedImage(oracle, sectorSize) : oracle;
  const b = normalise ? normalisedImage(ours, sectorSize) : ours;
  if (a.length !== b.length) return `sizes differ: oracle ${a.length} bytes, ptable ${b.length}`;
  const chunk = 1 << 16;
  for (let o = 0; o < a.length; o += chunk) {
    const end = Math.min(o + chunk, a.length);
    if (a.subarray(o, end).equals(b.subarray(o, end))) continue;
    for (let i = o; i < end; i++) {
      if (a[i] !== b[i]) return `byte ${i} (sector ${Math.floor(i / sectorSize)}, +${i % sectorSize}): oracle 0x${a[i]!.toString(16)}, ptable 0x${b[i]!.toString(16)}`;
    }
  }
  return null;
}
