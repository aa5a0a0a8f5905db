/**
 * Proof by booting a real Debian 12 (issue 13): the mmdebstrap tarball of scripts/debian-rootfs.sh
 * (systemd, the cloud kernel with its own initrd, ping with cap_net_raw, files owned by others)
 * made into a disk (1) by fsmaker from the tarball itself, run as an unprivileged user, and (2) by
 * fsmaker from the tree unpacked as root, each booted under SeaBIOS (MBR) and OVMF (GPT); and (3)
 * by the standard rootless route, `mkfs.ext4 -d` of the unpacked tree and fsmaker of that image,
 * booted once (SeaBIOS), for the image root's kernel choice and its read-write root (the image has
 * mmdebstrap's placeholder fstab too). Each disk is booted to the serial login, logged in as root:
 * the system must be running, the root read-write, owners and ping's capability as in the
 * tarball. One boot per disk: every check shares its login.
 */
import { spawnSync } from 'node:child_process';
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
let tree: string;
let unavailable: string | null = qemuUnavailableReason('both');
/** The unprivileged user the tarball route builds as, and a directory it owns. */
const BUILD_UID = 65534;
let buildDir: string;

beforeAll(() => {
  dir = makeTempDir('fsm-debian-');
  if (!unavailable) {
    const fixture = debianRootfs();
    if ('unavailable' in fixture) unavailable = fixture.unavailable;
    else {
      tarball = fixture.tarball;
      tree = path.join(dir, 'tree');
      extractAsRoot(tarball, tree);
      image = path.join(dir, 'root.ext4');
      ext4FromTree(tree, image);
      fs.chmodSync(dir, 0o755);
      buildDir = path.join(dir, 'build');
      fs.mkdirSync(buildDir);
      fs.chownSync(buildDir, BUILD_UID, BUILD_UID);
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
  expect(checks.serialGetty).toBe('active');
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

/** A node script as the unprivileged BUILD_UID (setpriv), in a directory that user owns. */
function nodeAsUser(script: string, args: string[]) {
  return spawnSync('setpriv', [`--reuid=${BUILD_UID}`, `--regid=${BUILD_UID}`, '--clear-groups', 'node', script, ...args], {
    encoding: 'utf8', cwd: buildDir, env: { ...process.env, HOME: buildDir },
  });
}
const fsmakerAsUser = (args: string[]) => nodeAsUser(FSMAKER, args);

interface Route {
  title: string;
  /** Writes the disk for `label`; returns fsmaker's process result. */
  makeDisk: (label: 'mbr' | 'gpt', disk: string) => { status: number | null; stderr: string };
  /** Where the disk goes (the unprivileged route writes only where its user may). */
  diskDir: () => string;
  cases: typeof CASES;
}

const ROUTES: Route[] = [
  {
    title: 'by fsmaker from the tarball, as an unprivileged user',
    makeDisk: (label, disk) => fsmakerAsUser(['-q', '--seed', 'debian', '--label', label, tarball, disk]),
    diskDir: () => buildDir,
    cases: CASES,
  },
  {
    title: 'by fsmaker from the tree unpacked as root',
    makeDisk: (label, disk) => runCli(FSMAKER, ['-q', '--seed', 'debian', '--label', label, tree, disk]),
    diskDir: () => dir,
    // The tarball route boots both firmwares; what this route adds is the directory as the
    // source, which one boot proves (a boot costs 30 s of the suite's 20 minutes).
    cases: CASES.slice(1),
  },
  {
    title: 'by mkfs.ext4 -d of the tree unpacked as root, and fsmaker of the image',
    makeDisk: (label, disk) => runCli(FSMAKER, ['-q', '--seed', 'debian', '--label', label, image, disk]),
    diskDir: () => dir,
    cases: CASES.slice(0, 1),
  },
];

for (const route of ROUTES) {
  describe(`Debian 12 from its tarball, ${route.title}`, () => {
    for (const { label, firmware } of route.cases) {
      let checks: DebianChecks | undefined;
      it(`${label.toUpperCase()} + ${firmwareName(firmware)}: login as root, running, owners and ping's capability as in the tarball`, async (ctx) => {
        if (unavailable) return ctx.skip(unavailable);
        const disk = path.join(route.diskDir(), `${label}.img`);
        const r = route.makeDisk(label, disk);
        expect(r.status, r.stderr).toBe(0);
        try {
          checks = await bootAndCheck(disk, firmware);
        } finally {
          fs.rmSync(disk, { force: true });
        }
        expectDebianChecks(checks);
      }, 600_000);
      it(`${label.toUpperCase()} + ${firmwareName(firmware)}: the root is mounted read-write`, (ctx) => {
        if (unavailable) return ctx.skip(unavailable);
        expectReadWriteRoot(checks);
      });
    }
  });
}
