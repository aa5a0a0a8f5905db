/**
 * OVA output (issue 12): `sparsecopy SRC NAME.ova` / `--format ova` writes a tar of NAME.ovf,
 * NAME.mf and NAME-disk1.vmdk in that order, which GNU tar and Python's tarfile read, whose
 * manifest digests are the members' sha256sum, whose OVF says the disk's sizes and the hardware
 * asked for; the same bytes to stdout or a pipe as to a file; refusals before anything is written;
 * and nothing left behind (no OVA, no spool) when the copy fails or is interrupted.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SPARSECOPY, linesOf, patternBytes, prng, tempLeftovers, useTempDir, withLoop, writeSparseFile } from './helpers.js';
import { mutants, runHostile } from './hostile.js';
import { walkTar } from '../src/format/tar.js';
import { identifyImage } from '../src/format/identify.js';
import { checkStreamOptimized } from './vmdk-structure.js';

const MiB = 1 << 20;
const EPOCH = '1700000000';
let dir = '';
useTempDir('sc-ova-', (d) => (dir = d));
let n = 0;
const fresh = (name: string): string => path.join(dir, `${++n}`, name);
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function run(args: string[], options: { input?: Buffer; env?: NodeJS.ProcessEnv } = {}): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [SPARSECOPY, ...args], { input: options.input, env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH, ...options.env }, maxBuffer: 1 << 30 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** A disk with data, holes and zeros: 9 MiB + 3 sectors, 2 MiB + 5 bytes of data. */
function sourceDisk(): { file: string; size: number; dataBytes: number } {
  const file = fresh('disk.img');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const size = 9 * MiB + 1536;
  writeSparseFile(file, size, [
    { offset: 0, data: patternBytes(MiB, 1) },
    { offset: 4 * MiB + 512, data: patternBytes(MiB + 5, 2) },
  ]);
  return { file, size, dataBytes: 2 * MiB + 5 };
}

/** The archive's members, by Python's tarfile (an independent reader): name, size, bytes. */
function pythonMembers(ova: string): { name: string; size: number; sha256: string }[] {
  const out = execFileSync('python3', ['-c', 'import sys,tarfile,hashlib\nfor m in tarfile.open(sys.argv[1]):\n print(m.name, m.size, hashlib.sha256(tarfile.open(sys.argv[1]).extractfile(m.name).read()).hexdigest(), m.mode, m.uid, m.gid)', ova], { encoding: 'utf8' });
  return linesOf(out).map((line) => {
    const [name, size, digest, mode, uid, gid] = line.split(' ');
    expect([mode, uid, gid]).toEqual(['420', '0', '0']); // 0644, root
    return { name: name!, size: Number(size), sha256: digest! };
  });
}

/** One member's bytes, extracted by GNU tar. */
const extract = (ova: string, member: string): Buffer => execFileSync('tar', ['-xOf', ova, member], { maxBuffer: 1 << 30 });

/**
 * The OVA's disk member, extracted by GNU tar: a streamOptimized VMDK that passes the structure
 * check, names itself in its extent line, has the adapter type asked for, and holds `raw`
 * (qemu-img compare). Its bytes.
 */
function expectDiskMember(ova: string, member: string, raw: string, adapterType = 'lsilogic'): Buffer {
  const file = path.join(path.dirname(ova), `${path.basename(ova)}.member.vmdk`);
  fs.writeFileSync(file, extract(ova, member));
  try {
    const structure = checkStreamOptimized(file, { fileName: member });
    expect(structure.fields['ddb.adapterType']).toBe(adapterType);
    const r = spawnSync('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', file, raw], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Images are identical/);
    return fs.readFileSync(file);
  } finally {
    fs.rmSync(file, { force: true });
  }
}

