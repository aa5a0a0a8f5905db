/**
 * Test utility: qemu-img and qemu-io as oracles of the qcow2 images we write.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { expect } from 'vitest';

/** Runs qemu-img or qemu-io; its exit status and everything it printed. */
export function qemu(command: 'qemu-img' | 'qemu-io', args: string[], cwd?: string): { status: number | null; out: string } {
  const r = spawnSync(command, args, { encoding: 'utf8', cwd });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** qemu-img check: exit 0, no errors, no leaks, and the image ends where the file does. */
export function expectCheckedClean(image: string): void {
  const r = qemu('qemu-img', ['check', '--output=json', image]);
  expect(r.status, r.out).toBe(0);
  const report = JSON.parse(r.out) as { 'check-errors': number; leaks?: number; corruptions?: number; 'image-end-offset': number };
  expect(report['check-errors']).toBe(0);
  expect(report.leaks ?? 0).toBe(0);
  expect(report.corruptions ?? 0).toBe(0);
  expect(report['image-end-offset']).toBe(fs.statSync(image).size);
}

/** qemu-img compare of a raw disk and a qcow2 (read with its backing chain): identical. */
export function expectIdentical(raw: string, image: string): void {
  const r = qemu('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, image]);
  expect(r.status, r.out).toBe(0);
  expect(r.out).toMatch(/Images are identical/);
}
