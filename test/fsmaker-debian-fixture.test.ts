/**
 * scripts/debian-rootfs.sh's cache, with a stand-in mmdebstrap on PATH (the real build is what
 * fsmaker-debian.test.ts boots): a rerun costs nothing, a changed recipe rebuilds, an interrupted
 * build leaves no cache entry and no partial file. The real tarball, when cached, is checked to
 * carry ping's security.capability and the owners the tests compare against.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, makeTempDir } from './helpers.js';
import { OWNED_PATHS, debianRootfs, expectedStat, octalMode } from './debian-rootfs.js';

const notRoot = process.getuid?.() !== 0 ? 'not root: the script builds only as root' : null;
let dir: string;
let script: string;
let cache: string;
let calls: string;

// Writes a small tar where mmdebstrap would write the rootfs, counting its calls; STUB_SLEEP
// makes it stop halfway, after the output file was started.
const STUB = `#!/bin/sh
for a; do case $a in *.tar) out=$a ;; esac; done
echo call >> "$STUB_CALLS"
printf partial > "$out"
[ -n "\${STUB_SLEEP:-}" ] && sleep "$STUB_SLEEP"
tar -cf "$out" -C "$STUB_CALLS_DIR" calls
`;

beforeAll(() => {
  dir = makeTempDir('fsm-debian-fixture-');
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.mkdirSync(path.join(dir, 'scripts'));
  fs.writeFileSync(path.join(dir, 'bin/mmdebstrap'), STUB, { mode: 0o755 });
  script = path.join(dir, 'scripts/debian-rootfs.sh');
  fs.copyFileSync(path.join(ROOT, 'scripts/debian-rootfs.sh'), script);
  cache = path.join(dir, 'cache');
  calls = path.join(dir, 'calls');
  fs.writeFileSync(calls, '');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const env = (extra: Record<string, string> = {}) => ({
  ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, DEBIAN_ROOTFS_CACHE: cache, STUB_CALLS: calls, STUB_CALLS_DIR: dir, ...extra,
});
const callCount = () => fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean).length;

function build(): string {
  const r = spawnSync('sh', [script], { encoding: 'utf8', env: env() });
  expect(r.status, r.stderr).toBe(0);
  const tarball = /^ROOTFS=(.*)$/m.exec(r.stdout)?.[1] ?? '';
  expect(fs.existsSync(tarball), r.stdout).toBe(true);
  return tarball;
}

describe('scripts/debian-rootfs.sh cache', () => {
  it('builds once; a rerun returns the same tarball without building', (ctx) => {
    if (notRoot) return ctx.skip();
    const first = build();
    expect(callCount()).toBe(1);
    expect(path.dirname(first)).toBe(cache);
    expect(build()).toBe(first);
    expect(callCount()).toBe(1);
  });

  it('a changed recipe is a new cache entry, built again', (ctx) => {
    if (notRoot) return ctx.skip();
    const before = build();
    const count = callCount();
    fs.appendFileSync(script, '# changed\n');
    const after = build();
    expect(after).not.toBe(before);
    expect(callCount()).toBe(count + 1);
  });

  it('an interrupted build leaves no cache entry and no partial file', async (ctx) => {
    if (notRoot) return ctx.skip();
    fs.appendFileSync(script, '# changed again\n');
    const entries = fs.readdirSync(cache).sort();
    const count = callCount();
    const child = spawn('sh', [script], { env: env({ STUB_SLEEP: '30' }), detached: true, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    while (callCount() === count) await new Promise((r) => setTimeout(r, 50));
    expect(fs.readdirSync(cache).some((f) => f.includes('.partial'))).toBe(true);
    process.kill(-(child.pid as number), 'SIGTERM');
    await exited;
    expect(fs.readdirSync(cache).sort()).toEqual(entries);
  }, 20_000);

  it('says why it cannot build when mmdebstrap is missing (exit 2)', (ctx) => {
    if (notRoot) return ctx.skip();
    fs.appendFileSync(script, '# not built\n');
    // A PATH with the script's tools and no mmdebstrap (neither the stand-in nor the real one).
    const bare = path.join(dir, 'bare');
    fs.mkdirSync(bare);
    for (const tool of ['cat', 'sha256sum', 'cut', 'id', 'dirname']) {
      fs.symlinkSync(spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim(), path.join(bare, tool));
    }
    const r = spawnSync('/bin/sh', [script], { encoding: 'utf8', env: env({ PATH: bare }) });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toBe('debian-rootfs: mmdebstrap not installed (Debian package mmdebstrap)\n');
  });
});

describe('the real Debian 12 tarball', () => {
  it('carries /usr/bin/ping security.capability (cap_net_raw) in its pax headers, and the owners the boots compare', (ctx) => {
    if (notRoot) return ctx.skip();
    const fixture = debianRootfs();
    if ('unavailable' in fixture) return ctx.skip();
    // GNU tar's verbose listing with --xattrs names each xattr of a member (x: security.capability=20).
    const r = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '-tvvf', fixture.tarball, './usr/bin/ping'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/x: +20 security\.capability/);
    expect(expectedStat(fixture.tarball, OWNED_PATHS)).toEqual([
      '1000:1000 755 /home/tester', '1000:1000 640 /home/tester/hello.txt', '1000:100 644 /srv/owners/staff',
      '1234:5678 4750 /srv/owners/other', '0:42 640 /etc/shadow', '0:0 755 /usr/bin/ping',
    ]);
  }, 900_000);

  it('octalMode reads ls -l letters as stat %a does', () => {
    expect(['rwxr-xr-x', 'rw-r-----', 'rwsr-x---', 'rwxr-sr-t', 'rw-r--r-T', 'r-Sr--r--'].map(octalMode)).toEqual(['755', '640', '4750', '3755', '1644', '4444']);
  });
});
