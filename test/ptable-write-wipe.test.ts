/**
 * Defect 1 of issue 14: a label change leaves the old table behind. sfdisk 2.38.1's wipes, found
 * by experiment and replayed here on the same image for both tools (test/sfdisk-oracle.ts): dos
 * over GPT zeroes only the 8 bytes "EFI PART" of each valid header (LBA 1 and the last LBA); GPT
 * over dos, GPT over GPT (also of another size), a script without "label:", and --wipe never
 * wipe nothing; --wipe always also zeroes the boot code. Each case also on a loop device of
 * 4096-byte sectors, where the last LBA and the header offsets move. Then util-linux's
 * tests/ts/sfdisk/wipe subtests, the one case where ptable wipes more than sfdisk, and the other
 * options of `write` (-n, -q, -f, --no-reread, the choices of --wipe and -W, -N/--append refusals, -b/-O against sfdisk's backup files).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copySparse, loopUnavailableReason, newImageIn, ptable, runTool, sfdiskWrite, useTempDir, withLoop } from './helpers.js';
import { type ReplayCase, imageDifference, replay } from './sfdisk-oracle.js';

let dir = '';
useTempDir('ptable-write-wipe-', (d) => {
  dir = d;
});

const MiB = 1024 * 1024;
const SFDISK = ['-q', '--no-reread', '--no-tell-kernel'];
const loopReason = loopUnavailableReason();

/** sfdisk on `file` seen with `sectorSize`-byte sectors (a loop device for 4096). */
function sfdiskAt(file: string, script: string, sectorSize: number): void {
  if (sectorSize === 512) return sfdiskWrite(file, script);
  const device = execFileSync('losetup', ['-b', String(sectorSize), '-f', '--show', file]).toString().trim();
  try {
    sfdiskWrite(device, script);
  } finally {
    execFileSync('losetup', ['-d', device]);
  }
}

/** Grows an image file (a GPT's backup then stranded before the new end). */
const grow = (file: string, bytes: number): void => fs.truncateSync(file, bytes);

