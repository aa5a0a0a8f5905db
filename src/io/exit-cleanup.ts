/**
 * Temporary outputs (files or directories) that must not survive the process. Normally the copy removes its own temporary
 * file when it fails; this registry is for the case it cannot reach: a signal arriving while a read
 * blocks forever on an idle pipe. The command's signal handler removes what is left, then exits.
 */
import fs from 'node:fs';

const pending = new Set<string>();

export function registerExitCleanup(path: string): void {
  pending.add(path);
}

export function unregisterExitCleanup(path: string): void {
  pending.delete(path);
}

/** Removes every registered temporary file, synchronously (safe in a signal handler). */
export function runExitCleanups(): void {
  for (const path of pending) fs.rmSync(path, { recursive: true, force: true });
  pending.clear();
}
