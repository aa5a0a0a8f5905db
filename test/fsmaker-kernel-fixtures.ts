/**
 * Stand-ins for kernel discovery tests: a RootView over an in-memory map of entries (what
 * tree-view.ts gives for an archive or a directory, which is another module's), and a stand-in
 * bzImage whose header names a release.
 */
import { ToolError } from '../src/errors.js';
import type { RootView, TreeNodeType } from '../src/fsmaker/tree.js';
import { fakeKernel } from './fsmaker-fixtures.js';

/** A stand-in RootView over paths -> entries (what tree-view.ts will give for an archive or a directory). */
export type Entry = { type: 'file'; data: Buffer } | { type: 'dir' } | { type: 'symlink'; target: string };
export function memoryRoot(name: string, entries: Record<string, Entry>): RootView & { reads: string[] } {
  const all = new Map<string, Entry>([['/', { type: 'dir' }]]);
  for (const [p, e] of Object.entries(entries)) {
    const parts = p.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const d = `/${parts.slice(0, i).join('/')}`;
      if (!all.has(d)) all.set(d, { type: 'dir' });
    }
    all.set(`/${parts.join('/')}`, e);
  }
  const reads: string[] = [];
  return {
    name,
    reads,
    stat(p) {
      const e = all.get(p);
      if (!e) return null;
      return { type: e.type as TreeNodeType, size: e.type === 'file' ? e.data.length : 0, target: e.type === 'symlink' ? e.target : undefined };
    },
    list(p) {
      if (all.get(p)?.type !== 'dir') return null;
      const prefix = p === '/' ? '/' : `${p}/`;
      return [...all.keys()].filter((k) => k !== '/' && k.startsWith(prefix) && !k.slice(prefix.length).includes('/')).map((k) => k.slice(prefix.length));
    },
    async readFiles(paths, maxBytes) {
      const out = new Map<string, Buffer>();
      let total = 0;
      for (const p of paths) {
        const e = all.get(p);
        if (e?.type !== 'file') throw new ToolError('ROOTFS_UNKNOWN', `${name}: ${p} is not a regular file`);
        total += e.data.length;
        if (total > maxBytes) throw new ToolError('ROOTFS_UNKNOWN', `${name}: more than ${maxBytes} bytes`);
        reads.push(p);
        out.set(p, e.data);
      }
      return out;
    },
  };
}

/** A stand-in bzImage whose header announces `release` (kernel_version at 0x20E), as a real one does. */
export function kernelOf(release: string | null, seed = 3): Buffer {
  const k = fakeKernel(200_000, seed);
  if (release === null) {
    k.writeUInt16LE(0, 0x20e);
    return k;
  }
  k.writeUInt16LE(0x300, 0x20e);
  k.write(`${release} (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3\0`, 0x500, 'latin1');
  return k;
}

export const file = (data: Buffer): Entry => ({ type: 'file', data });
export const link = (target: string): Entry => ({ type: 'symlink', target });
