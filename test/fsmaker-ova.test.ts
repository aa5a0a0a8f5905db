/**
 * fsmaker writes an OVA straight from the composite disk (issue 12): `fsmaker ... disk.ova` (or
 * --format ova) holds disk.ovf, disk.mf and disk-disk1.vmdk, whose disk is fsmaker's raw disk of
 * the same --seed and SOURCE_DATE_EPOCH, whose OVF names the firmware fsmaker built for and the
 * hardware asked for; the OVA options are refused for other formats before anything is built.
 * Stand-in kernel and initrd: nothing boots here.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, linesOf, makeTempDir, patternBytes, runCli } from './helpers.js';
import { writeBootFiles } from './fsmaker-fixtures.js';

const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
const ENV = { SOURCE_DATE_EPOCH: '1700000000' };
const fsmaker = (args: string[]) => runCli(FSMAKER, args, { env: ENV });
let dir: string;
let rootfs: string;
let stand: string[];

beforeAll(() => {
  dir = makeTempDir('fsm-ova-');
  const inputs = path.join(dir, 'inputs');
  fs.mkdirSync(path.join(inputs, 'tree'), { recursive: true });
  fs.writeFileSync(path.join(inputs, 'tree', 'data.bin'), patternBytes(4 << 20, 12));
  rootfs = path.join(inputs, 'root.ext4');
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'oroot', '-d', path.join(inputs, 'tree'), rootfs, '24M']);
  const { kernel, initrd } = writeBootFiles(inputs);
  stand = ['-k', kernel, '-i', initrd, '--seed', 'ova', '-b', '40M'];
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function outputDir(name: string): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

const extract = (ova: string, member: string): Buffer => execFileSync('tar', ['-xOf', ova, member], { maxBuffer: 1 << 30 });
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const firmwareOf = (ovf: string): string | null => /vmw:key="firmware" vmw:value="([^"]*)"/.exec(ovf)?.[1] ?? null;

describe('fsmaker writes an OVA', () => {
  it("disk.ova: ovf, mf, vmdk in order; the disk is the raw disk of the same --seed; digests match; the OVF's capacity is the disk's", () => {
    const out = outputDir('named');
    const rawImage = path.join(out, 'disk.img');
    const ova = path.join(out, 'disk.ova');
    expect(fsmaker(['-q', ...stand, rootfs, rawImage]).status).toBe(0);
    const r = fsmaker([...stand, '--ova-cpus', '2', '--ova-memory', '512', rootfs, ova]);
    expect(r.status, r.stderr).toBe(0);
    expect(linesOf(execFileSync('tar', ['-tf', ova], { encoding: 'utf8' }))).toEqual(['disk.ovf', 'disk.mf', 'disk-disk1.vmdk']);
    const disk = extract(ova, 'disk-disk1.vmdk');
    // The VMDK converted back by qemu-img is fsmaker's raw disk of the same --seed, byte for byte.
    const member = path.join(out, 'member.vmdk');
    const back = path.join(out, 'back.raw');
    fs.writeFileSync(member, disk);
    execFileSync('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', member, back]);
    expect(sha256(fs.readFileSync(back))).toBe(sha256(fs.readFileSync(rawImage)));
    fs.rmSync(member);
    fs.rmSync(back);
    const ovf = extract(ova, 'disk.ovf').toString();
    expect(ovf).toContain(`ovf:capacity="${fs.statSync(rawImage).size}"`);
    expect(ovf).toContain('<rasd:VirtualQuantity>2</rasd:VirtualQuantity>');
    expect(ovf).toContain('<rasd:VirtualQuantity>512</rasd:VirtualQuantity>');
    expect(extract(ova, 'disk.mf').toString()).toBe(`SHA256(disk.ovf)= ${sha256(Buffer.from(ovf))}\nSHA256(disk-disk1.vmdk)= ${sha256(disk)}\n`);
    expect(fs.readdirSync(out).sort()).toEqual(['disk.img', 'disk.ova']);
  });

  it('the OVF names the firmware fsmaker built for: bios, efi, or none for a disk that boots under both', () => {
    const out = outputDir('firmware');
    for (const [firmware, expected] of [['bios', 'bios'], ['uefi', 'efi'], ['both', null]] as const) {
      const ova = path.join(out, `${firmware}.img`);
      const r = fsmaker(['-q', ...stand, '--firmware', firmware, '--format', 'ova', rootfs, ova]);
      expect(r.status, r.stderr).toBe(0);
      expect(firmwareOf(extract(ova, `${firmware}.img.ovf`).toString()), firmware).toBe(expected);
    }
  });

  it('--ova-* for another format, or out of range: exit 1 before anything is built', () => {
    const out = outputDir('refused');
    for (const [args, message] of [
      [['--ova-cpus', '2', path.join(out, 'disk.img')], /^fsmaker: --ova-cpus is for OVA output, not raw/],
      [['--ova-hw-version', '100', path.join(out, 'disk.ova')], /^fsmaker: bad --ova-hw-version '100'/],
    ] as const) {
      const r = fsmaker([...stand, rootfs, ...args]);
      expect(r.status, r.stderr).toBe(1);
      expect(linesOf(r.stderr)).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
    expect(fs.readdirSync(out)).toEqual([]);
  });
});

describe("fsmaker's OVA read back", () => {
  it('sparsecopy --from-partition 1 disk.ova root.ext4 gives the rootfs back, from the file and from a pipe', () => {
    const out = outputDir('appliance');
    const ova = path.join(out, 'app.ova');
    expect(fsmaker(['-q', ...stand, rootfs, ova]).status).toBe(0);
    const root = path.join(out, 'root.ext4');
    const r = runCli(path.join(ROOT, 'dist/bin/sparsecopy.mjs'), ['-q', '--from-partition', '1', ova, root]);
    expect(r.status, r.stderr).toBe(0);
    expect(sha256(fs.readFileSync(root))).toBe(sha256(fs.readFileSync(rootfs)));
    const piped = runCli(path.join(ROOT, 'dist/bin/sparsecopy.mjs'), ['-q', '--from-partition', '1', '-', root], { input: fs.readFileSync(ova) });
    expect(piped.status, piped.stderr).toBe(0);
    expect(sha256(fs.readFileSync(root))).toBe(sha256(fs.readFileSync(rootfs)));
  });
});
