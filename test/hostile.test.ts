/** The hostile-input helpers catch what they are meant to catch. */
import { describe, expect, it } from 'vitest';
import { type BoundedResult, expectCleanEnding, mutants, runBounded } from './hostile.js';

const ok: BoundedResult = { status: 3, signal: null, stdout: Buffer.alloc(0), stderr: 'sparsecopy: x: cannot open destination: nope\n', ms: 5, peakRssBytes: 50e6, timedOut: false };

describe('hostile helpers', () => {
  it('accept a documented one-line failure', () => {
    expect(() => expectCleanEnding('sparsecopy', ok)).not.toThrow();
  });

  it.each([
    ['a stack trace', { stderr: 'TypeError: boom\n    at foo (x.js:1:1)\n', status: 70 }],
    ['exit 70', { status: 70 }],
    ['an undocumented code', { status: 99 }],
    ['a hang', { timedOut: true }],
    ['a signal', { status: null, signal: 'SIGSEGV' as NodeJS.Signals }],
    ['no program prefix', { stderr: 'x: failed\n' }],
    ['too much memory', { peakRssBytes: 300e6 }],
  ])('reject %s', (_what, change) => {
    expect(() => expectCleanEnding('sparsecopy', { ...ok, ...change })).toThrow();
  });

  it('measure a real run (exit code and peak RSS)', () => {
    const r = runBounded('sparsecopy', ['--version']);
    expect(r.status).toBe(0);
    expect(r.peakRssBytes).toBeGreaterThan(10e6);
  });

  it('make reproducible mutants that differ from the input', () => {
    const good = Buffer.alloc(512, 7);
    const a = [...mutants(good, 42, 50)];
    const b = [...mutants(good, 42, 50)];
    expect(a.map((m) => m.bytes.toString('hex'))).toEqual(b.map((m) => m.bytes.toString('hex')));
    expect(a.filter((m) => !m.bytes.equals(good)).length).toBeGreaterThan(40);
  });
});
