/**
 * GRUB BIOS boot setup on buffers against the real grub-bios-setup --no-rs-codes: two copies of
 * the same partitioned image (MBR with the core.img in the gap before LBA 2048; GPT with a BIOS
 * boot partition), one set up by grub-bios-setup, the other by patchBootSector + patchCoreImage;
 * the whole images must be byte-identical. Plus the refusals.
 *
 * grub-bios-setup insists on resolving the GRUB device of its -d directory, so the directory
 * lives on a small ext2 loop device mounted inside a private mount namespace (unshare -m): the
 * mount disappears with the namespace; the loop device is detached by name afterwards.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CORE_LOAD_SEGMENT,
  GRUB_MAX_CORE_SECTORS,
  coreImageSectors,
  patchBootSector,
  patchCoreImage,
} from '../src/fsmaker/grub-bios.js';
import { attachLoop, detachLoop, firstDifference, loopUnavailableReason, makeTempDir } from './helpers.js';

const MiB = 1024 * 1024;
const GRUB_DIR = '/usr/lib/grub/i386-pc';
const BIOS_SETUP = ['/usr/sbin/grub-bios-setup', path.join(GRUB_DIR, 'grub-bios-setup')].find((p) => fs.existsSync(p));

function toolsMissing(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!fs.existsSync(path.join(GRUB_DIR, 'boot.img'))) return 'grub-pc-bin not installed';
  if (!BIOS_SETUP) return 'grub-bios-setup not found';
  for (const tool of ['grub-mkimage', 'sfdisk', 'mkfs.ext2', 'unshare', 'mount']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} not installed`;
  }
  return loopUnavailableReason();
}
const skipReason = toolsMissing();
if (skipReason) console.warn(`skipping GRUB comparison tests: ${skipReason}`);

let dir = '';
let bootImg = Buffer.alloc(0);
let coreImg = Buffer.alloc(0);
beforeAll(() => {
  dir = makeTempDir('fsmaker-grub-');
  if (skipReason) return;
  bootImg = fs.readFileSync(path.join(GRUB_DIR, 'boot.img'));
  const core = path.join(dir, 'core.img');
  execFileSync('grub-mkimage', [
    '-O', 'i386-pc', '-p', '/grub', '-o', core,
    'biosdisk', 'part_msdos', 'part_gpt', 'fat', 'ext2', 'normal', 'configfile', 'linux', 'search',
    'search_fs_uuid', 'echo', 'test', 'serial', 'terminal',
  ]);
  coreImg = fs.readFileSync(core);
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function makeImage(file: string, script: string): void {
  fs.rmSync(file, { force: true });
  execFileSync('truncate', ['-s', String(64 * MiB), file]);
  execFileSync('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', file], { input: script });
}

/** Runs grub-bios-setup --no-rs-codes on `images` (plain files) with boot.img/core.img from `dir`. */
function grubBiosSetup(images: string[]): void {
  const fsImg = path.join(dir, 'grubdir.ext2');
  execFileSync('truncate', ['-s', String(8 * MiB), fsImg]);
  execFileSync('mkfs.ext2', ['-q', '-F', fsImg]);
  const loop = attachLoop(fsImg);
  try {
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt, { recursive: true });
    const lines = [
      'set -e',
      `mount "${loop}" "${mnt}"`,
      `cp "${GRUB_DIR}/boot.img" "${dir}/core.img" "${mnt}/"`,
    ];
    for (const img of images) {
      const map = `${img}.map`;
      fs.writeFileSync(map, `(hd0) ${img}\n(hd1) ${loop}\n`);
      lines.push(`"${BIOS_SETUP}" --no-rs-codes --skip-fs-probe -d "${mnt}" -b boot.img -c core.img -m "${map}" "${img}"`);
    }
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', lines.join('\n')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`grub-bios-setup failed (${r.status}): ${r.stderr}`);
  } finally {
    detachLoop(loop);
  }
}

