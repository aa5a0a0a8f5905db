/**
 * GRUB images built with grub-mkimage (buildGrubImages) and grub.cfg (grubConfig), checked
 * structurally and end to end: a tiny MBR disk (one FAT16 partition at LBA 2048 carrying
 * /grub/grub.cfg and /EFI/BOOT/BOOTX64.EFI, boot.img + core.img patched into sector 0 and the
 * gap) assembled with standard tools, booted under SeaBIOS and OVMF in qemu (TCG); the
 * grub.cfg's menu entry echoes a marker to the serial port.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grubConfig } from '../src/fsmaker/grub-config.js';
import { CORE_LOAD_SEGMENT, GRUB_MAX_CORE_SECTORS, coreImageSectors, patchBootSector, patchCoreImage } from '../src/fsmaker/grub-bios.js';
import { buildGrubImages, findGrubDirs, grubEarlyConfig, type GrubImages } from '../src/fsmaker/grub-images.js';
import { makeTempDir } from './helpers.js';
import { bootAndWaitFor, qemuUnavailableReason } from './qemu-boot.js';

const SERIAL = 'c0de-0042';
const MARKER = 'GRUB-MARKER-OK';
const PART_START = 2048;
const PART_SECTORS = 32768; // 16 MiB, FAT16
const DISK_SECTORS = PART_START + PART_SECTORS;

const grubDirs = findGrubDirs();
const grubMissing = grubDirs.missing.length > 0
  ? `GRUB modules missing: install ${grubDirs.missing.map((m) => m.debianPackage).join(' ')}`
  : spawnSync('sh', ['-c', 'command -v grub-mkimage']).status !== 0 ? 'grub-mkimage not installed (grub-common)' : null;
if (grubMissing) console.warn(`skipping GRUB image tests: ${grubMissing}`);

function diskToolsMissing(): string | null {
  for (const tool of ['truncate', 'sfdisk', 'mkfs.fat', 'mcopy', 'mmd', 'dd']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} not installed`;
  }
  return null;
}
const bootSkip = grubMissing ?? diskToolsMissing() ?? qemuUnavailableReason('both');
if (bootSkip && !grubMissing) console.warn(`skipping qemu GRUB boot tests: ${bootSkip}`);

let dir = '';
let images: GrubImages = {};

beforeAll(async () => {
  dir = makeTempDir('grub-images-');
  if (!grubMissing) images = await buildGrubImages({ fatSerial: SERIAL, firmware: 'both', grubDirs, workDir: dir });
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('findGrubDirs', () => {
  it('reports missing platforms with their Debian packages', () => {
    const r = findGrubDirs('/nonexistent/grub');
    expect(r.i386Pc).toBeNull();
    expect(r.x86_64Efi).toBeNull();
    expect(r.missing.map((m) => m.debianPackage).sort()).toEqual(['grub-efi-amd64-bin', 'grub-pc-bin']);
  });
});

describe('grubEarlyConfig / grubConfig', () => {
  it('searches the FAT serial and sets the prefix', () => {
    expect(grubEarlyConfig('C0DE-0042')).toBe('search --no-floppy --fs-uuid --set=root c0de-0042\nset prefix=($root)/grub\n');
    expect(() => grubEarlyConfig('c0de0042')).toThrow(RangeError);
  });

  it('chooses the terminal per platform and boots /vmlinuz with /initrd.img', () => {
    const cfg = grubConfig({ rootPartUuid: '5eedd15c-02', append: 'quiet', timeoutSeconds: 1, firmware: 'both' });
    expect(cfg).toContain('if [ "$grub_platform" = efi ]; then');
    expect(cfg).toContain('serial --unit=0 --speed=115200');
    expect(cfg).toContain('set timeout=1');
    expect(cfg).toMatch(/^ {2}linux \/vmlinuz root=PARTUUID=5eedd15c-02 ro rootwait console=tty0 console=ttyS0,115200 panic=-1 quiet$/m);
    expect(cfg).toMatch(/^ {2}initrd \/initrd\.img$/m);
    const efi = grubConfig({ rootPartUuid: '5EED0000-0000-4000-8000-0000000000F5', timeoutSeconds: 0, firmware: 'uefi' });
    expect(efi).not.toContain('serial');
    expect(efi).toContain('root=PARTUUID=5eed0000-0000-4000-8000-0000000000f5 ');
    expect(() => grubConfig({ rootPartUuid: 'nope', timeoutSeconds: 0, firmware: 'bios' })).toThrow(RangeError);
    // What the user gives is a usage error (exit 1), not a bug.
    expect(() => grubConfig({ rootPartUuid: '5eedd15c-02', append: "a'b", timeoutSeconds: 0, firmware: 'bios' })).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(() => grubConfig({ rootPartUuid: '5eedd15c-02', timeoutSeconds: -1, firmware: 'bios' })).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });
});

describe.skipIf(!!grubMissing)('buildGrubImages', () => {
  it('builds a core.img that fits the GRUB limit and starts like diskboot', () => {
    const core = images.coreImg!;
    expect(core).toBeDefined();
    expect(coreImageSectors(core)).toBeLessThanOrEqual(GRUB_MAX_CORE_SECTORS);
    expect(core.readUInt16LE(0x1fe)).toBe(CORE_LOAD_SEGMENT);
    expect(images.bootImg!.length).toBe(512);
    expect(images.bootImg!.readUInt16LE(0x1fe)).toBe(0xaa55);
  });

  it('builds a PE BOOTX64.EFI', () => {
    const efi = images.efiImg!;
    expect(efi.subarray(0, 2).toString('latin1')).toBe('MZ');
    const peOffset = efi.readUInt32LE(0x3c);
    expect(efi.subarray(peOffset, peOffset + 4).toString('latin1')).toBe('PE\0\0');
    expect(efi.readUInt16LE(peOffset + 4)).toBe(0x8664); // machine: x86-64
  });

  it('is reproducible: a second build gives identical bytes', async () => {
    const again = makeTempDir('grub-images-again-');
    try {
      const b = await buildGrubImages({ fatSerial: SERIAL, firmware: 'both', grubDirs, workDir: again });
      expect(b.coreImg!.equals(images.coreImg!)).toBe(true);
      expect(b.efiImg!.equals(images.efiImg!)).toBe(true);
    } finally {
      fs.rmSync(again, { recursive: true, force: true });
    }
  });

  it('builds only what the firmware needs', async () => {
    const only = makeTempDir('grub-images-bios-');
    try {
      const b = await buildGrubImages({ fatSerial: SERIAL, firmware: 'bios', grubDirs, workDir: only });
      expect(b.coreImg).toBeDefined();
      expect(b.efiImg).toBeUndefined();
    } finally {
      fs.rmSync(only, { recursive: true, force: true });
    }
  });
});

/** The marker grub.cfg: the platform's terminal setup, then a menu entry that echoes and halts. */
function markerConfig(): string {
  return [
    'if [ "$grub_platform" = efi ]; then',
    '  terminal_input console',
    '  terminal_output console',
    'else',
    '  serial --unit=0 --speed=115200',
    '  terminal_input serial console',
    '  terminal_output serial console',
    'fi',
    'set timeout=0',
    'set default=0',
    "menuentry 'marker' {",
    `  echo ${MARKER}`,
    '  halt',
    '}',
    '',
  ].join('\n');
}

