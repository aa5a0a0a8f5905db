/**
 * Seeded fuzzing of the partition-table code. In process: thousands of corruptions of real tables
 * (dos with an EBR chain of several logical partitions, GPT with several entries; 512- and
 * 4096-byte sectors), byte flips and field edits over sector 0, the EBRs, the GPT headers and entry
 * arrays, GPT edits mostly with their CRCs repaired so that the deeper validation is reached; each
 * read, checked, dumped, shown and re-serialized within a time and heap bound, failing only with a
 * ToolError. Then a few dozen real processes (ptable show/dump/check/grow/relocate, sparsecopy
 * --from-partition/--to-partition) on mutants: a documented exit code, no stack trace, bounded
 * time and memory, read-only commands modify nothing, and nothing but the target is touched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import type { PartitionTable } from '../src/partition/model.js';
import { applyWrites, bufferReader, checkTable, readTable, serializeTable, writeHazards } from '../src/partition/read.js';
import { prepareScriptTable } from '../src/partition/script-table.js';
import { formatSfdiskDump } from '../src/partition/sfdisk-dump.js';
import { formatSfdiskJson } from '../src/partition/sfdisk-json.js';
import { formatShow } from '../src/partition/show.js';
import { patternBytes, prng, snapshot, useTempDir } from './helpers.js';
import { type Mutant, measured, mutants, runHostile } from './hostile.js';
import { ebrChain, gptHeaders, repairGptCrcs } from './table-edits.js';

let dir = '';
useTempDir('fuzz-part-', (d) => (dir = d));

const MiB = 1024 * 1024;
/** FUZZ_SCALE=10 (and FUZZ_SEED) for a longer local run; CI runs the default. */
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const SEED = Number(process.env.FUZZ_SEED ?? 0);

interface Base {
  name: string;
  image: Buffer;
  sectorSize: number;
  /** Byte ranges holding the table: where mutations go. */
  regions: { from: number; to: number }[];
  gpt: boolean;
}

/** A real table laid out by the sfdisk-script code and written by the label drivers. */
function base(name: string, script: string, sectorSize: number, bytes = MiB): Base {
  const image = Buffer.alloc(bytes);
  const plan = prepareScriptTable(script, { path: name, sectorSize, diskSectors: bytes / sectorSize });
  if (!plan) throw new Error('empty script');
  applyWrites(image, sectorSize, serializeTable(plan.table));
  const gpt = plan.table.label === 'gpt';
  const regions = gpt
    ? gptHeaders(image, sectorSize).flatMap((h) => [
        { from: h.lba * sectorSize, to: h.lba * sectorSize + 92 },
        { from: h.entriesLba * sectorSize, to: h.entriesLba * sectorSize + 6 * 128 },
      ])
    : [0, ...ebrChain(image, sectorSize)].map((lba) => ({ from: lba * sectorSize + 446, to: lba * sectorSize + 512 }));
  expect(regions.length).toBeGreaterThanOrEqual(gpt ? 4 : 5);
  return { name, image, sectorSize, regions, gpt };
}

const DOS = 'label: dos\nlabel-id: 0x0badcafe\n\nsize=128K, type=83, bootable\ntype=5\nsize=64K\nsize=64K, type=82\nsize=64K\nsize=64K, type=7\n';
const GPT = 'label: gpt\nlabel-id: 11112222-3333-4444-5555-666677778888\n\nsize=128K, name="one"\nsize=128K, type=U\nsize=64K, attrs="RequiredPartition"\nsize=64K, name="four"\n';

const BASES: Base[] = [base('dos-512', DOS, 512), base('dos-4096', DOS, 4096, 4 * MiB), base('gpt-512', GPT, 512), base('gpt-4096', GPT, 4096, 4 * MiB)];

/** Seeded mutants of a base spread over its table regions; GPT ones mostly with CRCs repaired. */
function* casesOf(b: Base, seed: number, perRegion: number): Generator<Mutant> {
  const random = prng(seed);
  for (const [i, region] of b.regions.entries()) {
    for (const m of mutants(b.image, seed * 31 + i, perRegion, region)) {
      if (b.gpt && random() < 0.75) {
        repairGptCrcs(m.bytes, b.sectorSize);
        m.description += ', CRCs repaired';
      }
      yield m;
    }
  }
}