/** What fsmaker does: sector 0 and core.img patched in user space and written in place. */
function setupOurselves(file: string, coreLba: number, maxSectors: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const sector0 = Buffer.alloc(512);
    fs.readSync(fd, sector0, 0, 512, 0);
    const core = patchCoreImage(coreImg, coreLba, maxSectors);
    fs.writeSync(fd, patchBootSector(bootImg, sector0, coreLba), 0, 512, 0);
    fs.writeSync(fd, core, 0, core.length, coreLba * 512);
  } finally {
    fs.closeSync(fd);
  }
}

function expectSameFile(ours: string, reference: string): void {
  const a = fs.readFileSync(ours);
  const b = fs.readFileSync(reference);
  expect(a.length).toBe(b.length);
  const diff = firstDifference(a, b);
  expect(diff, `first difference at byte ${diff}`).toBe(-1);
}

const MBR_SCRIPT = 'label: dos\nlabel-id: 0x5eedd15c\nunit: sectors\n\nstart=2048, size=65536, type=c, bootable\nstart=67584, type=83\n';
const GPT_CORE_LBA = 67584;
const GPT_SCRIPT = [
  'label: gpt',
  'label-id: 5EED0000-0000-4000-8000-000000000000',
  'unit: sectors',
  '',
  'start=2048, size=65536, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=5EED0000-0000-4000-8000-0000000000E5',
  `start=${GPT_CORE_LBA}, size=2048, type=21686148-6449-6E6F-744E-656564454649, uuid=5EED0000-0000-4000-8000-0000000000B1`,
  'start=69632, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=5EED0000-0000-4000-8000-0000000000F5',
  '',
].join('\n');

describe.skipIf(skipReason !== null)('byte-identical to grub-bios-setup --no-rs-codes', () => {
  it('MBR: boot.img at LBA 0, core.img in the gap at LBA 1, and GPT: core.img in the BIOS boot partition', () => {
    const mbrRef = path.join(dir, 'mbr-ref.img');
    const mbrOurs = path.join(dir, 'mbr-ours.img');
    const gptRef = path.join(dir, 'gpt-ref.img');
    const gptOurs = path.join(dir, 'gpt-ours.img');
    makeImage(mbrRef, MBR_SCRIPT);
    fs.copyFileSync(mbrRef, mbrOurs);
    makeImage(gptRef, GPT_SCRIPT);
    fs.copyFileSync(gptRef, gptOurs);
    const pristine = fs.readFileSync(mbrRef).subarray(0, 512);
    const gptPristine = fs.readFileSync(gptRef);

    grubBiosSetup([mbrRef, gptRef]);
    // grub-bios-setup did write something
    expect(fs.readFileSync(mbrRef).subarray(0, 512).equals(pristine)).toBe(false);
    const gptAfter = fs.readFileSync(gptRef);
    expect(gptAfter.subarray(0, 512).equals(gptPristine.subarray(0, 512))).toBe(false);
    expect(gptAfter.subarray(GPT_CORE_LBA * 512, GPT_CORE_LBA * 512 + coreImg.length).equals(gptPristine.subarray(GPT_CORE_LBA * 512, GPT_CORE_LBA * 512 + coreImg.length))).toBe(false);

    setupOurselves(mbrOurs, 1, 2047);
    setupOurselves(gptOurs, GPT_CORE_LBA, 2048);
    expectSameFile(mbrOurs, mbrRef);
    expectSameFile(gptOurs, gptRef);

    // the partition tables survived and still validate
    for (const img of [mbrOurs, gptOurs]) {
      const r = spawnSync('sfdisk', ['-V', img], { encoding: 'utf8' });
      expect(r.status, r.stdout + r.stderr).toBe(0);
    }
    const gpt = fs.readFileSync(gptOurs);
    expect(gpt.readBigUInt64LE(0x5c)).toBe(BigInt(GPT_CORE_LBA));
    expect(gpt.readBigUInt64LE(GPT_CORE_LBA * 512 + 0x1f4)).toBe(BigInt(GPT_CORE_LBA + 1));
  });
});

