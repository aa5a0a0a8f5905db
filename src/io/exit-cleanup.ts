/**
 * Temporary outputs (files or directories) that must not survive the process. Normally the copy
 * removes its own temporary file when it fails; this registry is for the cases it cannot reach: a
 * signal arriving while a read blocks on an idle pipe (the command's signal handler removes what
 * is left, then exits), and a process that Node ends on its own (an event loop that emptied under
 * a pending await ends with exit 13 and runs no code of ours but 'exit' listeners).
 */
import fs from 'node:fs';

const pending = new Set<string>();
let listening = false;

export function registerExitCleanup(path: string): void {
  pending.add(path);
  if (!listening) {
    listening = true;
    process.on('exit', runExitCleanups);
  }
}

export function unregisterExitCleanup(path: string): void {
  pending.delete(path);
}

/** Removes every registered temporary file, synchronously (safe in a signal handler). */
export function runExitCleanups(): void {
  for (const path of pending) fs.rmSync(path, { recursive: true, force: true });
  pending.clear();
}