/** Everything the commands do with a table read from untrusted bytes, in process. */
function exercise(image: Buffer, sectorSize: number): void {
  const read = bufferReader(image, sectorSize);
  const sectors = image.length / sectorSize;
  const { table } = readTable(read, sectorSize, sectors);
  checkTable(read, sectorSize, sectors);
  if (!table) return;
  formatSfdiskDump(table, '/dev/x');
  formatSfdiskJson(table, '/dev/x');
  formatShow(table, '/dev/x');
  for (const p of table.partitions.slice(0, 4)) writeHazards(read, sectorSize, sectors, p.number);
  serializeTable(table as PartitionTable); // what grow and relocate would write back
}

describe('in-process fuzzing of read/check/dump/json/show/serialize', () => {
  it.each(BASES.map((b, i) => [b.name, b, i] as const))('%s: 900 seeded mutants end cleanly, each fast and small', (_name, b, i) => {
    const count = 900 * SCALE;
    expect(() => exercise(b.image, b.sectorSize)).not.toThrow();
    let cases = 0;
    let toolErrors = 0;
    const perRegion = Math.ceil(count / b.regions.length);
    for (const m of casesOf(b, 1000 + i + SEED, perRegion)) {
      cases++;
      const r = measured(() => exercise(m.bytes, b.sectorSize));
      if (r.error !== undefined) {
        expect(r.error instanceof ToolError, `${b.name} ${m.description}: ${r.error instanceof Error ? r.error.stack : String(r.error)}`).toBe(true);
        toolErrors++;
      }
      expect(r.ms, `${b.name} ${m.description}: time`).toBeLessThan(250);
      expect(r.heapGrowthBytes, `${b.name} ${m.description}: heap growth`).toBeLessThan(64 * MiB);
    }
    expect(cases).toBeGreaterThanOrEqual(count);
    // The serializers refuse some damaged tables (ToolError); most mutants still read.
    expect(toolErrors).toBeLessThan(cases);
  });
});