describe.skipIf(skipReason !== null)('patch fields', () => {
  it('patchBootSector keeps the BPB and partition areas of the existing sector', () => {
    const existing = Buffer.alloc(512);
    for (let i = 0; i < 512; i++) existing[i] = (i * 7 + 3) & 0xff;
    const out = patchBootSector(bootImg, existing, 0x123456789);
    expect(out.length).toBe(512);
    expect(out.subarray(0, 3).equals(bootImg.subarray(0, 3))).toBe(true);
    expect(out.subarray(3, 0x5a).equals(existing.subarray(3, 0x5a))).toBe(true);
    expect(out.subarray(0x5a, 0x5c).equals(bootImg.subarray(0x5a, 0x5c))).toBe(true);
    expect(out.readBigUInt64LE(0x5c)).toBe(0x123456789n);
    expect(out[0x64]).toBe(0xff);
    expect([...out.subarray(0x66, 0x68)]).toEqual([0x90, 0x90]);
    expect(out.subarray(0x68, 0x1b8).equals(bootImg.subarray(0x68, 0x1b8))).toBe(true);
    expect(out.subarray(0x1b8, 0x1fe).equals(existing.subarray(0x1b8, 0x1fe))).toBe(true);
    expect([...out.subarray(0x1fe)]).toEqual([0x55, 0xaa]);
    // inputs untouched
    expect(existing[0x1fe]).toBe((0x1fe * 7 + 3) & 0xff);
  });

  it('patchCoreImage writes one blocklist entry and a zero terminator', () => {
    const sectors = coreImageSectors(coreImg);
    expect(sectors).toBe(Math.ceil(coreImg.length / 512));
    const out = patchCoreImage(coreImg, 133120, 2048);
    expect(out.length).toBe(coreImg.length);
    expect(out.readBigUInt64LE(0x1f4)).toBe(133121n);
    expect(out.readUInt16LE(0x1fc)).toBe(sectors - 1);
    expect(out.readUInt16LE(0x1fe)).toBe(CORE_LOAD_SEGMENT);
    expect(out.subarray(0x1e8, 0x1f4).every((b) => b === 0)).toBe(true);
    expect(out.subarray(0, 0x1e8).equals(coreImg.subarray(0, 0x1e8))).toBe(true);
    expect(out.subarray(512).equals(coreImg.subarray(512))).toBe(true);
    // at LBA 1 grub-mkimage's own blocklist is already right
    expect(patchCoreImage(coreImg, 1, 2047).equals(coreImg)).toBe(true);
  });

  it('refuses a core.img that does not fit, and bad inputs', () => {
    const sectors = coreImageSectors(coreImg);
    expect(() => patchCoreImage(coreImg, 1, sectors - 1)).toThrow(/sectors/);
    expect(patchCoreImage(coreImg, 1, sectors).length).toBe(coreImg.length);
    const huge = Buffer.concat([coreImg, Buffer.alloc((GRUB_MAX_CORE_SECTORS + 1) * 512 - coreImg.length)]);
    expect(() => patchCoreImage(huge, 1, 100_000)).toThrow(/limit/);
    expect(() => patchCoreImage(coreImg.subarray(0, 512), 1, 2047)).toThrow(/too small/);
    expect(() => patchCoreImage(Buffer.alloc(4096), 1, 2047)).toThrow(/core\.img/);
    expect(() => patchCoreImage(coreImg, 0, 2047)).toThrow(RangeError);
    expect(() => patchBootSector(bootImg.subarray(0, 446), Buffer.alloc(512), 1)).toThrow(RangeError);
    expect(() => patchBootSector(bootImg, Buffer.alloc(100), 1)).toThrow(RangeError);
    expect(() => patchBootSector(bootImg, Buffer.alloc(512), 1.5)).toThrow(RangeError);
  });
});
