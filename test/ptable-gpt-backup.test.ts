/**
 * ptable's binary table backups against sfdisk 2.38.1 and sgdisk 1.0.9: backup-pt-sectors writes
 * the files `sfdisk --backup-pt-sectors` writes (names and bytes), restore-pt-sectors puts them
 * back; backup/restore read and write sgdisk -b/-l's format (each tool restores the other's
 * file to the same disk). Also gptfdisk's own gdisk_test.sh, replayed where ptable covers it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copySparse, loopUnavailableReason, PTABLE, runTool, sfdiskWrite, useTempDir } from './helpers.js';
import { openDisk } from '../src/io/disk.js';
import { writeSfdiskBackup } from '../src/io/table-backup.js';
import { imageDifference } from './sfdisk-oracle.js';

let dir = '';
useTempDir('ptable-gpt-backup-', (d) => {
  dir = d;
});

const MiB = 1024 * 1024;
const onLoop = loopUnavailableReason() ? it.skip : it;
const GPT = 'label: gpt\nsize=4M, type=L, name=root\nsize=4M, type=S\n';
// Four slots taken first: sfdisk makes the lines after them logical partitions (each with its EBR).
const DOS = 'label: dos\nstart=2048, size=4096, type=83\nstart=6144, size=4096, type=82\nstart=10240, size=20480, type=5\nstart=30720, size=4096, type=7\nsize=4096, type=83\nsize=4096, type=8e\n';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: Record<string, string> = {}): Run {
  const argv = command === 'ptable' ? [PTABLE, ...args] : args;
  const r = spawnSync(command === 'ptable' ? process.execPath : command, argv, { env: { ...process.env, LC_ALL: 'C', ...env } });
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

function image(name: string, bytes: number, script?: string): string {
  const file = path.join(dir, name);
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, '');
  fs.truncateSync(file, bytes);
  if (script) sfdiskWrite(file, script);
  return file;
}

function freshDir(name: string): string {
  const d = path.join(dir, name);
  fs.rmSync(d, { recursive: true, force: true });
  fs.mkdirSync(d);
  return d;
}

/** The files in `d`, name -> bytes. */
const filesIn = (d: string): Map<string, Buffer> => new Map(fs.readdirSync(d).sort().map((f) => [f, fs.readFileSync(path.join(d, f))]));

function expectSameBackups(target: string, args: { sfdisk: string[]; ptable: string[] }, homes: { sfdisk: string; ptable: string }, out: { sfdisk: string; ptable: string }): void {
  const s = run('sfdisk', [...args.sfdisk, target], { HOME: homes.sfdisk });
  const p = run('ptable', [...args.ptable, target], { HOME: homes.ptable });
  expect(s.status, s.stderr).toBe(0);
  expect(p.status, p.stderr).toBe(0);
  const theirs = filesIn(out.sfdisk);
  const ours = filesIn(out.ptable);
  expect([...ours.keys()]).toEqual([...theirs.keys()]);
  expect(theirs.size).toBeGreaterThan(1);
  for (const [name, bytes] of theirs) expect(ours.get(name)!.equals(bytes), name).toBe(true);
  for (const name of ours.keys()) expect(fs.statSync(path.join(out.ptable, name)).mode & 0o777).toBe(0o600);
  expect(p.stdout.replaceAll(out.ptable, 'DIR')).toBe(s.stdout.replaceAll(out.sfdisk, 'DIR'));
}

describe('ptable backup-pt-sectors writes the files sfdisk --backup-pt-sectors writes', () => {
  it('GPT and dos (MBR and each EBR), in $HOME by default and at the -O prefix', () => {
    for (const [name, script] of [['gpt', GPT], ['dos', DOS]] as const) {
      const disk = image(`bps-${name}.img`, 20 * MiB, script);
      const homes = { sfdisk: freshDir(`home-s-${name}`), ptable: freshDir(`home-p-${name}`) };
      expectSameBackups(disk, { sfdisk: ['--backup-pt-sectors'], ptable: ['backup-pt-sectors'] }, homes, homes);
      const out = { sfdisk: freshDir(`out-s-${name}`), ptable: freshDir(`out-p-${name}`) };
      expectSameBackups(disk, { sfdisk: ['--backup-pt-sectors', '-O', `${out.sfdisk}/x`], ptable: ['backup-pt-sectors', '-O', `${out.ptable}/x`] }, homes, out);
      // sfdisk's own command line mapped onto ptable's
      const mapped = { sfdisk: freshDir(`map-s-${name}`), ptable: freshDir(`map-p-${name}`) };
      expectSameBackups(disk, { sfdisk: ['--backup-pt-sectors'], ptable: ['--backup-pt-sectors'] }, mapped, mapped);
    }
  });

  onLoop('on a 4096-byte-sector loop device', () => {
    const file = image('bps-4k.img', 32 * MiB);
    const device = execFileSync('losetup', ['-b', '4096', '-f', '--show', file]).toString().trim();
    try {
      sfdiskWrite(device, GPT);
      const homes = { sfdisk: freshDir('home-s-4k'), ptable: freshDir('home-p-4k') };
      expectSameBackups(device, { sfdisk: ['--backup-pt-sectors'], ptable: ['backup-pt-sectors'] }, homes, homes);
    } finally {
      execFileSync('losetup', ['-d', device]);
    }
  });

  it('a disk without a table: the error and exit 3, no file', () => {
    const disk = image('bps-blank.img', 8 * MiB);
    const home = freshDir('home-blank');
    const r = run('ptable', ['backup-pt-sectors', disk], { HOME: home });
    expect(r.status).toBe(3);
    expect(fs.readdirSync(home)).toEqual([]);
  });
});