/** Writes `bytes` at `offset` of a file (a boot loader, a damaged byte). */
function poke(file: string, offset: number, bytes: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

const BOOT_CODE = Buffer.from('BOOTCODE'.repeat(50));

interface WipeCase {
  name: string;
  setup: (file: string, sectorSize: number) => void;
  script: string;
  args?: string[];
}

const GPT_ONE = 'label: gpt\n,,L\n';
const DOS_LOGICALS = 'label: dos\n,10M,L\n,,E\n,5M,L\n,,L\n';

const CASES: WipeCase[] = [
  { name: 'dos over gpt', setup: (f, s) => sfdiskAt(f, GPT_ONE, s), script: 'label: dos\n,,L\n' },
  { name: 'dos over gpt, --wipe always (boot code too)', setup: (f, s) => { sfdiskAt(f, GPT_ONE, s); poke(f, 0, BOOT_CODE); }, script: 'label: dos\n,,L\n', args: ['--wipe', 'always'] },
  { name: 'dos over gpt, --wipe never (the gpt stays, as sfdisk)', setup: (f, s) => sfdiskAt(f, GPT_ONE, s), script: 'label: dos\n,,L\n', args: ['--wipe', 'never'] },
  { name: 'dos over gpt with a damaged primary (only the backup is wiped)', setup: (f, s) => { sfdiskAt(f, GPT_ONE, s); poke(f, s + 16, Buffer.from('X')); }, script: 'label: dos\n,,L\n' },
  { name: 'dos over a grown gpt (the stranded backup stays, as sfdisk)', setup: (f, s) => { sfdiskAt(f, GPT_ONE, s); grow(f, 48 * MiB); }, script: 'label: dos\n,,L\n' },
  { name: 'gpt over dos with logical partitions (the EBRs stay)', setup: (f, s) => { sfdiskAt(f, DOS_LOGICALS, s); poke(f, 0, BOOT_CODE); }, script: GPT_ONE },
  { name: 'gpt over dos, --wipe always', setup: (f, s) => { sfdiskAt(f, DOS_LOGICALS, s); poke(f, 0, BOOT_CODE); }, script: GPT_ONE, args: ['--wipe', 'always'] },
  { name: 'gpt over a grown gpt', setup: (f, s) => { sfdiskAt(f, GPT_ONE, s); grow(f, 48 * MiB); }, script: GPT_ONE },
  { name: 'label: gpt on a gpt disk', setup: (f, s) => sfdiskAt(f, 'label: gpt\n,4M,L\n,4M,S\n', s), script: 'label: gpt\n,8M,L\n' },
  { name: 'a script without label: on a gpt disk keeps gpt (defect 2)', setup: (f, s) => sfdiskAt(f, GPT_ONE, s), script: ',10M,L\n' },
  { name: 'a script without label: on a dos disk', setup: (f, s) => { sfdiskAt(f, DOS_LOGICALS, s); poke(f, 0, BOOT_CODE); }, script: ',10M,L\n' },
  { name: '-X dos on a gpt disk: the script\'s label, over the disk\'s', setup: (f, s) => sfdiskAt(f, GPT_ONE, s), script: ',10M,L\n', args: ['-X', 'dos'] },
  { name: '-X gpt on an empty disk', setup: () => undefined, script: ',10M,L\n', args: ['-X', 'gpt'] },
  { name: '-X dos with label: gpt (the script wins)', setup: (f, s) => sfdiskAt(f, GPT_ONE, s), script: 'label: gpt\n,10M,L\n', args: ['-X', 'dos'] },
];

function replayWipe(c: WipeCase, sectorSize: 512 | 4096): ReturnType<typeof replay> {
  const device = sectorSize === 4096;
  const replayCase: ReplayCase = {
    bytes: 32 * MiB,
    sectorSize,
    device,
    setup: (file) => c.setup(file, sectorSize),
    oracle: { command: 'sfdisk', args: [...SFDISK, ...(c.args ?? []), 'DISK'] },
    ptable: ['write', '--no-reread', ...(c.args ?? []), 'DISK'],
    input: c.script,
  };
  return replay(dir, `${c.name}-${sectorSize}`, replayCase);
}

function inspect(image: Buffer, dirName: string, command: string, args: string[]): { status: number | null; out: string } {
  const file = `${dir}/${dirName}.img`;
  fs.writeFileSync(file, image);
  try {
    const r = spawnSync(command, [...args, file], { env: { ...process.env, LC_ALL: 'C' } });
    return { status: r.status, out: r.stdout.toString() + r.stderr.toString() };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

describe('ptable write wipes what sfdisk wipes, byte for byte (512-byte image files)', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const r = replayWipe(c, 512);
    expect(r.oracle.status, r.oracle.stderr).toBe(0);
    expect(r.ptable.status, r.ptable.stderr).toBe(0);
    expect(imageDifference(r.oracle.image, r.ptable.image, 512)).toBeNull();
    // wipefs lists the same signatures after both.
    const theirs = inspect(r.oracle.image, 'wipefs-o', 'wipefs', ['-n', '-O', 'TYPE,OFFSET']);
    const ours = inspect(r.ptable.image, 'wipefs-p', 'wipefs', ['-n', '-O', 'TYPE,OFFSET']);
    expect(ours.out.replace(/\S*wipefs-p\S*/g, 'IMG')).toBe(theirs.out.replace(/\S*wipefs-o\S*/g, 'IMG'));
  });

  it('dos over gpt: the disk is a dos disk for wipefs and sgdisk -p (it was not before the fix)', () => {
    const r = replayWipe(CASES[0]!, 512);
    const sectors = r.ptable.image.length / 512;
    for (const lba of [1, sectors - 1]) {
      expect(r.ptable.image.subarray(lba * 512, lba * 512 + 8).equals(Buffer.alloc(8))).toBe(true);
      // Only the signature: the rest of the header stays, as sfdisk leaves it.
      expect(r.ptable.image.subarray(lba * 512 + 8, lba * 512 + 92).equals(Buffer.alloc(84))).toBe(false);
    }
    const wipefs = inspect(r.ptable.image, 'wipefs', 'wipefs', ['-n', '-O', 'TYPE']);
    expect(wipefs.out.trim().split('\n').slice(1)).toEqual(['dos']);
    const sgdisk = inspect(r.ptable.image, 'sgdisk', 'sgdisk', ['-p']);
    expect(sgdisk.status).toBe(0);
    expect(sgdisk.out).not.toMatch(/Invalid partition data|Found valid MBR and GPT/);
  });

  it('--wipe always zeroes the boot code of sector 0; auto keeps it', () => {
    const always = replayWipe(CASES[1]!, 512);
    expect(always.ptable.image.subarray(0, 440).equals(Buffer.alloc(440))).toBe(true);
    const auto = replayWipe(CASES[5]!, 512);
    expect(auto.ptable.image.subarray(0, 400).equals(BOOT_CODE)).toBe(true);
  });
});

