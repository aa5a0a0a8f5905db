/**
 * fsmaker's command line without booting: outputs (stdout, .gz, block devices), the spare
 * partition (-t, -t none, a 20 GiB spare that costs no space), --bootdir, and the error exits.
 * Kernel and initrd are stand-in files here (a valid boot header, a gzip magic): nothing boots, the
 * disk's structure is checked.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, loopUnavailableReason, makeTempDir, patternBytes, runCli, sparsecopy, withLoop } from './helpers.js';
import { writeBootFiles } from './fsmaker-fixtures.js';

const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
const fsmaker = (args: string[]) => runCli(FSMAKER, args);
let dir: string;
let rootfs: string;
let kernel: string;
let initrd: string;
let stand: string[];

beforeAll(() => {
  dir = makeTempDir('fsm-cli-');
  rootfs = path.join(dir, 'root.ext4');
  execFileSync('truncate', ['-s', '32M', rootfs]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'cliroot', rootfs]);
  ({ kernel, initrd } = writeBootFiles(dir));
  stand = ['-k', kernel, '-i', initrd, '--seed', 'cli'];
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A copy of the system's GRUB files whose core.img grub-mkimage refuses as too big. */
function paddedGrubDir(): string {
  const grub = path.join(dir, 'fat-grub');
  if (!fs.existsSync(grub)) {
    for (const platform of ['i386-pc', 'x86_64-efi']) fs.cpSync(path.join('/usr/lib/grub', platform), path.join(grub, platform), { recursive: true });
    fs.appendFileSync(path.join(grub, 'i386-pc', 'normal.mod'), patternBytes(600_000, 4));
  }
  return grub;
}

const partitionOf = (image: string, n: number, out: string): void => {
  expect(sparsecopy(['-q', '--from-partition', String(n), image, out]).status).toBe(0);
};
const blkidType = (file: string): string => spawnSync('blkid', ['-p', '-o', 'value', '-s', 'TYPE', file], { encoding: 'utf8' }).stdout.trim();