describe('writeSfdiskBackup is what sfdisk -b -O saves before a write', () => {
  it('the old table\'s areas, whatever label the write brings (gpt over gpt, dos over gpt, gpt over dos)', () => {
    for (const [name, before, script] of [
      ['gpt-gpt', GPT, 'label: gpt\n,2M,L\n'],
      ['gpt-dos', GPT, 'label: dos\n,2M,L\n'],
      ['dos-gpt', DOS, 'label: gpt\n,2M,L\n'],
    ] as const) {
      const theirs = image(`wsb-${name}.sfdisk.img`, 20 * MiB, before);
      const ours = path.join(dir, `wsb-${name}.img`);
      copySparse(theirs, ours);
      const out = { sfdisk: freshDir(`wsb-s-${name}`), ptable: freshDir(`wsb-p-${name}`) };
      const r = spawnSync('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', '-b', '-O', `${out.sfdisk}/x`, theirs], { input: script });
      expect(r.status, r.stderr.toString()).toBe(0);
      const disk = openDisk(ours);
      let lines: string[];
      try {
        lines = writeSfdiskBackup(disk, ours.replace('.img', '.sfdisk.img'), `${out.ptable}/x`);
      } finally {
        disk.close();
      }
      expect(lines[0]).toBe('Backup files:');
      const a = filesIn(out.sfdisk);
      const b = filesIn(out.ptable);
      expect([...b.keys()]).toEqual([...a.keys()]);
      expect(lines).toHaveLength(a.size + 1);
      for (const [f, bytes] of a) expect(b.get(f)!.equals(bytes), f).toBe(true);
    }
  });
});

describe('ptable restore-pt-sectors puts the files back', () => {
  it("sfdisk's backup files restore a zapped disk to its bytes (GPT and dos)", () => {
    for (const [name, script] of [['gpt', GPT], ['dos', DOS]] as const) {
      const disk = image(`rps-${name}.img`, 20 * MiB, script);
      const original = fs.readFileSync(disk);
      const home = freshDir(`rps-home-${name}`);
      expect(run('sfdisk', ['--backup-pt-sectors', disk], { HOME: home }).status).toBe(0);
      expect(run('sgdisk', ['-Z', disk]).status).toBe(0);
      expect(fs.readFileSync(disk).equals(original)).toBe(false);
      const files = fs.readdirSync(home).map((f) => path.join(home, f));
      const r = run('ptable', ['restore-pt-sectors', disk, ...files]);
      expect(r.status, r.stderr).toBe(0);
      // sgdisk -Z zeroed sectors (an EBR area, the GPT's tails) that no backup file covers: zero before too.
      expect(imageDifference(original, fs.readFileSync(disk), 512, false)).toBeNull();
    }
  });

  it('refuses a file that does not fit the disk, or whose name gives no offset: exit 9, nothing written', () => {
    const disk = image('rps-bad.img', 20 * MiB, GPT);
    const home = freshDir('rps-bad-home');
    expect(run('sfdisk', ['--backup-pt-sectors', disk], { HOME: home }).status).toBe(0);
    const good = fs.readdirSync(home).map((f) => path.join(home, f));
    fs.writeFileSync(path.join(home, 'sfdisk-rps-bad.img-0x01400000.bak'), Buffer.alloc(512, 1)); // at the end of the disk
    fs.writeFileSync(path.join(home, 'sfdisk-rps-bad.img-0x013fff00.bak'), Buffer.alloc(512, 1)); // straddles the end
    fs.writeFileSync(path.join(home, 'table.bin'), Buffer.alloc(512, 1));
    run('sgdisk', ['-Z', disk]);
    const zapped = fs.readFileSync(disk);
    for (const [bad, why] of [
      ['sfdisk-rps-bad.img-0x01400000.bak', /512 bytes at byte 20971520 end past the end of .* \(20971520 bytes\); nothing written/],
      ['sfdisk-rps-bad.img-0x013fff00.bak', /512 bytes at byte 20971264 end past the end/],
      ['table.bin', /the name gives no offset/],
    ] as const) {
      const r = run('ptable', ['restore-pt-sectors', disk, ...good, path.join(home, bad)]);
      expect(r.status).toBe(9);
      expect(r.stderr).toMatch(why);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(fs.readFileSync(disk).equals(zapped)).toBe(true);
    }
  });
});

