/**
 * A reader of stdout that goes away early (`ptable dump DISK | head -1`): each command ends as a C
 * tool killed by SIGPIPE would, status 141 and nothing on stderr, never a stack trace.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PTABLE, SPARSECOPY } from './helpers.js';

const FSMAKER = path.join(path.dirname(SPARSECOPY), 'fsmaker.mjs');

/** Runs `node BIN ARGS` with its stdout a pipe whose only reader has closed it already. */
function intoClosedPipe(bin: string, args: string[]): { status: number; stderr: string } {
  // The subshell closes its stdin, the pipe's one read end, long before Node has started.
  const script = `node "$0" "$@" 2>/tmp/broken-pipe-stderr.$$ | (exec 0<&-; sleep 1); s=\${PIPESTATUS[0]}; cat /tmp/broken-pipe-stderr.$$ >&2; rm -f /tmp/broken-pipe-stderr.$$; exit $s`;
  const r = spawnSync('bash', ['-c', script, bin, ...args], { encoding: 'utf8' });
  return { status: r.status ?? -1, stderr: r.stderr };
}

describe('stdout closed by its reader', () => {
  for (const [name, bin] of [
    ['sparsecopy', SPARSECOPY],
    ['ptable', PTABLE],
    ['fsmaker', FSMAKER],
  ] as const) {
    it(`${name} --help exits 141 without a stack trace`, () => {
      const r = intoClosedPipe(bin, ['--help']);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(141);
    });
  }
});
