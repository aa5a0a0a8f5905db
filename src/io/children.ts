/**
 * Child processes a copy runs (decompressors, compressors) must not outlive it: a signal's forced
 * exit or a failure elsewhere ends the process without unwinding, so each one still running is
 * killed as the process exits.
 */
import type { ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();
let hooked = false;

export function killAtExit(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
}
