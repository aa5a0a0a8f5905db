/**
 * Hostile layout files. In process: seeded corruptions of a complete layout (bytes, lines
 * dropped, duplicated or swapped, values replaced) are either read as a layout checkLayout
 * accepts or refused with exit 33, every line of the refusal naming FILE:LINE within the file,
 * never another error, in bounded time and memory. Through processes: a few dozen of them end
 * cleanly (documented code, no stack trace) and touch nothing but the asked output.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import { parseLayout } from '../src/fsmaker/layout-file.js';
import { checkLayout } from '../src/fsmaker/layout-model.js';
import { makeTempDir, prng } from './helpers.js';
import { measured, mutants, runHostile } from './hostile.js';
import { COMPLETE } from './fsmaker-layout-fixtures.js';

const VALUES = ['', '-1', '0', '1', 'rest', 'true', 'null', '~', '[]', '{}', '"x"', '0x83', '1T', '99999999999999999999', 'esp', 'bios-boot', '/', '/boot', '&a', '*a', '!!binary AA==', 'kind: swap', '{ kind: ext4 }', "'", '"', ':', '- x'];

/** Line-level corruptions: the ones a YAML parser and the reader see (byte flips mostly break the syntax). */
function* lineMutants(good: string, seed: number, count: number): Generator<{ description: string; text: string }> {
  const random = prng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(random() * a.length)]!;
  const lines = good.split('\n');
  for (let i = 0; i < count; i++) {
    const l = [...lines];
    const n = Math.floor(random() * l.length);
    const kind = Math.floor(random() * 4);
    if (kind === 0) l.splice(n, 1);
    else if (kind === 1) l.splice(n, 0, l[n]!);
    else if (kind === 2) [l[n], l[(n + 1) % l.length]] = [l[(n + 1) % l.length]!, l[n]!];
    else l[n] = l[n]!.replace(/:\s.*$|:$/, `: ${pick(VALUES)}`);
    yield { description: `line ${n + 1}: ${['dropped', 'duplicated', 'swapped with the next', 'value replaced'][kind]}: ${JSON.stringify(l[n])}`, text: l.join('\n') };
  }
}

function expectReadOrRefused(text: string, what: string): 'read' | 'refused' {
  const lineCount = text.split('\n').length;
  const { error, value, ms, heapGrowthBytes } = measured(() => parseLayout(text, 'f.yaml', '/base'));
  expect(ms, what).toBeLessThan(2000);
  expect(heapGrowthBytes, what).toBeLessThan(64e6);
  if (error === undefined) {
    expect(checkLayout(value!), what).toEqual([]);
    return 'read';
  }
  expect(error, `${what}: ${String(error)}`).toBeInstanceOf(ToolError);
  const e = error as ToolError;
  expect(e.exitCode, what).toBe(33);
  for (const line of e.message.split('\n')) {
    const m = /^f\.yaml:(\d+): \S/.exec(line);
    expect(m, `${what}: ${line}`).not.toBeNull();
    expect(Number(m![1]), `${what}: ${line}`).toBeLessThanOrEqual(lineCount + 1);
  }
  return 'refused';
}

describe('hostile layout files', () => {
  it('3000 seeded line corruptions: read and valid, or refused on their lines with 33', () => {
    const seen = { read: 0, refused: 0 };
    for (const m of lineMutants(COMPLETE, 13, 3000)) seen[expectReadOrRefused(m.text, m.description)]++;
    expect(seen.read).toBeGreaterThan(50); // some corruptions are still layouts (a line duplicated in a list...)
    expect(seen.refused).toBeGreaterThan(1000);
  }, 60_000);

  it('2000 seeded byte corruptions', () => {
    for (const m of mutants(Buffer.from(COMPLETE), 7, 2000)) expectReadOrRefused(m.bytes.toString('latin1'), m.description);
  }, 60_000);

  it('an alias bomb and deep nesting are refused, not expanded', () => {
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`), 'label: gpt', 'partitions: *j'].join('\n');
    expect(expectReadOrRefused(bomb, 'alias bomb')).toBe('refused');
    expect(expectReadOrRefused(`label: gpt\npartitions: ${'['.repeat(5000)}${']'.repeat(5000)}\n`, 'deep nesting')).toBe('refused');
  });
});

describe('hostile layout files through fsmaker', () => {
  let dir: string;
  beforeAll(() => {
    dir = makeTempDir('fsm-layout-fuzz-');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('30 corrupt files: a documented exit, one fsmaker: line per problem, nothing written', () => {
    const out = path.join(dir, 'out.img');
    let i = 0;
    for (const m of lineMutants(COMPLETE.replace(/\/srv\/home\.ext4/, path.join(dir, 'missing.ext4')), 29, 30)) {
      const file = path.join(dir, `case-${i++}.yaml`);
      fs.writeFileSync(file, m.text);
      runHostile('fsmaker', ['--layout', file, out], { what: m.description });
      expect(fs.existsSync(out), m.description).toBe(false);
      expect(fs.readdirSync(dir).filter((f) => !f.startsWith('case-')), m.description).toEqual([]);
    }
  }, 120_000);
});
