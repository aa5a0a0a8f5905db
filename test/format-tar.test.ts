/**
 * tar.ts (issue 12, OVA): USTAR headers as GNU tar and Python's tarfile read them, sizes of 8 GiB
 * and more in base-256, and the bounded reader on hostile archives (seeded corruptions, lies,
 * endless member lists), each an error naming the offset.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TAR_BLOCK, TAR_END_BYTES, TarError, type TarMember, memberMtime, parseTarHeader, tarFileHeader, tarPadding, walkTar } from '../src/format/tar.js';
import { makeTempDir, patternBytes } from './helpers.js';
import { measured, mutants } from './hostile.js';

const GiB = 1024 ** 3;

/** An archive of `files`, as the OVA sink lays one out. */
function archive(files: { name: string; data: Buffer }[], mtime = 1_700_000_000): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) parts.push(tarFileHeader({ name: f.name, size: f.data.length, mtime }), f.data, Buffer.alloc(tarPadding(f.data.length)));
  parts.push(Buffer.alloc(TAR_END_BYTES));
  return Buffer.concat(parts);
}

const reader = (buf: Buffer) => (offset: number, length: number) => buf.subarray(offset, offset + length);
const members = (buf: Buffer, length: number | null = buf.length): TarMember[] => [...walkTar(reader(buf), length)];

const FILES = [
  { name: 'web.ovf', data: Buffer.from('<?xml version="1.0"?>\n<Envelope/>\n') },
  { name: 'web.mf', data: Buffer.from('SHA256(web.ovf)= 00\n') },
  { name: 'web-disk1.vmdk', data: patternBytes(3 * TAR_BLOCK + 17, 3) },
  { name: 'empty', data: Buffer.alloc(0) },
  { name: `${'d'.repeat(120)}/${'n'.repeat(90)}`, data: Buffer.from('long name: prefix and name') },
];