describe('CLI fuzzing: documented endings, nothing touched but the target', () => {
  /** A few mutants of a base as files, plus an untouched neighbour file to prove nothing else changes. */
  function mutantFiles(b: Base, seed: number, count: number): { file: string; description: string }[] {
    const all = [...casesOf(b, seed, Math.ceil(count / b.regions.length))];
    const random = prng(seed);
    const picked: Mutant[] = [];
    while (picked.length < count && all.length > 0) picked.push(all.splice(Math.floor(random() * all.length), 1)[0]!);
    return picked.map((m, k) => {
      const file = path.join(dir, `${b.name}-${seed}-${k}.img`);
      fs.writeFileSync(file, m.bytes);
      return { file, description: m.description };
    });
  }

  const neighbour = (): { file: string; before: ReturnType<typeof snapshot> } => {
    const file = path.join(dir, 'neighbour.img');
    if (!fs.existsSync(file)) fs.writeFileSync(file, patternBytes(64 * 1024, 9));
    return { file, before: snapshot(file) };
  };
  const expectUntouched = (n: { file: string; before: ReturnType<typeof snapshot> }): void => {
    const now = snapshot(n.file);
    expect(now.bytes.equals(n.before.bytes)).toBe(true);
    expect(now.mtimeMs).toBe(n.before.mtimeMs);
  };

  it.each(BASES.filter((b) => b.sectorSize === 512).map((b, i) => [b.name, b, i] as const))('%s: ptable show/dump/check change nothing; grow/relocate change only the disk', (_name, b, i) => {
    const n = neighbour();
    for (const m of mutantFiles(b, 2000 + i, 4)) {
      const before = fs.readFileSync(m.file);
      for (const args of [['show', m.file], ['dump', m.file], ['dump', '--json', m.file], ['check', m.file]]) {
        runHostile('ptable', args, { what: `${args.join(' ')} (${m.description})`, timeoutMs: 10_000 });
        expect(fs.readFileSync(m.file).equals(before), `${args[0]} modified ${m.description}`).toBe(true);
      }
      for (const args of [['grow', m.file, '1'], ['relocate', m.file]]) {
        const copy = `${m.file}.w`;
        fs.copyFileSync(m.file, copy);
        args[1] = copy;
        const r = runHostile('ptable', args, { what: `${args.join(' ')} (${m.description})`, timeoutMs: 10_000 });
        if (r.status !== 0) expect(fs.readFileSync(copy).equals(before), `failed ${args[0]} modified ${m.description}`).toBe(true);
        expect(fs.statSync(copy).size).toBe(before.length);
      }
      expectUntouched(n);
    }
  });

  it.each(BASES.filter((b) => b.sectorSize === 512).map((b, i) => [b.name, b, i] as const))('%s: sparsecopy --from-partition/--to-partition on mutants', (_name, b, i) => {
    const n = neighbour();
    const source = path.join(dir, `src-${b.name}.img`);
    fs.writeFileSync(source, patternBytes(16 * 1024, 4));
    const sourceBefore = snapshot(source);
    for (const m of mutantFiles(b, 3000 + i, 4)) {
      const before = fs.readFileSync(m.file);
      const out = path.join(dir, `out-${path.basename(m.file)}`);
      const f = runHostile('sparsecopy', ['-q', '--from-partition', '1', m.file, out], { what: `--from-partition (${m.description})`, timeoutMs: 10_000 });
      expect(fs.readFileSync(m.file).equals(before), `--from-partition modified its source: ${m.description}`).toBe(true);
      if (f.status !== 0) expect(fs.existsSync(out)).toBe(false);
      fs.rmSync(out, { force: true });

      const t = runHostile('sparsecopy', ['-q', '--to-partition', '1', source, m.file], { what: `--to-partition (${m.description})`, timeoutMs: 10_000 });
      const after = fs.readFileSync(m.file);
      expect(after.length).toBe(before.length);
      if (t.status !== 0) {
        expect(after.equals(before), `a failed --to-partition modified ${m.description}`).toBe(true);
      } else {
        // Only partition 1 of the table it was given changed.
        const { table } = readTable(bufferReader(before, 512), 512, before.length / 512);
        const p = table!.partitions.find((q) => q.number === 1)!;
        expect(after.subarray(0, p.start * 512).equals(before.subarray(0, p.start * 512)), m.description).toBe(true);
        expect(after.subarray((p.start + p.size) * 512).equals(before.subarray((p.start + p.size) * 512)), m.description).toBe(true);
      }
      expect(snapshot(source).bytes.equals(sourceBefore.bytes)).toBe(true);
      expectUntouched(n);
    }
  });
});

describe('hostile sizes', () => {
  it('a GPT of 65536 entries that all overlap: checked in linear-ish time, every partition named unsafe', () => {
    const entries = 65536;
    const entrySectors = (entries * 128) / 512;
    const sectors = 2 * entrySectors + 2048 + 64;
    const image = Buffer.alloc(sectors * 512);
    const t = prepareScriptTable(`label: gpt\ntable-length: ${entries}\nfirst-lba: ${entrySectors + 2}\n`, { path: 'big', sectorSize: 512, diskSectors: sectors });
    applyWrites(image, 512, serializeTable(t!.table));
    const first = Buffer.alloc(128);
    Buffer.from('AF3DC60F838472478E793D69D8477DE4', 'hex').copy(first, 0); // Linux filesystem
    first.writeBigUInt64LE(BigInt(entrySectors + 2), 32);
    first.writeBigUInt64LE(BigInt(entrySectors + 2 + 1000), 40);
    for (const h of gptHeaders(image, 512)) for (let i = 0; i < entries; i++) first.copy(image, h.entriesLba * 512 + i * 128);
    repairGptCrcs(image, 512);
    const read = bufferReader(image, 512);
    const r = measured(() => checkTable(read, 512, sectors));
    expect(r.error).toBeUndefined();
    expect(r.ms).toBeLessThan(5000);
    const overlaps = r.value!.problems.filter((p) => p.code === 'overlap');
    expect(overlaps).toHaveLength(65);
    expect(overlaps[64]!.partitions).toHaveLength(entries);
    expect(writeHazards(read, 512, sectors, 40000).length).toBeGreaterThan(0);
  });
});