const attribute = (xml: string, element: string, name: string): string => new RegExp(`<${element}\\b[^>]*\\s${name}="([^"]*)"`).exec(xml)?.[1] ?? '';
const rasd = (xml: string, type: number, field: string): string => {
  for (const item of xml.split('<Item>')) if (item.includes(`<rasd:ResourceType>${type}</rasd:ResourceType>`)) return new RegExp(`<rasd:${field}>([^<]*)<`).exec(item)?.[1] ?? '';
  return '';
};

describe('sparsecopy to an OVA', () => {
  it('is a tar of web.ovf, web.mf, web-disk1.vmdk in that order, as GNU tar and tarfile list it, with manifest digests equal to sha256sum', () => {
    const src = sourceDisk();
    const ova = path.join(path.dirname(src.file), 'web.ova');
    const r = run([src.file, ova]);
    expect(r.status, r.stderr).toBe(0);
    const listing = linesOf(execFileSync('tar', ['--numeric-owner', '-tvf', ova], { encoding: 'utf8' }));
    expect(listing.map((l) => l.split(/\s+/).slice(-1)[0])).toEqual(['web.ovf', 'web.mf', 'web-disk1.vmdk']);
    const members = pythonMembers(ova);
    expect(members.map((m) => m.name)).toEqual(['web.ovf', 'web.mf', 'web-disk1.vmdk']);
    for (const [i, m] of members.entries()) {
      expect(listing[i]).toMatch(new RegExp(`^-rw-r--r-- 0/0 +${m.size} `));
      expect(extract(ova, m.name).length).toBe(m.size);
    }
    const manifest = extract(ova, 'web.mf').toString();
    const sha256sum = (member: string): string => execFileSync('sh', ['-c', `tar -xOf "$1" "$2" | sha256sum`, 'sh', ova, member], { encoding: 'utf8' }).split(' ')[0]!;
    expect(manifest).toBe(`SHA256(web.ovf)= ${sha256sum('web.ovf')}\nSHA256(web-disk1.vmdk)= ${sha256sum('web-disk1.vmdk')}\n`);
    expectDiskMember(ova, 'web-disk1.vmdk', src.file);
    // The archive is exactly its members, padded, and two end blocks: nothing else.
    const walked = [...walkTar((o, l) => readAt(ova, o, l), fs.statSync(ova).size)];
    const last = walked[walked.length - 1]!;
    expect(fs.statSync(ova).size).toBe(last.dataOffset + Math.ceil(last.size / 512) * 512 + 1024);
    expect(tempLeftovers(path.dirname(ova))).toEqual([]);
  });

  it('its disk member is the disk; its OVF is well-formed and says the sizes and the hardware asked for', () => {
    const src = sourceDisk();
    const ova = path.join(path.dirname(src.file), 'vm.ova');
    const r = run([src.file, ova, '--ova-cpus', '4', '--ova-memory', '3G', '--ova-hw-version', 'vmx-13', '--adapter-type', 'ide']);
    expect(r.status, r.stderr).toBe(0);
    const disk = expectDiskMember(ova, 'vm-disk1.vmdk', src.file, 'ide');
    const ovf = extract(ova, 'vm.ovf').toString();
    expect(spawnSync('xmllint', ['--noout', '-'], { input: ovf }).status).toBe(0);
    expect(attribute(ovf, 'File', 'ovf:size')).toBe(String(disk.length));
    expect(attribute(ovf, 'File', 'ovf:href')).toBe('vm-disk1.vmdk');
    expect(attribute(ovf, 'Disk', 'ovf:capacity')).toBe(String(src.size));
    // Whole 64 KiB grains: the two data runs touch 16 and 17 of them, as the VMDK's grains say.
    expect(attribute(ovf, 'Disk', 'ovf:populatedSize')).toBe(String(33 * 65536));
    expect(checkStreamOptimized(disk).grains.size).toBe(33);
    expect(rasd(ovf, 3, 'VirtualQuantity')).toBe('4');
    expect(rasd(ovf, 4, 'VirtualQuantity')).toBe('3072');
    expect(rasd(ovf, 5, 'InstanceID')).toBe(rasd(ovf, 17, 'Parent'));
    expect(rasd(ovf, 6, 'InstanceID')).toBe('');
    expect(ovf).toContain('<vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>');
    expect(ovf).toContain('<VirtualSystem ovf:id="vm">');
  });

  it('defaults: 1 CPU, 1024 MiB, vmx-11, an lsilogic SCSI controller; --format ova under another name', () => {
    const src = sourceDisk();
    const out = path.join(path.dirname(src.file), 'appliance.tar');
    const r = run(['--format', 'ova', src.file, out]);
    expect(r.status, r.stderr).toBe(0);
    const ovf = extract(out, 'appliance.tar.ovf').toString();
    expect(rasd(ovf, 3, 'VirtualQuantity')).toBe('1');
    expect(rasd(ovf, 4, 'VirtualQuantity')).toBe('1024');
    expect(rasd(ovf, 6, 'ResourceSubType')).toBe('lsilogic');
    expect(rasd(ovf, 6, 'InstanceID')).toBe(rasd(ovf, 17, 'Parent'));
    expect(ovf).toContain('vmx-11');
  });

  it('to stdout and through a pipe: the same bytes as to a file', () => {
    const src = sourceDisk();
    const file = path.join(path.dirname(src.file), 'appliance.ova');
    expect(run([src.file, file]).status).toBe(0);
    const toStdout = run(['--format', 'ova', src.file, '-']);
    expect(toStdout.status, toStdout.stderr).toBe(0);
    expect(sha256(toStdout.stdout)).toBe(sha256(fs.readFileSync(file)));
    const piped = path.join(path.dirname(src.file), 'piped.ova');
    const viaPipe = spawnSync('sh', ['-c', `"$1" "$2" --format ova "$3" - | cat > "$4"`, 'sh', process.execPath, SPARSECOPY, src.file, piped], { env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH } });
    expect(viaPipe.status, viaPipe.stderr.toString()).toBe(0);
    expect(sha256(fs.readFileSync(piped))).toBe(sha256(fs.readFileSync(file)));
  });

  it('from a pipe (a source of unknown length): the OVF capacity is what came', () => {
    const data = patternBytes(3 * MiB + 512, 9);
    const ova = fresh('p.ova');
    fs.mkdirSync(path.dirname(ova));
    const r = run(['-', ova], { input: data });
    expect(r.status, r.stderr).toBe(0);
    const raw = path.join(path.dirname(ova), 'p.raw');
    fs.writeFileSync(raw, data);
    expectDiskMember(ova, 'p-disk1.vmdk', raw);
    expect(attribute(extract(ova, 'p.ovf').toString(), 'Disk', 'ovf:capacity')).toBe(String(data.length));
  });
});