describe.skipIf(loopReason !== null)('the same on a loop device of 4096-byte sectors', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const r = replayWipe(c, 4096);
    expect(r.oracle.status, r.oracle.stderr).toBe(0);
    expect(r.ptable.status, r.ptable.stderr).toBe(0);
    expect(imageDifference(r.oracle.image, r.ptable.image, 4096)).toBeNull();
  });
});

describe('util-linux tests/ts/sfdisk/wipe, replayed on image files', () => {
  // Its subtests create the first table with `--label=gpt` and a script of ',,L'.
  const created = (file: string): void => sfdiskWrite(file, ',,L\n', ['--label=gpt']);
  it.each([
    ['gpt-to-dos', ['--wipe=always', '--label=dos']],
    ['gpt-to-dos-auto', ['--label=dos']],
  ])('%s', (name, args) => {
    const r = replay(dir, name, {
      bytes: 50 * MiB,
      setup: created,
      oracle: { command: 'sfdisk', args: [...SFDISK, ...args, 'DISK'] },
      ptable: ['write', ...args, 'DISK'],
      input: ',,L\n',
    });
    expect(r.oracle.status, r.oracle.stderr).toBe(0);
    expect(r.ptable.status, r.ptable.stderr).toBe(0);
    expect(imageDifference(r.oracle.image, r.ptable.image, 512)).toBeNull();
    // The test's expected output: wipefs sees the dos table only.
    expect(inspect(r.ptable.image, name, 'wipefs', ['-n', '-O', 'OFFSET,TYPE', '--noheadings']).out.trim().replace(/\s+/g, ' ')).toBe('0x1fe dos');
  });
});

/** A swap area of `bytes` at byte `at` of `file` (mkswap on a scratch file, copied in). */
function swapAt(file: string, at: number, bytes: number): void {
  const scratch = `${file}.swap`;
  fs.writeFileSync(scratch, '');
  fs.truncateSync(scratch, bytes);
  try {
    execFileSync('mkswap', ['-q', scratch], { stdio: 'ignore' });
    const head = Buffer.alloc(8192);
    const fd = fs.openSync(scratch, 'r');
    fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
    poke(file, at, head);
  } finally {
    fs.rmSync(scratch, { force: true });
  }
}

describe('util-linux tests/ts/sfdisk/wipe: the subtests with other signatures', () => {
  it('fs-to-dos: a swap over the whole disk, then --wipe=always --label=dos', () => {
    const r = replay(dir, 'fs-to-dos', {
      bytes: 50 * MiB,
      setup: (f) => swapAt(f, 0, 50 * MiB),
      oracle: { command: 'sfdisk', args: [...SFDISK, '--wipe=always', '--label=dos', 'DISK'] },
      ptable: ['write', '--wipe=always', '--label=dos', 'DISK'],
      input: ',,L\n',
    });
    expect(r.oracle.status, r.oracle.stderr).toBe(0);
    expect(r.ptable.status, r.ptable.stderr).toBe(0);
    expect(imageDifference(r.oracle.image, r.ptable.image, 512)).toBeNull();
    expect(inspect(r.ptable.image, 'fs-to-dos', 'wipefs', ['-n', '-O', 'OFFSET,TYPE', '--noheadings']).out.trim().replace(/\s+/g, ' ')).toBe('0x1fe dos');
  });

  it.each(loopReason === null ? ([512, 4096] as const) : ([512] as const))('partition: a swap where partition 1 starts, --wipe-partitions=always --label=gpt (%i-byte sectors)', (sectorSize) => {
    const r = replay(dir, `partition-${sectorSize}`, {
      bytes: 50 * MiB,
      sectorSize,
      device: sectorSize === 4096,
      setup: (f) => swapAt(f, MiB, 8 * MiB),
      oracle: { command: 'sfdisk', args: [...SFDISK, '--wipe-partitions=always', '--label=gpt', 'DISK'] },
      ptable: ['write', '--no-reread', '--wipe-partitions=always', '--label=gpt', 'DISK'],
      input: ',,L\n',
    });
    expect(r.oracle.status, r.oracle.stderr).toBe(0);
    expect(r.ptable.status, r.ptable.stderr).toBe(0);
    expect(imageDifference(r.oracle.image, r.ptable.image, sectorSize)).toBeNull();
    expect(r.ptable.image.subarray(MiB + 4086, MiB + 4096).equals(Buffer.alloc(10))).toBe(true);
  });

  it('--wipe auto keeps a whole-disk ext4 under the new table and says so, as sfdisk', () => {
    const r = replay(dir, 'ext4-auto', {
      bytes: 32 * MiB,
      setup: (f) => execFileSync('mkfs.ext4', ['-q', '-F', f]),
      oracle: { command: 'sfdisk', args: ['--no-reread', '--no-tell-kernel', 'DISK'] },
      ptable: ['write', 'DISK'],
      input: 'label: dos\n,,L\n',
    });
    expect(r.oracle.status, r.oracle.stderr).toBe(0);
    expect(r.ptable.status, r.ptable.stderr).toBe(0);
    expect(imageDifference(r.oracle.image, r.ptable.image, 512)).toBeNull();
    // sfdisk -q and ptable -q say nothing of it.
    const quiet = replay(dir, 'ext4-auto-q', { bytes: 32 * MiB, setup: (f) => execFileSync('mkfs.ext4', ['-q', '-F', f]), oracle: { command: 'sfdisk', args: [...SFDISK, 'DISK'] }, ptable: ['write', '-q', 'DISK'], input: 'label: dos\n,,L\n' });
    expect(quiet.oracle.stderr).toBe('');
    expect(quiet.ptable.stderr).toBe('');
    expect(r.oracle.stderr).toContain("The device contains 'ext4' signature and it may remain on the device.");
    expect(r.ptable.stderr).toContain("The device contains 'ext4' signature and it may remain on the device.");
  });

  it('-W auto (the default in script mode) keeps the swap and says so, as sfdisk', () => {
    const r = replay(dir, 'partition-auto', {
      bytes: 50 * MiB,
      setup: (f) => swapAt(f, MiB, 8 * MiB),
      oracle: { command: 'sfdisk', args: [...SFDISK, '--label=gpt', 'DISK'] },
      ptable: ['write', '--label=gpt', 'DISK'],
      input: ',,L\n',
    });
    expect(r.oracle.status, r.oracle.stderr).toBe(0);
    expect(r.ptable.status, r.ptable.stderr).toBe(0);
    expect(imageDifference(r.oracle.image, r.ptable.image, 512)).toBeNull();
    expect(r.ptable.image.subarray(MiB + 4086, MiB + 4096).toString('latin1')).toBe('SWAPSPACE2');
    expect(r.oracle.stderr).toContain('Partition #1 contains a swap signature.');
    expect(r.ptable.stderr).toContain('Partition #1 contains a swap signature.');
  });
});

