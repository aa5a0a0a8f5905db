/**
 * Test utility: the Debian 12 rootfs tarball scripts/debian-rootfs.sh builds (cached under
 * .cache/debian), the routes from it to an ext4 image that exist without fsmaker, and the checks a
 * booted Debian disk must pass through its serial console.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './helpers.js';
import type { SerialSession } from './qemu-boot.js';

/** The tarball's path, or why it cannot be built here (not root, mmdebstrap missing). A failed build throws. */
export function debianRootfs(): { tarball: string } | { unavailable: string } {
  const r = spawnSync('sh', [path.join(ROOT, 'scripts/debian-rootfs.sh')], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status === 2) return { unavailable: r.stderr.trim() };
  const tarball = /^ROOTFS=(.*)$/m.exec(r.stdout)?.[1];
  if (r.status !== 0 || !tarball) throw new Error(`scripts/debian-rootfs.sh failed (${r.status}): ${r.stderr.slice(-3000)}`);
  return { tarball };
}

/** Unpacks as root, keeping owners, modes and every xattr (security.capability, ACLs). */
export function extractAsRoot(tarball: string, tree: string): void {
  fs.mkdirSync(tree, { recursive: true });
  execFileSync('tar', ['--xattrs', "--xattrs-include=*", '--numeric-owner', '-xpf', tarball, '-C', tree]);
}

/** The standard rootless route from a tree to a filesystem image: `mkfs.ext4 -d`. */
export function ext4FromTree(tree: string, image: string, size = '1G'): void {
  execFileSync('truncate', ['-s', size, image]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'debian-root', '-d', tree, image]);
}

/** Paths whose owners and modes the booted disk must show as the tarball has them. */
export const OWNED_PATHS = ['/home/tester', '/home/tester/hello.txt', '/srv/owners/staff', '/srv/owners/other', '/etc/shadow', '/usr/bin/ping'];

/** `ls -l`'s mode letters (rwsr-x---) as stat's %a (4750). */
export function octalMode(letters: string): string {
  let mode = 0;
  const bit = (i: number, value: number) => { if (letters[i] !== '-' && letters[i] !== 'S' && letters[i] !== 'T') mode |= value; };
  for (let who = 0; who < 3; who++) {
    const shift = 6 - who * 3;
    bit(who * 3, 4 << shift);
    bit(who * 3 + 1, 2 << shift);
    bit(who * 3 + 2, 1 << shift);
  }
  if (/[sS]/.test(letters[2] ?? '')) mode |= 0o4000;
  if (/[sS]/.test(letters[5] ?? '')) mode |= 0o2000;
  if (/[tT]/.test(letters[8] ?? '')) mode |= 0o1000;
  return mode.toString(8);
}

/** `stat -c '%u:%g %a %n'` lines for `paths` as the tarball's headers give them. */
export function expectedStat(tarball: string, paths: string[]): string[] {
  // The whole listing (headers only: GNU tar seeks over the contents of a plain archive).
  const listing = execFileSync('tar', ['--numeric-owner', '-tvf', tarball], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const byPath = new Map<string, string>();
  for (const line of listing.split('\n')) {
    const m = /^[-d](\S{9})\s+(\d+)\/(\d+)\s+\d+\s+\S+\s+\S+\s+\.(\/.*?)\/?$/.exec(line);
    if (m && paths.includes(m[4])) byPath.set(m[4], `${m[2]}:${m[3]} ${octalMode(m[1])} ${m[4]}`);
  }
  return paths.map((p) => byPath.get(p) ?? `(not in ${tarball}) ${p}`);
}

export interface DebianChecks {
  systemState: string;
  failedUnits: string;
  rootOptions: string;
  /** systemd's getty generator starts it from console=ttyS0: the login came through it. */
  serialGetty: string;
  stat: string[];
  getcap: string;
  cmdline: string;
  fstab: string;
}

/** One logged-in session's worth of checks (a boot costs a minute: every check shares it). */
export async function collectDebianChecks(session: SerialSession, paths: string[]): Promise<DebianChecks> {
  const out = async (command: string, timeoutMs = 60_000) => (await session.run(command, timeoutMs)).output.trim();
  const systemState = await out('systemctl is-system-running --wait', 300_000);
  const failedUnits = systemState === 'running' ? '' : await out('systemctl --failed --no-legend --no-pager');
  return {
    systemState,
    failedUnits,
    rootOptions: await out('findmnt -no OPTIONS /'),
    serialGetty: await out('systemctl is-active serial-getty@ttyS0.service'),
    stat: (await out(`stat -c '%u:%g %a %n' ${paths.join(' ')}`)).split('\n').map((l) => l.trim()),
    getcap: await out('getcap /usr/bin/ping'),
    cmdline: await out('cat /proc/cmdline'),
    fstab: await out('grep -v "^#" /etc/fstab || true'),
  };
}
