/**
 * Initramfs pieces against the real Debian 12 cloud kernel and busybox-static, fetched into the
 * cache by scripts/fetch-kernel.sh (skipped, with the reason printed, when that fails: mirror
 * unreachable): .modinfo depends= parsing and load order, the archive listing (zcat | cpio -it),
 * /init syntax (busybox sh -n), and the PARTUUID shell function on sfdisk-made MBR/GPT images.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findDefaultBootAssets } from '../src/fsmaker/boot-assets.js';
import { parseCpioNewc } from '../src/fsmaker/cpio.js';
import { buildInitramfs, initScript, partUuidShellFunction } from '../src/fsmaker/initramfs.js';
import {
  CompressedModuleError,
  DEFAULT_ROOT_MODULES,
  indexModules,
  moduleCompression,
  moduleDepends,
  normalizeModuleName,
  resolveModuleOrder,
} from '../src/fsmaker/kernel-modules.js';
import { ROOT, makeTempDir } from './helpers.js';

const EXPECTED_ORDER = [
  'virtio_pci_legacy_dev',
  'virtio_pci_modern_dev',
  'virtio_ring',
  'virtio',
  'virtio_pci',
  'virtio_blk',
  'scsi_common',
  'scsi_mod',
  'virtio_scsi',
  'libata',
  'ata_piix',
  'sd_mod',
];

const cacheDir = process.env['FSMAKER_CACHE'] || path.join(ROOT, '.cache', 'boot');
let dir = '';
let assets: { kernel: string; modulesDir: string; busybox: string; kernelVersion: string } | undefined;
let skipReason = '';
let bbBin = ''; // directory of busybox applet symlinks

beforeAll(() => {
  dir = makeTempDir('fsmaker-initramfs-');
  const r = spawnSync('sh', [path.join(ROOT, 'scripts/fetch-kernel.sh')], {
    encoding: 'utf8',
    env: { ...process.env, FSMAKER_CACHE: cacheDir },
    timeout: 300_000,
  });
  if (r.status !== 0) {
    skipReason = `scripts/fetch-kernel.sh failed (mirror unreachable?): ${r.stderr || r.error}`;
    console.warn(`SKIP real-kernel tests: ${skipReason}`);
    return;
  }
  const a = findDefaultBootAssets(cacheDir);
  if (a.status !== 'ok') throw new Error(a.message);
  assets = a;
  expect(r.stdout).toContain(`KERNEL=${a.kernel}`);
  expect(r.stdout).toContain(`MODULES=${a.modulesDir}`);
  expect(r.stdout).toContain(`BUSYBOX=${a.busybox}`);
  bbBin = path.join(dir, 'bb');
  fs.mkdirSync(bbBin);
  execFileSync(a.busybox, ['--install', '-s', bbBin]);
}, 320_000);
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs `script` with the cached busybox sh, its applets first in PATH. */
function bbsh(script: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(assets!.busybox, ['sh', '-c', script], {
    encoding: 'utf8',
    env: { PATH: `${bbBin}:/usr/sbin:/usr/bin:/sbin:/bin` },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('kernel modules (pure)', () => {
  it('normalises names and spots compression', () => {
    expect(normalizeModuleName('virtio-blk')).toBe('virtio_blk');
    expect(normalizeModuleName('/x/y/ata-piix.ko.zst')).toBe('ata_piix');
    expect(moduleCompression('a.ko')).toBe('none');
    expect(moduleCompression('a.ko.xz')).toBe('xz');
    expect(moduleCompression('a.ko.zst')).toBe('zst');
  });

  it('refuses compressed modules naming the compression', () => {
    const lookup = new Map([['foo', '/m/foo.ko.xz'], ['bar', '/m/bar.ko.zst']]);
    expect(() => resolveModuleOrder(['foo'], lookup)).toThrow(CompressedModuleError);
    expect(() => resolveModuleOrder(['foo'], lookup)).toThrow(/xz-compressed/);
    expect(() => resolveModuleOrder(['bar'], lookup)).toThrow(/zst-compressed \(\.ko\.zst\)/);
    const xzMagic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0]);
    expect(() => moduleDepends(xzMagic, 'x.ko')).toThrow(/xz-compressed/);
  });

  it('orders dependencies first, depth-first, no duplicates; reports unknowns and cycles', () => {
    const deps: Record<string, string[]> = { a: ['c', 'b-x'], b_x: ['c'], c: [], d: ['a'] };
    const lookup = (n: string) => (n in deps ? `/m/${n}.ko` : undefined);
    const readDepends = (_f: string, name: string) => deps[name]!;
    expect(resolveModuleOrder(['d', 'a', 'c'], lookup, { readDepends }).map((m) => m.name)).toEqual(['c', 'b_x', 'a', 'd']);
    expect(() => resolveModuleOrder(['zz'], lookup, { readDepends })).toThrow(/zz not found/);
    const cyc: Record<string, string[]> = { a: ['b'], b: ['a'] };
    expect(() =>
      resolveModuleOrder(['a'], (n) => (n in cyc ? n : undefined), { readDepends: (_f, n) => cyc[n]! }),
    ).toThrow(/cycle/);
  });
});

describe('boot assets', () => {
  it('reports what is missing and how to fetch it', () => {
    const empty = makeTempDir('fsmaker-empty-');
    try {
      const r = findDefaultBootAssets(empty);
      expect(r.status).toBe('missing');
      if (r.status === 'missing') {
        expect(r.missing).toEqual(['kernel', 'modules', 'busybox']);
        expect(r.message).toContain('scripts/fetch-kernel.sh');
      }
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('real cloud kernel', () => {
  it('reads depends= from .modinfo', (ctx) => {
    if (!assets) return ctx.skip(skipReason);
    const idx = indexModules(assets.modulesDir);
    expect(assets.kernelVersion).toMatch(/cloud-amd64$/);
    expect(moduleDepends(fs.readFileSync(idx.get('virtio_blk')!)).sort()).toEqual(['virtio', 'virtio_ring']);
    expect(moduleDepends(fs.readFileSync(idx.get('scsi_common')!))).toEqual([]);
    expect(moduleDepends(fs.readFileSync(idx.get('sd_mod')!))).toEqual(['scsi_mod']);
  });

  it('resolves the roots to the recipe order', (ctx) => {
    if (!assets) return ctx.skip(skipReason);
    const order = resolveModuleOrder(DEFAULT_ROOT_MODULES, indexModules(assets.modulesDir));
    expect(order.map((m) => m.name)).toEqual(EXPECTED_ORDER);
    for (const m of order) expect(path.basename(m.path)).toBe(`${m.name}.ko`);
  });

  it('builds a deterministic initramfs with the expected entries', (ctx) => {
    if (!assets) return ctx.skip(skipReason);
    const modules = resolveModuleOrder(DEFAULT_ROOT_MODULES, indexModules(assets.modulesDir));
    const gz = buildInitramfs({ busybox: assets.busybox, modules });
    const gz2 = buildInitramfs({ busybox: fs.readFileSync(assets.busybox), modules });
    expect(gz.equals(gz2)).toBe(true);
    const file = path.join(dir, 'initrd.img');
    fs.writeFileSync(file, gz);
    const list = execFileSync('sh', ['-c', `zcat "${file}" | cpio -it --quiet`], { encoding: 'utf8' }).trim().split('\n');
    const expected = [
      '.',
      'bin',
      'bin/busybox',
      'bin/sh',
      'dev',
      'dev/console',
      'etc',
      'etc/udhcpc.script',
      'init',
      'lib',
      'lib/modules',
      ...EXPECTED_ORDER.map((m) => `lib/modules/${m}.ko`),
      'newroot',
      'proc',
      'run',
      'sbin',
      'sys',
      'usr',
      'usr/bin',
      'usr/sbin',
    ];
    expect(list.filter((n) => n !== '.').sort()).toEqual(expected.filter((n) => n !== '.').sort());

    const headers = parseCpioNewc(zlib.gunzipSync(gz));
    const byName = new Map(headers.map((h) => [h.name, h]));
    const init = byName.get('init')!;
    expect(init.mode & 0o170000).toBe(0o100000);
    expect(init.mode & 0o111).toBe(0o111);
    const con = byName.get('dev/console')!;
    expect(con.mode & 0o170000).toBe(0o020000);
    expect([con.rdevmajor, con.rdevminor]).toEqual([5, 1]);

    // the modules are in the /init script in load order
    const script = initScript(60, EXPECTED_ORDER);
    const loads = [...script.matchAll(/^load_module (\S+)$/gm)].map((m) => m[1]);
    expect(loads).toEqual(EXPECTED_ORDER);
  });

  it('/init passes busybox sh -n', (ctx) => {
    if (!assets) return ctx.skip(skipReason);
    const file = path.join(dir, 'init.sh');
    fs.writeFileSync(file, initScript(60, EXPECTED_ORDER));
    const r = spawnSync(assets.busybox, ['sh', '-n', file], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(initScript(7)).toContain('timeout=7');
  });

  const haveSfdisk = spawnSync('sh', ['-c', 'command -v sfdisk']).status === 0;

  it.skipIf(!haveSfdisk)('computes PARTUUIDs of an MBR image (sfdisk label-id 0x5eedd15c)', (ctx) => {
    if (!assets) return ctx.skip(skipReason);
    const img = path.join(dir, 'mbr.img');
    fs.writeFileSync(img, Buffer.alloc(0));
    fs.truncateSync(img, 16 * 1024 * 1024);
    execFileSync('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', img], {
      input: 'label: dos\nlabel-id: 0x5eedd15c\nstart=2048, size=8192, type=c\nstart=10240, type=83\n',
    });
    const fn = partUuidShellFunction();
    for (const [n, want] of [[1, '5eedd15c-01'], [2, '5eedd15c-02'], [5, '5eedd15c-05']] as const) {
      const r = bbsh(`${fn}\npartuuid '${img}' ${n}`);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe(want);
    }
    // not a partition table
    const blank = path.join(dir, 'blank.img');
    fs.writeFileSync(blank, Buffer.alloc(4096));
    expect(bbsh(`${fn}\npartuuid '${blank}' 1`).status).not.toBe(0);
  });

  it.skipIf(!haveSfdisk)('computes PARTUUIDs of a GPT image (pinned partition uuids)', (ctx) => {
    if (!assets) return ctx.skip(skipReason);
    const img = path.join(dir, 'gpt.img');
    fs.writeFileSync(img, Buffer.alloc(0));
    fs.truncateSync(img, 16 * 1024 * 1024);
    const u1 = '5EED0000-0000-4000-8000-0000000000F5';
    const u2 = '0A1B2C3D-4E5F-4A6B-9C7D-8E9FA0B1C2D3';
    execFileSync('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', img], {
      input:
        'label: gpt\nlabel-id: 11111111-2222-4333-8444-555555555555\n' +
        `start=2048, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=${u1}\n` +
        `start=6144, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=${u2}\n`,
    });
    const fn = partUuidShellFunction();
    expect(bbsh(`${fn}\npartuuid '${img}' 1`).stdout.trim()).toBe(u1.toLowerCase());
    expect(bbsh(`${fn}\npartuuid '${img}' 2`).stdout.trim()).toBe(u2.toLowerCase());
    // an empty entry and an entry beyond the table have no PARTUUID
    expect(bbsh(`${fn}\npartuuid '${img}' 3`)).toMatchObject({ status: 1, stdout: '' });
    expect(bbsh(`${fn}\npartuuid '${img}' 129`)).toMatchObject({ status: 1, stdout: '' });
    // cross-check with blkid when available
    if (spawnSync('sh', ['-c', 'command -v blkid']).status === 0) {
      const out = execFileSync('sh', ['-c', `blkid -p -o value -s PART_ENTRY_UUID -O 1048576 "${img}" || true`], { encoding: 'utf8' });
      if (out.trim() !== '') expect(out.trim()).toBe(u1.toLowerCase());
    }
  });
});
