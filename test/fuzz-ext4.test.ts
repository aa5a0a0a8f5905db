/**
 * Seeded fuzzing of the ext4 reader and of fsmaker on corrupt root filesystems. A small real ext4
 * (mkfs.ext4 -d, 1 KiB blocks, 6 block groups, metadata_csum on) holds what fsmaker reads: /boot
 * with a kernel (a sparse file: a depth-1 extent tree), a symlink to it and an initrd; a big
 * sparse file with a depth-2 extent tree; a 300-entry htree directory; fast, slow and looping
 * symlinks. debugfs locates its superblock, group descriptors, inodes, extent nodes and directory
 * blocks; each region gets seeded byte flips and field edits, tried twice: as mutated (the
 * metadata_csum checksum must catch it) and with the region's checksum repaired (the structural
 * checks behind it must). Every case runs what fsmaker runs, in process, within a time and heap
 * bound, and may only fail with the reader's ExtError (fsmaker's boundary: ToolError 21 or 27).
 * A few dozen cases run the real command and must end with a documented code, touching nothing
 * but their output.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import { ExtError, openExt } from '../src/fsmaker/ext4.js';
import { findRootKernel } from '../src/fsmaker/kernel-find.js';
import { recogniseRootfs, rootViewOfImage } from '../src/fsmaker/rootfs.js';
import { patternBytes, tempLeftovers, useTempDir } from './helpers.js';
import { measured, mutants, runHostile } from './hostile.js';
import { buildRootfs, fakeKernel } from './fsmaker-fixtures.js';
import {
  dataBlocks, editInode, extentNodes, geometry, groupDescOffset, inodeNumber, inodeOffset,
  repairDirBlock, repairExtentNode, repairGroupDesc, repairInode, repairSuperblock,
} from './ext4-edits.js';

let dir = '';
useTempDir('fuzz-ext4-', (d) => (dir = d));

let image = '';
let img: Buffer;

interface Region {
  name: string;
  from: number;
  to: number;
  /** Recomputes the checksum(s) stored in the region after an edit. */
  repair: (img: Buffer) => void;
}
let regions: Region[] = [];

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

beforeAll(() => {
  image = buildRootfs(path.join(dir, 'fuzz.ext4'), {
    mkfs: ['-b', '1024', '-g', '2048', '-N', '2048'],
    size: '12M',
    htree: true,
    tree: (t) => {
      const k = path.join(t, 'boot/vmlinuz-1.0');
      fs.rmSync(k);
      const fd = fs.openSync(k, 'w');
      for (let i = 0; i < 8; i++) fs.writeSync(fd, i === 0 ? fakeKernel(4096, 21) : patternBytes(2048, 30 + i), 0, i === 0 ? 4096 : 2048, i * 8192);
      fs.closeSync(fd);
      fs.symlinkSync('boot/vmlinuz-1.0', path.join(t, 'vmlinuz'));
      const big = fs.openSync(path.join(t, 'big.bin'), 'w');
      for (let i = 0; i < 400; i++) fs.writeSync(big, patternBytes(1024, 100 + i), 0, 1024, i * 2048);
      fs.closeSync(big);
      fs.mkdirSync(path.join(t, 'many'));
      for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(t, 'many', `file-with-a-long-name-${i}`), `${i}\n`);
      fs.symlinkSync(`boot/${'./'.repeat(40)}vmlinuz-1.0`, path.join(t, 'longlink'));
      fs.symlinkSync('loop-b', path.join(t, 'loop-a'));
      fs.symlinkSync('loop-a', path.join(t, 'loop-b'));
    },
  });
  img = fs.readFileSync(image);
  const geo = geometry(img);
  expect(geo.metadataCsum).toBe(true);
  expect(geo.groupCount).toBe(6);
  const ino = (p: string) => inodeNumber(image, p);
  const block = (b: number) => ({ from: b * geo.blockSize, to: (b + 1) * geo.blockSize });
  regions = [
    { name: 'superblock', from: 1024, to: 2048, repair: repairSuperblock },
    { name: 'group descriptors', from: groupDescOffset(img, 0), to: groupDescOffset(img, geo.groupCount), repair: (b) => Array.from({ length: geo.groupCount }, (_, g) => repairGroupDesc(b, g)) },
  ];
  for (const p of ['/', '/boot', '/boot/vmlinuz', '/boot/vmlinuz-1.0', '/boot/initrd.img', '/vmlinuz', '/big.bin', '/many', '/longlink']) {
    const n = ino(p);
    regions.push({ name: `inode ${n} (${p})`, from: inodeOffset(img, n), to: inodeOffset(img, n) + geo.inodeSize, repair: (b) => repairInode(b, n) });
  }
  for (const p of ['/boot/vmlinuz-1.0', '/big.bin']) {
    for (const node of extentNodes(image, p)) regions.push({ name: `extent node ${node.block} of ${p} (level ${node.level}/${node.depth})`, ...block(node.block), repair: (b) => repairExtentNode(b, node.block, ino(p)) });
  }
  for (const p of ['/', '/boot', '/many']) {
    const blocks = dataBlocks(image, p);
    const owner = ino(p);
    // The htree's root (block 0) and two of its leaves; the other directories' first block.
    const chosen = p === '/many' ? [0, 1, blocks.length - 1] : [0];
    for (const i of chosen) regions.push({ name: `directory block ${i} of ${p}`, ...block(blocks[i]!), repair: (b) => repairDirBlock(b, blocks[i]!, owner, p === '/many' && i === 0) });
  }
  expect(regions.filter((r) => r.name.startsWith('extent node')).length).toBeGreaterThanOrEqual(3); // big.bin: depth 2
});