describe('tar members', () => {
  it('GNU tar lists and extracts them with their names, sizes, modes, owners and mtime', () => {
    const dir = makeTempDir('sc-tar-');
    try {
      const file = path.join(dir, 'a.tar');
      fs.writeFileSync(file, archive(FILES));
      const listing = execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', file], { encoding: 'utf8' }).trim().split('\n');
      expect(listing).toHaveLength(FILES.length);
      FILES.forEach((f, i) => {
        expect(listing[i]).toMatch(new RegExp(`^-rw-r--r-- 0/0 +${f.data.length} 2023-11-14 22:13:20 ${f.name}$`));
      });
      execFileSync('tar', ['-xf', file, '-C', dir]);
      for (const f of FILES) expect(fs.readFileSync(path.join(dir, f.name)).equals(f.data)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Python's tarfile reads them, owners root/root, as ustar", () => {
    const out = execFileSync('python3', ['-c', 'import sys,tarfile,io;t=tarfile.open(fileobj=io.BytesIO(sys.stdin.buffer.read()));print("\\n".join(f"{m.name} {m.size} {m.mode:o} {m.uid} {m.gid} {m.uname} {m.gname} {m.mtime}" for m in t))'], {
      input: archive(FILES),
      encoding: 'utf8',
    });
    expect(out.trim().split('\n')).toEqual(FILES.map((f) => `${f.name} ${f.data.length} 644 0 0 root root 1700000000`));
  });

  it('the reader walks what the writer wrote: names, sizes, data offsets', () => {
    const buf = archive(FILES);
    const walked = members(buf);
    expect(walked.map((m) => [m.name, m.size, m.type])).toEqual(FILES.map((f) => [f.name, f.data.length, '0']));
    for (const [i, m] of walked.entries()) expect(buf.subarray(m.dataOffset, m.dataOffset + m.size).equals(FILES[i]!.data)).toBe(true);
  });

  it('the reader reads what GNU tar writes (pax and GNU long names included)', () => {
    const dir = makeTempDir('sc-tar-');
    try {
      const long = `x${'y'.repeat(150)}.vmdk`;
      fs.writeFileSync(path.join(dir, long), patternBytes(1000, 1));
      fs.writeFileSync(path.join(dir, 'a.ovf'), 'ovf');
      for (const format of ['gnu', 'pax', 'ustar']) {
        const names = format === 'ustar' ? ['a.ovf'] : ['a.ovf', long];
        const buf = execFileSync('tar', [`--format=${format}`, '-cf', '-', '-C', dir, ...names]);
        expect(members(buf).map((m) => [m.name, m.size]), format).toEqual(names.map((n) => [n, fs.statSync(path.join(dir, n)).size]));
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a size of 8 GiB and more is base-256, and GNU tar, Python and the reader all read it back', () => {
    for (const size of [8 * GiB - 1, 8 * GiB, 9 * GiB + 12345, 2 ** 53 - 1]) {
      const header = tarFileHeader({ name: 'big-disk1.vmdk', size, mtime: 0 });
      expect(header[124] === 0x80, `${size}`).toBe(size >= 8 * GiB);
      expect(parseTarHeader(header, 0).size).toBe(size);
      const py = execFileSync('python3', ['-c', 'import sys,tarfile;print(tarfile.TarInfo.frombuf(sys.stdin.buffer.read(),"utf-8","strict").size)'], { input: header, encoding: 'utf8' });
      expect(Number(py.trim())).toBe(size);
    }
    // GNU tar, on a sparse 9 GiB archive: it seeks over the member, so nothing is read or stored.
    const dir = makeTempDir('sc-tar-');
    try {
      const file = path.join(dir, 'big.tar');
      const size = 9 * GiB + 12345;
      const fd = fs.openSync(file, 'w');
      fs.writeSync(fd, tarFileHeader({ name: 'big-disk1.vmdk', size, mtime: 0 }), 0, TAR_BLOCK, 0);
      fs.ftruncateSync(fd, TAR_BLOCK + size + tarPadding(size) + TAR_END_BYTES);
      fs.closeSync(fd);
      expect(execFileSync('tar', ['-tvf', file], { encoding: 'utf8' })).toContain(` ${size} `);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('mtime is SOURCE_DATE_EPOCH when set, else now', () => {
    expect(memberMtime({ SOURCE_DATE_EPOCH: '1234567890' }, 0)).toBe(1234567890);
    expect(memberMtime({}, 5_000_999)).toBe(5000);
    expect(memberMtime({ SOURCE_DATE_EPOCH: 'yesterday' }, 7_000)).toBe(7);
  });
});

describe('the tar reader on hostile archives', () => {
  const good = archive(FILES.slice(0, 3));
  const errorAt = (buf: Buffer, length: number | null = buf.length): TarError => {
    try {
      members(buf, length);
    } catch (err) {
      expect(err).toBeInstanceOf(TarError);
      return err as TarError;
    }
    throw new Error('no error');
  };

  it('a checksum mismatch names the header', () => {
    const bad = Buffer.from(good);
    const second = TAR_BLOCK + TAR_BLOCK * Math.ceil(FILES[0]!.data.length / TAR_BLOCK);
    bad[second + 5] ^= 1; // a name byte
    const err = errorAt(bad);
    expect(err.message).toMatch(new RegExp(`header at byte ${second}: checksum mismatch: expected \\d+, found \\d+`));
    expect(err.offset).toBe(second + 148);
  });

  it('a size that runs past the end of the archive is an error, not a read past it', () => {
    const bad = archive([{ name: 'x.vmdk', data: Buffer.alloc(10) }]);
    const lie = tarFileHeader({ name: 'x.vmdk', size: 10 * GiB, mtime: 0 });
    lie.copy(bad, 0);
    expect(errorAt(bad).message).toBe(`tar member 'x.vmdk' at byte 0 says ${10 * GiB} bytes, past the end of the archive (${bad.length} bytes)`);
  });

  it('a name with no NUL is refused, with the offset', () => {
    const bad = Buffer.from(good);
    bad.fill(0x61, 0, 100);
    const fixed = fixChecksum(bad, 0);
    expect(errorAt(fixed).message).toBe('tar header at byte 0: name field has no NUL terminator');
  });

  it('an archive cut inside a header, or with no end blocks, is an error', () => {
    expect(errorAt(good.subarray(0, good.length - TAR_END_BYTES)).message).toMatch(/ends at byte \d+ without its end blocks/);
    expect(errorAt(good.subarray(0, 1024 + 188), null).message).toBe("tar header at byte 1024 is cut short: 188 of 512 bytes");
  });

  it('a million members stop at the limit, at once and in bounded memory', () => {
    // Headers made up as they are asked for: no million-member archive is built.
    const empty = tarFileHeader({ name: 'f', size: 0, mtime: 0 });
    const endless = (offset: number, length: number) => (offset < 1_000_000 * TAR_BLOCK ? empty.subarray(0, length) : Buffer.alloc(length));
    const run = measured(() => [...walkTar(endless, null)].length);
    expect(run.error).toBeInstanceOf(TarError);
    expect((run.error as TarError).message).toBe(`tar archive has more than 10000 members (at byte ${10_000 * TAR_BLOCK})`);
    expect(run.ms).toBeLessThan(2000);
    expect(run.heapGrowthBytes).toBeLessThan(64 << 20);
  });

  it('seeded corruptions of headers: the walk ends or fails with a TarError naming an offset inside the archive', () => {
    let failures = 0;
    const headerRegion = { from: 0, to: TAR_BLOCK * 3 };
    for (const m of mutants(good, 12, 3000, headerRegion)) {
      try {
        for (const member of walkTar(reader(m.bytes), m.bytes.length)) expect(member.dataOffset + member.size).toBeLessThanOrEqual(m.bytes.length);
      } catch (err) {
        if (!(err instanceof TarError)) throw new Error(`${m.description}: ${String(err)}`);
        expect(err.offset, m.description).toBeGreaterThanOrEqual(0);
        expect(err.offset, m.description).toBeLessThanOrEqual(m.bytes.length);
        failures++;
      }
    }
    expect(failures).toBeGreaterThan(100);
  });
});

/** The same header with its checksum made right again (a field edit, not a checksum failure). */
function fixChecksum(buf: Buffer, at: number): Buffer {
  const out = Buffer.from(buf);
  out.fill(0x20, at + 148, at + 156);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += out[at + i]!;
  out.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'latin1');
  return out;
}
