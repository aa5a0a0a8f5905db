/**
 * Image formats as drivers (issue 10): xz, zstd and bzip2 in and out next to gzip, from files and
 * pipes, recognised by their bytes whatever their names; Android sparse images expanded, also
 * inside a compressor; corrupt or truncated input exit 18 with the format, the path and the
 * compressed offset; formats sparsecopy does not read or write refused by name (28) before
 * anything is written; a missing program named with its Debian package (29).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SPARSECOPY, allocatedBytes, lastLine, patternBytes, sparsecopy, tempLeftovers, useTempDir, writeSparseFile } from './helpers.js';

let dir = '';
useTempDir('sc-formats-', (d) => (dir = d));

const MiB = 1 << 20;
const at = (name: string): string => path.join(dir, name);

/** A 24 MiB disk image: data, zero blocks in the data, a long hole, a tail. */
function image(): string {
  const file = at('disk.img');
  if (!fs.existsSync(file)) {
    const mixed = patternBytes(3 * MiB, 4);
    mixed.fill(0, MiB, MiB + 300_000); // zeros inside data
    writeSparseFile(file, 24 * MiB, [
      { offset: 0, data: mixed },
      { offset: 12 * MiB, data: patternBytes(777_777, 5) },
      { offset: 24 * MiB - 4096, data: patternBytes(4096, 6) },
    ]);
  }
  return file;
}