/** Reads of the image as it is now (mutated in place between cases). */
const reader = (offset: number, length: number): Buffer => img.subarray(offset, offset + length);

/** What fsmaker reads of a rootfs; each operation may succeed or fail with an ExtError only. */
const READER_OPS: Array<[string, (fsr: ReturnType<typeof openExt>) => void]> = [
  ['the kernel', (fsr) => {
    const k = fsr.lookup('/boot/vmlinuz');
    if (k?.kind === 'file') fsr.readFile(k, 0, 1 << 20);
  }],
  ['the initrd', (fsr) => {
    const i = fsr.lookup('/boot/initrd.img');
    if (i?.kind === 'file') fsr.readFile(i, Math.max(0, i.size - (1 << 20)), 1 << 20); // fsmaker reads in pieces of 1 MiB
  }],
  ['/vmlinuz', (fsr) => void fsr.lookup('/vmlinuz')],
  ['the htree directory', (fsr) => void fsr.listDir('/many')],
  ['the root directory', (fsr) => void fsr.listDir('/')],
  ['the depth-2 file', (fsr) => {
    const b = fsr.lookup('/big.bin');
    if (b?.kind === 'file') fsr.fileExtents(b);
  }],
  ['the slow symlink', (fsr) => {
    const l = fsr.lookup('/longlink', { follow: false });
    if (l?.kind === 'symlink') fsr.readLink(l);
  }],
  ['the symlink loop', (fsr) => {
    try {
      fsr.lookup('/loop-a');
    } catch (err) {
      if (!(err instanceof ExtError && err.code === 'SYMLINK_LOOP')) throw err; // what a loop must give
    }
  }],
];

interface Outcome {
  failures: string[];
  errors: Map<string, number>;
  cases: number;
  passed: number;
}

/** One case: every reader operation, then fsmaker's own boundary on the same bytes. */
function runCase(what: string, outcome: Outcome): void {
  const m = measured(() => {
    const seen: string[] = [];
    let fsr: ReturnType<typeof openExt> | null = null;
    try {
      fsr = openExt(reader, { imageBytes: img.length });
    } catch (err) {
      if (!(err instanceof ExtError)) throw err;
      seen.push(err.message);
    }
    if (fsr) {
      for (const [name, op] of READER_OPS) {
        try {
          op(fsr);
        } catch (err) {
          if (!(err instanceof ExtError)) throw Object.assign(err as Error, { message: `${name}: ${(err as Error).message}` });
          seen.push(err.message);
        }
      }
    }
    try {
      const rootfs = { ...recogniseRootfs('fuzz.ext4', reader, img.length), close: () => undefined };
      // What fsmaker does with a rootfs before writing: find its kernel and initrd, read their heads.
      const view = rootViewOfImage(rootfs);
      const found = view ? findRootKernel(view) : null;
      if (view && found) {
        view.readRange(found.path, 0, 4096);
        if (found.initrd) view.readRange(found.initrd, 0, 4096);
      }
    } catch (err) {
      if (!(err instanceof ToolError) || !['ROOTFS_UNKNOWN', 'BOOT_FILE_UNUSABLE'].includes(err.code)) throw Object.assign(err as Error, { message: `fsmaker: ${(err as Error).message}` });
    }
    return seen;
  });
  outcome.cases++;
  if (m.error !== undefined) outcome.failures.push(`${what}: ${m.error instanceof Error ? `${m.error.name}: ${m.error.message}` : String(m.error)}`);
  else if (m.value!.length === 0) outcome.passed++;
  for (const message of m.value ?? []) {
    const kind = message.replace(/0x[0-9a-f]+/g, '0xH').replace(/\d+/g, 'N').replace(/ '[^']*'/g, " 'X'");
    outcome.errors.set(kind, (outcome.errors.get(kind) ?? 0) + 1);
  }
  if (m.ms > 500) outcome.failures.push(`${what}: took ${m.ms.toFixed(0)} ms`);
  if (m.heapGrowthBytes > 64e6) outcome.failures.push(`${what}: heap grew by ${m.heapGrowthBytes} bytes`);
}

