/**
 * The edits under hostile input: seeded random -N lines and --append scripts on tables of both
 * labels (in-process: a ToolError or a table the drivers write, never anything else; the table
 * given is never changed), random attribute strings, and the edit subcommands as processes with
 * bad arguments and on damaged disks (a documented exit code, one line, nothing written).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import { appendFromScript, editPartitionFromScript } from '../src/partition/edit-script.js';
import { deletePartitions, reorderPartitions, setPartitionAttributes, setPartitionType } from '../src/partition/edit.js';
import type { PartitionTable } from '../src/partition/model.js';
import { serializeTable } from '../src/partition/read.js';
import { parseSfdiskScript } from '../src/partition/sfdisk-script.js';
import { prng, sfdiskWrite, useTempDir } from './helpers.js';
import { runHostile } from './hostile.js';

let dir = '';
useTempDir('ptable-edit-fuzz-', (d) => {
  dir = d;
});

function tableFrom(script: string, label: 'dos' | 'gpt'): PartitionTable {
  const r = parseSfdiskScript(script, { sectorSize: 512, diskSectors: 131072 });
  if (!r.ok) throw new Error(r.error.message);
  const id = label === 'gpt' ? '01234567-89AB-CDEF-0123-456789ABCDEF' : '0x01020304';
  const partitions = r.table.partitions.map((p, i) => (label === 'gpt' ? { ...p, uuid: `01234567-89AB-CDEF-0123-${String(i).padStart(12, '0')}` } : p));
  return { ...r.table, id, partitions };
}

const TABLES: PartitionTable[] = [
  tableFrom('label: dos\n,1M\n,1M,,*\n,1M\n,20M,E\n,2M\n,2M\n,2M\n', 'dos'),
  tableFrom('label: dos\n,10M\n,10M\n', 'dos'),
  tableFrom('label: gpt\n,1M\n,5M\n,1M\n', 'gpt'),
  tableFrom('label: gpt\nstart=8192,size=2048\nstart=2048,size=2048\n', 'gpt'),
];

const PIECES = ['', '+', '-', '0', '1', '2048', '+1M', '-1M', '+10M', '-10M', '1000', '+1000', '-500', '5M', '0x800', '99999999999', '-99999999999999999999', 'L', 'S', 'E', '5', 'ef', 'zzz', '*', '-', 'bootable', 'name="x"', 'uuid=1', 'attrs="GUID:63"', 'type=E', 'start=+1M', 'size=-1M', '"', ';', ','];

function randomLine(next: () => number): string {
  const n = 1 + Math.floor(next() * 5);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(PIECES[Math.floor(next() * PIECES.length)]!);
  return parts.join(next() < 0.7 ? ',' : ' ');
}

/** The edit either refuses with a ToolError or gives a table the drivers serialize (or refuse with one). */
function expectCleanEdit(what: string, table: PartitionTable, edit: () => PartitionTable): void {
  const before = JSON.stringify(table, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  let result: PartitionTable | undefined;
  try {
    result = edit();
  } catch (err) {
    expect(err, `${what}: ${String(err)}`).toBeInstanceOf(ToolError);
  }
  if (result) {
    try {
      serializeTable(result);
    } catch (err) {
      expect(err, `${what}: serialize: ${String(err)}`).toBeInstanceOf(ToolError);
    }
  }
  expect(JSON.stringify(table, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)), `${what}: the input table changed`).toBe(before);
}

describe('the edits on random input (seeded, in-process)', () => {
  it('3000 random -N lines and --append scripts: a ToolError or a writable table, the input untouched', () => {
    const next = prng(1414);
    for (let i = 0; i < 3000; i++) {
      const table = TABLES[i % TABLES.length]!;
      const line = randomLine(next);
      const number = 1 + Math.floor(next() * 9);
      if (i % 3 === 2) expectCleanEdit(`append '${line}'`, table, () => appendFromScript(table, `${line}\n${randomLine(next)}\n`).table);
      else expectCleanEdit(`-N ${number} '${line}'`, table, () => editPartitionFromScript(table, number, line).table);
    }
  });

  it('1000 random attribute, type, delete and reorder edits', () => {
    const next = prng(77);
    for (let i = 0; i < 1000; i++) {
      const table = TABLES[i % TABLES.length]!;
      const n = 1 + Math.floor(next() * 9);
      const text = randomLine(next);
      expectCleanEdit(`attrs ${n} '${text}'`, table, () => setPartitionAttributes(table, n, text).table);
      expectCleanEdit(`type ${n} '${text}'`, table, () => setPartitionType(table, n, text).table);
      expectCleanEdit(`delete ${n}`, table, () => deletePartitions(table, [n, 1 + Math.floor(next() * 9)]));
      expectCleanEdit('reorder', table, () => reorderPartitions(table) ?? table);
    }
  });

  it('a grow to everything keeps every partition inside the disk and apart', () => {
    for (const table of TABLES) {
      for (const p of table.partitions) {
        const t = editPartitionFromScript(table, p.number, ',+').table;
        expect(() => serializeTable(t)).not.toThrow();
      }
    }
  });
});

describe('the edit subcommands as processes: bad arguments and damaged disks', () => {
  it('a documented exit code, one line, and the disk untouched', () => {
    const image = path.join(dir, 'd.img');
    fs.writeFileSync(image, '');
    fs.truncateSync(image, 64 * 1024 * 1024);
    sfdiskWrite(image, 'label: dos\n,1M\n,1M\n,1M\n,20M,E\n,2M\n,2M\n');
    const gpt = path.join(dir, 'g.img');
    fs.writeFileSync(gpt, '');
    fs.truncateSync(gpt, 64 * 1024 * 1024);
    sfdiskWrite(gpt, 'label: gpt\n,1M\n,1M\n');
    const broken = path.join(dir, 'broken.img');
    fs.writeFileSync(broken, Buffer.alloc(1024 * 1024));
    const cases: Array<[string[], number]> = [
      [['delete', image, 'x'], 1],
      [['delete', image, '9'], 7],
      [['delete', broken, '1'], 3],
      [['part-type', image, '1', '5'], 1],
      [['part-type', image, '0', '83'], 1],
      [['part-type', image, '-1', '83'], 1],
      [['part-type', gpt, '1', 'not-a-guid'], 1],
      [['part-uuid', image, '1'], 1],
      [['part-uuid', gpt, '1', 'xyz'], 1],
      [['part-attrs', gpt, '1', 'FooBar'], 1],
      [['part-attrs', gpt, '300', 'RequiredPartition'], 7],
      [['disk-id', image, 'nope'], 1],
      [['disk-id', gpt, 'nope'], 1],
      [['disk-id', path.join(dir, 'missing.img')], 2],
      [['activate', image, '9'], 7],
      [['activate', gpt, '5'], 7],
      [['grow', image, '9'], 7],
      [['reorder', broken], 3],
    ];
    for (const [args, code] of cases) {
      const before = [fs.readFileSync(image), fs.readFileSync(gpt), fs.readFileSync(broken)];
      const r = runHostile('ptable', args, { codes: [code] });
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect([fs.readFileSync(image), fs.readFileSync(gpt), fs.readFileSync(broken)].every((b, i) => b.equals(before[i]!)), `${args.join(' ')}: a disk changed`).toBe(true);
    }
  });
});
