/**
 * fsmaker --layout through the command line: multi-partition GPT and MBR disks checked by the
 * tools people trust (sgdisk -v / -i, sfdisk -d, blkid, e2fsck -fn, fsck.fat -n, debugfs), the
 * read-write root decision, --print-config's YAML built again to the same bytes, --pad, and the
 * refusals that come before anything is written. Kernel and initrd are stand-ins: nothing boots
 * here (fsmaker-layout-boot.test.ts boots one).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, makeTempDir, runCli, sparsecopy } from './helpers.js';
import { writeBootFiles } from './fsmaker-fixtures.js';

const FSMAKER = path.join(ROOT, 'dist/bin/fsmaker.mjs');
const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };
const fsmaker = (args: string[]) => runCli(FSMAKER, args, { env: EPOCH });
const MiB = 1024 * 1024;
let dir: string;

const at = (...p: string[]) => path.join(dir, ...p);
const write = (file: string, text: string): string => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
};

beforeAll(() => {
  dir = makeTempDir('fsm-layout-disk-');
  writeBootFiles(dir);
  write(at('bootfiles/README.txt'), 'extra boot file\n');
  write(at('roottree/etc/hostname'), 'lab\n');
  fs.mkdirSync(at('roottree/sbin'), { recursive: true });
  write(at('hometree/user/notes.txt'), 'owned by 1000:100\n');
  execFileSync('chown', ['-R', '1000:100', at('hometree/user')]);
  // An image root with an fstab that mounts /: its command line keeps `ro`.
  write(at('imgtree/etc/fstab'), 'PARTUUID=x / ext4 defaults 0 1\n');
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'imgroot', '-d', at('imgtree'), at('root.ext4'), '24M']);
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'data', at('data.ext4'), '8M']);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const GPT = `label: gpt
bootloader: both
seed: disk-test
kernel: vmlinuz
initrd: initrd.img
partitions:
  - { name: boot, size: 64M, type: esp, mount: /boot, contents: { kind: fat, from: bootfiles } }
  - { name: bios, type: bios-boot, contents: empty }
  - { name: root, mount: /, legacy-bios-bootable: true, contents: { kind: ext4, from: roottree, label: root } }
  - { name: swap, size: 16M, contents: { kind: swap, label: swap0 } }
  - { name: home, type: home, contents: { kind: ext4, from: hometree, label: home } }
  - { name: data, number: 7, contents: { kind: image, path: data.ext4 } }
`;

const MBR = `label: mbr
bootloader: bios
seed: mbr-test
kernel: vmlinuz
initrd: initrd.img
cmdline: { append: quiet, serial: false }
partitions:
  - { size: 48M, type: fat32, bootable: true, mount: /boot, contents: fat }
  - { mount: /, contents: { kind: image, path: root.ext4 } }
  - { size: 8M, contents: swap }
  - { size: rest, type: home, contents: { kind: ext4, from: hometree } }
size: 200M
`;

const partition = (image: string, n: number): string => {
  const out = `${image}.p${n}`;
  const r = sparsecopy(['-q', '--from-partition', String(n), image, out]);
  expect(r.status, r.stderr).toBe(0);
  return out;
};
const tool = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });
const blkid = (file: string) => tool('blkid', ['-p', '-o', 'export', file]).stdout;

describe('fsmaker --layout', () => {
  it('GPT: six partitions in order, each what the layout says, checked by sgdisk, blkid, e2fsck, fsck.fat and debugfs', () => {
    const layout = write(at('gpt.yaml'), GPT);
    const image = at('gpt.img');
    const r = fsmaker(['--layout', layout, image]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/GPT disk of \d+ bytes, rootfs ext4 on partition 3/);
    expect(tool('sgdisk', ['-v', image]).stdout).toMatch(/No problems found/);
    const dump = tool('sfdisk', ['-d', image]).stdout;
    const lines = dump.split('\n').filter((l) => l.startsWith(image));
    expect(lines.map((l) => /name="([^"]*)"/.exec(l)?.[1])).toEqual(['boot', 'bios', 'root', 'swap', 'home', 'data']);
    expect(lines.map((l) => /^\S+?(\d+) :/.exec(l)?.[1])).toEqual(['1', '2', '3', '4', '5', '7']);
    expect(lines[0]).toMatch(/start=\s*2048, size=\s*131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B/);
    expect(lines[3]).toMatch(/type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F/);
    expect(lines[4]).toMatch(/type=933AC7E1-2EB4-4F13-B844-0E14E2AEF915/);
    expect(tool('sgdisk', ['-i', '3', image]).stdout).toMatch(/Attribute flags: 0000000000000004/);
    const starts = lines.map((l) => Number(/start=\s*(\d+)/.exec(l)![1]));
    expect([...starts].sort((a, b) => a - b)).toEqual(starts); // on the disk in the layout's order

    const boot = partition(image, 1);
    expect(tool('fsck.fat', ['-n', boot]).status).toBe(0);
    const cfg = execFileSync('mtype', ['-i', boot, '::/grub/grub.cfg'], { encoding: 'utf8' });
    const rootUuid = tool('sgdisk', ['-i', '3', image]).stdout.match(/Partition unique GUID: (\S+)/)![1]!.toLowerCase();
    // The root tree has no fstab: `rw`, or systemd would leave / read-only.
    expect(cfg).toContain(`root=PARTUUID=${rootUuid} rw rootwait`);
    expect(execFileSync('mdir', ['-i', boot, '-b', '::/'], { encoding: 'utf8' })).toMatch(/README\.TXT|README.txt/i);
    expect(execFileSync('mdir', ['-i', boot, '-b', '::/EFI/BOOT'], { encoding: 'utf8' })).toMatch(/BOOTX64\.EFI/i);

    const root = partition(image, 3);
    expect(tool('e2fsck', ['-fn', root]).status).toBe(0);
    expect(blkid(root)).toMatch(/^LABEL=root$/m);
    expect(tool('debugfs', ['-R', 'cat /etc/hostname', root]).stdout).toBe('lab\n');
    expect(blkid(partition(image, 4))).toMatch(/^TYPE=swap$[\s\S]*^LABEL=swap0$|^LABEL=swap0$[\s\S]*^TYPE=swap$/m);
    const home = partition(image, 5);
    expect(tool('e2fsck', ['-fn', home]).status).toBe(0);
    expect(tool('debugfs', ['-R', 'stat /user/notes.txt', home]).stdout).toMatch(/User:\s+1000\s+Group:\s+100\b/);
    const data = partition(image, 7);
    expect(fs.readFileSync(data).subarray(0, 8 * MiB).equals(fs.readFileSync(at('data.ext4')))).toBe(true);
  }, 120_000);

  it('MBR: active FAT /boot, image root, swap, the rest as home; the root fstab keeps `ro`; serial off', () => {
    const layout = write(at('mbr.yaml'), MBR);
    const image = at('mbr.img');
    const r = fsmaker(['--layout', layout, image]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.statSync(image).size).toBe(200 * MiB);
    expect(tool('sfdisk', ['-V', image]).status).toBe(0);
    const parts = (JSON.parse(tool('sfdisk', ['-J', image]).stdout) as { partitiontable: { partitions: { start: number; size: number; type: string; bootable?: boolean }[] } }).partitiontable.partitions;
    expect(parts.map((p) => p.type)).toEqual(['c', '83', '82', '83']);
    expect(parts.map((p) => p.bootable ?? false)).toEqual([true, false, false, false]);
    expect(parts[3]!.start + parts[3]!.size).toBe(200 * 2048); // the rest, to the end
    const cfg = execFileSync('mtype', ['-i', partition(image, 1), '::/grub/grub.cfg'], { encoding: 'utf8' });
    expect(cfg).toMatch(/root=PARTUUID=[0-9a-f]{8}-02 ro rootwait console=tty0 panic=-1 quiet/);
    expect(cfg).not.toMatch(/serial|ttyS0/);
    expect(blkid(partition(image, 3))).toMatch(/^TYPE=swap$/m);
    const home = partition(image, 4);
    expect(tool('e2fsck', ['-fn', home]).status).toBe(0);
  }, 120_000);

  it('--print-config prints the resolved layout; built from that YAML, the disk has the same bytes', () => {
    const layout = write(at('gpt.yaml'), GPT);
    const printed = fsmaker(['--print-config', '--layout', layout]);
    expect(printed.status, printed.stderr).toBe(0);
    expect(printed.stdout).toMatch(/^# rootfs: .*roottree \(ext4 built from it\): ext4/m);
    expect(printed.stdout).toMatch(new RegExp(`^# kernel: ${at('vmlinuz')} \\(\\d+ bytes\\), given with -k`, 'm'));
    expect(printed.stdout).toMatch(new RegExp(`^# initrd: ${at('initrd.img')} \\(\\d+ bytes\\), given with -i$`, 'm'));
    expect(printed.stdout).toMatch(/^ {4}size: 67108864$/m);
    expect(printed.stdout).toMatch(/^ {4}uuid: [0-9A-F-]{36}$/m);
    const again = write(at('elsewhere/printed.yaml'), printed.stdout);
    const a = at('direct.img');
    const b = at('printed.img');
    expect(fsmaker(['-q', '--layout', layout, a]).status).toBe(0);
    const r = fsmaker(['-q', '--layout', again, b]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(a).equals(fs.readFileSync(b))).toBe(true);
    // And printing it again prints the same layout.
    expect(fsmaker(['--print-config', '--layout', again]).stdout).toBe(printed.stdout);
    // v0.05's command line prints a layout too, which builds the same disk.
    const v005 = fsmaker(['--print-config', '-k', at('vmlinuz'), '-i', at('initrd.img'), '--seed', 's', '-s', '300M', '-t', 'none', at('root.ext4')]);
    expect(v005.status, v005.stderr).toBe(0);
    const c = at('v005.img');
    const d = at('v005-again.img');
    expect(fsmaker(['-q', '-k', at('vmlinuz'), '-i', at('initrd.img'), '--seed', 's', '-s', '300M', '-t', 'none', at('root.ext4'), c]).status).toBe(0);
    expect(fsmaker(['-q', '--layout', write(at('v005.yaml'), v005.stdout), d]).status).toBe(0);
    expect(fs.readFileSync(c).equals(fs.readFileSync(d))).toBe(true);
  }, 180_000);

  it('--pad rounds the disk up, the backup GPT at the new end, the partitions unchanged', () => {
    const layout = write(at('gpt.yaml'), GPT);
    const plain = at('plain.img');
    const padded = at('padded.img');
    expect(fsmaker(['-q', '--layout', layout, plain]).status).toBe(0);
    const r = fsmaker(['-q', '--pad', '7M', '--layout', layout, padded]);
    expect(r.status, r.stderr).toBe(0);
    const size = fs.statSync(padded).size;
    expect(size % (7 * MiB)).toBe(0);
    expect(size).toBeGreaterThan(fs.statSync(plain).size - 1);
    expect(size - fs.statSync(plain).size).toBeLessThan(7 * MiB);
    expect(tool('sgdisk', ['-v', padded]).stdout).toMatch(/No problems found/);
    const entries = (f: string) => tool('sfdisk', ['-d', f]).stdout.split('\n').filter((l) => l.startsWith(f)).map((l) => l.slice(f.length));
    expect(entries(padded)).toEqual(entries(plain));
    // v0.05's command line takes it too.
    const v005 = at('v005-pad.img');
    expect(fsmaker(['-q', '--pad', '3M', '-k', at('vmlinuz'), '-i', at('initrd.img'), at('root.ext4'), v005]).status).toBe(0);
    expect(fs.statSync(v005).size % (3 * MiB)).toBe(0);
    expect(tool('sfdisk', ['-V', v005]).status).toBe(0);
  }, 120_000);

  it('a netboot disk: no root partition, root=/dev/nfs replacing the PARTUUID, the kernel and initrd on /boot', () => {
    const layout = write(
      at('nfs.yaml'),
      `label: mbr\nbootloader: bios\nkernel: vmlinuz\ninitrd: initrd.img\ncmdline: { root: /dev/nfs, append: "nfsroot=10.0.2.2:/srv/root ip=dhcp" }\npartitions:\n  - { size: 32M, bootable: true, mount: /boot, contents: fat }\n  - { type: home, contents: { kind: ext4, from: hometree } }\n`,
    );
    const image = at('nfs.img');
    const r = fsmaker(['--layout', layout, image]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/MBR disk of \d+ bytes, no root partition/);
    const boot = partition(image, 1);
    expect(tool('fsck.fat', ['-n', boot]).status).toBe(0);
    const cfg = execFileSync('mtype', ['-i', boot, '::/grub/grub.cfg'], { encoding: 'utf8' });
    expect(cfg).toMatch(/linux \/vmlinuz root=\/dev\/nfs ro rootwait console=tty0 console=ttyS0,115200 panic=-1 nfsroot=10\.0\.2\.2:\/srv\/root ip=dhcp$/m);
    expect(cfg).not.toContain('PARTUUID');
    expect(execFileSync('mtype', ['-i', boot, '::/vmlinuz']).equals(fs.readFileSync(at('vmlinuz')))).toBe(true);
    expect(tool('e2fsck', ['-fn', partition(image, 2)]).status).toBe(0);
  }, 120_000);

  it("v0.05's command line from a directory: ext4 built from it as partition 1, --rootfs-size its size", () => {
    const image = at('dir-root.img');
    const r = fsmaker(['-q', '-k', at('vmlinuz'), '-i', at('initrd.img'), '--rootfs-size', '40M', at('roottree'), image]);
    expect(r.status, r.stderr).toBe(0);
    const parts = (JSON.parse(tool('sfdisk', ['-J', image]).stdout) as { partitiontable: { partitions: { node: string; size: number }[] } }).partitiontable.partitions;
    expect(parts.find((p) => p.node.endsWith('1'))!.size).toBe(40 * 2048);
    const root = partition(image, 1);
    expect(fs.statSync(root).size).toBe(40 * MiB);
    // The tree has no fstab: `rw`; given one that mounts /, `ro` as before.
    const cfgOf = (disk: string) => execFileSync('mtype', ['-i', partition(disk, 3), '::/grub/grub.cfg'], { encoding: 'utf8' });
    expect(cfgOf(image)).toMatch(/root=PARTUUID=[0-9a-f]{8}-01 rw rootwait/);
    write(at('fstabtree/etc/fstab'), '# <file system> <mount point> <type>\nLABEL=root / ext4 defaults 0 1\n');
    const withFstab = at('fstab-root.img');
    expect(fsmaker(['-q', '-k', at('vmlinuz'), '-i', at('initrd.img'), at('fstabtree'), withFstab]).status).toBe(0);
    expect(cfgOf(withFstab)).toMatch(/root=PARTUUID=[0-9a-f]{8}-01 ro rootwait/);
    expect(tool('e2fsck', ['-fn', root]).status).toBe(0);
    expect(tool('debugfs', ['-R', 'cat /etc/hostname', root]).stdout).toBe('lab\n');
    // A tar archive of the same tree, owners from its headers (not the build user's).
    const tarball = at('root.tar');
    execFileSync('tar', ['-cf', tarball, '--owner=1000', '--group=100', '-C', at('roottree'), '.']);
    const fromTar = at('tar-root.img');
    const t = fsmaker(['-q', '-k', at('vmlinuz'), '-i', at('initrd.img'), tarball, fromTar]);
    expect(t.status, t.stderr).toBe(0);
    const tarRoot = partition(fromTar, 1);
    expect(tool('e2fsck', ['-fn', tarRoot]).status).toBe(0);
    expect(tool('debugfs', ['-R', 'stat /etc/hostname', tarRoot]).stdout).toMatch(/User:\s+1000\s+Group:\s+100\b/);
  }, 120_000);

  it('refuses before anything is written: sizes that do not fit (22), a bad layout (33, FILE:LINE), v0.05 options with --layout (1)', () => {
    const out = at('never.img');
    const small = write(at('small.yaml'), GPT.replace('contents: { kind: image, path: data.ext4 }', 'size: 4M, contents: { kind: image, path: data.ext4 }'));
    let r = fsmaker(['--layout', small, out]);
    expect(r.status).toBe(22);
    expect(r.stderr.trim()).toBe(`fsmaker: partition 7 (data): its contents need ${8 * MiB} bytes; its size is ${4 * MiB}`);
    const nobios = write(at('nobios.yaml'), GPT.replace('  - { name: bios, type: bios-boot, contents: empty }\n', ''));
    r = fsmaker(['--layout', nobios, out]);
    expect(r.status).toBe(33);
    expect(r.stderr).toMatch(new RegExp(`^fsmaker: ${nobios.replace(/[.]/g, '\\.')}:6: bootloader both on a GPT needs a BIOS boot partition`));
    r = fsmaker(['--layout', write(at('disk.yaml'), MBR.replace('size: 200M', 'size: 60M')), out]);
    expect(r.status).toBe(22);
    expect(r.stderr).toMatch(/need a disk of 84934656 bytes; the disk's --size allows 62914560$/m);
    r = fsmaker(['--layout', write(at('disk.yaml'), MBR.replace('size: 200M', 'size: 90M')), out]);
    expect(r.status).toBe(22);
    expect(r.stderr).toMatch(/^fsmaker: partition 4: the rest of the disk is 9437184 bytes; it needs \d+$/m);
    r = fsmaker(['--layout', write(at('gpt.yaml'), GPT), '-s', '1G', out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/-s with --layout/);
    r = fsmaker(['--layout', at('gpt.yaml'), at('roottree/disk.img')]);
    expect(r.status).toBe(13);
    expect(r.stderr).toMatch(/disk\.img: the output lies inside the rootfs tree .*roottree: nothing written/);
    expect(fs.existsSync(at('roottree/disk.img'))).toBe(false);
    r = fsmaker(['--layout', at('gpt.yaml'), at('gpt.yaml')]);
    expect(r.status).toBe(13);
    expect(fs.readFileSync(at('gpt.yaml'), 'utf8')).toBe(GPT);
    expect(fs.existsSync(out)).toBe(false);
  }, 120_000);
  it('a FAT partition filled from a tar.gz archive (ESP contents shipped as a tarball)', () => {
    write(at('esptree/EFI/vendor/grubx64.cfg'), 'set root=(hd0,gpt2)\n');
    write(at('esptree/loader/entries/lab.conf'), 'title lab\n');
    execFileSync('tar', ['-czf', at('esp.tar.gz'), '-C', at('esptree'), '.']);
    const layout = write(
      at('fat-archive.yaml'),
      'label: gpt\nbootloader: none\nkernel: ' + at('vmlinuz') + '\ninitrd: ' + at('initrd.img') + '\npartitions:\n  - { size: 40M, type: esp, contents: { kind: fat, from: ' + at('esp.tar.gz') + ', label: ESP } }\n  - { mount: /, contents: { kind: image, path: ' + at('root.ext4') + ' } }\n',
    );
    const image = at('fat-archive.img');
    const r = fsmaker(['-q', '--layout', layout, image]);
    expect(r.status, r.stderr).toBe(0);
    const esp = partition(image, 1);
    expect(tool('fsck.fat', ['-n', esp]).status).toBe(0);
    expect(execFileSync('mtype', ['-i', esp, '::/EFI/vendor/grubx64.cfg'], { encoding: 'utf8' })).toBe('set root=(hd0,gpt2)\n');
    expect(execFileSync('mtype', ['-i', esp, '::/loader/entries/lab.conf'], { encoding: 'utf8' })).toBe('title lab\n');
  }, 120_000);
});