/** Applies each mutant of a region in place, as mutated and with its checksum repaired, then restores it. */
function fuzzRegion(region: Region, seed: number, count: number, outcome: Outcome): void {
  const original = Buffer.from(img.subarray(region.from, region.to));
  for (const mutant of mutants(original, seed, count)) {
    for (const repaired of [false, true]) {
      mutant.bytes.copy(img, region.from);
      if (repaired) region.repair(img);
      if (img.subarray(region.from, region.to).equals(original)) continue; // the repair undid the edit
      runCase(`${region.name}, ${mutant.description}${repaired ? ', checksum repaired' : ''}`, outcome);
    }
    original.copy(img, region.from);
  }
}

describe('fuzzing the ext4 reader in process', () => {
  it('the pristine image reads cleanly, and the checksum repairs agree with e2fsck', () => {
    const outcome: Outcome = { failures: [], errors: new Map(), cases: 0, passed: 0 };
    runCase('pristine', outcome);
    expect(outcome).toMatchObject({ failures: [], cases: 1, passed: 1 });
    expect([...outcome.errors.keys()]).toEqual([]);
    // A harmless edit (an mtime) with the repairs applied is clean for e2fsck, as the unedited image.
    const copy = Buffer.from(img);
    editInode(copy, inodeNumber(image, '/boot/vmlinuz-1.0'), (raw) => raw.writeUInt32LE(1234567, 0x10));
    for (const r of regions) r.repair(copy);
    const edited = path.join(dir, 'edited.ext4');
    fs.writeFileSync(edited, copy);
    expect(() => execFileSync('e2fsck', ['-fn', edited], { stdio: 'pipe' })).not.toThrow();
    fs.rmSync(edited);
  });

  it('thousands of seeded corruptions end in data or an ExtError, within bounds', () => {
    const before = sha(img);
    const outcome: Outcome = { failures: [], errors: new Map(), cases: 0, passed: 0 };
    regions.forEach((region, i) => fuzzRegion(region, 9000 + i, region.name.startsWith('directory block 0 of /many') || region.name === 'superblock' ? 160 : 90, outcome));
    expect(sha(img), 'the image was not restored').toBe(before);
    expect(outcome.failures.slice(0, 10)).toEqual([]);
    expect(outcome.cases).toBeGreaterThan(3000);
    // Both ends are reached: cases that read cleanly, and many distinct refusals.
    expect(outcome.passed).toBeGreaterThan(100);
    const kinds = [...outcome.errors.keys()];
    expect(kinds.length).toBeGreaterThan(30);
    // With checksums repaired, the structural checks behind them are reached.
    for (const why of [/bad extent header magic/, /extent tree depth/, /bad record length/, /group N's .* (outside|overlaps)/, /unused inode|no file type/, /overlaps|lies in/, /corrupt ext superblock/]) {
      expect(kinds.some((k) => why.test(k)), `no case ended in ${why}`).toBe(true);
    }
    for (const why of [/superblock checksum/, /group descriptor N fails its checksum/, /inode N fails its checksum/, /fails its checksum/]) {
      expect(kinds.some((k) => why.test(k)), `no case ended in ${why}`).toBe(true);
    }
  }, 120_000);
});

describe('fuzzing fsmaker itself on corrupt rootfs images', () => {
  it('a few dozen real runs end with a documented code and write nothing but their output', () => {
    const tmp = path.join(dir, 'tmp');
    fs.mkdirSync(tmp, { recursive: true });
    const work = path.join(dir, 'cli');
    fs.mkdirSync(work, { recursive: true });
    const codes = new Map<number, number>();
    let n = 0;
    for (const [i, region] of regions.entries()) {
      const original = Buffer.from(img.subarray(region.from, region.to));
      for (const mutant of mutants(original, 7000 + i, 2)) {
        const repaired = n % 2 === 1;
        mutant.bytes.copy(img, region.from);
        if (repaired) region.repair(img);
        const input = path.join(work, `case-${n}.ext4`);
        fs.writeFileSync(input, img);
        original.copy(img, region.from);
        const inputSha = sha(fs.readFileSync(input));
        const output = path.join(work, `case-${n}.img`);
        const r = runHostile('fsmaker', ['-q', '--seed', 'fuzz', input, output], { codes: [0, 21, 23, 27], env: { TMPDIR: tmp }, what: `${region.name}, ${mutant.description}${repaired ? ', checksum repaired' : ''}` });
        codes.set(r.status!, (codes.get(r.status!) ?? 0) + 1);
        expect(sha(fs.readFileSync(input)), 'the rootfs changed').toBe(inputSha);
        expect(fs.readdirSync(work).sort()).toEqual([path.basename(input), ...(r.status === 0 ? [path.basename(output)] : [])].sort());
        expect(fs.readdirSync(tmp)).toEqual([]);
        expect(tempLeftovers(work)).toEqual([]);
        fs.rmSync(input);
        fs.rmSync(output, { force: true });
        n++;
      }
    }
    expect(n).toBeGreaterThanOrEqual(30);
    expect(codes.get(21) ?? 0).toBeGreaterThan(0);
    expect(codes.get(0) ?? 0).toBeGreaterThan(0);
  }, 180_000);
});