/** Runs a shell pipeline (for `tool | sparsecopy - out`). */
function shell(script: string): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync('bash', ['-c', script], { maxBuffer: 1 << 30 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

const sc = `'${process.execPath}' '${SPARSECOPY}'`;

/** The compressors' own tools, to make inputs and check outputs. */
const TOOLS = {
  gzip: { ext: 'gz', make: 'gzip -c', unmake: 'gzip -dc' },
  xz: { ext: 'xz', make: 'xz -c -T0 --block-size=4MiB', unmake: 'xz -dc' },
  zstd: { ext: 'zst', make: 'zstd -q -c', unmake: 'zstd -dc -q' },
  bzip2: { ext: 'bz2', make: 'lbzip2 -c', unmake: 'bzip2 -dc' },
} as const;

describe.each(Object.entries(TOOLS))('%s', (format, tool) => {
  it(`in: recognised by its bytes (any name), from a file and from a pipe, holes made sparse`, () => {
    const packed = at(`packed-${format}.bin`); // no extension: the bytes decide
    fs.writeFileSync(packed, execFileSync('bash', ['-c', `${tool.make} '${image()}'`], { maxBuffer: 1 << 30 }));
    const fromFile = at(`from-file-${format}.img`);
    const r = sparsecopy(['--json', packed, fromFile]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(fromFile).equals(fs.readFileSync(image()))).toBe(true);
    expect(allocatedBytes(fromFile)).toBeLessThan(6 * MiB);
    const summary = JSON.parse(r.stdout);
    expect(summary.inputFormats).toEqual([format]);
    expect(summary.decompressed).toBe(true);
    const fromPipe = at(`from-pipe-${format}.img`);
    const p = shell(`cat '${packed}' | ${sc} -q - '${fromPipe}'`);
    expect(p.status, p.stderr).toBe(0);
    expect(fs.readFileSync(fromPipe).equals(fs.readFileSync(image()))).toBe(true);
    expect(allocatedBytes(fromPipe)).toBeLessThan(6 * MiB);
  });

  it('in: concatenated streams (and for zstd skippable frames) are followed', () => {
    const one = execFileSync('bash', ['-c', `head -c 1500000 '${image()}' | ${tool.make}`], { maxBuffer: 1 << 30 });
    const skippable = format === 'zstd' ? Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 7, 7]) : Buffer.alloc(0);
    const packed = at(`concat-${format}`);
    fs.writeFileSync(packed, Buffer.concat([skippable, one, skippable, one]));
    const out = at(`concat-${format}.img`);
    expect(sparsecopy(['-q', packed, out]).status).toBe(0);
    const first = fs.readFileSync(image()).subarray(0, 1_500_000);
    expect(fs.readFileSync(out).equals(Buffer.concat([first, first]))).toBe(true);
  });

  it.each([
    ['truncated', (b: Buffer) => b.subarray(0, Math.floor(b.length * 0.6))],
    ['corrupt', (b: Buffer) => {
      const c = Buffer.from(b);
      for (let i = Math.floor(b.length / 3); i < Math.floor(b.length / 3) + 200; i++) c[i] = 0x5a;
      return c;
    }],
  ])(`in: %s data is exit 18 naming ${format}, the path and a compressed offset; nothing under the final name`, (_what, damage) => {
    const packed = at(`bad-${format}.${tool.ext}`);
    fs.writeFileSync(packed, damage(execFileSync('bash', ['-c', `${tool.make} '${image()}'`], { maxBuffer: 1 << 30 })));
    const out = at(`bad-${format}.img`);
    fs.writeFileSync(out, 'old contents');
    for (const r of [sparsecopy(['-q', packed, out]), shell(`cat '${packed}' | ${sc} -q - '${out}'`)]) {
      expect(r.status, r.stderr).toBe(18);
      const line = lastLine(r.stderr);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(line).toMatch(new RegExp(`^sparsecopy: (${packed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}|stdin): (truncated|corrupt|bad|trailing).*${format === 'bzip2' ? 'bzip2' : format}.*compressed byte`));
      expect(fs.readFileSync(out, 'utf8')).toBe('old contents');
      expect(tempLeftovers(dir)).toEqual([]);
    }
  });

  it(`out: by the name's extension and by --format, decompressed by the ${format} tool to the same bytes`, () => {
    const named = at(`out.img.${tool.ext}`);
    const r = sparsecopy(['-q', '--md5', image(), named]);
    expect(r.status, r.stderr).toBe(0);
    const md5 = execFileSync('md5sum', [image()]).toString().split(' ')[0];
    expect(r.stdout).toBe(`${md5}  ${at('out.img')}\n`); // the uncompressed image's name, for md5sum -c
    expect(execFileSync('bash', ['-c', `${tool.unmake} '${named}'`], { maxBuffer: 1 << 30 }).equals(fs.readFileSync(image()))).toBe(true);
    const forced = at(`forced-${format}.bin`);
    expect(sparsecopy(['-q', '--format', format, image(), forced]).status).toBe(0);
    expect(execFileSync('bash', ['-c', `${tool.unmake} < '${forced}'`], { maxBuffer: 1 << 30 }).equals(fs.readFileSync(image()))).toBe(true);
  });

  it('out: to stdout, with --pad, and back through sparsecopy itself', () => {
    const packed = shell(`${sc} -q --format ${format} --pad 1M '${image()}' - > '${at(`stdout-${format}`)}'`);
    expect(packed.status, packed.stderr).toBe(0);
    const back = at(`back-${format}.img`);
    expect(sparsecopy(['-q', at(`stdout-${format}`), back]).status).toBe(0);
    expect(fs.readFileSync(back).equals(fs.readFileSync(image()))).toBe(true); // 24 MiB is a multiple of 1 MiB already
    const odd = shell(`head -c 1000001 '${image()}' | ${sc} -q --format ${format} --pad 4K - - | ${tool.unmake} | wc -c`);
    expect(Number(odd.stdout.toString().trim())).toBe(1003520);
  });
});

