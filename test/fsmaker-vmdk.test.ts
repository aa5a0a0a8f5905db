/**
 * fsmaker writes VMDK straight from the composite disk (issue 12): each subformat holds the same
 * virtual disk as the raw image of the same --seed (qemu-img compare), a streamOptimized one passes
 * the independent structure check, --vmdk-subformat and --adapter-type are passed through as
 * --cluster-size is for qcow2, stdout gets the bytes of the file, and what a subformat cannot be
 * written to is refused before anything is built. Stand-in kernel and initrd: fsmaker-boot.test.ts
 * boots VMDK disks.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, makeTempDir, patternBytes, runCli } from './helpers.js';
import { writeBootFiles } from './fsmaker-fixtures.js';
import { runHostile } from './hostile.js';
import { checkStreamOptimized } from './vmdk-structure.js';

const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
const ENV = { SOURCE_DATE_EPOCH: '1700000000' }; // the FAT's timestamps and the VMDK's CID
const fsmaker = (args: string[]) => runCli(FSMAKER, args, { env: ENV });
let dir: string;
let rootfs: string;
let stand: string[];
let raw: string;

beforeAll(() => {
  dir = makeTempDir('fsm-vmdk-');
  const inputs = path.join(dir, 'inputs');
  fs.mkdirSync(path.join(inputs, 'tree'), { recursive: true });
  fs.writeFileSync(path.join(inputs, 'tree', 'data.bin'), patternBytes(3 << 20, 12));
  rootfs = path.join(inputs, 'root.ext4');
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'vroot', '-d', path.join(inputs, 'tree'), rootfs, '40M']);
  const { kernel, initrd } = writeBootFiles(inputs);
  stand = ['-k', kernel, '-i', initrd, '--seed', 'vmdk'];
  raw = path.join(dir, 'disk.img');
  const r = fsmaker(['-q', ...stand, rootfs, raw]);
  expect(r.status, r.stderr).toBe(0);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function outputDir(name: string): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

function expectSameDisk(vmdk: string): void {
  const r = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', raw, vmdk], { encoding: 'utf8' });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', vmdk], { encoding: 'utf8' })) as { 'virtual-size': number };
  expect(info['virtual-size']).toBe(fs.statSync(raw).size);
}

describe('fsmaker ... disk.vmdk', () => {
  it('streamOptimized by default: the raw disk, passing the structure check, --adapter-type passed through', () => {
    const out = path.join(outputDir('stream'), 'disk.vmdk');
    const r = fsmaker(['-q', '--adapter-type', 'ide', ...stand, rootfs, out]);
    expect(r.status, r.stderr).toBe(0);
    expectSameDisk(out);
    const s = checkStreamOptimized(out, { fileName: 'disk.vmdk' });
    expect(s.fields['ddb.adapterType']).toBe('ide');
    expect(s.capacitySectors * 512).toBe(fs.statSync(raw).size);
  });

  it.each([
    ['monolithicSparse', ['disk.vmdk']],
    ['monolithicFlat', ['disk-flat.vmdk', 'disk.vmdk']],
  ])('--vmdk-subformat %s: the raw disk, and only its files in the output directory', (subformat, files) => {
    const d = outputDir(subformat);
    const out = path.join(d, 'disk.vmdk');
    const r = fsmaker(['-q', '--vmdk-subformat', subformat, ...stand, rootfs, out]);
    expect(r.status, r.stderr).toBe(0);
    expectSameDisk(out);
    expect(fs.readdirSync(d).sort()).toEqual(files);
  });

  it('--format vmdk to stdout: the bytes of the file disk.vmdk', () => {
    const out = path.join(outputDir('stdout'), 'disk.vmdk');
    expect(fsmaker(['-q', '--adapter-type', 'ide', ...stand, rootfs, out]).status).toBe(0);
    const r = spawnSync(process.execPath, [FSMAKER, '-q', '--format', 'vmdk', '--adapter-type', 'ide', ...stand, rootfs, '-'], { env: { ...process.env, ...ENV }, maxBuffer: 1 << 28 });
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(r.stdout.equals(fs.readFileSync(out))).toBe(true);
  });

  it.each([
    ['monolithicSparse to stdout', ['--format', 'vmdk', '--vmdk-subformat', 'monolithicSparse', 'ROOT', '-'], 28, /^fsmaker: stdout: a monolithicSparse VMDK needs a new regular file/],
    ['--vmdk-subformat with a raw name', ['--vmdk-subformat', 'monolithicFlat', 'ROOT', 'OUT/disk.img'], 1, /^fsmaker: --vmdk-subformat is for VMDK output, not raw/],
    ['--adapter-type bogus', ['--adapter-type', 'scsi', 'ROOT', 'OUT/disk.vmdk'], 1, /^fsmaker: bad --adapter-type 'scsi'/],
  ])('%s is refused before anything is built', (_what, args, code, message) => {
    const d = outputDir(`refused-${code}-${args.length}`);
    const argv = [...stand, ...args.map((a) => (a === 'ROOT' ? rootfs : a.replace('OUT', d)))];
    const r = runHostile('fsmaker', argv, { codes: [code], env: ENV });
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(message);
    expect(fs.readdirSync(d)).toEqual([]);
  });
});
