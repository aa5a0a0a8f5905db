/**
 * Seeded corruptions for the whole-table operations: the backup-file readers (sgdisk's format,
 * sfdisk's file names) in-process, errors of their own and never a crash; the table areas and
 * relocations on damaged tables; and a few dozen real processes (restore, restore-pt-sectors,
 * relocate, zap, randomize-guids, backup) on damaged inputs: documented exits, no stack trace,
 * and on failure the disk untouched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import { BackupFileError, offsetFromBackupName, parseSgdiskBackup, serializeSgdiskBackup, tableAreas } from '../src/partition/backup-file.js';
import { serializeGpt } from '../src/partition/gpt.js';
import { RELOCATE_MODES, relocatedWrites } from '../src/partition/gpt-ops.js';
import { applyWrites, bufferReader, readTable } from '../src/partition/read.js';
import { prng, useTempDir } from './helpers.js';
import { measured, mutants, runHostile } from './hostile.js';
import { repairGptCrcs } from './table-edits.js';

let dir = '';
useTempDir('ptable-gpt-fuzz-', (d) => {
  dir = d;
});

/** Small, so that each mutant (a copy of the image) costs little: 128 KiB. */
const SECTORS = 256;

/** A GPT image with three partitions, built by ptable's serializer (GUIDs fixed). */
function goodImage(): Buffer {
  const image = Buffer.alloc(SECTORS * 512);
  const id = (n: number): string => `${n.toString(16).padStart(8, '0')}-1111-4222-8333-444455556666`.toUpperCase();
  applyWrites(image, 512, serializeGpt({
    label: 'gpt',
    id: id(9),
    sectorSize: 512,
    diskSectors: SECTORS,
    partitions: [1, 2, 3].map((n) => ({ number: n, start: 20 + 20 * n, size: 10, type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', uuid: id(n), name: `p${n}` })),
  }));
  return image;
}

function backupOf(image: Buffer): Buffer {
  return serializeSgdiskBackup(image.subarray(0, 512), image.subarray(512, 1024), image.subarray((SECTORS - 1) * 512, SECTORS * 512), image.subarray(1024, 1024 + 128 * 128));
}

describe('the sgdisk backup reader on seeded corruptions', () => {
  it('reads the good file back, and 4000 mutants (bytes, fields, lengths) end in a BackupFileError or a checked result, fast', () => {
    const good = backupOf(goodImage());
    expect(parseSgdiskBackup(good).primaryHeader.entryCount).toBe(128);
    const random = prng(1414);
    let rejected = 0;
    let count = 0;
    const cases = [...mutants(good, 14, 3000, { from: 0, to: 1536 + 512 }), ...mutants(good, 15, 800)].map((m) => m.bytes);
    for (let i = 0; i < 200; i++) cases.push(good.subarray(0, Math.floor(random() * good.length)));
    for (const bytes of cases) {
      count++;
      const r = measured(() => parseSgdiskBackup(bytes));
      expect(r.ms).toBeLessThan(100);
      if (r.error) {
        expect(r.error).toBeInstanceOf(BackupFileError);
        const e = r.error as BackupFileError;
        expect(e.offset).toBeGreaterThanOrEqual(0);
        expect(e.offset).toBeLessThanOrEqual(bytes.length);
        rejected++;
      } else {
        const b = r.value!;
        expect(b.entries.length).toBe(b.primaryHeader.entryCount * b.primaryHeader.entrySize);
      }
    }
    expect(count).toBe(4000);
    expect(rejected).toBeGreaterThan(1000);
  });

  it('file names: an offset only from a well-formed …-0xHEX.bak, never a NaN or an unsafe number', () => {
    const random = prng(77);
    const alphabet = 'sfdik-0xX.bakAF9/_';
    for (let i = 0; i < 3000; i++) {
      const name = Array.from({ length: 1 + Math.floor(random() * 30) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
      const offset = offsetFromBackupName(name);
      if (offset !== null) {
        expect(Number.isSafeInteger(offset)).toBe(true);
        expect(name).toMatch(/-0x[0-9a-fA-F]+\.bak$/);
      }
    }
    expect(offsetFromBackupName('/h/sfdisk-sda-0x00000400.bak')).toBe(1024);
    expect(offsetFromBackupName('/h/sfdisk-sda-0xffffffffffffffff.bak')).toBeNull();
  });
});

describe('table areas and relocations on damaged tables', () => {
  it('3000 mutants of the table sectors (CRCs repaired for most): areas inside the disk, relocations a ToolError or writes inside it', () => {
    const good = goodImage();
    const regions = [{ from: 0, to: 34 * 512 }, { from: (SECTORS - 33) * 512, to: SECTORS * 512 }];
    let n = 0;
    for (const [k, region] of regions.entries()) {
      for (const m of mutants(good, 90 + k, 1500, region)) {
        if (n++ % 3 !== 0) repairGptCrcs(m.bytes, 512);
        const read = bufferReader(m.bytes, 512);
        const r = measured(() => {
          const { table } = readTable(read, 512, SECTORS);
          if (!table) return null;
          const areas = tableAreas(table, read);
          for (const a of areas) {
            expect(a.offset).toBeGreaterThanOrEqual(0);
            expect(a.size).toBeLessThanOrEqual(16 * 1024 * 1024);
          }
          if (table.label !== 'gpt') return areas;
          for (const mode of RELOCATE_MODES) {
            try {
              const writes = relocatedWrites({ table, diskSectors: SECTORS, primaryAlternateLba: SECTORS - 1, sector0: m.bytes.subarray(0, 512) }, mode);
              for (const w of writes) expect(w.lba * 512 + w.data.length).toBeLessThanOrEqual(SECTORS * 512);
            } catch (err) {
              expect(err).toBeInstanceOf(ToolError);
            }
          }
          return areas;
        });
        if (r.error) throw r.error;
        expect(r.ms).toBeLessThan(200);
      }
    }
  });
});

describe('ptable processes on damaged inputs', () => {
  /** Writes `bytes` as a disk image, runs ptable, and checks the ending and (on failure) the image. */
  function runOn(name: string, bytes: Buffer, args: (disk: string) => string[], codes: number[]): number | null {
    const disk = path.join(dir, `${name}.img`);
    fs.writeFileSync(disk, bytes);
    const r = runHostile('ptable', args(disk), { codes, what: name });
    if (r.status !== 0) expect(fs.readFileSync(disk).equals(bytes), `${name}: changed on failure`).toBe(true);
    fs.rmSync(disk, { force: true });
    return r.status;
  }

  it('restore of 24 damaged sgdisk files and restore-pt-sectors of 8 misnamed or oversized files: exit 0, 8 or 9, nothing written on failure', () => {
    const image = goodImage();
    const good = backupOf(image);
    const blank = Buffer.alloc(image.length);
    const statuses = new Set<number | null>();
    let i = 0;
    for (const m of mutants(good, 5, 24, { from: 0, to: 1536 + 256 })) {
      const file = path.join(dir, `mutant-${i}.bin`);
      fs.writeFileSync(file, m.bytes);
      statuses.add(runOn(`restore-${i++}`, blank, (d) => ['restore', d, file], [0, 8, 9]));
    }
    expect(statuses.has(9)).toBe(true);
    const random = prng(8);
    for (let k = 0; k < 8; k++) {
      const offset = Math.floor(random() * image.length * 2);
      const file = path.join(dir, k % 2 ? `x-0x${offset.toString(16)}.bak` : `x-${offset}.bak`);
      fs.writeFileSync(file, Buffer.alloc(512 + Math.floor(random() * 4096), 0x5a));
      runOn(`rps-${k}`, image, (d) => ['restore-pt-sectors', d, file], [0, 9]);
    }
  });

  it('a primary header with a bad CRC (the table read from the backup): randomize-guids and backup refuse, relocate rewrites both', () => {
    const damaged = goodImage();
    damaged[512 + 40] = damaged[512 + 40]! ^ 0xff; // first usable LBA, CRC left stale
    for (const [name, args] of [['randomize', (d: string) => ['randomize-guids', d]], ['backup', (d: string) => ['backup', d, path.join(dir, 'out.bin')]]] as const) {
      expect(runOn(`bad-primary-${name}`, damaged, args, [8])).toBe(8);
    }
    const disk = path.join(dir, 'bad-primary-relocate.img');
    fs.writeFileSync(disk, damaged);
    runHostile('ptable', ['relocate', disk], { codes: [0] });
    runHostile('ptable', ['check', disk], { codes: [0] });
  });

  it('relocate (each mode), zap, randomize-guids and backup on 24 damaged tables: documented exits, nothing written on failure', () => {
    const good = goodImage();
    const commands: ((d: string) => string[])[] = [
      (d) => ['relocate', d],
      (d) => ['relocate', '--mode', 'gpt-bak-mini', d],
      (d) => ['relocate', '--mode', 'sgdisk-e', d],
      (d) => ['zap', d],
      (d) => ['randomize-guids', d],
      (d) => ['backup', d, path.join(dir, 'out.bin')],
    ];
    let i = 0;
    for (const m of mutants(good, 21, 24, { from: 512, to: 34 * 512 })) {
      if (i % 2 === 0) repairGptCrcs(m.bytes, 512);
      runOn(`damaged-${i}`, m.bytes, commands[i % commands.length]!, [0, 1, 3, 5, 8, 9]);
      i++;
    }
  });
});