describe('output levels and refusals', () => {
  it('--level is each format\'s own range; out of range is a usage error', () => {
    expect(sparsecopy(['-q', '--format', 'zstd', '--level', '19', image(), at('l19.zst')]).status).toBe(0);
    expect(sparsecopy(['-q', '--level', '0', image(), at('l0.xz')]).status).toBe(0);
    expect(sparsecopy(['-q', '--gzip=9', image(), at('g9.gz')]).status).toBe(0);
    const bad = sparsecopy(['--level', '20', image(), at('bad.zst')]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^sparsecopy: bad zstd level '20': expected 1 to 19/);
    expect(fs.existsSync(at('bad.zst'))).toBe(false);
  });

  it.each([
    [['-o'], '--overlay'],
    [['-s', '1M'], '--seek'],
    [['-f', '1G'], '--finalsize'],
  ])('compressed output with %s is refused naming the format and the option', (args, option) => {
    const r = sparsecopy([...args, image(), at('clash.xz')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`sparsecopy: ${at('clash.xz')}: ${option} cannot be used with xz output (a new xz stream is written)\n`);
  });

  it.each(['vhd', 'vhdx', 'vdi', 'simg', 'lz4', 'zip'])('a .%s destination is refused (28) before anything is written; --format raw writes it raw', (ext) => {
    const out = at(`out.${ext}`);
    const r = sparsecopy([image(), out]);
    expect(r.status, r.stderr).toBe(28);
    expect(r.stderr).toMatch(new RegExp(`^sparsecopy: ${out.replace(/\./g, '\\.')}: a name for .* output, which sparsecopy cannot write yet; nothing written`));
    expect(fs.existsSync(out)).toBe(false);
    expect(sparsecopy(['-q', '--format', 'raw', image(), out]).status).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(image()))).toBe(true);
    fs.rmSync(out);
  });

  it('a program a format needs is named with its Debian package when missing (29), before anything is written', () => {
    const packed = at('needs-xz.xz');
    fs.writeFileSync(packed, execFileSync('xz', ['-c'], { input: Buffer.from('hello') }));
    const bin = at('bin-without-xz');
    fs.mkdirSync(bin, { recursive: true });
    const env = { ...process.env, PATH: bin };
    for (const args of [[packed, at('x.img')], [image(), at('x.img.xz')]]) {
      const r = spawnSync(process.execPath, [SPARSECOPY, ...args], { env });
      expect(r.status, r.stderr.toString()).toBe(29);
      expect(r.stderr.toString()).toMatch(/needs the program (xz|lbzip2), which is not installed \(Debian package xz-utils\); nothing written/);
      expect(fs.existsSync(at('x.img')) || fs.existsSync(at('x.img.xz'))).toBe(false);
    }
  });
});

describe('formats sparsecopy does not read are refused by name, never copied raw by mistake', () => {
  const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
  const qemu: [string, string[], RegExp][] = [
    ['qcow', ['-O', 'qcow'], /a qcow \(version 1\) image; sparsecopy cannot read qcow \(version 1\) yet/],
    ['vhd', ['-O', 'vpc'], /a VHD image; sparsecopy cannot read VHD yet/],
    ['vhdx', ['-O', 'vhdx'], /a VHDX image; sparsecopy cannot read VHDX yet/],
    ['vdi', ['-O', 'vdi'], /a VirtualBox VDI image; sparsecopy cannot read VDI yet/],
  ];
  it.skipIf(!has('qemu-img')).each(qemu)('%s (made by qemu-img): exit 28 naming it, nothing written; --raw copies its bytes', (name, options, message) => {
    const img = at(`in-${name.replace(/\W/g, '-')}.img`); // an innocent name: the bytes decide
    execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', ...options, image(), img]);
    const out = at('refused.img');
    for (const args of [[img, out], ['--from-partition', '1', img, out]]) {
      const r = sparsecopy(args);
      expect(r.status, r.stderr).toBe(28);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/nothing written \(--raw copies its bytes as they are\)\n$/);
      expect(fs.existsSync(out)).toBe(false);
    }
    const piped = shell(`cat '${img}' | ${sc} - '${out}'`);
    expect(piped.status).toBe(28);
    expect(sparsecopy(['-q', '--raw', img, out]).status).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(img))).toBe(true);
    fs.rmSync(out);
  });

  it('a qcow2 image inside gzip (it needs random access), and gzip inside xz, are refused naming both', () => {
    const img = at('in.qcow2');
    execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', image(), img]);
    const gz = at('in-qcow2.gz');
    fs.writeFileSync(gz, execFileSync('gzip', ['-c', img], { maxBuffer: 1 << 30 }));
    const r = sparsecopy([gz, at('q.img')]);
    expect(r.status).toBe(28);
    expect(r.stderr).toMatch(/a qcow2 image inside gzip data; qcow2 needs random access, it cannot be read from a stream/);
    const xz = at('gz-in.xz');
    fs.writeFileSync(xz, execFileSync('xz', ['-c', gz], { maxBuffer: 1 << 30 }));
    const n = sparsecopy([xz, at('q.img')]);
    expect(n.status).toBe(28);
    expect(n.stderr).toMatch(/gzip data inside xz data; sparsecopy decompresses one layer/);
    expect(fs.existsSync(at('q.img'))).toBe(false);
  });

  it('lz4 and zip are refused; an ISO 9660 image is copied as the disk it is', () => {
    const lz4 = at('in.lz4');
    fs.writeFileSync(lz4, execFileSync('lz4', ['-q', '-c', image()], { maxBuffer: 1 << 30 }));
    expect(sparsecopy([lz4, at('l.img')]).stderr).toMatch(/lz4 data; sparsecopy cannot read lz4 data yet/);
    const iso = at('in.iso');
    const tree = at('isotree');
    fs.mkdirSync(tree, { recursive: true });
    fs.writeFileSync(path.join(tree, 'file.txt'), patternBytes(100_000));
    execFileSync('genisoimage', ['-quiet', '-o', iso, tree]);
    const r = sparsecopy(['--json', iso, at('iso.img')]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).inputFormats).toEqual(['iso9660']);
    expect(fs.readFileSync(at('iso.img')).equals(fs.readFileSync(iso))).toBe(true);
  });
});