describe('ptable backup/restore use sgdisk -b/-l format', () => {
  it("ptable's backup file is sgdisk's, byte for byte (sfdisk- and sgdisk-made tables)", () => {
    const disk = image('sgb.img', 20 * MiB, GPT);
    const made = image('sgb-sgdisk.img', 20 * MiB);
    expect(run('sgdisk', ['-o', '-n', '1:0:+4M', '-c', '1:boot', '-n', '2:0:0', made]).status).toBe(0);
    for (const d of [disk, made]) {
      const theirs = `${d}.sgdisk.bin`;
      const ours = `${d}.ptable.bin`;
      expect(run('sgdisk', ['-b', theirs, d]).status).toBe(0);
      const r = run('ptable', ['backup', d, ours]);
      expect(r.status, r.stderr).toBe(0);
      expect(fs.readFileSync(ours).equals(fs.readFileSync(theirs))).toBe(true);
    }
  });

  it("sgdisk -l of ptable's file and ptable restore of sgdisk's give the same disk, at the same size, on a larger and a smaller one; both refuse one too small", () => {
    const source = image('sgr.img', 20 * MiB, GPT);
    const theirs = `${source}.sgdisk.bin`;
    const ours = `${source}.ptable.bin`;
    run('sgdisk', ['-b', theirs, source]);
    run('ptable', ['backup', source, ours]);
    for (const bytes of [20 * MiB, 40 * MiB, 12 * MiB]) {
      const a = image(`sgr-a-${bytes}.img`, bytes);
      const b = image(`sgr-b-${bytes}.img`, bytes);
      const s = run('sgdisk', ['-l', ours, a]);
      const p = run('ptable', ['restore', b, theirs]);
      expect(s.status, s.stderr).toBe(0);
      expect(p.status, p.stderr).toBe(0);
      expect(imageDifference(fs.readFileSync(a), fs.readFileSync(b), 512, false)).toBeNull();
      if (bytes === 20 * MiB) expect(fs.readFileSync(b).equals(fs.readFileSync(source))).toBe(true);
    }
    // Too small for the partitions: sgdisk exits 4, ptable 8, neither writes.
    const a = image('sgr-a-tiny.img', 6 * MiB);
    const b = image('sgr-b-tiny.img', 6 * MiB);
    expect(run('sgdisk', ['-l', ours, a]).status).toBe(4);
    const p = run('ptable', ['restore', b, theirs]);
    expect(p.status).toBe(8);
    expect(p.stderr).toMatch(/a partition of the backup ends at LBA 18431, past the last usable LBA 10240 of this 12288-sector disk; nothing written/);
    expect(fs.readFileSync(a).equals(Buffer.alloc(6 * MiB))).toBe(true);
    expect(fs.readFileSync(b).equals(Buffer.alloc(6 * MiB))).toBe(true);
  });

  it('over a dos table: refused as sgdisk refuses ("Non-GPT disk"), and with --force as sgdisk -g -l', () => {
    const source = image('sgdos.img', 20 * MiB, GPT);
    const file = `${source}.bin`;
    run('ptable', ['backup', source, file]);
    const a = image('sgdos-a.img', 20 * MiB, 'label: dos\n,2M,83\n');
    const b = image('sgdos-b.img', 20 * MiB, 'label: dos\n,2M,83\n');
    const before = fs.readFileSync(b);
    expect(run('sgdisk', ['-l', file, a]).status).toBe(3);
    const refused = run('ptable', ['restore', b, file]);
    expect(refused.status).toBe(8);
    expect(refused.stderr).toMatch(/holds a dos table, which the restore would replace; nothing written/);
    expect(fs.readFileSync(b).equals(before)).toBe(true);
    expect(run('sgdisk', ['-g', '-l', file, a]).status).toBe(0);
    expect(run('ptable', ['restore', '--force', b, file]).status).toBe(0);
    expect(imageDifference(fs.readFileSync(a), fs.readFileSync(b), 512, false)).toBeNull();
  });

  it('a damaged or foreign file: exit 9 naming the file and the byte, nothing written', () => {
    const source = image('sgbad.img', 20 * MiB, GPT);
    const file = `${source}.bin`;
    run('ptable', ['backup', source, file]);
    const good = fs.readFileSync(file);
    const target = image('sgbad-target.img', 20 * MiB, 'label: dos\n,2M,83\n');
    const before = fs.readFileSync(target);
    const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
      ['truncated', (b) => b.subarray(0, 1000), /byte 1000: 1000 bytes; an sgdisk backup holds at least 1536/],
      ['header crc', (b) => (b.writeUInt8(b[512 + 40]! ^ 1, 512 + 40), b), /byte 528: primary header: header CRC-32/],
      ['entries crc', (b) => (b.writeUInt8(b[1536 + 100]! ^ 1, 1536 + 100), b), /byte 1536: entry array CRC-32/],
      ['short entries', (b) => b.subarray(0, b.length - 128), /expected 17920/],
    ];
    for (const [name, edit, why] of cases) {
      const bad = `${file}.${name.replace(' ', '-')}`;
      fs.writeFileSync(bad, edit(Buffer.from(good)));
      const r = run('ptable', ['restore', target, bad]);
      expect(r.status, name).toBe(9);
      expect(r.stderr, name).toMatch(why);
      expect(r.stderr).toContain(bad);
      expect(fs.readFileSync(target).equals(before)).toBe(true);
    }
  });
});