describe('OVA refusals, before anything is written', () => {
  const refused = (args: string[], code: number, message: RegExp): void => {
    const src = sourceDisk();
    const out = path.join(path.dirname(src.file), 'x.ova');
    const r = run([...args.map((a) => (a === 'SRC' ? src.file : a === 'OUT' ? out : a))]);
    expect(r.status, r.stderr).toBe(code);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(fs.readdirSync(path.dirname(out))).toEqual(['disk.img']);
  };
  it('--seek, --overlay, --finalsize, --to-partition: exit 1 naming the option', () => {
    refused(['-s', '1M', 'SRC', 'OUT'], 1, /^sparsecopy: .*x\.ova: --seek cannot be used with OVA output/);
    refused(['-o', 'SRC', 'OUT'], 1, /--overlay cannot be used with OVA output/);
    refused(['-f', '20M', 'SRC', 'OUT'], 1, /--finalsize cannot be used with OVA output/);
    refused(['--to-partition', '1', 'SRC', 'OUT'], 1, /--to-partition cannot be used with OVA output/);
  });
  it('bad --ova-* values and --ova-* or --adapter-type for another format: exit 1', () => {
    refused(['--ova-cpus', '0', 'SRC', 'OUT'], 1, /bad --ova-cpus 0: expected 1 to 768/);
    refused(['--ova-cpus', 'two', 'SRC', 'OUT'], 1, /bad --ova-cpus 'two'/);
    refused(['--ova-memory', '1500K', 'SRC', 'OUT'], 1, /bad --ova-memory '1500K': not a whole number of MiB/);
    refused(['--ova-hw-version', 'vmx-3', 'SRC', 'OUT'], 1, /bad --ova-hw-version 'vmx-3'/);
    refused(['--ova-hw-version', 'esx', 'SRC', 'OUT'], 1, /bad --ova-hw-version 'esx'/);
    refused(['--adapter-type', 'scsi', 'SRC', 'OUT'], 1, /bad --adapter-type 'scsi': expected ide, buslogic, lsilogic or legacyESX/);
    refused(['--vmdk-subformat', 'monolithicSparse', 'SRC', 'OUT'], 1, /--vmdk-subformat is for VMDK output, not OVA/);
    refused(['--ova-cpus', '2', '--format', 'gzip', 'SRC', 'OUT'], 1, /--ova-cpus is for OVA output, not gzip/);
  });
  it('a block device: exit 1, the device untouched', async () => {
    const src = sourceDisk();
    const backing = path.join(path.dirname(src.file), 'dev.img');
    fs.writeFileSync(backing, patternBytes(4 * MiB, 5));
    const before = sha256(fs.readFileSync(backing));
    await withLoop(backing, (device) => {
      const r = run(['--format', 'ova', src.file, device]);
      expect(r.status, r.stderr).toBe(1);
      expect(linesOf(r.stderr)).toEqual([`sparsecopy: ${device}: OVA output to a block device makes no sense; write the image itself`]);
    });
    expect(sha256(fs.readFileSync(backing))).toBe(before);
  });
});

