/**
 * Registered temporary outputs do not survive the process, however it ends: also when Node ends
 * it on its own (an unsettled top-level await ends with exit 13 and runs no handler of ours).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, useTempDir } from './helpers.js';

let dir = '';
useTempDir('sc-exit-', (d) => (dir = d));

describe('exit cleanups', () => {
  it('a registered file and directory are removed when the event loop empties under a pending await', () => {
    const file = path.join(dir, '.out.sparsecopy-1-2-abcdef01');
    const work = path.join(dir, 'fsmaker-1-2-abcdef01');
    fs.writeFileSync(file, 'partial');
    fs.mkdirSync(work);
    fs.writeFileSync(path.join(work, 'core.img'), 'x');
    const script = path.join(dir, 'unsettled.mjs');
    fs.writeFileSync(
      script,
      `import { registerExitCleanup } from ${JSON.stringify(path.join(ROOT, 'dist/io/exit-cleanup.js'))};
registerExitCleanup(${JSON.stringify(file)});
registerExitCleanup(${JSON.stringify(work)});
await new Promise(() => {}); // nothing keeps the loop alive: Node exits with 13
`,
    );
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8' });
    expect(r.status).toBe(13);
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.existsSync(work)).toBe(false);
  });

  it('an unregistered file stays', () => {
    const file = path.join(dir, 'kept');
    fs.writeFileSync(file, 'final');
    const script = path.join(dir, 'unregistered.mjs');
    fs.writeFileSync(
      script,
      `import { registerExitCleanup, unregisterExitCleanup } from ${JSON.stringify(path.join(ROOT, 'dist/io/exit-cleanup.js'))};
registerExitCleanup(${JSON.stringify(file)});
unregisterExitCleanup(${JSON.stringify(file)});
`,
    );
    expect(spawnSync(process.execPath, [script]).status).toBe(0);
    expect(fs.readFileSync(file, 'utf8')).toBe('final');
  });
});
