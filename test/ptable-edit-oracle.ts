/**
 * In-process replays for ptable's pure edits (src/partition/edit-script.ts): sfdisk runs on one
 * copy of an image, the pure function's table is written with the one writer on another, and the
 * images are compared with test/sfdisk-oracle.ts's imageDifference. With sfdisk's arguments, the
 * same command line is also given to ptable itself (its sfdisk compatibility maps `-N N DISK` and
 * `--append DISK` onto `write`) on a third copy, which must end exactly as the pure edit did: the
 * same bytes, or a refusal (non-zero exit) with the disk untouched.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { openDisk } from '../src/io/disk.js';
import { writeTable } from '../src/io/table-writer.js';
import type { PartitionTable } from '../src/partition/model.js';
import { readTable } from '../src/partition/read.js';
import { copySparse, PTABLE } from './helpers.js';
import { imageDifference } from './sfdisk-oracle.js';

/** The prepared image holds no table: a step that creates one, which the edit cannot replay. */
class NoTableToEdit extends Error {
  constructor() {
    super('no table on the prepared image');
  }
}

export interface EditReplay {
  oracle: { status: number | null; stdout: string; stderr: string; image: Buffer };
  /** The pure edit's table written, or the error it threw. */
  ours: { image: Buffer; error?: unknown };
}

export interface EditCase {
  bytes: number;
  sectorSize?: 512 | 4096;
  setup?: (image: string) => void;
  /** An sfdisk script that prepares the image (on the loop device with `device`), after `setup`. */
  setupScript?: string;
  /** sfdisk's arguments after `--no-reread --no-tell-kernel -q`; DISK is the image or device. */
  sfdisk?: string[];
  /** Or sgdisk's arguments (as given; DISK as above). */
  sgdisk?: string[];
  input?: string;
  /** The edit under test, on the table read from the prepared image. */
  edit: (table: PartitionTable) => PartitionTable;
  /** Run sfdisk on a loop device of this sector size (root). */
  device?: boolean;
  /**
   * false: sfdisk's arguments are not the edit (a step that only prepares the next image, or a
   * dump): ptable's command line is not checked against the pure edit.
   */
  cli?: boolean;
}

export function replayEdit(dir: string, name: string, c: EditCase): EditReplay {
  const base = path.join(dir, name.replace(/[^A-Za-z0-9_.-]+/g, '_'));
  const files = { oracle: `${base}.sfdisk.img`, ours: `${base}.ptable.img`, cli: `${base}.cli.img` };
  try {
    fs.writeFileSync(files.oracle, '');
    fs.truncateSync(files.oracle, c.bytes);
    c.setup?.(files.oracle);
    const ss = c.sectorSize ?? 512;
    const device = c.device ? execFileSync('losetup', ['-b', String(ss), '-f', '--show', files.oracle]).toString().trim() : null;
    let r;
    try {
      if (c.setupScript !== undefined) {
        const s = spawnSync('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', device ?? files.oracle], { input: c.setupScript });
        if (s.status !== 0) throw new Error(`sfdisk setup failed: ${s.stderr.toString()}`);
      }
      copySparse(files.oracle, files.ours);
      copySparse(files.oracle, files.cli);
      const disk = (a: string): string => (a === 'DISK' ? device ?? files.oracle : a);
      const [command, args] = c.sgdisk ? ['sgdisk', c.sgdisk.map(disk)] : ['sfdisk', ['--no-reread', '--no-tell-kernel', '-q', ...(c.sfdisk ?? []).map(disk)]];
      r = spawnSync(command, args, { input: c.input ?? '', env: { ...process.env, LC_ALL: 'C' } });
    } finally {
      if (device) execFileSync('losetup', ['-d', device]);
    }
    const ours: EditReplay['ours'] = { image: Buffer.alloc(0) };
    const disk = openDisk(files.ours, { writable: true, sectorSize: ss });
    try {
      const { table } = readTable(disk.read, disk.sectorSize, disk.sectors);
      if (!table) throw new NoTableToEdit();
      writeTable(disk, c.edit(table));
    } catch (error) {
      ours.error = error;
    } finally {
      disk.close();
    }
    ours.image = fs.readFileSync(files.ours);
    if (c.sfdisk && !c.sgdisk && c.cli !== false && !(ours.error instanceof NoTableToEdit)) checkCommandLine(files.cli, c, ours);
    return { oracle: { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), image: fs.readFileSync(files.oracle) }, ours };
  } finally {
    fs.rmSync(files.oracle, { force: true });
    fs.rmSync(files.ours, { force: true });
    fs.rmSync(files.cli, { force: true });
  }
}

/** ptable given sfdisk's own arguments must do what the pure edit did (throws where it does not). */
function checkCommandLine(file: string, c: EditCase, ours: EditReplay['ours']): void {
  const before = fs.readFileSync(file);
  const args = ['--sector-size', String(c.sectorSize ?? 512), '--no-reread', '--no-tell-kernel', '-q', ...(c.sfdisk ?? []).map((a) => (a === 'DISK' ? file : a))];
  const r = spawnSync(process.execPath, [PTABLE, ...args], { input: c.input ?? '' });
  const after = fs.readFileSync(file);
  const said = `ptable ${args.join(' ')}: exit ${r.status}, ${r.stderr.toString().trim()}`;
  if (ours.error === undefined) {
    if (r.status !== 0) throw new Error(`${said}; the pure edit succeeded`);
    const difference = imageDifference(ours.image, after, c.sectorSize ?? 512); // new GPT partitions get random GUIDs
    if (difference) throw new Error(`${said}; its image differs from the pure edit's at ${difference}`);
  } else {
    if (r.status === 0 || r.status === 70 || /\n\s+at /.test(r.stderr.toString())) throw new Error(`${said}; the pure edit refused: ${String(ours.error)}`);
    if (!after.equals(before)) throw new Error(`${said}; it refused but changed the disk`);
  }
}