describe('an OVA that fails or is interrupted leaves nothing behind', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  it('a source that fails mid-copy (a cut .gz): exit 18, no OVA, no spool, to a file and to stdout', () => {
    const src = sourceDisk();
    const gz = `${src.file}.gz`;
    const whole = execFileSync('gzip', ['-c', src.file], { maxBuffer: 1 << 30 });
    fs.writeFileSync(gz, whole.subarray(0, Math.floor(whole.length / 2)));
    const ova = path.join(path.dirname(src.file), 'cut.ova');
    const tmp = fresh('tmp');
    fs.mkdirSync(tmp, { recursive: true });
    const r = run([gz, ova], { env: { TMPDIR: tmp } });
    expect(r.status, r.stderr).toBe(18);
    expect(linesOf(r.stderr)).toHaveLength(1);
    expect(fs.readdirSync(path.dirname(ova)).sort()).toEqual(['disk.img', 'disk.img.gz']);
    const toStdout = run(['--format', 'ova', gz, '-'], { env: { TMPDIR: tmp } });
    expect(toStdout.status, toStdout.stderr).toBe(18);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('SIGTERM mid-copy: 143, no OVA, and the spool (open beside the destination, already unlinked) gone with the process', async () => {
    const target = fresh('sig.ova');
    const outDir = path.dirname(target);
    fs.mkdirSync(outDir);
    const child = spawn(process.execPath, [SPARSECOPY, '-', target], { stdio: ['pipe', 'ignore', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.stdin!.on('error', () => undefined);
    child.stdin!.write(patternBytes(3 * MiB, 7)); // then the pipe stays open and idle
    const spoolOpen = (): string[] => {
      try {
        return fs.readdirSync(`/proc/${child.pid}/fd`).map((fd) => fs.readlinkSync(`/proc/${child.pid}/fd/${fd}`)).filter((l) => l.includes('-disk1.vmdk.sparsecopy-'));
      } catch {
        return [];
      }
    };
    for (let i = 0; i < 500 && spoolOpen().length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const spool = spoolOpen();
    expect(spool).toHaveLength(1);
    expect(spool[0]).toMatch(new RegExp(`^${outDir}/\\.sig-disk1\\.vmdk\\.sparsecopy-.* \\(deleted\\)$`));
    await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(143);
    expect(linesOf(stderr)).toHaveLength(1);
    expect(fs.readdirSync(outDir)).toEqual([]);
  });

  for (const [where, tmpfsBytes, message] of [
    ['the spool', '2m', (m: string) => `^sparsecopy: ${m}/full\\.ova \\(its VMDK, spooled in ${m}\\): write failed at byte \\d+: no space left on device$`],
    ['the archive (the spool copied in)', '5m', (m: string) => `^sparsecopy: ${m}/full\\.ova: write failed at byte \\d+: no space left on device$`],
  ] as const) {
    it(`no room for ${where}: one line naming it, exit 9, nothing left`, () => {
      const mount = fresh('small');
      fs.mkdirSync(mount, { recursive: true });
      const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${tmpfsBytes}`, 'tmpfs', mount]);
      expect(mounted.status, mounted.stderr.toString()).toBe(0);
      try {
        // Incompressible: the VMDK is as large as its data, 3 MiB.
        const src = fresh('random.img');
        fs.mkdirSync(path.dirname(src), { recursive: true });
        writeSparseFile(src, 8 * MiB, [{ offset: MiB, data: randomBytes(3 * MiB) }]);
        const r = run([src, path.join(mount, 'full.ova')]);
        expect(r.status, r.stderr).toBe(9);
        expect(linesOf(r.stderr)).toHaveLength(1);
        expect(linesOf(r.stderr)[0]).toMatch(new RegExp(message(mount), 'i'));
        expect(fs.readdirSync(mount)).toEqual([]);
      } finally {
        spawnSync('umount', [mount]);
      }
    });
  }
});

function readAt(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    return buffer.subarray(0, fs.readSync(fd, buffer, 0, length, offset));
  } finally {
    fs.closeSync(fd);
  }
}

describe('an OVA as SOURCE', () => {
  it('is recognised by its first member, an .ovf (a tar of anything else is not)', () => {
    const src = sourceDisk();
    const ova = path.join(path.dirname(src.file), 'in.ova');
    expect(run([src.file, ova]).status).toBe(0);
    expect(identifyImage(readAt(ova, 0, 65536))).toBe('ova');
    const other = execFileSync('tar', ['--format=ustar', '-cf', '-', '-C', path.dirname(src.file), 'disk.img'], { maxBuffer: 1 << 30 });
    expect(identifyImage(other.subarray(0, 65536))).toBe(null);
    const bent = Buffer.from(readAt(ova, 0, 65536));
    bent[0] ^= 1; // the checksum no longer matches
    expect(identifyImage(bent)).toBe(null);
  });

  it("its first disk's member is read: from a file and from a pipe, the disk it was made from", () => {
    const src = sourceDisk();
    const ova = path.join(path.dirname(src.file), 'in.ova');
    expect(run([src.file, ova]).status).toBe(0);
    const out = path.join(path.dirname(src.file), 'out.img');
    const r = run([ova, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(src.file))).toBe(true);
    const piped = run(['-', '-'], { input: fs.readFileSync(ova) });
    expect(piped.status, piped.stderr).toBe(0);
    expect(piped.stdout.equals(fs.readFileSync(src.file))).toBe(true);
  });

  it('an OVA cut inside its disk, from a pipe: exit 18 naming the byte, nothing written', () => {
    const src = sourceDisk();
    const ova = path.join(path.dirname(src.file), 'in.ova');
    expect(run([src.file, ova]).status).toBe(0);
    const out = path.join(path.dirname(src.file), 'out.img');
    const member = [...walkTar((o, l) => readAt(ova, o, l), fs.statSync(ova).size)][2]!;
    for (const cut of [member.dataOffset + 100, member.dataOffset + Math.floor(member.size / 2), member.dataOffset + member.size - 512]) {
      const r = run(['-', out], { input: readAt(ova, 0, cut) });
      expect(r.status, `${cut}: ${r.stderr}`).toBe(18);
      expect(linesOf(r.stderr), String(cut)).toHaveLength(1);
      expect(r.stderr).toMatch(/^sparsecopy: stdin: /);
      expect(fs.existsSync(out)).toBe(false);
    }
  });

  it('an OVF whose disk names no member, and a member that is not a disk format read here: one line, nothing written', () => {
    const src = sourceDisk();
    const work = path.dirname(src.file);
    fs.writeFileSync(path.join(work, 'a.ovf'), '<Envelope><References><File ovf:id="f" ovf:href="gone.vmdk"/></References><DiskSection><Disk ovf:diskId="d" ovf:fileRef="f"/></DiskSection></Envelope>');
    execFileSync('gzip', ['-k', src.file]);
    fs.renameSync(`${src.file}.gz`, path.join(work, 'gone.vmdk'));
    const noMember = path.join(work, 'no-member.ova');
    execFileSync('tar', ['--format=ustar', '-cf', noMember, '-C', work, 'a.ovf', 'disk.img']);
    let r = run([noMember, path.join(work, 'o.img')]);
    expect(r.status, r.stderr).toBe(18);
    expect(linesOf(r.stderr)).toEqual([`sparsecopy: ${noMember}: the OVF's first disk is 'gone.vmdk', which the archive does not hold`]);
    const gzipped = path.join(work, 'gz.ova');
    execFileSync('tar', ['--format=ustar', '-cf', gzipped, '-C', work, 'a.ovf', 'gone.vmdk']);
    r = run([gzipped, path.join(work, 'o.img')]);
    expect(r.status, r.stderr).toBe(28);
    expect(linesOf(r.stderr)).toEqual([`sparsecopy: ${gzipped}: gzip data as the disk of an OVA appliance; sparsecopy reads VMDK and raw disks there; nothing written`]);
    expect(fs.existsSync(path.join(work, 'o.img'))).toBe(false);
  });

  it('seeded corruptions of the headers and the OVF: documented exit codes, one line, DEST only', () => {
    const src = sourceDisk();
    const work = path.dirname(src.file);
    const ova = path.join(work, 'in.ova');
    expect(run([src.file, ova]).status).toBe(0);
    const good = readAt(ova, 0, 8192); // the ovf and mf members and the disk's header
    const rest = readAt(ova, 8192, fs.statSync(ova).size);
    let i = 0;
    for (const m of mutants(good, 77, 24)) {
      const bad = path.join(work, `bad-${i}.ova`);
      fs.writeFileSync(bad, Buffer.concat([m.bytes, rest]));
      const out = path.join(work, `bad-${i++}.img`);
      const r = runHostile('sparsecopy', ['-q', bad, out], { codes: [0, 18, 28], env: { SOURCE_DATE_EPOCH: EPOCH } });
      if (r.status !== 0) {
        expect(linesOf(r.stderr), m.description).toHaveLength(1);
        expect(fs.existsSync(out), m.description).toBe(false);
      }
      fs.rmSync(bad);
      fs.rmSync(out, { force: true });
    }
    expect(fs.readdirSync(work).sort()).toEqual(['disk.img', 'in.ova']);
  });
});

describe('OVA output under stress', () => {
  it('a 1 GiB disk with 64 MiB of data: bounded memory (under 200 MB peak RSS), the archive right', () => {
    const src = fresh('big.img');
    fs.mkdirSync(path.dirname(src), { recursive: true });
    writeSparseFile(src, 1 << 30, [0, 1, 2, 3].map((i) => ({ offset: i * 256 * MiB + 4096, data: patternBytes(16 * MiB, 20 + i) })));
    const ova = path.join(path.dirname(src), 'big.ova');
    const r = runHostile('sparsecopy', [src, ova], { codes: [0], timeoutMs: 60_000, env: { SOURCE_DATE_EPOCH: EPOCH } });
    expect(r.peakRssBytes ?? 0).toBeLessThan(200e6);
    const members = [...walkTar((o, l) => readAt(ova, o, l), fs.statSync(ova).size)];
    expect(members.map((m) => m.name)).toEqual(['big.ovf', 'big.mf', 'big-disk1.vmdk']);
    expect(tempLeftovers(path.dirname(ova))).toEqual([]);
  });

  it('seeded OVA option values through real processes: documented exit codes, one line, nothing but DEST touched', () => {
    const random = prng(1212);
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const src = sourceDisk();
    const work = path.dirname(src.file);
    const before = fs.readFileSync(src.file);
    const values: Record<string, readonly string[]> = {
      '--ova-cpus': ['1', '2', '768', '769', '0', '-1', '1e3', '', 'x'],
      '--ova-memory': ['1', '512', '4G', '1K', '3M', '24T', '25T', '9999999999999999', 'big'],
      '--ova-hw-version': ['vmx-4', 'vmx-11', '13', 'vmx-3', 'vmx-100', 'vmx-', 'esx-7'],
      '--adapter-type': ['ide', 'lsilogic', 'buslogic', 'legacyESX', 'IDE', 'pvscsi', ''],
      '--format': ['ova', 'ova', 'raw', 'gzip'],
    };
    for (let i = 0; i < 24; i++) {
      const args: string[] = [];
      for (const [option, choices] of Object.entries(values)) if (random() < 0.6) args.push(option, pick(choices));
      const out = path.join(work, `case-${i}.ova`);
      const r = runHostile('sparsecopy', [...args, src.file, out], { codes: [0, 1], env: { SOURCE_DATE_EPOCH: EPOCH } });
      if (r.status === 0) {
        expect(fs.existsSync(out), args.join(' ')).toBe(true);
      } else {
        expect(linesOf(r.stderr), args.join(' ')).toHaveLength(1);
        expect(fs.existsSync(out), args.join(' ')).toBe(false);
      }
      expect(fs.readdirSync(work).filter((f) => !/^case-\d+\.ova$/.test(f)).sort(), args.join(' ')).toEqual(['disk.img']);
    }
    expect(fs.readFileSync(src.file).equals(before)).toBe(true);
  });
});

describe('OVAs made by other tools as SOURCE', () => {
  it("a GNU tar of an OVF and qemu-img's streamOptimized VMDK: the disk, from the file and from a pipe", () => {
    const src = sourceDisk();
    const work = path.dirname(src.file);
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', src.file, path.join(work, 'q-disk1.vmdk')]);
    const vmdkBytes = fs.statSync(path.join(work, 'q-disk1.vmdk')).size;
    fs.writeFileSync(
      path.join(work, 'q.ovf'),
      `<?xml version="1.0"?>\n<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">\n  <References><File ovf:href="q-disk1.vmdk" ovf:id="file1" ovf:size="${vmdkBytes}"/></References>\n  <DiskSection><Info>disks</Info><Disk ovf:capacity="${src.size}" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/></DiskSection>\n</Envelope>\n`,
    );
    fs.writeFileSync(path.join(work, 'q.mf'), `SHA256(q.ovf)= ${sha256(fs.readFileSync(path.join(work, 'q.ovf')))}\n`);
    const ova = path.join(work, 'q.ova');
    for (const format of ['ustar', 'gnu', 'pax']) {
      execFileSync('tar', [`--format=${format}`, '-cf', ova, '-C', work, 'q.ovf', 'q.mf', 'q-disk1.vmdk']);
      const out = path.join(work, 'out.img');
      const r = run([ova, out]);
      expect(r.status, `${format}: ${r.stderr}`).toBe(0);
      expect(sha256(fs.readFileSync(out)), format).toBe(sha256(fs.readFileSync(src.file)));
      const piped = run(['-', '-'], { input: fs.readFileSync(ova) });
      expect(piped.status, `${format}: ${piped.stderr}`).toBe(0);
      expect(sha256(piped.stdout), format).toBe(sha256(fs.readFileSync(src.file)));
      fs.rmSync(out);
    }
  });
});