function assembleDisk(): string {
  const disk = path.join(dir, 'disk.img');
  const part = path.join(dir, 'part.fat');
  const run = (cmd: string, args: string[], input?: string): void => {
    execFileSync(cmd, args, { input, stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
  };
  run('truncate', ['-s', String(DISK_SECTORS * 512), disk]);
  run('sfdisk', ['--no-reread', '--no-tell-kernel', disk], `label: dos\nlabel-id: 0x5eedd15c\nstart=${PART_START}, size=${PART_SECTORS}, type=e, bootable\n`);
  run('mkfs.fat', ['-F', '16', '-S', '512', '-h', String(PART_START), '-i', SERIAL.replace('-', ''), '-n', 'GRUBTEST', '-C', part, String(PART_SECTORS / 2)]);
  const cfg = path.join(dir, 'grub.cfg');
  fs.writeFileSync(cfg, markerConfig());
  const efi = path.join(dir, 'BOOTX64.EFI');
  fs.writeFileSync(efi, images.efiImg!);
  run('mmd', ['-i', part, '::/grub', '::/EFI', '::/EFI/BOOT']);
  run('mcopy', ['-i', part, cfg, '::/grub/grub.cfg']);
  run('mcopy', ['-i', part, efi, '::/EFI/BOOT/BOOTX64.EFI']);
  run('dd', [`if=${part}`, `of=${disk}`, 'bs=1M', `seek=${PART_START * 512}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);

  const fd = fs.openSync(disk, 'r+');
  try {
    const sector0 = Buffer.alloc(512);
    fs.readSync(fd, sector0, 0, 512, 0);
    const boot = patchBootSector(images.bootImg!, sector0, 1);
    const core = patchCoreImage(images.coreImg!, 1, PART_START - 1);
    fs.writeSync(fd, boot, 0, 512, 0);
    fs.writeSync(fd, core, 0, core.length, 512);
  } finally {
    fs.closeSync(fd);
  }
  return disk;
}

describe.skipIf(!!bootSkip)('GRUB boots under qemu (TCG)', () => {
  let disk = '';
  beforeAll(() => {
    if (!bootSkip) disk = assembleDisk();
  });

  for (const firmware of ['bios', 'uefi'] as const) {
    it(`reaches the grub.cfg menu entry under ${firmware === 'bios' ? 'SeaBIOS' : 'OVMF'}`, async () => {
      const r = await bootAndWaitFor({ image: disk, firmware, disk: 'virtio', marker: MARKER, timeoutMs: 20_000 });
      console.log(`GRUB marker under ${firmware}: found=${r.found} after ${r.seconds} s`);
      if (!r.found) console.log(r.serial.slice(-3000));
      expect(r.found).toBe(true);
    }, 60_000);
  }
});
