/**
 * fsmaker on hostile input (issue 9): input = output, a rootfs that cannot be read, kernels and
 * initrds that cannot boot, bad options, signals. Every case runs the real command and must end
 * with its documented code, one "fsmaker: " line naming what is wrong, nothing written but what
 * was asked for (no output, no temporary file, no work directory), before GRUB is even built.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type FileSnapshot, ROOT, loopUnavailableReason, patternBytes, snapshot, tempLeftovers, useTempDir, withLoop } from './helpers.js';
import { type BoundedResult, commandPath, runHostile } from './hostile.js';
import { buildRootfs, fakeInitrd, fakeKernel, writeBootFiles } from './fsmaker-fixtures.js';
import { dataBlocks, editInode, editSuperblock, extentNodes, geometry, groupDescOffset, inodeNumber, repairDirBlock, repairExtentNode, repairGroupDesc } from './ext4-edits.js';

let dir = '';
useTempDir('fsm-hard-', (d) => (dir = d));

let rootfs = '';
let fragmented = '';
let kernel = '';
let initrd = '';
let tmp = '';
let bin = '';
let grubMarker = '';

/** A grub-mkimage first on PATH that leaves a marker, then runs the real one: shows whether GRUB was built. */
function installMarkingGrub(): void {
  bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  grubMarker = path.join(dir, 'grub-ran');
  const real = spawnSync('sh', ['-c', 'command -v grub-mkimage'], { encoding: 'utf8' }).stdout.trim();
  fs.writeFileSync(path.join(bin, 'grub-mkimage'), `#!/bin/sh\ntouch '${grubMarker}'\nexec '${real}' "$@"\n`, { mode: 0o755 });
}

beforeAll(() => {
  tmp = path.join(dir, 'tmp');
  fs.mkdirSync(tmp);
  ({ kernel, initrd } = writeBootFiles(dir));
  rootfs = buildRootfs(path.join(dir, 'root.ext4'), { mkfs: ['-b', '1024'] });
  // The kernel as a sparse file of 12 pieces: more extents than the inode holds, so a depth-1 tree.
  fragmented = buildRootfs(path.join(dir, 'frag.ext4'), {
    mkfs: ['-b', '1024'],
    tree: (t) => {
      const file = path.join(t, 'boot/vmlinuz-1.0');
      fs.rmSync(file);
      const fd = fs.openSync(file, 'w');
      for (let i = 0; i < 12; i++) fs.writeSync(fd, i === 0 ? fakeKernel(2048, 9) : patternBytes(2048, 10 + i), 0, 2048, i * 8192);
      fs.closeSync(fd);
    },
  });
  installMarkingGrub();
});

const env = (): NodeJS.ProcessEnv => ({ TMPDIR: tmp, PATH: `${bin}:${process.env.PATH}` });

/** Files in `dir` and in TMPDIR, to show that a run added nothing. */
const listing = (): string[] => [...fs.readdirSync(dir).map((n) => `dir/${n}`), ...fs.readdirSync(tmp).map((n) => `tmp/${n}`)].sort();

/**
 * Runs fsmaker and expects a refusal: `code`, one line matching `pattern`, the `watched` files
 * unchanged, nothing new in the directory or TMPDIR, and GRUB not built (the check came first).
 */
function expectRefusal(args: string[], code: number, pattern: RegExp, options: { watched?: string[]; grubMayRun?: boolean } = {}): BoundedResult {
  const watched = options.watched ?? [];
  const before = watched.map((f) => snapshot(f));
  const names = listing();
  fs.rmSync(grubMarker, { force: true });
  const r = runHostile('fsmaker', args, { codes: [code], env: env(), timeoutMs: 30_000 });
  expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
  watched.forEach((f, i) => expectUnchanged(f, before[i]!));
  expect(listing()).toEqual(names);
  expect(tempLeftovers(dir)).toEqual([]);
  if (!options.grubMayRun) expect(fs.existsSync(grubMarker), 'GRUB was built before the refusal').toBe(false);
  return r;
}

/** A copy of `image` named `name`, edited in memory by `edit`. */
function edited(image: string, name: string, edit: (img: Buffer) => void): string {
  const img = fs.readFileSync(image);
  edit(img);
  const file = path.join(dir, name);
  fs.writeFileSync(file, img);
  return file;
}

