/**
 * ptable on hostile and odd disks, against what sfdisk 2.38, partx and sgdisk do with the same
 * bytes: logical partitions numbered as sfdisk numbers them (a type-0 entry with a size is a
 * partition), an extended partition of size 0, empty scripts, damaged GPTs that must not be
 * rewritten as dos, sizes the file system refuses, FIFOs and signals, and error lines that name
 * the program and carry a documented code.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PTABLE, linesOf, newImageIn, ptable, readRange, runTool, sfdiskWrite, sparsecopy, useTempDir, writeSparseFile, patternBytes } from './helpers.js';
import { ebrChain, editFile, editGptEntry, editMbrEntry, readMbrEntry } from './table-edits.js';

let dir = '';
useTempDir('ptable-hard-', (d) => (dir = d));
let counter = 0;
const fresh = (name: string): string => path.join(dir, `${name}-${++counter}.img`);

const MiB = 1024 * 1024;

/** Four logical partitions (5-8) after a primary, written by sfdisk itself. */
const DOS_LOGICALS = `label: dos
label-id: 0x0badcafe

size=8M, type=83
type=5
size=4M, type=83
size=4M, type=82
size=4M, type=83
size=4M, type=83
`;

const GPT_TWO = `label: gpt
label-id: 11112222-3333-4444-5555-666677778888

size=8M, type=L, uuid=AAAAAAAA-0000-4000-8000-000000000001
size=8M, type=L, uuid=AAAAAAAA-0000-4000-8000-000000000002
`;

function sfdiskDisk(script: string, bytes = 64 * MiB): string {
  const img = newImageIn(dir, `sfdisk-${++counter}.img`, bytes);
  sfdiskWrite(img, script);
  return img;
}

/** The partitions sfdisk -J lists: number -> [start, size, type]. */
function sfdiskPartitions(img: string): Map<number, [number, number, string]> {
  const r = runTool('sfdisk', ['-J', img]);
  expect(r.status, r.stderr).toBe(0);
  const parts = (JSON.parse(withoutSfdiskNotes(r.stdout)) as { partitiontable: { partitions: { node: string; start: number; size: number; type: string }[] } }).partitiontable.partitions;
  return new Map(parts.map((p) => [Number(p.node.slice(img.length)), [p.start, p.size, p.type]]));
}

/** sfdisk prints "omitting empty partition (N)" on stdout before the table. */
const withoutSfdiskNotes = (text: string): string => text.replace(/^omitting empty partition \(\d+\)\n/gm, '');

/** `partx -g`: number, start, sectors of each partition, as libblkid (and the kernel) see them. */
const partxRows = (img: string): number[][] => linesOf(runTool('partx', ['-g', '-o', 'NR,START,SECTORS', img]).stdout).map((l) => l.trim().split(/\s+/).map(Number));

/** `ptable show`'s rows as number, start, sectors. */
function showRows(img: string): number[][] {
  const show = ptable(['show', img]);
  expect(show.status, show.stderr).toBe(0);
  return linesOf(show.stdout)
    .filter((l) => /^\s*\d+\s/.test(l))
    .map((l) => l.trim().split(/\s+/))
    .map((r) => [Number(r[0]), Number(r[1]), Number(r[3])]);
}

/** ptable dump and dump --json print what sfdisk -d and -J print; show numbers like partx when `partx`. */
function expectNumberedAsSfdisk(img: string, options: { partx: boolean } = { partx: true }): void {
  const d = ptable(['dump', img]);
  expect(d.status, d.stderr).toBe(0);
  expect(d.stdout).toBe(withoutSfdiskNotes(runTool('sfdisk', ['-d', img]).stdout));
  const j = ptable(['dump', '--json', img]);
  expect(j.stdout).toBe(withoutSfdiskNotes(runTool('sfdisk', ['-J', img]).stdout));
  if (options.partx) expect(showRows(img)).toEqual(partxRows(img));
}

