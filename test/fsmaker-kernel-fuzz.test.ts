/**
 * Seeded fuzzing of kernel discovery's pure parts: the bzImage release reader on corrupted
 * headers, link resolution and kernel discovery on random link graphs (loops, '..' past the root,
 * absolute targets, dangling links), and the initrd lister on corrupted archives. None may
 * throw, hang, or answer with a path that is not a regular file inside the rootfs.
 */
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { bzImageRelease } from '../src/fsmaker/boot-files.js';
import { cpioArchive } from '../src/fsmaker/cpio.js';
import { initrdMemberNames } from '../src/fsmaker/initrd-inspect.js';
import { findRootKernel, resolveInside } from '../src/fsmaker/kernel-find.js';
import { fakeInitrd } from './fsmaker-fixtures.js';
import { type Entry, file, kernelOf, link, memoryRoot } from './fsmaker-kernel-fixtures.js';
import { prng } from './helpers.js';
import { mutants } from './hostile.js';

describe('kernel discovery fuzz', () => {
  it('bzImageRelease on 3000 corrupted headers: null or a release, never a throw', () => {
    const good = kernelOf('6.1.0-57-cloud-amd64').subarray(0, 0x1000);
    let releases = 0;
    for (const m of mutants(good, 2024, 3000, { from: 0x1f0, to: 0x560 })) {
      const r = bzImageRelease(m.bytes);
      if (r !== null) {
        releases++;
        expect(r, m.description).toMatch(/^[0-9][0-9A-Za-z._+~-]*$/);
      }
    }
    expect(releases).toBeGreaterThan(100); // most mutants leave the string intact
  });

  it('findRootKernel on 2000 random link graphs: terminates, and any answer is a regular file of the rootfs', () => {
    const rand = prng(77);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const names = ['/vmlinuz', '/boot/vmlinuz', '/boot/vmlinuz-6.1.0-9-amd64', '/boot/vmlinuz-6.1.0-10-amd64', '/initrd.img', '/boot/initrd.img', '/boot/initrd.img-6.1.0-10-amd64', '/boot/a', '/b', '/boot/sub/c', '/lib', '/usr/lib/modules/6.1.0-10-amd64/x.ko'];
    const targets = ['vmlinuz', '/boot/a', '../b', '../../../../boot/vmlinuz-6.1.0-10-amd64', 'sub/c', '/', '.', '..', '', '/etc/passwd', 'vmlinuz-6.1.0-9-amd64', '/vmlinuz', 'a/../a', '/boot/sub/../a', 'usr/lib'];
    let found = 0;
    for (let i = 0; i < 2000; i++) {
      const entries: Record<string, Entry> = {};
      for (const n of names) {
        const r = rand();
        if (r < 0.35) entries[n] = link(pick(targets));
        else if (r < 0.6) entries[n] = file(n.includes('vmlinuz') ? kernelOf(null, i) : fakeInitrd(100, i));
      }
      let root;
      try {
        root = memoryRoot(`R${i}`, entries);
      } catch {
        continue; // a file that is also a directory's parent: not a tree
      }
      const k = findRootKernel(root);
      if (k) {
        found++;
        expect(root.stat(k.path)?.type, JSON.stringify(entries, (key, v) => (key === 'data' ? undefined : v))).toBe('file');
        if (k.initrd) expect(root.stat(k.initrd)?.type).toBe('file');
      }
      for (const n of names) {
        const p = resolveInside(root, n);
        if (p !== null) expect(p.startsWith('/') && !p.split('/').includes('..')).toBe(true);
      }
    }
    expect(found).toBeGreaterThan(200);
  });

  it('initrdMemberNames on 2000 corrupted archives (and 20 compressed ones): names or a problem, never a throw', () => {
    const cpio = cpioArchive([{ type: 'dir', path: 'scripts' }, { type: 'file', path: 'scripts/nfs', data: Buffer.from('x') }, { type: 'file', path: 'init', data: Buffer.alloc(300, 7) }]);
    const good = Buffer.concat([cpio, cpio]);
    let listed = 0;
    for (const m of mutants(good, 99, 2000)) {
      const r = initrdMemberNames(m.bytes);
      if ('names' in r) listed++;
      else expect(r.problem, m.description).toMatch(/^(a cpio archive at byte \d+ cannot be read|byte \d+ starts neither|.* cannot decompress|.* -d failed|more than 64)/);
    }
    expect(listed).toBeGreaterThan(0);
    const gz = zlib.gzipSync(good);
    for (const m of mutants(gz, 5, 20)) {
      const r = initrdMemberNames(m.bytes);
      expect('names' in r || typeof r.problem === 'string').toBe(true);
    }
  });
});