describe('where ptable wipes more than sfdisk, on purpose', () => {
  it('dos over a GPT whose protective MBR is zeroed: sfdisk sees no label and keeps both GPT headers; ptable wipes them', () => {
    const r = replay(dir, 'zeroed-pmbr', {
      bytes: 32 * MiB,
      setup: (f) => {
        sfdiskWrite(f, GPT_ONE);
        poke(f, 0, Buffer.alloc(512));
      },
      oracle: { command: 'sfdisk', args: [...SFDISK, 'DISK'] },
      ptable: ['write', 'DISK'],
      input: 'label: dos\n,,L\n',
    });
    expect(r.oracle.status).toBe(0);
    expect(r.ptable.status, r.ptable.stderr).toBe(0);
    const last = r.ptable.image.length - 512;
    expect(r.oracle.image.subarray(512, 520).toString('latin1')).toBe('EFI PART');
    expect(r.ptable.image.subarray(512, 520).equals(Buffer.alloc(8))).toBe(true);
    expect(r.ptable.image.subarray(last, last + 8).equals(Buffer.alloc(8))).toBe(true);
    // Apart from those 16 bytes, the same disk.
    const ours = Buffer.from(r.ptable.image);
    r.oracle.image.copy(ours, 512, 512, 520);
    r.oracle.image.copy(ours, last, last, last + 8);
    expect(imageDifference(r.oracle.image, ours, 512)).toBeNull();
  });
});