describe('logical partitions numbered as sfdisk and partx number them', () => {
  it('an EBR entry of type 0 with a size is partition 6 (empty), not skipped; check reports it as sfdisk -V does', () => {
    const img = sfdiskDisk(DOS_LOGICALS);
    editFile(img, (image) => editMbrEntry(image, ebrChain(image)[1]!, 0, { type: 0 }));
    expect(sfdiskPartitions(img).get(6)).toEqual([30720, 8192, '0']);
    expectNumberedAsSfdisk(img);
    const v = runTool('sfdisk', ['-V', img]);
    expect(v.stderr).toMatch(/Partition 6: empty\./);
    const c = ptable(['check', img]);
    expect(c.status).toBe(4);
    expect(linesOf(c.stdout)).toEqual([`${img}: error: logical partition 6 (LBA 30720-38911) has type 0 (empty) but 8192 sectors (LBA 30720) [empty-partition]`]);
  });

  it('the type-0 entry after the link entry in its EBR is still the partition', () => {
    const img = sfdiskDisk(DOS_LOGICALS);
    editFile(img, (image) => {
      const ebr = ebrChain(image)[1]!;
      const data = readMbrEntry(image, ebr, 0);
      const link = readMbrEntry(image, ebr, 1);
      editMbrEntry(image, ebr, 0, link);
      editMbrEntry(image, ebr, 1, { ...data, type: 0 });
    });
    expect(sfdiskPartitions(img).get(6)).toEqual([30720, 8192, '0']);
    expectNumberedAsSfdisk(img);
  });

  it('a logical partition of size 0 in the middle is dropped and the later ones move down, as sfdisk does', () => {
    const img = sfdiskDisk(DOS_LOGICALS);
    editFile(img, (image) => editMbrEntry(image, ebrChain(image)[2]!, 0, { sectors: 0 }));
    expect([...sfdiskPartitions(img).keys()]).toEqual([1, 2, 5, 6, 7]);
    expectNumberedAsSfdisk(img);
  });

  it('sparsecopy --to-partition 7 writes into sfdisk partition 7, not into the one after it', () => {
    const img = sfdiskDisk(DOS_LOGICALS);
    editFile(img, (image) => editMbrEntry(image, ebrChain(image)[1]!, 0, { type: 0 }));
    const before = fs.readFileSync(img);
    const src = fresh('src');
    const data = patternBytes(8192, 3);
    writeSparseFile(src, data.length, [{ offset: 0, data }]);
    const r = sparsecopy(['--to-partition', '7', src, img]);
    expect(r.status, r.stderr).toBe(0);
    const [start7] = sfdiskPartitions(img).get(7)!;
    const [start8] = sfdiskPartitions(img).get(8)!;
    expect(readRange(img, start7 * 512, data.length).equals(data)).toBe(true);
    expect(readRange(img, start8 * 512, data.length).equals(before.subarray(start8 * 512, start8 * 512 + data.length))).toBe(true);
  });

  it('an extended partition of size 0 whose chain holds logicals: listed as sfdisk lists them, check fails as sfdisk -V does', () => {
    const img = sfdiskDisk(DOS_LOGICALS);
    editFile(img, (image) => editMbrEntry(image, 0, 1, { sectors: 0 }));
    expect([...sfdiskPartitions(img).keys()]).toEqual([1, 2, 5, 6, 7, 8]);
    expectNumberedAsSfdisk(img, { partx: false });
    // partx and the kernel skip a 0-sector extended partition altogether: they see partition 1 only.
    expect(partxRows(img)).toEqual([[1, 2048, 16384]]);
    expect(runTool('sfdisk', ['-V', img]).stderr).toMatch(/4 errors detected/);
    const c = ptable(['check', img]);
    expect(c.status).toBe(4);
    const outside = linesOf(c.stdout).filter((l) => l.endsWith('[logical-outside-extended]'));
    expect(outside.map((l) => /logical partition (\d+)/.exec(l)![1])).toEqual(['5', '6', '7', '8']);
    expect(c.stderr).toMatch(/^ptable: .*error\(s\) in the dos table$/m);
  });
});