describe("gptfdisk's gdisk_test.sh, replayed where ptable covers it (sgdisk's steps for the rest)", () => {
  // gdisk_test.sh: new table, partition 1 named and typed, renamed, retyped, backup, delete,
  // restore, new disk GUID, zap. ptable does the backup, restore, GUID and zap steps on its copy.
  it('backup, delete, restore, new GUID and zap give the disk sgdisk gives', () => {
    const oracle = image('gdisk-test.oracle.img', 64 * MiB);
    const ours = path.join(dir, 'gdisk-test.ptable.img');
    const sgdisk = (d: string, args: string[]): void => expect(run('sgdisk', [d, ...args]).status).toBe(0);
    // sgdisk's own steps once (they pick random GUIDs), then the copies go their ways.
    sgdisk(oracle, ['-o']);
    sgdisk(oracle, ['-n', '1', '-c', '1:Linux filesystem', '-t', '1:8300']);
    sgdisk(oracle, ['-c', '1:NewName']);
    sgdisk(oracle, ['-t', '1:8200']);
    copySparse(oracle, ours);
    const both = (args: string[]): void => [oracle, ours].forEach((d) => sgdisk(d, args));
    const theirFile = `${oracle}.bak`;
    const ourFile = `${ours}.bak`;
    expect(run('sgdisk', [oracle, '-b', theirFile]).status).toBe(0);
    expect(run('ptable', ['backup', ours, ourFile]).status).toBe(0);
    expect(fs.readFileSync(ourFile).equals(fs.readFileSync(theirFile))).toBe(true);
    both(['-d', '1']);
    expect(run('sgdisk', [oracle, '-l', theirFile]).status).toBe(0);
    expect(run('ptable', ['restore', ours, ourFile]).status).toBe(0);
    expect(imageDifference(fs.readFileSync(oracle), fs.readFileSync(ours), 512, false)).toBeNull();
    expect(run('sgdisk', ['-p', ours]).stdout).toMatch(/8200 {2}NewName\n$/);
    const guid = (d: string): string => /Disk identifier \(GUID\): (\S+)/.exec(run('sgdisk', ['-p', d]).stdout)![1]!;
    const before = guid(ours);
    expect(run('sgdisk', [oracle, '-U=R']).status).toBe(0);
    expect(run('ptable', ['randomize-guids', ours]).status).toBe(0);
    expect(guid(ours)).not.toBe(before);
    expect(imageDifference(fs.readFileSync(oracle), fs.readFileSync(ours), 512)).toBeNull();
    expect(run('sgdisk', [oracle, '-z']).status).toBe(0);
    expect(run('ptable', ['zap', ours]).status).toBe(0);
    expect(imageDifference(fs.readFileSync(oracle), fs.readFileSync(ours), 512, false)).toBeNull();
    expect(runTool('sgdisk', ['-p', ours]).stdout).toMatch(/Number {2}Start \(sector\) {4}End \(sector\) {2}Size {7}Code {2}Name\n$/);
  });
});