describe('write options', () => {
  it('-n: prints the wipes and sector writes, and changes no byte (nor creates an image)', () => {
    const file = newImageIn(dir, 'noact.img', 32 * MiB);
    sfdiskWrite(file, GPT_ONE);
    const before = fs.readFileSync(file);
    const r = ptable(['write', '-n', file], { input: 'label: dos\n,,L\n' });
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(r.stdout).toContain('wipe 8 byte(s) of the gpt signature at byte 512\n');
    expect(r.stdout).toContain(`wipe 8 byte(s) of the gpt signature at byte ${32 * MiB - 512}\n`);
    expect(r.stdout).toContain('write 1 sector(s) at LBA 0\n');
    expect(r.stdout).toMatch(/nothing written \(--no-act\)\n$/);
    const missing = `${dir}/never-made.img`;
    const m = ptable(['write', '--no-act', '--size', '8M', missing], { input: 'label: dos\n' });
    expect(m.status).toBe(2);
    expect(fs.existsSync(missing)).toBe(false);
  });

  it('-q: no informational lines; -f is accepted', () => {
    const file = newImageIn(dir, 'quiet.img', 8 * MiB);
    expect(ptable(['write', file], { input: '# nothing\n' }).stderr).toMatch(/nothing written/);
    const r = ptable(['write', '-q', '-f', file], { input: '# nothing\n' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('-N, --append and --move-data: bad combinations are exit 1, and an edit of a disk without a table exit 3, nothing written', () => {
    const file = newImageIn(dir, 'pending.img', 8 * MiB);
    const cases: [string[], number, RegExp][] = [
      [['-N', '0'], 1, /bad -N '0'/],
      [['-N', '2', '--append'], 1, /-N and --append cannot be used together/],
      [['--move-data=log'], 1, /--move-data needs -N/],
      [['-N', '2'], 3, /no partition table/],
      [['--append'], 3, /no partition table/],
    ];
    for (const [args, status, message] of cases) {
      const r = ptable(['write', ...args, file], { input: ',,L\n' });
      expect(r.status, args.join(' ')).toBe(status);
      expect(r.stderr).toMatch(new RegExp(`^ptable: .*${message.source}`, 'm'));
      expect(fs.readFileSync(file).equals(Buffer.alloc(8 * MiB))).toBe(true);
    }
  });

  it('-b -O PREFIX saves the sectors the write replaces in the files sfdisk -b -O saves, then writes the same table', () => {
    for (const [label, next] of [['gpt', 'dos'], ['dos', 'gpt']] as const) {
      const base = newImageIn(dir, `backup-${label}.img`, 16 * MiB);
      sfdiskWrite(base, `label: ${label}\n,4M,L\n,4M,S\n`);
      const run = (tool: 'sfdisk' | 'ptable'): { image: Buffer; files: Map<string, Buffer>; stdout: string } => {
        const file = path.join(dir, `backup-${label}-${tool}.img`);
        copySparse(base, file);
        const prefix = path.join(dir, `bak-${label}-${tool}`, 'pt');
        fs.mkdirSync(path.dirname(prefix), { recursive: true });
        const args = ['--no-reread', '-b', '-O', prefix, file];
        const input = `label: ${next}\n,8M,L\n`;
        const r = tool === 'sfdisk' ? runTool('sfdisk', args, { input }) : ptable(args, { input });
        expect(r.status, `${tool}: ${r.stderr}`).toBe(0);
        const files = new Map(fs.readdirSync(path.dirname(prefix)).map((f) => [f.replace(`-${tool}.img`, ''), fs.readFileSync(path.join(path.dirname(prefix), f))]));
        return { image: fs.readFileSync(file), files, stdout: r.stdout };
      };
      const theirs = run('sfdisk');
      const ours = run('ptable');
      expect([...ours.files.keys()].sort(), `${label} -> ${next}`).toEqual([...theirs.files.keys()].sort());
      for (const [name, data] of theirs.files) expect(ours.files.get(name)?.equals(data), name).toBe(true);
      expect(ours.files.size).toBeGreaterThan(0);
      expect(ours.stdout).toMatch(/^Backup files:/m);
      expect(imageDifference(theirs.image, ours.image, 512)).toBeNull();
    }
  });

  it('--wipe and -W take auto, always or never only (exit 1)', () => {
    const file = newImageIn(dir, 'bad-wipe.img', 8 * MiB);
    for (const args of [['--wipe', 'sometimes'], ['-W', 'yes']]) {
      const r = ptable(['write', ...args, file], { input: 'label: dos\n' });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/'(sometimes|yes)' is invalid\. Allowed choices are auto, always, never/);
      expect(r.stderr).not.toMatch(/    at /);
    }
  });

  it.skipIf(loopReason !== null)('--no-reread / --no-tell-kernel: no BLKRRPART (a loop device that cannot re-read says nothing then)', async () => {
    const file = newImageIn(dir, 'reread.img', 16 * MiB);
    await withLoop(file, (device) => {
      const told = ptable(['write', device], { input: 'label: dos\n,,L\n' });
      expect(told.status, told.stderr).toBe(0);
      expect(told.stderr).toMatch(/did not re-read it/);
      for (const flag of ['--no-reread', '--no-tell-kernel']) {
        const quiet = ptable(['write', flag, device], { input: 'label: dos\n,,L\n' });
        expect(quiet.status, quiet.stderr).toBe(0);
        expect(quiet.stderr).toBe('');
      }
    });
  });
});