describe('ptable write with an empty script changes nothing, as sfdisk', () => {
  it.each([
    ['empty input', ''],
    ['blank lines', '\n\n  \n\t\n'],
    ['comments only', '# nothing here\n   # nor here\n'],
    ['headers without a label', 'unit: sectors\nlabel-id: 0x12345678\n'],
    ['an ignored partition line', '0,0\n'],
  ])('%s: exit 0, every byte as before (a GPT disk and a dos disk), as sfdisk', (_what, script) => {
    for (const original of [sfdiskDisk(GPT_TWO), sfdiskDisk(DOS_LOGICALS)]) {
      const theirs = fresh('theirs');
      fs.copyFileSync(original, theirs);
      const s = runTool('sfdisk', ['--no-reread', '--no-tell-kernel', theirs], { input: script });
      expect(s.status).toBe(0);
      expect(fs.readFileSync(theirs).equals(fs.readFileSync(original))).toBe(true);

      const mine = fresh('mine');
      fs.copyFileSync(original, mine);
      const r = ptable(['write', mine], { input: script });
      expect(r.status, r.stderr).toBe(0);
      expect(linesOf(r.stderr)).toEqual([`ptable: ${mine}: the script holds no label and no partition: nothing written (as sfdisk)`]);
      expect(fs.readFileSync(mine).equals(fs.readFileSync(original))).toBe(true);
    }
  });

  it('an empty script on a missing image creates nothing, even with --size', () => {
    const img = fresh('missing');
    const r = ptable(['write', '--size', '8M', img], { input: '' });
    expect(r.status, r.stderr).toBe(0);
    expect(fs.existsSync(img)).toBe(false);
  });

  it('a partition line without "label:" keeps the disk\'s label (gpt), as sfdisk does', () => {
    const mine = sfdiskDisk(GPT_TWO);
    const theirs = fresh('theirs');
    fs.copyFileSync(mine, theirs);
    sfdiskWrite(theirs, 'size=1M\n');
    const r = ptable(['write', mine], { input: 'size=1M\n' });
    expect(r.status, r.stderr).toBe(0);
    const layout = (img: string): string[] => linesOf(runTool('sfdisk', ['-d', img]).stdout).filter((l) => /^(label|first-lba|last-lba):/.test(l) || / : start=/.test(l)).map((l) => l.replace(/uuid=[^,]*/, '').replace(img, ''));
    expect(layout(mine)).toEqual(layout(theirs));
    expect(layout(mine)[0]).toBe('label: gpt');
  });
});

describe('ptable refuses to rewrite what it cannot rewrite safely (exit 8, nothing written)', () => {
  it('grow on a GPT whose two headers are both damaged: not rewritten as the dos table of its protective MBR', () => {
    const img = sfdiskDisk(GPT_TWO);
    const last = 64 * MiB - 512;
    editFile(img, (image) => {
      image[512 + 56] ^= 0xff; // disk GUID bytes: both header CRCs fail
      image[last + 56] ^= 0xff;
    });
    const before = fs.readFileSync(img);
    expect(runTool('sfdisk', ['-d', img]).stdout).toMatch(/^label: dos$/m); // what sfdisk then shows
    for (const args of [['grow', img, '1'], ['relocate', img]]) {
      const r = ptable(args);
      expect(r.status, r.stderr).toBe(8);
      expect(linesOf(r.stderr).filter((l) => l.startsWith('ptable: '))).toEqual([
        `ptable: ${img}: its gpt table cannot be read (see the errors above), and its protective MBR is no dos table to change; nothing written`,
      ]);
      expect(fs.readFileSync(img).equals(before)).toBe(true);
    }
  });

  it('grow of a GPT partition that overlaps another (entry edited, CRCs repaired)', () => {
    const img = sfdiskDisk(GPT_TWO);
    editFile(img, (image) => editGptEntry(image, 512, 1, (e) => e.writeBigUInt64LE(10000n, 32)));
    const before = fs.readFileSync(img);
    for (const n of ['1', '2']) {
      const r = ptable(['grow', img, n]);
      expect(r.status, r.stderr).toBe(8);
      expect(linesOf(r.stderr)).toEqual([`ptable: ${img}: refusing to grow partition ${n}: partitions 1 and 2 overlap (LBA 10000-18431); nothing written`]);
      expect(fs.readFileSync(img).equals(before)).toBe(true);
    }
  });
});

