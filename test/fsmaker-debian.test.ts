/**
 * Proof by booting a real Debian 12 (issue 13): the mmdebstrap tarball of scripts/debian-rootfs.sh
 * (systemd, the cloud kernel with its own initrd, ping with cap_net_raw, files owned by others)
 * made into an ext4 image by the standard route (unpacked as root, `mkfs.ext4 -d`), made into a
 * disk by fsmaker, booted under SeaBIOS (MBR) and OVMF (GPT) to the serial login; logged in as
 * root, the system must be running, the root read-write, owners and capabilities as in the tarball.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, makeTempDir, runCli } from './helpers.js';
import { bootSession, qemuUnavailableReason } from './qemu-boot.js';
import { OWNED_PATHS, collectDebianChecks, debianRootfs, expectedStat, ext4FromTree, extractAsRoot, type DebianChecks } from './debian-rootfs.js';

const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
let dir: string;
let tarball: string;
let image: string;
let unavailable: string | null = qemuUnavailableReason('both');

beforeAll(() => {
  dir = makeTempDir('fsm-debian-');
  if (!unavailable) {
    const fixture = debianRootfs();
    if ('unavailable' in fixture) unavailable = fixture.unavailable;
    else {
      tarball = fixture.tarball;
      const tree = path.join(dir, 'tree');
      extractAsRoot(tarball, tree);
      image = path.join(dir, 'root.ext4');
      ext4FromTree(tree, image);
      fs.rmSync(tree, { recursive: true, force: true });
    }
  }
  if (unavailable) console.warn(`skipping Debian boot tests: ${unavailable}`);
}, 900_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Boots `disk`, logs in on ttyS0 as root, runs every check in that one session. */
async function bootAndCheck(disk: string, firmware: 'bios' | 'uefi'): Promise<DebianChecks> {
  const session = bootSession({ image: disk, firmware, disk: 'virtio', memoryMiB: 1024 });
  try {
    await session.login('root', 'root', 240_000);
    const checks = await collectDebianChecks(session, OWNED_PATHS);
    console.log(`${path.basename(disk)} (${firmware}): logged in and checked at ${session.seconds()} s: ${JSON.stringify(checks, null, 1)}`);
    return checks;
  } finally {
    await session.close();
  }
}

/** The checks of a booted disk except the root's mount options (their own test). */
function expectDebianChecks(checks: DebianChecks): void {
  expect(['running', 'degraded'], `systemctl is-system-running said ${checks.systemState}`).toContain(checks.systemState);
  if (checks.systemState === 'degraded') console.warn(`degraded: failed units:\n${checks.failedUnits}`);
  expect(checks.stat).toEqual(expectedStat(tarball, OWNED_PATHS));
  expect(checks.getcap).toMatch(/^\/usr\/bin\/ping cap_net_raw=ep$/);
}

/** A tree with mmdebstrap's placeholder /etc/fstab has no entry for /: the kernel's mount must be rw. */
function expectReadWriteRoot(checks: DebianChecks | undefined): void {
  expect(checks, 'the disk did not boot to a login').toBeDefined();
  const { rootOptions, cmdline, fstab } = checks as DebianChecks;
  expect(rootOptions.split(','), `findmnt -no OPTIONS / (cmdline ${cmdline}; fstab entries ${JSON.stringify(fstab)})`).toContain('rw');
}

const CASES: Array<{ label: 'mbr' | 'gpt'; firmware: 'bios' | 'uefi' }> = [
  { label: 'mbr', firmware: 'bios' },
  { label: 'gpt', firmware: 'uefi' },
];
const firmwareName = (firmware: 'bios' | 'uefi') => (firmware === 'bios' ? 'SeaBIOS' : 'OVMF');

describe('Debian 12 from its tarball, by mkfs.ext4 -d and fsmaker of the image', () => {
  for (const { label, firmware } of CASES) {
    let checks: DebianChecks | undefined;
    it(`${label.toUpperCase()} + ${firmwareName(firmware)}: login as root, running, owners and ping's capability as in the tarball`, async (ctx) => {
      if (unavailable) return ctx.skip();
      const disk = path.join(dir, `${label}.img`);
      const r = runCli(FSMAKER, ['-q', '--seed', 'debian', '--label', label, image, disk]);
      expect(r.status, r.stderr).toBe(0);
      checks = await bootAndCheck(disk, firmware);
      fs.rmSync(disk);
      expectDebianChecks(checks);
    }, 600_000);
    it(`${label.toUpperCase()} + ${firmwareName(firmware)}: the root is mounted read-write`, (ctx) => {
      if (unavailable) return ctx.skip();
      expectReadWriteRoot(checks);
    });
  }
});