describe('fsmaker outputs', () => {
  it('reports the rootfs and the choices with --print-config', () => {
    const r = fsmaker(['--print-config', ...stand, rootfs]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rootfs: .*ext4, UUID [0-9a-f-]{36}, label cliroot/);
    expect(r.stdout).toContain(`kernel: ${kernel}`);
    expect(r.stdout).toContain(`initrd: ${initrd}`);
  });

  it('formats the spare partition with -t, leaves it blank with -t none; a 20 GiB spare costs no space', () => {
    const ext4 = path.join(dir, 'spare-ext4.img');
    expect(fsmaker(['-q', ...stand, '-s', '512M', '-t', 'ext4', rootfs, ext4]).status).toBe(0);
    const spare = path.join(dir, 'spare.part');
    partitionOf(ext4, 2, spare);
    expect(blkidType(spare)).toBe('ext4');

    const none = path.join(dir, 'spare-none.img');
    expect(fsmaker(['-q', ...stand, '-s', '20G', '-t', 'none', rootfs, none]).status).toBe(0);
    expect(fs.statSync(none).size).toBe(20 * 1024 ** 3);
    expect(fs.statSync(none).blocks * 512).toBeLessThan(64 * 1024 * 1024);
    const parts = JSON.parse(execFileSync('sfdisk', ['-J', none]).toString()).partitiontable.partitions as { node: string; size: number }[];
    const p2 = parts.find((p) => p.node.endsWith('2'))!;
    expect(p2.size * 512).toBeGreaterThan(19 * 1024 ** 3);
  });

  it('puts --bootdir files on the boot partition', () => {
    const extra = path.join(dir, 'extra');
    fs.mkdirSync(path.join(extra, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(extra, 'sub', 'hello.txt'), 'hello from bootdir\n');
    const image = path.join(dir, 'bootdir.img');
    expect(fsmaker(['-q', ...stand, '-d', extra, rootfs, image]).status).toBe(0);
    const fat = path.join(dir, 'bootdir.fat');
    partitionOf(image, 3, fat);
    expect(execFileSync('mcopy', ['-i', fat, '::/sub/hello.txt', '-']).toString()).toBe('hello from bootdir\n');
    expect(execFileSync('mcopy', ['-i', fat, '::/vmlinuz', '-']).equals(fs.readFileSync(kernel))).toBe(true);
    expect(spawnSync('fsck.fat', ['-n', fat]).status).toBe(0);
  });

  it('writes a .gz to stdout with --gzip -', async () => {
    const child = spawn(process.execPath, [FSMAKER, '-q', '--gzip', ...stand, rootfs, '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    const status = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(status).toBe(0);
    const gz = path.join(dir, 'stdout.img.gz');
    fs.writeFileSync(gz, Buffer.concat(chunks));
    expect(spawnSync('gzip', ['-t', gz]).status).toBe(0);
    const disk = path.join(dir, 'from-stdout.img');
    expect(sparsecopy(['-q', gz, disk]).status).toBe(0);
    expect(spawnSync('sfdisk', ['-V', disk]).status).toBe(0);
  });

  it('writes .zst and .xz disks by their names: the same disk as the raw one, with its md5', () => {
    const rawDisk = path.join(dir, 'seeded.img');
    expect(fsmaker(['-q', '--seed', 'formats', ...stand, rootfs, rawDisk]).status).toBe(0);
    const md5 = execFileSync('md5sum', [rawDisk]).toString().split(' ')[0];
    for (const [ext, unpack] of [['zst', 'zstd -dc -q'], ['xz', 'xz -dc']]) {
      const packed = path.join(dir, `seeded.img.${ext}`);
      const r = fsmaker(['-q', '--md5', '--seed', 'formats', ...stand, rootfs, packed]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${md5}  ${path.join(dir, 'seeded.img')}\n`);
      expect(execFileSync('bash', ['-c', `${unpack} '${packed}' | md5sum`]).toString().split(' ')[0]).toBe(md5);
    }
  });
});

describe('fsmaker errors: one line, a distinct exit code, no output left behind', () => {
  const out = () => path.join(dir, `never-${Math.random().toString(36).slice(2)}.img`);
  const expectRefusal = (args: string[], code: number, pattern: RegExp) => {
    const target = out();
    const r = fsmaker([...args, target]);
    expect(r.status, r.stderr).toBe(code);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(pattern);
    expect(fs.existsSync(target)).toBe(false);
  };

  it('a missing rootfs: 20', () => expectRefusal([...stand, path.join(dir, 'nope.ext4')], 20, /cannot open the root filesystem/));
  it('not a filesystem: 21', () => {
    const junk = path.join(dir, 'junk.img');
    fs.writeFileSync(junk, patternBytes(1 << 20, 3));
    expectRefusal([...stand, junk], 21, /not a filesystem/);
  });
  it('a corrupt ext4 superblock: 21', () => {
    const bad = path.join(dir, 'bad.ext4');
    fs.copyFileSync(rootfs, bad);
    const fd = fs.openSync(bad, 'r+');
    fs.writeSync(fd, Buffer.from([0xff, 0xff, 0xff, 0x7f]), 0, 4, 1024 + 24); // s_log_block_size: absurd
    fs.closeSync(fd);
    expectRefusal([...stand, bad], 21, /corrupt ext4 superblock/);
  });
  it('a rootfs larger than --size allows: 22', () => expectRefusal([...stand, '-s', '100M', rootfs], 22, /--size allows/));
  it('a missing kernel: 23', () => expectRefusal(['-k', path.join(dir, 'no-kernel'), '-i', initrd, rootfs], 23, /cannot read the kernel/));
  it('GRUB files missing: 24, naming the Debian package', () => expectRefusal([...stand, '-g', path.join(dir, 'no-grub'), rootfs], 24, /grub-pc-bin/));
  it('core.img too large (a GRUB module padded past the 480 KiB limit of grub-mkimage): 25', () => {
    expectRefusal([...stand, '-g', paddedGrubDir(), rootfs], 25, /^fsmaker: core\.img built from .* is too large: .*core image is too big/);
  });
});

describe('fsmaker writes a disk image out of order (the rootfs while GRUB is built)', () => {
  for (const label of ['mbr', 'gpt']) {
    it(`${label}: the image equals the same disk streamed in order to stdout`, () => {
      const env = { SOURCE_DATE_EPOCH: '1700000000' };
      const image = path.join(dir, `any-order-${label}.img`);
      const r = runCli(FSMAKER, ['-q', ...stand, '--label', label, rootfs, image], { env });
      expect(r.status, r.stderr).toBe(0);
      const streamed = spawnSync(process.execPath, [FSMAKER, '-q', ...stand, '--label', label, rootfs, '-'], { env: { ...process.env, ...env }, maxBuffer: 1 << 30 });
      expect(streamed.status, streamed.stderr.toString()).toBe(0);
      expect(fs.statSync(image).size).toBe(streamed.stdout.length);
      expect(fs.readFileSync(image).equals(streamed.stdout)).toBe(true);
    });
  }
});

const loopReason = loopUnavailableReason();
if (loopReason) console.warn(`skipping fsmaker block-device tests: ${loopReason}`);

describe.skipIf(loopReason !== null)('fsmaker onto block devices', () => {
  it('a GRUB failure (core.img too large: 25) leaves the device as it was: GRUB is built before any write', async () => {
    const backing = path.join(dir, 'untouched.img');
    const before = patternBytes(64 << 20, 11);
    fs.writeFileSync(backing, before);
    await withLoop(backing, (dev) => {
      const r = fsmaker(['-q', ...stand, '-g', paddedGrubDir(), rootfs, dev]);
      expect(r.status, r.stderr).toBe(25);
    });
    expect(fs.readFileSync(backing).equals(before)).toBe(true);
  });

  it('writes the disk onto a loop device, and refuses one that is mounted (14)', async () => {
    const backing = path.join(dir, 'device.img');
    execFileSync('truncate', ['-s', '256M', backing]);
    await withLoop(backing, (dev) => {
      const r = fsmaker(['-q', ...stand, rootfs, dev]);
      expect(r.status, r.stderr).toBe(0);
      expect(spawnSync('sfdisk', ['-V', dev]).status).toBe(0);
    });
    const fsImage = path.join(dir, 'mounted.img');
    execFileSync('truncate', ['-s', '64M', fsImage]);
    execFileSync('mkfs.ext4', ['-q', '-F', fsImage]);
    await withLoop(fsImage, (dev) => {
      const mnt = makeTempDir('fsm-mnt-');
      const mounted = spawnSync('mount', [dev, mnt]).status === 0;
      try {
        if (!mounted) {
          console.warn('mount is not permitted here: the mounted-device refusal is not exercised');
          return;
        }
        const r = fsmaker(['-q', ...stand, rootfs, dev]);
        expect(r.status).toBe(14);
        expect(r.stderr).toMatch(/in use/);
      } finally {
        if (mounted) spawnSync('umount', [mnt]);
        fs.rmSync(mnt, { recursive: true, force: true });
      }
    });
  });
});
