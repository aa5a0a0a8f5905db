/**
 * fsmaker v0.05's command line is one layout among others now: the same options must give the
 * same bytes as before the layout model. The checksums were computed with main's bundle at
 * e12757c (the code before the layout model) on the same inputs: a rootfs made by mke2fs with a
 * fixed UUID, hash seed and time, the fixtures' stand-in kernel and initrd, --seed and
 * SOURCE_DATE_EPOCH (GRUB's images are reproducible: grub-mkimage stamps nothing).
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, makeTempDir, runCli } from './helpers.js';
import { writeBootFiles } from './fsmaker-fixtures.js';

const FSMAKER = process.env.FSMAKER_BUNDLE ?? path.join(ROOT, 'dist/bin/fsmaker.mjs');
let dir: string;
let rootfs: string;
let stand: string[];

beforeAll(() => {
  dir = makeTempDir('fsm-v005-');
  rootfs = path.join(dir, 'root.ext4');
  // An /etc/fstab that mounts / (an image root keeps `ro` anyway; a tree's without one gets `rw`).
  // debugfs writes it with mke2fs's fixed time (mke2fs -d would copy the file's ctime).
  const env = { ...process.env, E2FSPROGS_FAKE_TIME: '1700000000' };
  const fstab = path.join(dir, 'fstab');
  fs.writeFileSync(fstab, '/dev/sda1 / ext4 defaults 0 1\n');
  execFileSync('truncate', ['-s', '24M', rootfs]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'fixroot', '-U', '11111111-2222-4333-8444-555555555555', '-E', 'hash_seed=66666666-7777-4888-9999-aaaaaaaaaaaa', rootfs], { env });
  execFileSync('debugfs', ['-w', '-f', '-', rootfs], { env, input: `mkdir etc\nwrite ${fstab} etc/fstab\n`, stdio: ['pipe', 'ignore', 'ignore'] });
  const { kernel, initrd } = writeBootFiles(dir);
  stand = ['-q', '-k', kernel, '-i', initrd, '--seed', 'v005'];
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const CASES: { args: string[]; sha256: string }[] = [
  { args: [], sha256: '7563a8bc8b23f54dd2e5962d7ad7a449daf312e64fa39dd0eea35336c499e265' },
  { args: ['--label', 'gpt'], sha256: '673a350dbbe1e2b31a47c6f50bed069a697f220de872daea083a1bf9832939fd' },
  { args: ['--label', 'gpt', '-s', '300M', '-t', 'none', '-b', '40M', '--firmware', 'bios'], sha256: '54b672011060c278fba169503b6d500f2a47466b478f5b0f20faccf04dc0a9ca' },
  { args: ['-s', '200M', '-t', 'none', '-b', '20M', '--firmware', 'uefi', '--append', 'quiet', '--timeout', '3'], sha256: '5e22ee695952f589865d7615ac02c70c16560b5f88e743f015b12dbe580527a3' },
];

describe('fsmaker v0.05 command line', () => {
  for (const c of CASES) {
    it(`gives the same bytes as before the layout model: ${c.args.join(' ') || '(defaults)'}`, () => {
      const out = path.join(dir, 'disk.img');
      const r = runCli(FSMAKER, [...stand, ...c.args, rootfs, out], { env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' } });
      expect(r.status, r.stderr).toBe(0);
      const sum = createHash('sha256').update(fs.readFileSync(out)).digest('hex');
      if (process.env.PRINT_SUMS) console.log(JSON.stringify(c.args), sum);
      expect(sum).toBe(c.sha256);
      fs.rmSync(out);
    }, 120_000);
  }

  it('an image root keeps `ro` even without an fstab entry for / (as v0.05: only a root built from a tree gets `rw`)', () => {
    const bare = path.join(dir, 'nofstab.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', bare, '16M']);
    const out = path.join(dir, 'ro.img');
    const r = runCli(FSMAKER, [...stand, bare, out]);
    expect(r.status, r.stderr).toBe(0);
    const boot = path.join(dir, 'ro.boot');
    expect(runCli(path.join(ROOT, 'dist/bin/sparsecopy.mjs'), ['-q', '--from-partition', '3', out, boot]).status).toBe(0);
    const cfg = execFileSync('mtype', ['-i', boot, '::/grub/grub.cfg'], { encoding: 'utf8' });
    expect(cfg).toMatch(/root=PARTUUID=[0-9a-f]{8}-01 ro rootwait/);
  }, 120_000);
});