const out = (name = 'out.img') => path.join(dir, name);

/** `file` is as `before` (bytes compared as bytes: a deep equality of megabytes would be slow). */
function expectUnchanged(file: string, before: FileSnapshot): void {
  const now = snapshot(file);
  expect(now.bytes.equals(before.bytes), `${file} changed`).toBe(true);
  expect({ ...now, bytes: null }).toEqual({ ...before, bytes: null });
}

describe('input = output is refused with 13 before anything is written', () => {
  it('the rootfs as the output, also through a symlink or a hard link', () => {
    const victim = path.join(dir, 'victim.ext4');
    fs.copyFileSync(rootfs, victim);
    const link = path.join(dir, 'victim-link.ext4');
    const hard = path.join(dir, 'victim-hard.ext4');
    fs.symlinkSync(victim, link);
    fs.linkSync(victim, hard);
    const stand = ['-k', kernel, '-i', initrd];
    expectRefusal([...stand, victim, victim], 13, new RegExp(`${victim}.*is the rootfs`), { watched: [victim] });
    expectRefusal([...stand, victim, link], 13, new RegExp(`${link}.*is the rootfs ${victim}`), { watched: [victim] });
    expectRefusal([...stand, hard, victim], 13, new RegExp(`${victim}.*is the rootfs ${hard}`), { watched: [victim] });
    fs.rmSync(link);
    fs.rmSync(hard);
    fs.rmSync(victim);
  });

  it('the -k kernel or the -i initrd as the output', () => {
    expectRefusal(['-k', kernel, '-i', initrd, rootfs, kernel], 13, new RegExp(`${kernel}.*is the kernel`), { watched: [kernel, rootfs] });
    expectRefusal(['-k', kernel, '-i', initrd, rootfs, initrd], 13, new RegExp(`${initrd}.*is the initrd`), { watched: [initrd, rootfs] });
  });

  it('an output inside the -d directory, the directory itself, or a file of it', () => {
    const extra = path.join(dir, 'extra');
    fs.mkdirSync(path.join(extra, 'sub'), { recursive: true });
    const inside = path.join(extra, 'sub', 'hello.txt');
    fs.writeFileSync(inside, 'hello\n');
    const stand = ['-k', kernel, '-i', initrd, '-d', extra, rootfs];
    expectRefusal([...stand, path.join(extra, 'sub', 'disk.img')], 13, new RegExp(`disk.img.*inside the boot directory ${extra}`));
    expectRefusal([...stand, extra], 13, new RegExp(`${extra}.*inside the boot directory`));
    const outside = path.join(dir, 'linked-out.img');
    fs.linkSync(inside, outside);
    expectRefusal([...stand, outside], 13, /linked-out\.img.*is the boot directory's file .*hello\.txt/, { watched: [inside] });
    fs.rmSync(outside);
  });
});

const loopReason = loopUnavailableReason();
if (loopReason) console.warn(`skipping fsmaker's loop-device input = output tests: ${loopReason}`);
describe.skipIf(loopReason !== null)('input = output through a loop device is refused with 13', () => {
  it('the rootfs given as a loop device on the output file, and the output a loop device on the rootfs', async () => {
    const victim = path.join(dir, 'loop-victim.ext4');
    fs.copyFileSync(rootfs, victim);
    await withLoop(victim, (device) => {
      const stand = ['-k', kernel, '-i', initrd];
      expectRefusal([...stand, device, victim], 13, new RegExp(`${victim}.*is the rootfs ${device}`), { watched: [victim] });
      expectRefusal(['--force', ...stand, victim, device], 13, new RegExp(`${device}.*is the rootfs ${victim}`), { watched: [victim] });
    });
    fs.rmSync(victim);
  });
});

describe('a rootfs that cannot be read is 21, not a reason to change kernels', () => {
  const ino = (image: string, p: string) => inodeNumber(image, p);
  const zeroInode = (image: string, p: string, name: string) => edited(image, name, (img) => editInode(img, ino(image, p), (raw) => raw.fill(0)));
  const refused = (image: string, pattern: RegExp) => {
    expectRefusal([image, out()], 21, pattern, { watched: [image] });
    expectRefusal(['--print-config', image], 21, pattern, { watched: [image] });
  };

  it('the root, /boot or kernel inode zeroed', () => {
    refused(zeroInode(rootfs, '/', 'zero-root.ext4'), /zero-root\.ext4: .*root directory \(inode 2\) is not a directory/);
    refused(zeroInode(rootfs, '/boot', 'zero-boot.ext4'), /zero-boot\.ext4: .*'boot' .*unused inode/);
    refused(zeroInode(rootfs, '/boot/vmlinuz-1.0', 'zero-kernel.ext4'), /zero-kernel\.ext4: .*'vmlinuz-1\.0' .*unused inode/);
  });

  it('an INCOMPAT feature Linux 6.1 does not know, also when -k and -i are given', () => {
    const image = edited(rootfs, 'incompat.ext4', (img) => editSuperblock(img, (sb) => sb.writeUInt32LE(sb.readUInt32LE(0x60) | 0x1000 | 0x800000, 0x60)));
    expectRefusal(['-k', kernel, '-i', initrd, image, out()], 21, /incompat\.ext4: .*INCOMPAT features? 0x801000 \(dirdata, bit 23\).*Linux/, { watched: [image] });
  });

  it('a rootfs without a kernel falls back to the default one, and --print-config says why', () => {
    const bare = buildRootfs(path.join(dir, 'bare.ext4'), { tree: (t) => fs.rmSync(path.join(t, 'boot'), { recursive: true }) });
    const r = runHostile('fsmaker', ['--print-config', bare], { codes: [0], env: env() });
    expect(r.stdout.toString()).toMatch(/^# kernel: .*vmlinuz-.* \(\d+ bytes\), the default: .*bare\.ext4 has no \/boot\/vmlinuz or \/vmlinuz$/m);
    expect(r.stdout.toString()).toMatch(/^# initrd: generated .*, the default: .*bare\.ext4 has no \/boot\/initrd\.img or \/initrd\.img$/m);
  });

  it('extents that point at filesystem metadata or overlap each other', () => {
    const image = fragmented;
    const kino = ino(image, '/boot/vmlinuz-1.0');
    const [leaf] = extentNodes(image, '/boot/vmlinuz-1.0');
    expect(leaf).toBeDefined();
    const geo = geometry(fs.readFileSync(image));
    const tableBlock = fs.readFileSync(image).readUInt32LE(groupDescOffset(fs.readFileSync(image), 0) + 8);
    const onMetadata = edited(image, 'on-metadata.ext4', (img) => {
      const node = img.subarray(leaf!.block * geo.blockSize);
      node.writeUInt32LE(tableBlock + 1, 12 + 12 * 3 + 8); // the 4th extent's start: inside the inode table
      repairExtentNode(img, leaf!.block, kino);
    });
    refused(onMetadata, /on-metadata\.ext4: inode \d+: .*block \d+ .*inode table.*at byte \d+/);
    const overlapping = edited(image, 'overlap.ext4', (img) => {
      const node = img.subarray(leaf!.block * geo.blockSize);
      node.copy(node, 12 + 12 * 2, 12 + 12 * 1, 12 + 12 * 2); // the 3rd extent repeats the 2nd
      repairExtentNode(img, leaf!.block, kino);
    });
    refused(overlapping, /overlap\.ext4: inode \d+: .*overlap.*at byte \d+/);
  });

  describe('corrupt structures on the way to the kernel: the reader says where', () => {
    const kernelPath = '/boot/vmlinuz-1.0';
    const leafEdit = (name: string, edit: (node: Buffer, block: number) => void) =>
      edited(fragmented, name, (img) => {
        const [leaf] = extentNodes(fragmented, kernelPath);
        const geo = geometry(img);
        edit(img.subarray(leaf!.block * geo.blockSize, (leaf!.block + 1) * geo.blockSize), leaf!.block);
        repairExtentNode(img, leaf!.block, inodeNumber(fragmented, kernelPath));
      });
    const rootEdit = (name: string, edit: (iBlock: Buffer) => void) => edited(fragmented, name, (img) => editInode(img, inodeNumber(fragmented, kernelPath), (raw) => edit(raw.subarray(0x28, 0x28 + 60))));

    it.each([
      ['a bad directory record length', () => edited(rootfs, 'reclen.ext4', (img) => {
        const [block] = dataBlocks(rootfs, '/boot');
        const geo = geometry(img);
        img.writeUInt16LE(5, block! * geo.blockSize + 4); // rec_len of "."
        repairDirBlock(img, block!, inodeNumber(rootfs, '/boot'), false);
      }), /reclen\.ext4: directory inode \d+: bad record length 5 .*at byte \d+/],
      ['an extent node that points to itself', () => leafEdit('self.ext4', (node, block) => {
        node.writeUInt16LE(1, 6); // depth 1: its entries are now index entries
        node.writeUInt32LE(block, 12 + 4); // the first one leads to this very node
      }), /self\.ext4: inode \d+: extent tree depth 1 .*expected 0.*at byte \d+/],
      ['a wrong extent depth in the inode', () => rootEdit('depth.ext4', (iBlock) => iBlock.writeUInt16LE(3, 6)), /depth\.ext4: inode \d+: extent tree depth .*at byte \d+/],
      ['an extent past the end of the filesystem', () => leafEdit('past-end.ext4', (node) => node.writeUInt32LE(0x7fffff00, 12 + 8)), /past-end\.ext4: inode \d+: .*past the filesystem's last block.*at byte \d+/],
      ['a bad extent magic', () => leafEdit('magic.ext4', (node) => node.writeUInt16LE(0x1234, 0)), /magic\.ext4: inode \d+: bad extent header magic 0x1234.*at byte \d+/],
      ['too many extent entries', () => leafEdit('entries.ext4', (node) => node.writeUInt16LE(500, 2)), /entries\.ext4: inode \d+: 500 extent entries .*at byte \d+/],
      ['a bad group descriptor', () => edited(rootfs, 'gdt.ext4', (img) => {
        img.writeUInt32LE(0, groupDescOffset(img, 0) + 8); // group 0's inode table at block 0
        repairGroupDesc(img, 0);
      }), /gdt\.ext4: group 0's inode table .*at byte \d+/],
    ])('%s', (_what, make, pattern) => refused(make(), pattern));

    const symlinked = (name: string, tree: (root: string) => void) =>
      buildRootfs(path.join(dir, name), {
        tree: (t) => {
          fs.rmSync(path.join(t, 'boot/vmlinuz'));
          tree(t);
        },
      });
    it.each([
      ['a link to itself', (t: string) => fs.symlinkSync('vmlinuz', path.join(t, 'boot/vmlinuz'))],
      ['a -> b -> a', (t: string) => {
        fs.symlinkSync('loop-b', path.join(t, 'boot/vmlinuz'));
        fs.symlinkSync('vmlinuz', path.join(t, 'boot/loop-b'));
      }],
      ['/boot -> boot', (t: string) => {
        fs.renameSync(path.join(t, 'boot'), path.join(t, 'real-boot'));
        fs.symlinkSync('boot', path.join(t, 'boot'));
      }],
      ['a chain of 200 links', (t: string) => {
        for (let i = 0; i < 200; i++) fs.symlinkSync(i === 199 ? 'vmlinuz-1.0' : `l${i + 1}`, path.join(t, i === 0 ? 'boot/vmlinuz' : `boot/l${i}`));
      }],
    ])('symlinks: %s', (what, tree) => {
      const image = symlinked(`links-${what.replace(/\W+/g, '-')}.ext4`, tree);
      refused(image, /links-.*\.ext4: too many levels of symbolic links resolving \/boot\/vmlinuz/);
    });
  });
});

describe('kernels and initrds that cannot boot are 27', () => {
  it('-k /dev/zero and -i /dev/zero: refused without reading them', () => {
    const k = expectRefusal(['-k', '/dev/zero', '-i', initrd, rootfs, out()], 27, /\/dev\/zero: the kernel is not a regular file/);
    const i = expectRefusal(['-k', kernel, '-i', '/dev/zero', rootfs, out()], 27, /\/dev\/zero: the initrd is not a regular file/);
    for (const r of [k, i]) expect(r.ms).toBeLessThan(5_000);
  });

  it('-k DIRECTORY', () => void expectRefusal(['-k', dir, '-i', initrd, rootfs, out()], 27, /the kernel is a directory/));

  it('an empty /boot/vmlinuz in the rootfs', () => {
    const image = buildRootfs(path.join(dir, 'empty-kernel.ext4'), { tree: (t) => fs.writeFileSync(path.join(t, 'boot/vmlinuz-1.0'), '') });
    expectRefusal([image, out()], 27, /\/boot\/vmlinuz in .*empty-kernel\.ext4: the kernel is empty/);
  });

  it('a kernel without the x86 boot header, initrds in no format Linux unpacks', () => {
    const junk = path.join(dir, 'junk.bin');
    fs.writeFileSync(junk, patternBytes(200_000, 5));
    expectRefusal(['-k', junk, '-i', initrd, rootfs, out()], 27, /junk\.bin: the kernel is not a bzImage: no "HdrS" at byte 514/);
    expectRefusal(['-k', kernel, '-i', junk, rootfs, out()], 27, /junk\.bin: the initrd is neither a cpio archive .* nor compressed/);
    const odc = path.join(dir, 'odc.cpio');
    fs.writeFileSync(odc, Buffer.concat([Buffer.from('070707'), patternBytes(1000)]));
    expectRefusal(['-k', kernel, '-i', odc, rootfs, out()], 27, /odc\.cpio: the initrd is an odc cpio archive .*newc/);
    const lz4frame = path.join(dir, 'frame.lz4');
    fs.writeFileSync(lz4frame, Buffer.concat([Buffer.from([0x04, 0x22, 0x4d, 0x18]), patternBytes(1000)]));
    expectRefusal(['-k', kernel, '-i', lz4frame, rootfs, out()], 27, /frame\.lz4: the initrd is in the lz4 frame format: .*legacy/);
  });

  it('an inode whose size field says 2^64 bytes is a corrupt rootfs (21), not a kernel size', () => {
    const image = edited(rootfs, 'huge-size.ext4', (img) => editInode(img, inodeNumber(rootfs, '/boot/vmlinuz-1.0'), (raw) => {
      raw.writeUInt32LE(0xffffffff, 0x04);
      raw.writeUInt32LE(0xffffffff, 0x6c);
    }));
    expectRefusal([image, out()], 21, /^fsmaker: .*huge-size\.ext4: inode \d+: size 18446744073709551615 is impossible/);
  });
});

describe('options are checked before anything is written', () => {
  const stand = () => ['-k', kernel, '-i', initrd, rootfs, out()];
  it.each([
    [['--timeout', '-1'], /bad --timeout '-1'/],
    [['--timeout', '1.5'], /bad --timeout '1\.5'/],
    [['--append', "quiet'; reboot"], /--append .*quotes/],
    [['-t', '../../bin/rm'], /bad -t '\.\.\/\.\.\/bin\/rm'/],
    [['-d', '/nonexistent'], /\/nonexistent: cannot read the boot directory: no such file or directory/],
    [['-b', '0'], /bad boot size 0 bytes: the boot partition cannot be empty/],
    [['-b', '1K'], /too small for FAT16/],
    [['-b', '5T'], /bad boot size 5497558138880 bytes: .*2 TiB/],
    [['-s', '17T'], /MBR .*2 TiB.*--label gpt/],
    [['-s', 'abc'], /^fsmaker: bad size 'abc'/],
  ])('%j: usage (1)', (extra, pattern) => void expectRefusal([...extra, ...stand()], 1, pattern));

  it('-d naming a file, not a directory: usage (1)', () => void expectRefusal(['-d', kernel, ...stand()], 1, /vmlinuz: the boot directory is not a directory/));
});

describe('signals: SIGINT and SIGTERM end fsmaker within a second, leaving nothing', () => {
  const slowTool = (name: string): { bin: string; pids: string } => {
    const toolBin = path.join(dir, `bin-${name}`);
    fs.mkdirSync(toolBin, { recursive: true });
    const pids = path.join(dir, `${name}.pids`);
    fs.rmSync(pids, { force: true });
    // exec: the PID written is the process fsmaker must not leave running.
    fs.writeFileSync(path.join(toolBin, name), `#!/bin/sh\necho $$ >> '${pids}'\nexec sleep 30\n`, { mode: 0o755 });
    return { bin: toolBin, pids };
  };
  /** Running: it exists and is not a zombie (a killed child fsmaker exits before reaping is dead). */
  const alive = (pid: number): boolean => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  };
  const waitFor = async (what: string, ready: () => boolean, ms = 20_000) => {
    const until = Date.now() + ms;
    while (!ready()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  /** Starts fsmaker, waits for `ready`, sends `signal`, and checks how it ended. */
  async function interrupt(args: string[], signal: NodeJS.Signals, ready: () => boolean, extraPath = ''): Promise<void> {
    const output = args[args.length - 1]!;
    fs.writeFileSync(output, 'the output as it was before\n');
    const before = snapshot(output);
    const child = spawn(process.execPath, [commandPath('fsmaker'), ...args], { env: { ...process.env, TMPDIR: tmp, PATH: `${extraPath}${process.env.PATH}` }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor('the moment to signal', ready);
    const sent = performance.now();
    child.kill(signal);
    const code = await exited;
    const ms = performance.now() - sent;
    expect(code, stderr).toBe(signal === 'SIGTERM' ? 143 : 130);
    expect(ms, stderr).toBeLessThan(1_000);
    expect(stderr).toMatch(new RegExp(`^fsmaker: (\\S+: )?interrupted by ${signal}`, 'm'));
    expect(stderr).not.toMatch(/^\s+at /m);
    expectUnchanged(output, before);
    expect(tempLeftovers(dir)).toEqual([]);
    expect(fs.readdirSync(tmp).filter((n) => n.startsWith(`fsmaker-${child.pid}-`))).toEqual([]);
    fs.rmSync(output);
  }

  it('SIGTERM while grub-mkimage runs (the rootfs already copied): 143, grub-mkimage gone too', async () => {
    const grub = slowTool('grub-mkimage');
    const output = out('sig-grub.img');
    await interrupt(['-q', '-k', kernel, '-i', initrd, rootfs, output], 'SIGTERM', () => fs.existsSync(grub.pids) && fs.readFileSync(grub.pids, 'utf8').trim().split('\n').length === 2, `${grub.bin}:`);
    const pids = fs.readFileSync(grub.pids, 'utf8').trim().split('\n').map(Number);
    await new Promise((r) => setTimeout(r, 100));
    for (const pid of pids) expect(alive(pid), `grub-mkimage ${pid} outlived fsmaker`).toBe(false);
  });

  it('SIGINT while the spare partition is formatted: 130, mkfs gone too', async () => {
    const mkfs = slowTool('mkfs.slowfs');
    await interrupt(['-q', '-k', kernel, '-i', initrd, '-s', '256M', '-t', 'slowfs', rootfs, out('sig-mkfs.img')], 'SIGINT', () => fs.existsSync(mkfs.pids), `${mkfs.bin}:`);
    await new Promise((r) => setTimeout(r, 100));
    for (const pid of fs.readFileSync(mkfs.pids, 'utf8').trim().split('\n').map(Number)) expect(alive(pid), `mkfs ${pid} outlived fsmaker`).toBe(false);
  });

  it('SIGINT and SIGTERM during the rootfs copy into a .gz', async () => {
    const big = buildRootfs(path.join(dir, 'big.ext4'), { size: '160M', tree: (t) => fs.writeFileSync(path.join(t, 'data.bin'), patternBytes(96 << 20, 3)) });
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const output = out(`sig-copy-${signal}.img.gz`);
      const copying = () => fs.readdirSync(dir).some((n) => n.startsWith(`.${path.basename(output)}.sparsecopy-`) && fs.statSync(path.join(dir, n)).size > 4 << 20);
      await interrupt(['-q', '-k', kernel, '-i', initrd, big, output], signal, copying);
    }
    fs.rmSync(big);
  });

  it('a work directory left by a killed fsmaker is removed by the next run', () => {
    const dead = spawnSync('true').pid!;
    const stale = path.join(tmp, `fsmaker-${dead}-12345-0badcafe`);
    fs.mkdirSync(stale);
    fs.writeFileSync(path.join(stale, 'core.img'), 'left behind');
    const r = runHostile('fsmaker', ['-q', '-k', kernel, '-i', initrd, rootfs, out('after-stale.img')], { codes: [0], env: env() });
    expect(r.status).toBe(0);
    expect(fs.existsSync(stale)).toBe(false);
    expect(fs.readdirSync(tmp)).toEqual([]);
    fs.rmSync(out('after-stale.img'));
  });
});

describe('the stand-ins are accepted', () => {
  it('a disk is made with the stand-in kernel and initrd', () => {
    const r = runHostile('fsmaker', ['-q', '-k', kernel, '-i', initrd, rootfs, out('ok.img')], { codes: [0], env: env() });
    expect(r.status).toBe(0);
    expect(fs.statSync(out('ok.img')).size).toBeGreaterThan(fs.statSync(rootfs).size);
    expect(fakeInitrd().subarray(0, 2).toString('hex')).toBe('1f8b');
    fs.rmSync(out('ok.img'));
  });
});

describe('a damaged default module tree is 27, one line, nothing written', () => {
  const cacheDir = process.env['FSMAKER_CACHE'] || path.join(ROOT, '.cache/boot');
  const kernelDir = fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir).find((n) => n.startsWith('kernel-') && !n.endsWith('.tmp')) : undefined;

  it.skipIf(kernelDir === undefined)('a module that is no ELF file', () => {
    // A copy of the cache made of hard links (the real one stays as it is), one module replaced.
    const copy = path.join(dir, 'cache');
    fs.mkdirSync(copy);
    expect(spawnSync('cp', ['-al', path.join(cacheDir, kernelDir!), path.join(cacheDir, 'busybox'), copy]).status).toBe(0);
    const modules = path.join(copy, kernelDir!, 'lib/modules', kernelDir!.slice('kernel-'.length));
    const module = path.join(modules, 'kernel/drivers/block/virtio_blk.ko');
    fs.rmSync(module);
    fs.writeFileSync(module, 'not a kernel module');
    const bare = buildRootfs(path.join(dir, 'bare-for-modules.ext4'), { tree: (t) => fs.rmSync(path.join(t, 'boot'), { recursive: true }) });
    const names = listing();
    const r = runHostile('fsmaker', [bare, out('modules.img')], { codes: [27], env: { ...env(), FSMAKER_CACHE: copy } });
    expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    expect(r.stderr).toMatch(/^fsmaker: default boot files in .*: .*virtio_blk\.ko: not an ELF file; cannot build the initramfs/);
    expect(listing()).toEqual(names);
    fs.rmSync(copy, { recursive: true });
  });

  it.skipIf(kernelDir === undefined)('a cached busybox that is no binary', () => {
    const copy = path.join(dir, 'cache-bb');
    fs.mkdirSync(copy);
    expect(spawnSync('cp', ['-al', path.join(cacheDir, kernelDir!), copy]).status).toBe(0);
    fs.writeFileSync(path.join(copy, 'busybox'), '#!/bin/sh\necho not busybox\n', { mode: 0o755 });
    const bare = buildRootfs(path.join(dir, 'bare-for-busybox.ext4'), { tree: (t) => fs.rmSync(path.join(t, 'boot'), { recursive: true }) });
    const names = listing();
    const r = runHostile('fsmaker', [bare, out('busybox.img')], { codes: [27], env: { ...env(), FSMAKER_CACHE: copy } });
    expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    expect(r.stderr).toMatch(/^fsmaker: default boot files in .*cache-bb: initramfs: busybox is not an ELF binary; cannot build the initramfs/);
    expect(listing()).toEqual(names);
    fs.rmSync(copy, { recursive: true });
  });
});

describe('a GRUB directory (-g) whose boot.img is not GRUB\'s is 24, one line, nothing written', () => {
  it('boot.img without its 55 AA signature', () => {
    // The system's GRUB as hard links, one file replaced: the real one stays as it is.
    const grub = path.join(dir, 'grub');
    fs.mkdirSync(grub);
    expect(spawnSync('cp', ['-al', '/usr/lib/grub/i386-pc', '/usr/lib/grub/x86_64-efi', grub]).status).toBe(0);
    const bootImg = path.join(grub, 'i386-pc/boot.img');
    const bytes = fs.readFileSync(bootImg);
    fs.rmSync(bootImg);
    bytes[0x1fe] = 0;
    fs.writeFileSync(bootImg, bytes);
    const names = listing();
    const r = runHostile('fsmaker', ['-g', grub, '-k', kernel, '-i', initrd, rootfs, out('grub.img')], { codes: [24], env: env() });
    expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    expect(r.stderr).toMatch(/^fsmaker: .*grub\/i386-pc\/boot\.img: boot\.img does not end in the 55 AA boot signature: not GRUB's i386-pc image/);
    expect(listing()).toEqual(names);
    expect(tempLeftovers(dir)).toEqual([]);
    fs.rmSync(grub, { recursive: true });
  });
});