describe('Android sparse images', () => {
  it('are expanded from a file, from a pipe, and inside xz and gzip (disk.simg.xz)', () => {
    const simg = at('disk.simg');
    execFileSync('img2simg', [image(), simg]);
    const expected = fs.readFileSync(image());
    const out = at('simg.img');
    const r = sparsecopy(['--json', simg, out]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).inputFormats).toEqual(['android-sparse']);
    expect(fs.readFileSync(out).equals(expected)).toBe(true);
    expect(allocatedBytes(out)).toBeLessThan(6 * MiB);
    const piped = shell(`cat '${simg}' | ${sc} -q - '${out}'`);
    expect(piped.status, piped.stderr).toBe(0);
    expect(fs.readFileSync(out).equals(expected)).toBe(true);
    for (const [compressor, format] of [['xz -c -T0', 'xz'], ['gzip -c', 'gzip']] as const) {
      const packed = at(`disk.simg.${format}`);
      fs.writeFileSync(packed, execFileSync('bash', ['-c', `${compressor} '${simg}'`], { maxBuffer: 1 << 30 }));
      const j = sparsecopy(['--json', packed, out]);
      expect(j.status, j.stderr).toBe(0);
      expect(JSON.parse(j.stdout).inputFormats).toEqual([format, 'android-sparse']);
      expect(fs.readFileSync(out).equals(expected)).toBe(true);
    }
  });

  it('a damaged one is exit 18 naming the image and the offset', () => {
    const simg = fs.readFileSync(at('disk.simg'));
    const bad = Buffer.from(simg);
    bad.writeUInt16LE(0xcac9, 28); // the first chunk's type
    const file = at('bad.simg');
    fs.writeFileSync(file, bad);
    const r = sparsecopy([file, at('bad-simg.img')]);
    expect(r.status).toBe(18);
    expect(r.stderr).toBe(`sparsecopy: ${file}: corrupt Android sparse image: chunk 0: unknown chunk type 0xcac9 at byte 28\n`);
    expect(fs.existsSync(at('bad-simg.img'))).toBe(false);
  });
});

describe('long zero runs stay cheap in compressed output', () => {
  it.each([
    // 170 KB of incompressible data, and about 4 bytes per 128 KiB of zeros (zstd RLE blocks),
    // 10 KB per 64 MiB (xz), 2.5 KB per 64 MiB plus the remainder's blocks (bzip2): through the
    // compressor, the zeros would cost xz 17 s and several MB.
    ['zstd', 'zst', 'zstd -dc -q', 300 << 10],
    ['xz', 'xz', 'xz -dc', 700 << 10],
    ['bzip2', 'bz2', 'bzip2 -dc', 400 << 10],
  ])('%s: 3 GiB with data at both ends costs little output and decodes exactly', (format, ext, unmake, maxBytes) => {
    const sparse = at('holes-3g.img');
    if (!fs.existsSync(sparse)) writeSparseFile(sparse, 3 * 2 ** 30, [{ offset: 5, data: patternBytes(100_000, 8) }, { offset: 3 * 2 ** 30 - 70_000, data: patternBytes(70_000, 9) }]);
    const out = at(`holes.${ext}`);
    const started = performance.now();
    const r = sparsecopy(['-q', sparse, out]);
    expect(r.status, r.stderr).toBe(0);
    const seconds = (performance.now() - started) / 1000;
    expect(fs.statSync(out).size).toBeLessThan(maxBytes);
    const check = shell(`${unmake} '${out}' | cmp - '${sparse}' && echo same`);
    expect(check.stdout.toString().trim(), check.stderr).toBe('same');
    console.log(`${format}: 3 GiB of mostly holes in ${seconds.toFixed(2)} s, ${fs.statSync(out).size} bytes`);
  }, 120_000);
});