describe('ptable errors: one line, the program named, a documented code', () => {
  it('a bad --size says "ptable:", not "sparsecopy:" (exit 1, nothing created)', () => {
    const img = fresh('badsize');
    const r = ptable(['write', '--size', '12Q', img], { input: 'label: dos\n' });
    expect(r.status).toBe(1);
    expect(linesOf(r.stderr)).toEqual([`ptable: bad size '12Q': expected a number of blocks or a number with a suffix B K M G T P E`]);
    expect(fs.existsSync(img)).toBe(false);
  });

  it('two extended partitions in a script: SCRIPT (6) naming the line, the disk unchanged', () => {
    const img = sfdiskDisk(DOS_LOGICALS);
    const before = fs.readFileSync(img);
    const r = ptable(['write', img], { input: 'label: dos\n\ntype=5, size=10M\ntype=5\nsize=1M\n' });
    expect(r.status).toBe(6);
    expect(linesOf(r.stderr)).toEqual([`ptable: ${img}: script line 4: a second extended partition (1 and 2): only one can hold logical partitions`]);
    expect(fs.readFileSync(img).equals(before)).toBe(true);
  });

  it('name= on a dos line: ignored as sfdisk ignores it (the same sectors), with a warning naming the line', () => {
    const script = 'label: dos\nlabel-id: 0x11223344\n\nsize=1M, name="root"\nsize=2M\n';
    const theirs = newImageIn(dir, 'name-theirs.img', 16 * MiB);
    sfdiskWrite(theirs, script);
    const mine = newImageIn(dir, 'name-mine.img', 16 * MiB);
    const r = ptable(['write', mine], { input: script });
    expect(r.status, r.stderr).toBe(0);
    expect(linesOf(r.stderr)).toEqual([`ptable: ${mine}: script line 4: name= ignored: a dos partition has no name (sfdisk ignores it too)`]);
    expect(fs.readFileSync(mine).equals(fs.readFileSync(theirs))).toBe(true);
  });

  it.each(['16T', '17T'])('--size %s on a new image the file system cannot hold: exit 5, one line, no file left', (size) => {
    const img = fresh('huge');
    const r = ptable(['write', '--size', size, img], { input: 'label: gpt\n' });
    expect(r.status).toBe(5);
    expect(linesOf(r.stderr)).toEqual([expect.stringMatching(new RegExp(`^ptable: ${img}: cannot extend the image to \\d+ bytes: file too large$`))]);
    expect(fs.existsSync(img)).toBe(false);
  });

  it('a bad script on a new image: exit 6 and no file left', () => {
    const img = fresh('newbad');
    const r = ptable(['write', '--size', '8M', img], { input: 'label: gpt\n\nstart=abc\n' });
    expect(r.status).toBe(6);
    expect(fs.existsSync(img)).toBe(false);
  });
});

describe('ptable and things that are not disks', () => {
  it('a FIFO is refused at once (exit 2) by every command, without blocking on open', () => {
    const fifo = path.join(dir, 'fifo');
    runTool('mkfifo', [fifo]);
    for (const args of [['show', fifo], ['dump', fifo], ['dump', '--json', fifo], ['check', fifo], ['relocate', fifo], ['grow', fifo, '1']]) {
      const started = performance.now();
      const r = ptable(args);
      expect(performance.now() - started, args.join(' ')).toBeLessThan(5000);
      expect(r.status, args.join(' ')).toBe(2);
      expect(linesOf(r.stderr)).toEqual([`ptable: ${fifo}: not a disk image or block device`]);
    }
    const w = ptable(['write', fifo], { input: 'label: dos\n' });
    expect(w.status).toBe(2);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('%s ends `ptable write` waiting for its script within a second, nothing created', async (signal) => {
    const img = fresh('waiting');
    const child = spawn(process.execPath, [PTABLE, 'write', '--size', '8M', img], { stdio: ['pipe', 'ignore', 'pipe'] });
    await new Promise((r) => setTimeout(r, 400)); // started, blocked reading stdin (kept open)
    const sent = performance.now();
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })));
    child.kill(signal);
    const end = await ended;
    expect(performance.now() - sent).toBeLessThan(1000);
    expect(end.signal ?? end.code).toBeTruthy();
    child.stdin.destroy();
    expect(fs.existsSync(img)).toBe(false);
  });
});
